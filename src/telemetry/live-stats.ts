/**
 * The dashboard's live figures: requests per second, error rate, p50 and p99 latency, tokens per
 * second and calls in flight and queued, per deployment and in total, over the last second. They
 * are read from the series /metrics exports (every worker's, summed by the cluster primary: see
 * cluster-metrics.ts), so the serving path counts nothing more: a reading is taken once a second
 * while someone watches, and each figure is the difference from the reading before.
 */
import { NO_MODEL } from '../core/call.js';
import { addFigures, countOf, noFigures, quantileMs, type Figures } from '../core/figures.js';
import type { MemberTotals } from '../cluster/fleet.js';
import type { Registry } from 'prom-client';
import { DURATION_BUCKETS } from './families.js';

/** One deployment's (or the total's) figures over the last window. */
export interface LiveFigures {
  /** Calls answered per second. */
  readonly rps: number;
  /** Share of those answered with a 5xx status (0 to 1; 0 without calls). */
  readonly error_rate: number;
  /** Latency quantiles in ms of the calls that ended in the window; null when none did. */
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  /** Prompt and completion tokens per second (counted when the usage ledger is on); null where not known (the fleet's). */
  readonly tokens_per_s: number | null;
  /** Calls holding an admission slot (else running in the backend), now. */
  readonly in_flight: number;
  /** Calls waiting for an admission slot (else inside the backend), now. */
  readonly queued: number;
}

/** One deployment's row of a snapshot. */
export interface LiveModel extends LiveFigures {
  readonly model: string;
  readonly version: string;
}

/** What one `stats` event of /admin/ui/stream carries. */
export interface LiveSnapshot {
  /** When the reading was taken, epoch ms. */
  readonly at: number;
  /** Seconds since the reading before (about 1). */
  readonly window_s: number;
  /** False when metrics are off (metrics.enabled: false): every figure is then 0 or null. */
  readonly metrics: boolean;
  readonly total: LiveFigures;
  readonly models: readonly LiveModel[];
  /** Every replica's figures from the shared fleet store; null without one. */
  readonly fleet: { readonly replicas: number; readonly total: LiveFigures } | null;
}

/** One deployment's counters and gauges in a scrape, summed over tenants, statuses and codes. */
export interface DeploymentReading {
  calls: number;
  /** Calls answered with a 5xx status. */
  errors: number;
  tokens: number;
  /** Cumulative duration bucket counts, one per DURATION_BUCKETS bound and the last for +Inf. */
  readonly buckets: number[];
  active: number | null;
  queued: number | null;
  running: number | null;
  waiting: number | null;
}

/** A scrape's deployments by `model\0version` (the model NO_MODEL for calls that reached none). */
export type Reading = Map<string, DeploymentReading>;

const BOUNDS_MS = DURATION_BUCKETS.map((s) => s * 1000);

/** The series read, and what each adds to a deployment's reading. */
const FAMILIES: Readonly<Record<string, (d: DeploymentReading, labels: Labels, value: number) => void>> = {
  infergate_requests_total: (d, l, v) => {
    d.calls += v;
    if (String(l.status ?? '').startsWith('5')) d.errors += v;
  },
  infergate_prompt_tokens_total: (d, _l, v) => void (d.tokens += v),
  infergate_completion_tokens_total: (d, _l, v) => void (d.tokens += v),
  infergate_request_duration_seconds_bucket: (d, l, v) => {
    const le = l.le === '+Inf' ? DURATION_BUCKETS.length : DURATION_BUCKETS.indexOf(Number(l.le));
    if (le >= 0) d.buckets[le] = (d.buckets[le] as number) + v;
  },
  infergate_admission_active_calls: (d, _l, v) => void (d.active = (d.active ?? 0) + v),
  infergate_admission_queued_calls: (d, _l, v) => void (d.queued = (d.queued ?? 0) + v),
  infergate_backend_running_requests: (d, _l, v) => void (d.running = (d.running ?? 0) + v),
  infergate_backend_waiting_requests: (d, _l, v) => void (d.waiting = (d.waiting ?? 0) + v),
};

/** The metrics those series belong to (a histogram's buckets are values of its family). */
const METRICS = [
  'infergate_requests_total',
  'infergate_request_duration_seconds',
  'infergate_prompt_tokens_total',
  'infergate_completion_tokens_total',
  'infergate_admission_active_calls',
  'infergate_admission_queued_calls',
  'infergate_backend_running_requests',
  'infergate_backend_waiting_requests',
];

type Labels = Readonly<Partial<Record<string, string | number>>>;

function emptyReading(): DeploymentReading {
  return {
    calls: 0,
    errors: 0,
    tokens: 0,
    buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0),
    active: null,
    queued: null,
    running: null,
    waiting: null,
  };
}

/**
 * This process's reading, from its registry: only the few metrics shown, not the whole exposition
 * (a /metrics scrape of two workers cost about 7 ms of CPU, mostly process metrics and their trip
 * through the primary as prom-client's JSON; this is a fraction of a millisecond).
 */
export async function readingOf(registry: Registry): Promise<Reading> {
  const out: Reading = new Map();
  for (const name of METRICS) {
    const metric = registry.getSingleMetric(name);
    if (metric === undefined) continue;
    const { values } = (await metric.get()) as { values: ReadonlyArray<{ metricName?: string; labels: Labels; value: number }> };
    for (const v of values) {
      const add = FAMILIES[v.metricName ?? name];
      if (add === undefined) continue;
      const key = `${v.labels.model ?? NO_MODEL}\u0000${v.labels.version ?? ''}`;
      let d = out.get(key);
      if (d === undefined) out.set(key, (d = emptyReading()));
      add(d, v.labels, v.value);
    }
  }
  return out;
}

/** A reading as sent between processes: one array per deployment. */
export type PackedReading = Array<
  [key: string, calls: number, errors: number, tokens: number, gauges: Array<number | null>, buckets: number[]]
>;

/** A reading as an IPC message carries it (Maps do not survive the trip). */
export function packReading(r: Reading): PackedReading {
  return [...r].map(([key, d]) => [key, d.calls, d.errors, d.tokens, [d.active, d.queued, d.running, d.waiting], d.buckets]);
}

/** Adds packed readings (every worker's) into `into`: counters and gauges summed, a gauge null only where every one is. */
export function addPacked(into: Reading, packed: PackedReading): Reading {
  const sum = (a: number | null, b: number | null | undefined): number | null => (b === null || b === undefined ? a : (a ?? 0) + b);
  for (const [key, calls, errors, tokens, gauges, buckets] of packed) {
    let d = into.get(key);
    if (d === undefined) into.set(key, (d = emptyReading()));
    d.calls += calls;
    d.errors += errors;
    d.tokens += tokens;
    d.active = sum(d.active, gauges[0]);
    d.queued = sum(d.queued, gauges[1]);
    d.running = sum(d.running, gauges[2]);
    d.waiting = sum(d.waiting, gauges[3]);
    for (let i = 0; i < d.buckets.length; i++) d.buckets[i] = (d.buckets[i] as number) + (buckets[i] ?? 0);
  }
  return into;
}

/**
 * The `q` quantile (0..1) in ms of cumulative bucket counts (the last for +Inf), interpolated
 * within its bucket as Prometheus' histogram_quantile does; null when the histogram is empty.
 */
export function bucketQuantileMs(cumulative: readonly number[], q: number): number | null {
  const total = cumulative[cumulative.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let i = 0;
  while (i < cumulative.length - 1 && (cumulative[i] as number) < rank) i++;
  // In the +Inf bucket: the largest finite bound is all that can be said.
  if (i === cumulative.length - 1) return BOUNDS_MS[BOUNDS_MS.length - 1] as number;
  const lower = i === 0 ? 0 : (BOUNDS_MS[i - 1] as number);
  const below = i === 0 ? 0 : (cumulative[i - 1] as number);
  const inBucket = (cumulative[i] as number) - below;
  const ms = inBucket <= 0 ? lower : lower + ((BOUNDS_MS[i] as number) - lower) * ((rank - below) / inBucket);
  return Math.round(ms * 1000) / 1000;
}

/** `now - before`, never below 0 (a worker that restarted starts its counters again). */
function since(now: DeploymentReading, before: DeploymentReading | undefined): DeploymentReading {
  const d = emptyReading();
  d.calls = Math.max(0, now.calls - (before?.calls ?? 0));
  d.errors = Math.max(0, now.errors - (before?.errors ?? 0));
  d.tokens = Math.max(0, now.tokens - (before?.tokens ?? 0));
  for (let i = 0; i < d.buckets.length; i++) d.buckets[i] = Math.max(0, (now.buckets[i] as number) - (before?.buckets[i] ?? 0));
  // As the fleet's load does (serve.ts deploymentLoad): admission slots, else the backend's own count.
  d.active = now.active ?? now.running;
  d.queued = now.queued ?? now.waiting;
  return d;
}

function figuresOf(delta: DeploymentReading, seconds: number): LiveFigures {
  return {
    rps: round(delta.calls / seconds),
    error_rate: delta.calls === 0 ? 0 : round(delta.errors / delta.calls, 4),
    p50_ms: bucketQuantileMs(delta.buckets, 0.5),
    p99_ms: bucketQuantileMs(delta.buckets, 0.99),
    tokens_per_s: round(delta.tokens / seconds),
    in_flight: delta.active ?? 0,
    queued: delta.queued ?? 0,
  };
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** The figures of every deployment and their total between two readings `seconds` apart. */
export function liveFigures(
  now: Reading,
  before: Reading,
  seconds: number,
  deployments: ReadonlyArray<{ readonly model: string; readonly version: string }>,
): { total: LiveFigures; models: LiveModel[] } {
  const total = emptyReading();
  total.active = 0;
  total.queued = 0;
  const rows = new Map<string, { model: string; version: string; delta: DeploymentReading }>();
  // Every deployment in force has a row, traffic or not.
  for (const d of deployments) rows.set(`${d.model}\u0000${d.version}`, { model: d.model, version: d.version, delta: emptyReading() });
  for (const [key, reading] of now) {
    const delta = since(reading, before.get(key));
    total.calls += delta.calls;
    total.errors += delta.errors;
    total.tokens += delta.tokens;
    for (let i = 0; i < total.buckets.length; i++) total.buckets[i] = (total.buckets[i] as number) + (delta.buckets[i] as number);
    total.active += delta.active ?? 0;
    total.queued += delta.queued ?? 0;
    const [model, version] = key.split('\u0000') as [string, string];
    // Calls that named no model count in the total only; a version no longer in force only while it still sees calls.
    if (model === NO_MODEL || (!rows.has(key) && delta.calls === 0)) continue;
    rows.set(key, { model, version, delta });
  }
  const models = [...rows.values()]
    .sort((a, b) => a.model.localeCompare(b.model) || a.version.localeCompare(b.version))
    .map((r) => ({ model: r.model, version: r.version, ...figuresOf(r.delta, seconds) }));
  return { total: figuresOf(total, seconds), models };
}

/**
 * Every replica's figures from the fleet members' records. Each member renews its record once a
 * heartbeat, at its own moment: a member's rates are taken over its own last renewal interval, so
 * they do not jump with when the dashboard happens to read. Its counters are what rollouts count:
 * calls that ran (not those a client error or a limit ended), faults as errors; no tokens.
 */
export class FleetRates {
  readonly #last = new Map<string, { readonly renewed: number; readonly figures: Figures; rate: Figures; seconds: number }>();

  /** The fleet's figures from the members as last read. */
  next(members: readonly MemberTotals[]): { replicas: number; total: LiveFigures } {
    const sum = noFigures();
    let inFlight = 0;
    let queued = 0;
    const live = new Set<string>();
    for (const m of members) {
      const key = `${m.instance}/${m.member}`;
      live.add(key);
      inFlight += m.in_flight;
      queued += m.queued;
      const last = this.#last.get(key);
      if (last === undefined) {
        this.#last.set(key, { renewed: m.renewed_at, figures: m.figures, rate: noFigures(), seconds: 0 });
        continue;
      }
      if (m.renewed_at > last.renewed) {
        const rate = addFigures(addFigures(noFigures(), m.figures), last.figures, -1);
        // A member that restarted under the same id counts from zero again.
        const restarted = rate.calls < 0;
        this.#last.set(key, {
          renewed: m.renewed_at,
          figures: m.figures,
          rate: restarted ? noFigures() : rate,
          seconds: restarted ? 0 : (m.renewed_at - last.renewed) / 1000,
        });
      }
      const current = this.#last.get(key);
      if (current !== undefined && current.seconds > 0) {
        addFigures(sum, scaled(current.rate, 1 / current.seconds));
      }
    }
    for (const key of this.#last.keys()) if (!live.has(key)) this.#last.delete(key);
    const calls = sum.calls;
    return {
      replicas: new Set(members.map((m) => m.instance)).size,
      total: {
        rps: round(calls),
        error_rate: calls <= 0 ? 0 : round(sum.faults / calls, 4),
        p50_ms: countOf(sum.latency) > 0 ? quantileMs(sum.latency, 0.5) : null,
        p99_ms: countOf(sum.latency) > 0 ? quantileMs(sum.latency, 0.99) : null,
        tokens_per_s: null,
        in_flight: inFlight,
        queued,
      },
    };
  }
}

function scaled(f: Figures, by: number): Figures {
  return { calls: f.calls * by, faults: f.faults * by, latency: f.latency.map((c) => c * by), ttft: f.ttft.map((c) => c * by) };
}

/** Where a sampler reads from; each optional part left out leaves its figures out (0, null). */
export interface LiveSources {
  /** Every worker's reading summed (cluster-metrics.ts liveReadingFor); null when metrics are off. */
  readonly read: (() => Promise<Reading>) | null;
  /** The deployments in force, each shown even without traffic. */
  readonly deployments: () => ReadonlyArray<{ readonly model: string; readonly version: string }>;
  /** The fleet members' counters (a shared fleet store); null alone. */
  readonly members: (() => readonly MemberTotals[]) | null;
  readonly now?: () => number;
}

/** Takes readings and turns each into a snapshot against the one before: the state of the dashboard's stream. */
export class LiveStats {
  readonly #sources: LiveSources;
  readonly #now: () => number;
  #before: { readonly at: number; readonly reading: Reading } | null = null;
  #fleet: FleetRates | null;

  constructor(sources: LiveSources) {
    this.#sources = sources;
    this.#now = sources.now ?? Date.now;
    this.#fleet = sources.members === null ? null : new FleetRates();
  }

  /** Forgets the last reading (nobody watched for a while): the next sample is a new baseline. */
  reset(): void {
    this.#before = null;
    if (this.#sources.members !== null) this.#fleet = new FleetRates();
  }

  /** A reading now; the snapshot since the last one, or null when this one is the first (a baseline). */
  async sample(): Promise<LiveSnapshot | null> {
    const read = this.#sources.read;
    const reading = read === null ? new Map<string, DeploymentReading>() : await read();
    const at = this.#now();
    const fleet = this.#fleet === null || this.#sources.members === null ? null : this.#fleet.next(this.#sources.members());
    const before = this.#before;
    this.#before = { at, reading };
    if (before === null) return null;
    const seconds = Math.max(0.001, (at - before.at) / 1000);
    const { total, models } = liveFigures(reading, before.reading, seconds, this.#sources.deployments());
    return { at, window_s: round(seconds, 3), metrics: read !== null, total, models, fleet };
  }
}
