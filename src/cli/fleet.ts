/**
 * `infergate instances|models|weight|rollout|register ...`: the fleet admin API from the command
 * line, with the connection flags, tables and error display of the tenant commands (./admin.ts).
 * `register` is the one long-running command: a sidecar that keeps an external model server in the
 * registry for as long as it runs, and takes it out when it is stopped.
 */
import { parseArgs } from 'node:util';
import type { InstanceView, RolloutRecord } from '../cluster/fleet.js';
import { AdminCliError, CONNECTION_FLAGS, adminCaller, refused, table, warnUnconfirmed, type AdminCall, type Answer } from './admin.js';

/** Usage text of the fleet commands, for `infergate --help` and an unknown command. */
export const FLEET_HELP = `Fleet: replicas, external model servers, weights and rollouts (through a running server's admin API):
  infergate instances                                     replicas and registered servers
  infergate models                                        one row per model version: weight, its source, readiness, rollout
  infergate weight MODEL VERSION N [--by WHO]             override a version's weight on every replica
  infergate weight MODEL VERSION --clear                  back to the config's weight
  infergate rollout start MODEL VERSION [--steps 1,5,25,50,100] [--step-seconds S] [--min-calls N]
      [--interval-seconds S] [--max-error-rate R] [--max-p99-ratio R] [--max-ttft-p99-ratio R] [--webhook URL] [--by WHO]
  infergate rollout pause|resume|abort|promote MODEL ID [--by WHO]
  infergate rollout status MODEL
  infergate register --url URL --model NAME[@VERSION] [--model ...] [--id ID] [--label K=V ...] [--ttl S]
      [--grpc HOST:PORT] [--gateway URL] [--once]
      Keeps the model server at URL registered (renewed every TTL/3 s, default TTL 30) until SIGTERM or
      SIGINT, then deregisters it; --once registers once and exits. --gateway is the infergate to register
      with ($INFERGATE_URL, default http://127.0.0.1:8080).
Every command but register: --url URL ($INFERGATE_URL, default http://127.0.0.1:8080); all: --admin-key K ($INFERGATE_ADMIN_KEY), --json`;

const OPTIONS = {
  ...CONNECTION_FLAGS,
  by: { type: 'string' },
  clear: { type: 'boolean' },
  steps: { type: 'string' },
  'step-seconds': { type: 'string' },
  'min-calls': { type: 'string' },
  'interval-seconds': { type: 'string' },
  'max-error-rate': { type: 'string' },
  'max-p99-ratio': { type: 'string' },
  'max-ttft-p99-ratio': { type: 'string' },
  webhook: { type: 'string' },
  gateway: { type: 'string' },
  model: { type: 'string', multiple: true },
  id: { type: 'string' },
  label: { type: 'string', multiple: true },
  ttl: { type: 'string' },
  grpc: { type: 'string' },
  once: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof OPTIONS }>>['values'];

/** A rollout as the API shows it. */
type Rollout = Omit<RolloutRecord, 'baseline'>;

/** One model as GET /admin/models shows it. */
interface ModelView {
  readonly name: string;
  readonly default_version: string;
  readonly versions: ReadonlyArray<{
    readonly version: string;
    readonly weight: number;
    readonly weight_source: { readonly from: 'config' } | { readonly from: 'override'; readonly by: string; readonly at: string };
    readonly ready: boolean;
    readonly breaker: string | null;
    readonly replicas: ReadonlyArray<{ readonly instance: string; readonly ready: boolean }>;
  }>;
  readonly rollout: Rollout | null;
}

/** The commands this file runs, for main's dispatch. */
export const FLEET_COMMANDS: ReadonlySet<string> = new Set(['instances', 'models', 'weight', 'rollout', 'register']);

/** Runs one fleet command; returns the exit code (0 done, 1 the server refused). Usage mistakes throw AdminCliError (exit 2). */
export async function fleetCommand(argv: string[], out: (line: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  const [noun, ...rest] = positionals;
  const json = values.json === true;
  if (values.help === true) {
    out(FLEET_HELP);
    return 0;
  }
  if (noun === 'register') return register(values, out);
  const call = adminCaller(values.url, values['admin-key']);
  switch (noun) {
    case 'instances': {
      const a = await call('GET', '/admin/instances');
      if (a.status >= 400) return refused(a);
      out(json ? JSON.stringify(a.body, null, 2) : instancesTable((a.body as { data: InstanceView[] }).data));
      return 0;
    }
    case 'models': {
      const a = await call('GET', '/admin/models');
      if (a.status >= 400) return refused(a);
      out(json ? JSON.stringify(a.body, null, 2) : modelsTable((a.body as { data: ModelView[] }).data));
      return 0;
    }
    case 'weight':
      return weight(call, rest, values, out);
    case 'rollout':
      return rollout(call, rest, values, out);
    default:
      throw new AdminCliError(`unknown command "${positionals.join(' ')}"\n${FLEET_HELP}`);
  }
}

/** `weight MODEL VERSION N|--clear`. */
async function weight(call: AdminCall, args: readonly string[], values: Values, out: (line: string) => void): Promise<number> {
  const [model, version, n] = args;
  const usage = 'usage: infergate weight MODEL VERSION N, or infergate weight MODEL VERSION --clear';
  if (model === undefined || version === undefined || args.length > 3 || (n === undefined) !== (values.clear === true))
    throw new AdminCliError(usage);
  const path = `/admin/models/${enc(model)}/versions/${enc(version)}`;
  const a =
    n === undefined
      ? await call('DELETE', `${path}/weight`)
      : await call('PATCH', path, { weight: decimal('the weight N', n), by: values.by });
  if (a.status >= 400) return refused(a);
  warnUnconfirmed(a.body);
  const b = a.body as { model: string; version: string; weight: number; override: { by: string; at: number } | null };
  if (values.json === true) out(JSON.stringify(b, null, 2));
  else out(`${b.model}@${b.version}: weight ${b.weight} (${b.override === null ? 'config' : `override by ${b.override.by}`})`);
  return 0;
}

/** `rollout start|pause|resume|abort|promote|status ...`. */
async function rollout(call: AdminCall, args: readonly string[], values: Values, out: (line: string) => void): Promise<number> {
  const [verb, model, arg] = args;
  const show = (a: Answer): number => {
    if (a.status >= 400) return refused(a);
    out(values.json === true ? JSON.stringify(a.body, null, 2) : rolloutSummary(a.body as Rollout));
    return 0;
  };
  if (verb === 'start' && model !== undefined && arg !== undefined) {
    return show(await call('POST', `/admin/models/${enc(model)}/rollouts`, plan(arg, values)));
  }
  if ((verb === 'pause' || verb === 'resume' || verb === 'abort' || verb === 'promote') && model !== undefined && arg !== undefined) {
    const body = values.by === undefined ? undefined : { by: values.by };
    return show(await call('POST', `/admin/models/${enc(model)}/rollouts/${enc(arg)}/${verb}`, body));
  }
  if (verb === 'status' && model !== undefined) {
    const a = await call('GET', `/admin/models/${enc(model)}`);
    if (a.status >= 400) return refused(a);
    const r = (a.body as ModelView).rollout;
    if (values.json === true) out(JSON.stringify(r, null, 2));
    else out(r === null ? `${model}: no rollout` : rolloutSummary(r));
    return 0;
  }
  throw new AdminCliError(
    'usage: infergate rollout start MODEL VERSION [flags], infergate rollout pause|resume|abort|promote MODEL ID, or infergate rollout status MODEL',
  );
}

/** The body of POST /admin/models/:name/rollouts: only what the flags say; the server fills in the rest. */
function plan(version: string, v: Values): Record<string, unknown> {
  const num = (flag: keyof Values): number | undefined => {
    const text = v[flag];
    return typeof text === 'string' ? decimal(`--${flag}`, text) : undefined;
  };
  const gates = {
    max_error_rate: num('max-error-rate'),
    max_p99_ratio: num('max-p99-ratio'),
    max_ttft_p99_ratio: num('max-ttft-p99-ratio'),
  };
  return {
    version,
    steps: v.steps?.split(',').map((s) => decimal('--steps', s.trim())),
    step_seconds: num('step-seconds'),
    min_calls: num('min-calls'),
    interval_seconds: num('interval-seconds'),
    gates: Object.values(gates).every((g) => g === undefined) ? undefined : gates,
    webhook_url: v.webhook,
    by: v.by,
  };
}

/** `r-abc running step 2 (5%)`: where a rollout is, in a table cell. */
function rolloutCell(r: Rollout): string {
  return `${r.id} ${r.state} step ${r.step} (${r.weight}%)`;
}

/** A rollout in a few lines: where it is, why, and the figures of its last analysis. */
function rolloutSummary(r: Rollout): string {
  const lines = [
    `${r.model}@${r.version}: rollout ${r.id} ${r.state}, step ${r.step} of ${r.plan.steps.length} (${r.weight}% of unpinned traffic), ` +
      `started by ${r.by} at ${when(r.started_at)}`,
  ];
  if (r.reason !== null) lines.push(`  reason: ${r.reason}`);
  const f = r.figures;
  if (f !== null) {
    const side = (s: typeof f.canary): string =>
      `${s.calls} calls, error rate ${s.error_rate}, p99 ${s.p99_ms ?? '-'} ms, ttft p99 ${s.ttft_p99_ms ?? '-'} ms`;
    lines.push(`  canary: ${side(f.canary)}`, `  stable: ${side(f.stable)}`, `  (over the first ${f.elapsed_s}s of the step)`);
  }
  return lines.join('\n');
}

function instancesTable(list: readonly InstanceView[]): string {
  const rows = list.map((i) => ({
    id: i.id,
    kind: i.kind,
    url: i.url,
    labels: labelsCell(i.labels),
    workers: i.kind === 'external' ? '-' : String(i.workers),
    models: modelsCell(i.models),
    in_flight: i.kind === 'external' ? '-' : String(i.models.reduce((n, m) => n + m.in_flight, 0)),
    lease_age: `${(i.lease_age_ms / 1000).toFixed(1)}s`,
  }));
  const text = table(rows, ['id', 'kind', 'url', 'labels', 'workers', 'models', 'in_flight', 'lease_age']);
  return list.some((i) => i.models.some((m) => !m.ready)) ? `${text}\n(! = not ready)` : text;
}

/** `pool=gpu,zone=a,...`: pool and zone first, as routing reads them. */
function labelsCell(labels: Readonly<Record<string, string>>): string {
  const order = (k: string): number => (k === 'pool' ? 0 : k === 'zone' ? 1 : 2);
  const keys = Object.keys(labels).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  return keys.length === 0 ? '-' : keys.map((k) => `${k}=${labels[k]}`).join(',');
}

/** `chat@1,2! embed@1`: each model once with its versions, `!` after a version that is not ready. */
function modelsCell(models: InstanceView['models']): string {
  const byName = new Map<string, string[]>();
  for (const m of models) {
    const versions = byName.get(m.name) ?? [];
    versions.push(m.ready ? m.version : `${m.version}!`);
    byName.set(m.name, versions);
  }
  return byName.size === 0 ? '-' : [...byName].map(([name, versions]) => `${name}@${versions.join(',')}`).join(' ');
}

function modelsTable(list: readonly ModelView[]): string {
  const rows = list.flatMap((m) =>
    m.versions.map((v) => {
      const s = v.weight_source;
      const readyCount = v.replicas.filter((r) => r.ready).length;
      const ready = v.replicas.length === 0 ? (v.ready ? 'ready' : 'not ready') : `${readyCount}/${v.replicas.length} replicas`;
      return {
        model: m.name,
        version: v.version,
        weight: String(v.weight),
        source: s.from === 'config' ? 'config' : `override by ${s.by} at ${when(s.at)}`,
        ready: v.breaker === null || v.breaker === 'closed' ? ready : `${ready}, breaker ${v.breaker}`,
        rollout: m.rollout !== null && m.rollout.version === v.version ? rolloutCell(m.rollout) : '-',
      };
    }),
  );
  return table(rows, ['model', 'version', 'weight', 'source', 'ready', 'rollout']);
}

// ---- register ---------------------------------------------------------------------------------

/** `infergate register`: registers, renews every ttl/3 seconds, deregisters on SIGTERM/SIGINT. */
async function register(values: Values, out: (line: string) => void): Promise<number> {
  const body = registration(values);
  const every = (body.ttl_seconds * 1000) / 3;
  // A hung gateway must not stall the loop past the next renewal.
  const call = adminCaller(values.gateway, values['admin-key'], Math.max(1000, Math.round(every)));
  const what = `${body.url} (${body.models.map((m) => `${m.name}@${m.version}`).join(', ')})`;
  if (values.once === true) {
    const a = await call('POST', '/admin/instances', body);
    if (a.status >= 400) return refused(a);
    out(
      values.json === true
        ? JSON.stringify(a.body, null, 2)
        : `registered ${(a.body as { id: string }).id}: ${what}, for ${body.ttl_seconds}s`,
    );
    return 0;
  }
  let onSignal: () => void = () => undefined;
  const signalled = new Promise<number>((resolve) => (onSignal = () => resolve(0)));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  let id: string | null = null;
  let failing = true;
  let running = true;
  let timer: NodeJS.Timeout | undefined;
  let giveUp: (code: number) => void = () => undefined;
  const refusedAtFirst = new Promise<number>((resolve) => (giveUp = resolve));
  let pending: Promise<void> = Promise.resolve();
  const renew = async (): Promise<void> => {
    try {
      const a = await call('POST', '/admin/instances', body);
      // Refused before it ever worked (a bad flag, a wrong key): retrying cannot help. Later, the gateway may be mid-reload: retry.
      if (id === null && a.status >= 400 && a.status < 500 && a.status !== 408 && a.status !== 429) return giveUp(refused(a));
      if (a.status >= 400)
        throw new AdminCliError(`${a.status} ${(a.body as { error?: { message?: string } } | null)?.error?.message ?? ''}`);
      id = (a.body as { id: string }).id;
      if (failing) out(`registered ${id}: ${what}, renewing every ${(every / 1000).toFixed(1)}s (ttl ${body.ttl_seconds}s)`);
      failing = false;
    } catch (err) {
      // Never give up on a renewal: the gateway may be restarting, and this loop is what keeps the entry alive.
      console.error(`infergate: register: ${(err as Error).message}; retrying in ${(every / 1000).toFixed(1)}s`);
      failing = true;
    }
    if (running) {
      timer = setTimeout(() => {
        pending = renew();
      }, every);
    }
  };
  pending = renew();
  const code = await Promise.race([signalled, refusedAtFirst]);
  running = false;
  clearTimeout(timer);
  process.removeListener('SIGTERM', onSignal);
  process.removeListener('SIGINT', onSignal);
  if (code !== 0) return code;
  await pending; // a renewal in flight lands before the entry is removed, not after it
  if (id === null) {
    out('never registered: nothing to remove');
    return 0;
  }
  return deregister(call, id, out);
}

/** Removes the entry on the way out; a failure is reported but the exit stays 0, as the lease ends it anyway. */
async function deregister(call: AdminCall, id: string, out: (line: string) => void): Promise<number> {
  try {
    const a = await call('DELETE', `/admin/instances/${enc(id)}`);
    if (a.status >= 400 && a.status !== 404) refused(a);
    else out(`deregistered ${id}`);
  } catch (err) {
    console.error(`infergate: register: ${(err as Error).message}; ${id} leaves when its lease ends`);
  }
  return 0;
}

/** The body of POST /admin/instances, from the flags. */
function registration(v: Values): {
  id?: string;
  url: string;
  grpc?: string;
  models: Array<{ name: string; version: string }>;
  labels?: Record<string, string>;
  ttl_seconds: number;
} {
  const usage = 'usage: infergate register --url URL --model NAME[@VERSION] [--model ...] [--id ID] [--label K=V ...] [--ttl S]';
  if (v.url === undefined || v.model === undefined) throw new AdminCliError(usage);
  if (!/^https?:\/\//.test(v.url)) throw new AdminCliError(`--url must be an http:// or https:// URL of the model server, got "${v.url}"`);
  const models = v.model.map((m) => {
    // Names may hold `@`; a version never does, so the last `@` splits them. Version 1 when none is given.
    const at = m.lastIndexOf('@');
    return at <= 0 ? { name: m, version: '1' } : { name: m.slice(0, at), version: m.slice(at + 1) };
  });
  const labels: Record<string, string> = {};
  for (const l of v.label ?? []) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new AdminCliError(`--label must be KEY=VALUE, got "${l}"`);
    labels[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const ttl = v.ttl === undefined ? 30 : Number(v.ttl);
  if (!/^\d+$/.test(v.ttl ?? '30') || ttl < 1) throw new AdminCliError(`--ttl must be a whole number of seconds >= 1, got "${v.ttl}"`);
  return { id: v.id, url: v.url, grpc: v.grpc, models, labels: v.label === undefined ? undefined : labels, ttl_seconds: ttl };
}

// ---- small pieces -----------------------------------------------------------------------------

/** A non-negative decimal from the command line; anything else is a usage mistake (exit 2). */
function decimal(what: string, text: string): number {
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(text)) throw new AdminCliError(`${what} must be a non-negative number, got "${text}"`);
  return Number(text);
}

/** An ISO time (or epoch milliseconds) to the second, for tables. */
function when(t: string | number): string {
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const enc = encodeURIComponent;
