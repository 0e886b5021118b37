/** The usage ledger in the database: batched inserts and the aggregates the admin and tenant APIs show. */
import { sql, type RawBuilder } from 'kysely';
import type { Db, UsageTable } from './database.js';

export type UsageRecord = Omit<UsageTable, 'seq'>;

export interface UsageQuery {
  readonly tenant: string | null;
  readonly from: number;
  readonly to: number;
  readonly groupBy: 'model' | 'day' | null;
}

export interface UsageRow {
  readonly tenant: string;
  /** The model, or the UTC day (YYYY-MM-DD), per `group_by`; null when not grouped. */
  readonly group: string | null;
  readonly requests: number;
  readonly errors: number;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

const DAY_MS = 86_400_000;
/** Rows per INSERT: 11 columns each keeps a statement under SQLite's 32,766 bound parameters. */
const ROWS_PER_INSERT = 1000;

export class UsageStore {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /** Writes records in one transaction: all of them or none. */
  async insert(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.#db.transaction().execute(async (trx) => {
      for (let i = 0; i < records.length; i += ROWS_PER_INSERT) {
        await trx
          .insertInto('usage')
          .values(records.slice(i, i + ROWS_PER_INSERT))
          .execute();
      }
    });
  }

  /** Totals per tenant, and per model or per UTC day when asked, over [from, to). */
  async aggregate(query: UsageQuery): Promise<UsageRow[]> {
    const group: RawBuilder<string | number | null> =
      query.groupBy === 'model' ? sql`model` : query.groupBy === 'day' ? sql`floor(ts / ${DAY_MS})` : sql`null`;
    let q = this.#db
      .selectFrom('usage')
      .select([
        'tenant_id',
        group.as('grp'),
        sql<number>`count(*)`.as('requests'),
        sql<number>`sum(case when status >= 400 then 1 else 0 end)`.as('errors'),
        sql<number>`sum(prompt_tokens)`.as('prompt_tokens'),
        sql<number>`sum(completion_tokens)`.as('completion_tokens'),
      ])
      .where('ts', '>=', query.from)
      .where('ts', '<', query.to)
      .groupBy(['tenant_id', 'grp'])
      .orderBy('tenant_id')
      .orderBy('grp');
    if (query.tenant !== null) q = q.where('tenant_id', '=', query.tenant);
    const rows = await q.execute();
    return rows.map((r) => {
      const prompt = Number(r.prompt_tokens);
      const completion = Number(r.completion_tokens);
      return {
        tenant: r.tenant_id,
        group:
          r.grp === null ? null : query.groupBy === 'day' ? new Date(Number(r.grp) * DAY_MS).toISOString().slice(0, 10) : String(r.grp),
        requests: Number(r.requests),
        errors: Number(r.errors),
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
      };
    });
  }

  /** Tokens used since `from`, per tenant and per key: the starting point of monthly quotas. */
  async tokensSince(from: number): Promise<{ tenants: Map<string, number>; keys: Map<string, number> }> {
    const rows = await this.#db
      .selectFrom('usage')
      .select(['tenant_id', 'key_id', sql<number>`sum(prompt_tokens + completion_tokens)`.as('tokens')])
      .where('ts', '>=', from)
      .groupBy(['tenant_id', 'key_id'])
      .execute();
    const tenants = new Map<string, number>();
    const keys = new Map<string, number>();
    for (const r of rows) {
      const n = Number(r.tokens);
      tenants.set(r.tenant_id, (tenants.get(r.tenant_id) ?? 0) + n);
      if (r.key_id !== null) keys.set(r.key_id, n);
    }
    return { tenants, keys };
  }
}
