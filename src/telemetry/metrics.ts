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
}

export interface MetricsOptions {
  /** Label series by tenant; off for deployments with very many tenants. */
  readonly tenantLabel: boolean;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #requests: CounterFamily;
  readonly #duration: HistogramFamily;
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
    this.registry.registerMetric(this.#requests as unknown as Metric);
    this.registry.registerMetric(this.#duration as unknown as Metric);
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
  call(model: string, version: string, tenant: string, status: number, code: string, seconds: number): void {
    const c = this.#child(model, version, this.#tenantLabel ? tenant : '', status, code);
    c.requests.value++;
    c.duration.observe(seconds);
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
      };
      outcomes.set(key, children);
    }
    return children;
  }
}
