/**
 * Prometheus metrics (prom-client): one registry per worker process, aggregated by the cluster
 * primary when `/metrics` is scraped (so one scrape sees every worker). Names follow Prometheus
 * conventions: base units in the name (`_seconds`), `_total` for counters; the request families
 * mirror Triton's `nv_inference_request_*` and vLLM's `e2e_request_latency` in meaning.
 *
 * The request path only looks up: each (model, version, tenant, status, code) combination gets its
 * series once and keeps them, so recording a call is four map lookups and a few additions.
 */
import { collectDefaultMetrics, Gauge, Registry, type Metric } from 'prom-client';
import { CounterFamily, DURATION_BUCKETS, HistogramFamily, type CounterSeries, type HistogramSeries } from './families.js';
import { performance } from 'node:perf_hooks';
import type { DeploymentObserver, ShedReason, UpstreamOutcome } from '../core/observer.js';
import { NO_MODEL } from '../core/call.js';
import { bucketOf, noFigures, type Figures } from '../core/figures.js';
import { ROLLOUT_STATES } from '../routing/rollout.js';

// In families.ts (which imports nothing), so the primary's live-stats.ts need not load prom-client.
export { DURATION_BUCKETS };
/** Time per output token: 1 ms (a tiny model) to 2.5 s (a large one on a busy CPU), as vLLM's. */
const TOKEN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];
/** Rows per model execution: powers of two up to 256, as batch sizes are configured. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/** A call's series by (model, version, tenant, outcome), plus its deployment's. */
interface Children {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
  readonly promptTokens: CounterSeries;
  readonly completionTokens: CounterSeries;
  readonly deployment: Deployment | null;
  /** Whether the outcome is the version's own fault (what a rollout's error gate counts). */
  readonly fault: boolean;
}

/** The codes of calls that failed by the version's fault, not the client's or a limit's. */
const FAULTS: ReadonlySet<string> = new Set([
  'upstream_error',
  'upstream_unavailable',
  'upstream_timeout',
  'circuit_open',
  'model_not_ready',
  'internal_error',
]);

/** Label values of one deployment: a model and version. */
type DeploymentLabels = { readonly model: string; readonly version: string };

/** The series of one deployment, kept by its version (its {@link DeploymentObserver}) and by the request series. */
class Deployment implements DeploymentObserver {
  /** Counters a rollout compares across replicas (not exported to /metrics). */
  readonly figures: Figures = noFigures();
  readonly ttft: HistogramSeries;
  readonly tpot: HistogramSeries;
  readonly #queue: HistogramSeries;
  readonly #backend: HistogramSeries;
  readonly #retries: CounterSeries;
  readonly #fallbacks: CounterSeries;
  readonly #shed: Record<ShedReason, CounterSeries>;
  readonly #batch: HistogramSeries;
  readonly #inferences: CounterSeries;
  readonly #executions: CounterSeries;
  readonly #upstreamFamily: CounterFamily;
  readonly #labels: DeploymentLabels;
  /** Upstream requests by pool ('' for none): each pool's two series are found once, then only looked up. */
  readonly #upstream = new Map<string, Record<UpstreamOutcome, CounterSeries>>();

  readonly model: string;
  readonly version: string;

  constructor(f: DeploymentFamilies, labels: DeploymentLabels) {
    this.model = labels.model;
    this.version = labels.version;
    this.ttft = f.ttft.series(labels);
    this.tpot = f.tpot.series(labels);
    this.#queue = f.queue.series(labels);
    this.#backend = f.backend.series(labels);
    this.#retries = f.retries.series(labels);
    this.#fallbacks = f.fallbacks.series(labels);
    this.#shed = {
      queue_full: f.shed.series({ ...labels, reason: 'queue_full' }),
      queue_timeout: f.shed.series({ ...labels, reason: 'queue_timeout' }),
    };
    this.#batch = f.batch.series(labels);
    this.#inferences = f.inferences.series(labels);
    this.#executions = f.executions.series(labels);
    this.#upstreamFamily = f.upstream;
    this.#labels = labels;
  }

  queued(seconds: number): void {
    this.#queue.observe(seconds);
  }

  shed(reason: ShedReason): void {
    this.#shed[reason].value++;
  }

  attempt(seconds: number): void {
    this.#backend.observe(seconds);
  }

  retried(): void {
    this.#retries.value++;
  }

  fellBack(): void {
    this.#fallbacks.value++;
    // Another deployment answered the call, which is counted there: here it is a failure of this version's.
    this.figures.calls++;
    this.figures.faults++;
  }

  executed(rows: number, requests: number): void {
    this.#batch.observe(rows);
    this.#inferences.value += requests;
    this.#executions.value++;
  }

  upstream(pool: string | null, outcome: UpstreamOutcome): void {
    const key = pool ?? '';
    let series = this.#upstream.get(key);
    if (series === undefined) {
      const labels = { model: this.#labels.model, version: this.#labels.version, pool: key === '' ? 'none' : key };
      series = {
        ok: this.#upstreamFamily.series({ ...labels, outcome: 'ok' }),
        error: this.#upstreamFamily.series({ ...labels, outcome: 'error' }),
      };
      this.#upstream.set(key, series);
    }
    series[outcome].value++;
  }
}

/** The families whose series are per deployment. */
interface DeploymentFamilies {
  readonly ttft: HistogramFamily;
  readonly tpot: HistogramFamily;
  readonly queue: HistogramFamily;
  readonly backend: HistogramFamily;
  readonly retries: CounterFamily;
  readonly fallbacks: CounterFamily;
  readonly shed: CounterFamily;
  readonly batch: HistogramFamily;
  readonly inferences: CounterFamily;
  readonly executions: CounterFamily;
  readonly upstream: CounterFamily;
}

/** What the rollout gauges read at scrape time. */
export interface RolloutView {
  readonly model: string;
  readonly version: string;
  readonly id: string;
  readonly state: string;
  readonly step: number;
  readonly weight: number;
}

/** What the deployment gauges read at scrape time (nothing is counted on the request path for them). */
export interface DeploymentView {
  readonly model: string;
  readonly version: string;
  /** closed, half-open, open; null without a breaker. */
  readonly breaker: string | null;
  /** Calls holding an admission slot and waiting for one; null without admission control. */
  readonly active: number | null;
  readonly queued: number | null;
  /** Requests the backend is working on and waiting inside it (sequences, a batch queue, upstream calls); null: it does not say. */
  readonly running: number | null;
  readonly waiting: number | null;
}

/** Settings of Metrics (`metrics.tenant_label`). */
export interface MetricsOptions {
  /** Label series by tenant; off for deployments with very many tenants. */
  readonly tenantLabel: boolean;
}

/**
 * One worker's metrics, in `registry`: model calls, limit refusals, per-deployment series (see
 * `deployment()`), deployment gauges (`watch()`, to be called once) and prom-client's process metrics.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #requests: CounterFamily;
  readonly #duration: HistogramFamily;
  readonly #promptTokens: CounterFamily;
  readonly #completionTokens: CounterFamily;
  readonly #limited: CounterFamily;
  readonly #families: DeploymentFamilies;
  readonly #tenantLabel: boolean;
  /** model → version → tenant → "status code" → children. */
  readonly #children = new Map<string, Map<string, Map<string, Map<string, Children>>>>();
  /** "model\0version" → its series (kept across reloads, so a reloaded version keeps counting in the same series). */
  readonly #deployments = new Map<string, Deployment>();
  /** "tenant\0limit" → refusals. */
  readonly #limitedSeries = new Map<string, CounterSeries>();

  constructor(options: MetricsOptions) {
    this.#tenantLabel = options.tenantLabel;
    const registers = [this.registry];
    this.#requests = new CounterFamily(
      'infergate_requests_total',
      'Model calls answered, by model, version, tenant, HTTP status and error code ("" when it succeeded).',
    );
    this.#duration = new HistogramFamily(
      'infergate_request_duration_seconds',
      'Time from receiving a model call to its last byte (a stream: to its end), by model, version, tenant, status and error code.',
      DURATION_BUCKETS,
    );
    // As vLLM's prompt_tokens_total / generation_tokens_total; counted where the usage ledger counts them.
    this.#promptTokens = new CounterFamily(
      'infergate_prompt_tokens_total',
      'Prompt tokens of finished calls (when the usage ledger is on), by model, version, tenant, status and error code.',
    );
    this.#completionTokens = new CounterFamily(
      'infergate_completion_tokens_total',
      'Completion tokens of finished calls, streams included (when the usage ledger is on), by model, version, tenant, status and error code.',
    );
    this.#limited = new CounterFamily(
      'infergate_rate_limited_requests_total',
      'Calls refused with 429 by a tenant or key limit, by tenant and limit (requests_per_minute, tokens_per_minute, concurrent_requests, monthly_tokens).',
    );
    // Meanings as vLLM's time_to_first_token_seconds / time_per_output_token_seconds, Triton's
    // nv_inference_queue_duration_us / compute time, inference_count / exec_count, in base units.
    this.#families = {
      ttft: new HistogramFamily(
        'infergate_time_to_first_token_seconds',
        'Streamed text calls: time from receiving the call to writing its first token.',
        DURATION_BUCKETS,
      ),
      tpot: new HistogramFamily(
        'infergate_time_per_output_token_seconds',
        'Streamed text calls: time per completion token after the first (when the usage ledger counts tokens).',
        TOKEN_BUCKETS,
      ),
      queue: new HistogramFamily(
        'infergate_queue_duration_seconds',
        'Time a call waited for an admission slot (versions with policies.admission).',
        DURATION_BUCKETS,
      ),
      backend: new HistogramFamily(
        'infergate_backend_duration_seconds',
        'Time one attempt at the backend took (in-process model or upstream server; a stream: until it began).',
        DURATION_BUCKETS,
      ),
      retries: new CounterFamily('infergate_retries_total', 'Failed attempts at a deployment that were tried again.'),
      fallbacks: new CounterFamily(
        'infergate_fallbacks_total',
        'Calls a deployment failed that its fallbacks (or its degraded answer) then served or tried.',
      ),
      shed: new CounterFamily(
        'infergate_shed_requests_total',
        'Calls refused with 503 overloaded before running, by reason (queue_full, queue_timeout).',
      ),
      batch: new HistogramFamily('infergate_batch_size', 'Rows per model execution of tensor and embedding models.', BATCH_BUCKETS),
      inferences: new CounterFamily(
        'infergate_inference_count_total',
        'Requests executed by tensor and embedding models (Triton: inference count); over execution count, the batching gain.',
      ),
      executions: new CounterFamily(
        'infergate_inference_exec_count_total',
        'Model executions of tensor and embedding models (Triton: exec count): one per batch.',
      ),
      upstream: new CounterFamily(
        'infergate_upstream_requests_total',
        "Requests remote versions sent upstream, by the pool of the endpoint that served them ('none': no pool) and outcome " +
          '(error: unreachable, timed out or 5xx, as passive health counts failures; ok: anything else).',
      ),
    };
    for (const family of [
      this.#requests,
      this.#duration,
      this.#promptTokens,
      this.#completionTokens,
      this.#limited,
      ...Object.values(this.#families),
    ]) {
      this.registry.registerMetric(family as unknown as Metric);
    }
    // prom-client's process metrics (CPU, RSS, heap per space, GC pauses by kind, event-loop lag),
    // less its three gauges named `_total` (Prometheus' conventions and promtool reserve the suffix for
    // counters); `infergate_nodejs_active_handles` and `_resources` by type stay.
    const defaults = new Registry();
    collectDefaultMetrics({ register: defaults, prefix: 'infergate_', eventLoopMonitoringPrecision: 10 });
    for (const metric of defaults.getMetricsAsArray()) {
      if (!/^infergate_nodejs_active_(handles|requests|resources)_total$/.test(metric.name))
        this.registry.registerMetric(metric as unknown as Metric);
    }
    const elu = { last: performance.eventLoopUtilization() };
    new Gauge({
      name: 'infergate_nodejs_eventloop_utilization_ratio',
      help: 'Share of time the event loop was busy since the previous scrape (0 to 1), averaged over workers.',
      aggregator: 'average',
      registers,
      collect() {
        const now = performance.eventLoopUtilization();
        this.set(performance.eventLoopUtilization(now, elu.last).utilization);
        elu.last = now;
      },
    });
  }

  /** Each deployment's rollout counters since this process started, by `model` and `version`. */
  figures(): Array<{ readonly model: string; readonly version: string; readonly figures: Figures }> {
    return [...this.#deployments.values()].map((d) => ({ model: d.model, version: d.version, figures: d.figures }));
  }

  /** The observer of one deployment: its queue, policies and backend report to it. */
  deployment(model: string, version: string): DeploymentObserver {
    return this.#deployment(model, version);
  }

  /**
   * Records one finished model call. `model` and `version` are NO_MODEL when the call never
   * reached one; `firstToken` is seconds to the first token of a stream, else -1.
   */
  call(
    model: string,
    version: string,
    tenant: string,
    status: number,
    code: string,
    seconds: number,
    prompt: number,
    completion: number,
    firstToken: number,
  ): void {
    const c = this.#child(model, version, this.#tenantLabel ? tenant : '', status, code);
    c.requests.value++;
    c.duration.observe(seconds);
    c.promptTokens.value += prompt;
    c.completionTokens.value += completion;
    const d = c.deployment;
    // A rollout judges the version: calls the client or a limit ended (4xx, 499) say nothing of it.
    if (d !== null && (status < 400 || c.fault)) {
      const f = d.figures;
      f.calls++;
      if (c.fault) f.faults++;
      const i = bucketOf(seconds * 1000);
      f.latency[i] = (f.latency[i] as number) + 1;
      if (firstToken >= 0) {
        const t = bucketOf(firstToken * 1000);
        f.ttft[t] = (f.ttft[t] as number) + 1;
      }
    }
    if (firstToken >= 0 && c.deployment !== null) {
      c.deployment.ttft.observe(firstToken);
      if (completion > 1) c.deployment.tpot.observe((seconds - firstToken) / (completion - 1));
    }
  }

  /** A call refused by `limit` of a tenant or key. */
  limited(tenant: string, limit: string): void {
    const t = this.#tenantLabel ? tenant : '';
    const key = `${t}\u0000${limit}`;
    let series = this.#limitedSeries.get(key);
    if (series === undefined) this.#limitedSeries.set(key, (series = this.#limited.series({ tenant: t, limit })));
    series.value++;
  }

  /**
   * Gauges of the rollouts this process knows of, read when scraped: `infergate_rollout_state`
   * (1 on the series of the rollout's current state, 0 on the others), `infergate_rollout_step`
   * (1-based) and `infergate_rollout_weight` (the canary's percent). Workers' copies agree: `max`.
   */
  watchRollouts(rollouts: () => readonly RolloutView[]): void {
    const registers = [this.registry];
    new Gauge({
      name: 'infergate_rollout_state',
      help: 'Each rollout, 1 on its current state (running, paused, promoted, rolled_back, aborted).',
      labelNames: ['model', 'version', 'rollout', 'state'],
      aggregator: 'max',
      registers,
      collect() {
        this.reset();
        for (const r of rollouts()) {
          for (const state of ROLLOUT_STATES) {
            this.set({ model: r.model, version: r.version, rollout: r.id, state }, r.state === state ? 1 : 0);
          }
        }
      },
    });
    new Gauge({
      name: 'infergate_rollout_step',
      help: 'The step each rollout is at (1-based; after promotion, the last).',
      labelNames: ['model', 'version', 'rollout'],
      aggregator: 'max',
      registers,
      collect() {
        this.reset();
        for (const r of rollouts()) this.set({ model: r.model, version: r.version, rollout: r.id }, r.step);
      },
    });
    new Gauge({
      name: 'infergate_rollout_weight',
      help: "The canary's share of unpinned traffic under each rollout, in percent.",
      labelNames: ['model', 'version', 'rollout'],
      aggregator: 'max',
      registers,
      collect() {
        this.reset();
        for (const r of rollouts()) this.set({ model: r.model, version: r.version, rollout: r.id }, r.weight);
      },
    });
  }

  /** Gauges per deployment, read when scraped: circuit breaker state (0 closed, 1 half-open, 2 open) and admission slots. */
  watch(deployments: () => readonly DeploymentView[]): void {
    const STATES: Record<string, number> = { closed: 0, 'half-open': 1, open: 2 };
    /** A gauge per deployment, set from `value` at each scrape; deployments where it is null have no series. */
    const gauge = (name: string, help: string, value: (d: DeploymentView) => number | null, aggregator: 'sum' | 'max' = 'sum'): void => {
      new Gauge({
        name,
        help,
        labelNames: ['model', 'version'],
        aggregator,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const d of deployments()) {
            const v = value(d);
            if (v !== null) this.set({ model: d.model, version: d.version }, v);
          }
        },
      });
    };
    gauge(
      'infergate_circuit_breaker_state',
      'Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open (the worst over workers).',
      (d) => (d.breaker === null ? null : (STATES[d.breaker] ?? 0)),
      'max',
    );
    gauge(
      'infergate_admission_active_calls',
      'Calls holding an admission slot per deployment (versions with policies.admission).',
      (d) => d.active,
    );
    gauge('infergate_admission_queued_calls', 'Calls waiting for an admission slot per deployment.', (d) => d.queued);
    // As vLLM's num_requests_running / num_requests_waiting.
    gauge(
      'infergate_backend_running_requests',
      'Requests a backend is working on: llama.cpp sequences in use, upstream calls in flight.',
      (d) => d.running,
    );
    gauge(
      'infergate_backend_waiting_requests',
      'Requests waiting inside a backend: for a llama.cpp sequence, or for a batch.',
      (d) => d.waiting,
    );
  }

  #deployment(model: string, version: string): Deployment {
    const key = `${model}\u0000${version}`;
    let d = this.#deployments.get(key);
    if (d === undefined) this.#deployments.set(key, (d = new Deployment(this.#families, { model, version })));
    return d;
  }

  #child(model: string, version: string, tenant: string, status: number, code: string): Children {
    let versions = this.#children.get(model);
    if (versions === undefined) this.#children.set(model, (versions = new Map()));
    let tenants = versions.get(version);
    if (tenants === undefined) versions.set(version, (tenants = new Map()));
    let outcomes = tenants.get(tenant);
    if (outcomes === undefined) tenants.set(tenant, (outcomes = new Map()));
    const key = code === '' ? String(status) : `${status} ${code}`;
    let children = outcomes.get(key);
    if (children === undefined) {
      const s = String(status);
      children = {
        requests: this.#requests.series({ model, version, tenant, status: s, code }),
        // Every family of a call has the counter's labels: one series per (status, code), so two codes of one status never collide.
        duration: this.#duration.series({ model, version, tenant, status: s, code }),
        promptTokens: this.#promptTokens.series({ model, version, tenant, status: s, code }),
        completionTokens: this.#completionTokens.series({ model, version, tenant, status: s, code }),
        deployment: model === NO_MODEL ? null : this.#deployment(model, version),
        fault: FAULTS.has(code),
      };
      outcomes.set(key, children);
    }
    return children;
  }
}
