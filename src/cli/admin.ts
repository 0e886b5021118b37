/**
 * `infergate tenants|keys|usage ...`: the admin API from the command line. It talks to a running
 * server (`--url`, else $INFERGATE_URL, else http://127.0.0.1:8080) with the admin key
 * (`--admin-key`, else $INFERGATE_ADMIN_KEY), so changes reach every worker and replica at once.
 */
import { parseArgs } from 'node:util';

/** Usage text of the admin commands, for `infergate --help` and an unknown command. */
export const ADMIN_HELP = `Tenants, keys and usage (through a running server's admin API):
  infergate tenants list
  infergate tenants get ID
  infergate tenants create ID --models M[,M...] [--priority high|normal|low] [LIMITS]
  infergate tenants update ID [--models M[,M...]] [--priority P] [LIMITS]
  infergate tenants delete ID
  infergate keys list TENANT
  infergate keys create TENANT [--name NAME] [LIMITS]      prints the new key once
  infergate keys revoke KEY_ID
  infergate keys rotate KEY_ID                             prints the new key once
  infergate usage [--tenant ID] [--from T] [--to T] [--group-by model|day]
LIMITS: --rpm N --tpm N --concurrency N --monthly-tokens N (N = none removes a limit on update)
Every command: --url URL ($INFERGATE_URL, default http://127.0.0.1:8080), --admin-key K ($INFERGATE_ADMIN_KEY), --json`;

const LIMIT_FLAGS = {
  rpm: 'requests_per_minute',
  tpm: 'tokens_per_minute',
  concurrency: 'concurrent_requests',
  'monthly-tokens': 'monthly_tokens',
} as const;

/** A usage mistake or an unreachable server: main prints its message alone and exits 2. */
export class AdminCliError extends Error {}

/** The flags every admin command takes: which server, its admin key, and raw JSON output. */
export const CONNECTION_FLAGS = {
  url: { type: 'string' },
  'admin-key': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** An admin API answer: its status and its JSON body (null when empty). */
export interface Answer {
  readonly status: number;
  readonly body: unknown;
}

/** Calls one admin route; throws AdminCliError when the server cannot be reached. */
export type AdminCall = (method: string, path: string, body?: unknown) => Promise<Answer>;

/**
 * A caller of the admin API at `url` (else $INFERGATE_URL, else http://127.0.0.1:8080) with `key`
 * (else $INFERGATE_ADMIN_KEY). `timeoutMs` bounds each call, for loops that must not hang on one.
 */
export function adminCaller(url: string | undefined, key: string | undefined, timeoutMs?: number): AdminCall {
  const base = (url ?? process.env.INFERGATE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const secret = key ?? process.env.INFERGATE_ADMIN_KEY ?? '';
  return async function callAdmin(method, path, body) {
    const headers: Record<string, string> = {};
    if (secret !== '') headers.authorization = `Bearer ${secret}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new AdminCliError(
        `cannot reach ${base}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`,
      );
    }
    const text = await res.text();
    return { status: res.status, body: text === '' ? null : (JSON.parse(text) as unknown) };
  };
}

/** Prints a refusal as `infergate: STATUS message` on stderr; returns the exit code 1. */
export function refused(a: Answer): number {
  const e = (a.body as { error?: { message?: string } } | null)?.error;
  console.error(`infergate: ${a.status} ${e?.message ?? JSON.stringify(a.body)}`);
  return 1;
}

/** Warns on stderr when a change is done but some replicas have not confirmed it yet (`unconfirmed_replicas`). */
export function warnUnconfirmed(body: unknown): void {
  const unconfirmed = (body as { unconfirmed_replicas?: unknown } | null)?.unconfirmed_replicas;
  if (Array.isArray(unconfirmed) && unconfirmed.length > 0)
    console.error(`infergate: warning: done, but not yet confirmed by ${unconfirmed.join(', ')} (they apply it when they next reload)`);
}

/** Runs one admin command; returns the exit code (0 done, 1 the server refused). */
export async function adminCommand(argv: string[], out: (line: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...CONNECTION_FLAGS,
      models: { type: 'string' },
      priority: { type: 'string' },
      name: { type: 'string' },
      tenant: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      'group-by': { type: 'string' },
      rpm: { type: 'string' },
      tpm: { type: 'string' },
      concurrency: { type: 'string' },
      'monthly-tokens': { type: 'string' },
    },
  });
  const [noun, verb, id] = positionals;
  const call = adminCaller(values.url, values['admin-key']);
  const need = (what: string): string => {
    if (id === undefined) throw new AdminCliError(`usage: infergate ${noun} ${verb} ${what}`);
    return encodeURIComponent(id);
  };
  const limits = (): Record<string, number | null> | undefined => {
    const l: Record<string, number | null> = {};
    for (const [flag, field] of Object.entries(LIMIT_FLAGS)) {
      const v = values[flag as keyof typeof LIMIT_FLAGS];
      if (v === undefined) continue;
      if (v === 'none') l[field] = null;
      else if (/^\d+$/.test(v)) l[field] = Number(v);
      else throw new AdminCliError(`--${flag} must be a whole number or none, got "${v}"`);
    }
    return Object.keys(l).length === 0 ? undefined : l;
  };
  const models = values.models
    ?.split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  const show = (a: Answer, columns?: readonly string[]): number => {
    if (a.status >= 400) return refused(a);
    warnUnconfirmed(a.body);
    const data = (a.body as { data?: unknown } | null)?.data;
    if (columns !== undefined && Array.isArray(data) && values.json !== true) out(table(data as Array<Record<string, unknown>>, columns));
    else out(a.body === null ? 'done' : JSON.stringify(a.body, null, 2));
    return 0;
  };

  switch (`${noun ?? ''} ${verb ?? ''}`) {
    case 'tenants list':
      return show(await call('GET', '/admin/tenants'), ['id', 'priority', 'models', 'limits']);
    case 'tenants get':
      return show(await call('GET', `/admin/tenants/${need('ID')}`));
    case 'tenants create': {
      if (models === undefined)
        throw new AdminCliError('usage: infergate tenants create ID --models M[,M...]; --models "*" allows every model');
      const l = limits();
      return show(
        await call('POST', '/admin/tenants', { id: id ?? need('ID'), models, priority: values.priority, limits: l && dropNulls(l) }),
      );
    }
    case 'tenants update': {
      const path = `/admin/tenants/${need('ID')}`;
      const l = limits();
      let merged: Record<string, number> | undefined;
      if (l !== undefined) {
        const current = await call('GET', path);
        if (current.status >= 400) return show(current);
        merged = dropNulls({ ...(current.body as { limits: Record<string, number> }).limits, ...l });
      }
      return show(await call('PATCH', path, { models, priority: values.priority, limits: merged }));
    }
    case 'tenants delete':
      return show(await call('DELETE', `/admin/tenants/${need('ID')}`));
    case 'keys list':
      return show(await call('GET', `/admin/tenants/${need('TENANT')}/keys`), [
        'id',
        'name',
        'prefix',
        'created_at',
        'revoked_at',
        'limits',
      ]);
    case 'keys create': {
      const l = limits();
      return show(await call('POST', `/admin/tenants/${need('TENANT')}/keys`, { name: values.name, limits: l && dropNulls(l) }));
    }
    case 'keys revoke':
      return show(await call('DELETE', `/admin/keys/${need('KEY_ID')}`));
    case 'keys rotate':
      return show(await call('POST', `/admin/keys/${need('KEY_ID')}/rotate`));
    default:
      if (noun === 'usage') {
        const q = new URLSearchParams();
        for (const [name, v] of [
          ['tenant', values.tenant],
          ['from', values.from],
          ['to', values.to],
          ['group_by', values['group-by']],
        ] as const)
          if (v !== undefined) q.set(name, v);
        return show(await call('GET', `/admin/usage?${q}`), [
          'tenant',
          'group',
          'requests',
          'errors',
          'prompt_tokens',
          'completion_tokens',
          'total_tokens',
        ]);
      }
      throw new AdminCliError(`unknown command "${positionals.join(' ')}"\n${ADMIN_HELP}`);
  }
}

function dropNulls(o: Record<string, number | null>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null)) as Record<string, number>;
}

/** Rows as an aligned text table; objects and arrays as compact JSON. */
export function table(rows: ReadonlyArray<Record<string, unknown>>, columns: readonly string[]): string {
  const cell = (v: unknown): string => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => (r[i] as string).length)));
  const line = (r: readonly string[]): string =>
    r
      .map((v, i) => v.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  return [line(columns), ...cells.map(line)].join('\n');
}
