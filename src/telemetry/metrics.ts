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
import { CounterFamily, HistogramFamily, type CounterSeries, type HistogramSeries } from './families.js';
import { performance } from 'node:perf_hooks';

/** Buckets from 1 ms to 60 s, fit for a tensor call and a long generation alike. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Children {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
  readonly promptTokens: CounterSeries;
  readonly completionTokens: CounterSeries;
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
}

export interface MetricsOptions {
  /** Label series by tenant; off for deployments with very many tenants. */
  readonly tenantLabel: boolean;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #requests: CounterFamily;
  readonly #duration: HistogramFamily;
  readonly #promptTokens: CounterFamily;
  readonly #completionTokens: CounterFamily;
  readonly #tenantLabel: boolean;
  /** model → version → tenant → "status code" → children. */
  readonly #children = new Map<string, Map<string, Map<string, Map<string, Children>>>>();

  constructor(options: MetricsOptions) {
    this.#tenantLabel = options.tenantLabel;
    const registers = [this.registry];
    this.#requests = new CounterFamily(
      'infergate_requests_total',
      'Model calls answered, by model, version, tenant, HTTP status and error code ("" when it succeeded).',
    );
    this.#duration = new HistogramFamily(
      'infergate_request_duration_seconds',
      'Time from receiving a model call to its last byte (a stream: to its end), by model, version, tenant and status.',
      DURATION_BUCKETS,
    );
    // As vLLM's prompt_tokens_total / generation_tokens_total; counted where the usage ledger counts them.
    this.#promptTokens = new CounterFamily(
      'infergate_prompt_tokens_total',
      'Prompt tokens of finished calls (when the usage ledger is on).',
    );
    this.#completionTokens = new CounterFamily(
      'infergate_completion_tokens_total',
      'Completion tokens of finished calls, streams included (when the usage ledger is on).',
    );
    for (const family of [this.#requests, this.#duration, this.#promptTokens, this.#completionTokens]) {
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

  /** Records one finished model call. `model` and `version` are NO_MODEL when the call never reached one. */
  call(
    model: string,
    version: string,
    tenant: string,
    status: number,
    code: string,
    seconds: number,
    prompt: number,
    completion: number,
  ): void {
    const c = this.#child(model, version, this.#tenantLabel ? tenant : '', status, code);
    c.requests.value++;
    c.duration.observe(seconds);
    c.promptTokens.value += prompt;
    c.completionTokens.value += completion;
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
        duration: this.#duration.series({ model, version, tenant, status: s }),
        promptTokens: this.#promptTokens.series({ model, version, tenant, status: s }),
        completionTokens: this.#completionTokens.series({ model, version, tenant, status: s }),
      };
      outcomes.set(key, children);
    }
    return children;
  }
}
