/** Parses `from`, `to` and `group_by` of the usage endpoints (/admin/usage and /v1/usage). */
import { fastError } from '../../../core/errors.js';
import type { UsageQuery } from '../../../store/usage.js';

/** Defaults: from the start of this month (UTC) to now. Times are ISO 8601 (`2026-11-01`, `2026-11-24T10:00:00Z`) or epoch milliseconds. */
export function usageQuery(query: Record<string, string | undefined>, tenant: string | null): UsageQuery {
  const now = Date.now();
  const d = new Date(now);
  const from = time(query.from, 'from') ?? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const to = time(query.to, 'to') ?? now + 1;
  if (to <= from)
    throw fastError('invalid_request', `\`to\` must be after \`from\`, got from=${query.from ?? from} to=${query.to ?? to}`, 'to');
  const group = query.group_by;
  if (group !== undefined && group !== 'model' && group !== 'day') {
    throw fastError('invalid_request', `\`group_by\` must be model or day, got ${JSON.stringify(group).slice(0, 40)}`, 'group_by');
  }
  return { tenant, from, to, groupBy: group ?? null };
}

function time(text: string | undefined, name: string): number | null {
  if (text === undefined || text === '') return null;
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms)) {
    throw fastError(
      'invalid_request',
      `\`${name}\` must be an ISO 8601 time or epoch milliseconds, got ${JSON.stringify(text).slice(0, 40)}`,
      name,
    );
  }
  return ms;
}
