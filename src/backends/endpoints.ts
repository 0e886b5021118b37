/**
 * The replicas behind one remote version: which one a call goes to (least outstanding requests by
 * default, round robin, smooth weighted round robin as nginx does it, or the power of two choices
 * over a latency EWMA as Finagle's and Linkerd's balancers do), and which are out: an endpoint that
 * fails `consecutive_failures` times in a row is ejected for `ejection_ms` (passive health, like
 * Envoy's outlier detection), as is one that fails an active health check. With `pools`, a call
 * first tries the endpoints of the pool its priority prefers, and spills over to the others when
 * those are ejected or saturated. If every endpoint is out, calls still go to the one ejected
 * longest ago rather than nowhere (Envoy's panic mode). The set can change under it (discovery):
 * `replace` keeps what stays. Logic only: pools come from a factory, the clock and randomness are
 * injected.
 */
import type { CallPriority } from '../core/call.js';
import type { DiscoveredEndpoint } from './discovery.js';

/** How a call's endpoint is chosen among those not ejected. */
export type Balance = 'least-outstanding' | 'round-robin' | 'weighted' | 'p2c-ewma';

/** Which endpoints a call of each priority prefers (`pools` in the config). */
export interface PoolPreference {
  /** The pool each priority prefers; a priority that names none spreads over every endpoint. */
  readonly prefer: Readonly<Partial<Record<CallPriority, string>>>;
  /** Calls in flight (as balancing counts them) at which an endpoint is saturated: a preferred one that is gets no more calls while others can take them. */
  readonly saturation: number;
}

/** Balancing and passive ejection settings; `now` is the clock in ms (default Date.now) and `random` in [0, 1) (default Math.random), for tests. */
export interface EndpointOptions {
  readonly balance: Balance;
  /** 0: no passive ejection. */
  readonly consecutiveFailures: number;
  readonly ejectionMs: number;
  /** Null or absent: no pools, every endpoint alike. */
  readonly pools?: PoolPreference | null;
  readonly now?: () => number;
  readonly random?: () => number;
}

/**
 * The time constant of the latency EWMA in ms, as Finagle's peak EWMA: a sample `Δt` after the
 * last weighs 1 - e^(-Δt/τ); a sample above the average replaces it at once (peak-sensitive, so a
 * replica that turns slow loses traffic at once and wins it back over ~τ).
 */
export const EWMA_DECAY_MS = 10_000;

/** One replica: its base URL, weight, pool and connection pool, with the counters balancing and ejection keep. */
export class Endpoint<P> {
  readonly url: string;
  /** Share of calls with `balance: weighted`; discovery may change it. */
  weight: number;
  readonly pool: P;
  /** The pool it belongs to (`pools.prefer`); null: none. */
  poolName: string | null;
  /** Calls in flight the endpoint last reported itself (discovery); 0: unknown. */
  load = 0;
  outstanding = 0;
  failures = 0;
  ejectedUntil = 0;
  /** Smooth weighted round robin's running weight. */
  current = 0;
  /** The latency EWMA in ms (p2c-ewma), and when it last took a sample (the clock's ms; -1: never). */
  latency = 1;
  latencyAt = -1;

  constructor(url: string, weight: number, pool: P, poolName: string | null = null) {
    this.url = url;
    this.weight = weight;
    this.pool = pool;
    this.poolName = poolName;
  }

  /** Calls in flight by the measure balancing and saturation use: ours, or what the endpoint reported, whichever is more. */
  get busy(): number {
    return this.outstanding > this.load ? this.outstanding : this.load;
  }
}

/** One endpoint as health reports show it: calls in flight, whether it is ejected now, and its pool where it has one. */
export interface EndpointStatus {
  readonly url: string;
  readonly outstanding: number;
  readonly ejected: boolean;
  readonly pool?: string;
}

/** The endpoints of one remote version: picks one per call and ejects and restores them as they fail and recover. */
export class Endpoints<P> {
  readonly #options: EndpointOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #pools: PoolPreference | null;
  /**
   * The candidates of the pick in progress, in its first `n` places: one array for every pick (a
   * pick never waits, so none overlap), overwritten rather than emptied (truncating an array frees
   * its store, and the next pick would allocate it again).
   */
  readonly #candidates: Array<Endpoint<P>> = [];
  #list: ReadonlyArray<Endpoint<P>>;
  #next = 0;

  constructor(list: ReadonlyArray<Endpoint<P>>, options: EndpointOptions) {
    this.#list = list;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#pools = options.pools ?? null;
  }

  /** The endpoints now (a new array after each `replace`). */
  get list(): ReadonlyArray<Endpoint<P>> {
    return this.#list;
  }

  /**
   * Makes `discovered` the set: an endpoint whose URL stays keeps its object (counters, ejection,
   * latency, connection pool), with the weight, pool and load given now; a new one gets `open(it)`
   * as its pool and starts at the median latency of those measured (so it is neither flooded nor
   * starved before its first sample). Returns the endpoints that left: they get no new calls, and
   * the caller closes their pools. A URL listed twice is one endpoint with the weights summed.
   */
  replace(discovered: readonly DiscoveredEndpoint[], open: (endpoint: DiscoveredEndpoint) => P): Array<Endpoint<P>> {
    const old = new Map(this.#list.map((e) => [e.url, e]));
    const median = this.#medianLatency();
    const next = new Map<string, Endpoint<P>>();
    for (const d of discovered) {
      const twin = next.get(d.url);
      if (twin !== undefined) {
        twin.weight += d.weight;
        twin.load = Math.max(twin.load, d.load);
        continue;
      }
      let e = old.get(d.url);
      if (e === undefined) {
        e = new Endpoint(d.url, d.weight, open(d), d.pool);
        if (median !== null) e.latency = median;
      } else {
        old.delete(d.url);
        e.weight = d.weight;
        e.poolName = d.pool;
      }
      e.load = d.load;
      next.set(d.url, e);
    }
    this.#list = [...next.values()];
    // Let go of endpoints that left (the candidates array keeps whatever the last pick wrote).
    this.#candidates.length = 0;
    return [...old.values()];
  }

  /** Records the latency (ms to the answer's headers) of a call answered by `endpoint`, for `p2c-ewma`. */
  observe(endpoint: Endpoint<P>, ms: number): void {
    const now = this.#now();
    if (endpoint.latencyAt < 0 || ms > endpoint.latency) endpoint.latency = ms;
    else {
      const w = Math.exp(-(now - endpoint.latencyAt) / EWMA_DECAY_MS);
      endpoint.latency = endpoint.latency * w + ms * (1 - w);
    }
    endpoint.latencyAt = now;
  }

  /**
   * The endpoint for the next call, of `priority` (default normal) where pools place calls by it;
   * the caller must report it with `done`. The list must not be empty.
   */
  pick(priority: CallPriority = 'normal'): Endpoint<P> {
    const list = this.#list;
    if (list.length === 1) return this.#start(list[0] as Endpoint<P>);
    if (list.length === 0) throw new Error('no endpoints to pick from');
    const now = this.#now();
    const n = this.#fill(priority, now);
    const candidates = this.#candidates;
    let chosen: Endpoint<P>;
    switch (this.#options.balance) {
      case 'round-robin':
        chosen = candidates[this.#next++ % n] as Endpoint<P>;
        break;
      case 'weighted': {
        let total = 0;
        chosen = candidates[0] as Endpoint<P>;
        for (let i = 0; i < n; i++) {
          const e = candidates[i] as Endpoint<P>;
          e.current += e.weight;
          total += e.weight;
          if (e.current > chosen.current) chosen = e;
        }
        chosen.current -= total;
        break;
      }
      case 'p2c-ewma': {
        chosen = candidates[0] as Endpoint<P>;
        if (n === 1) break;
        // Two distinct candidates at random, the cheaper one wins: the least loaded of all without reading all (Mitzenmacher).
        const i = Math.floor(this.#random() * n);
        let j = Math.floor(this.#random() * (n - 1));
        if (j >= i) j++;
        const a = candidates[i] as Endpoint<P>;
        const b = candidates[j] as Endpoint<P>;
        chosen = this.#cost(b, now) < this.#cost(a, now) ? b : a;
        break;
      }
      default: {
        // Least outstanding; ties rotate so equal endpoints share the load.
        const offset = this.#next++;
        chosen = candidates[offset % n] as Endpoint<P>;
        for (let i = 1; i < n; i++) {
          const e = candidates[(offset + i) % n] as Endpoint<P>;
          if (e.busy < chosen.busy) chosen = e;
        }
      }
    }
    return this.#start(chosen);
  }

  /**
   * Puts the endpoints a call of `priority` may go to first in `#candidates` and returns how many
   * they are: those of its preferred pool that are neither ejected nor saturated; else every other
   * endpoint not ejected; else every endpoint not ejected (the preferred ones, saturated as they
   * are); else the one ejected longest ago (panic mode).
   */
  #fill(priority: CallPriority, now: number): number {
    const list = this.#list;
    const out = this.#candidates;
    let n = 0;
    const pools = this.#pools;
    const want = pools === null ? undefined : pools.prefer[priority];
    if (want !== undefined) {
      const saturation = (pools as PoolPreference).saturation;
      for (const e of list) if (e.poolName === want && e.ejectedUntil <= now && e.busy < saturation) out[n++] = e;
      if (n > 0) return n;
      for (const e of list) if (e.poolName !== want && e.ejectedUntil <= now) out[n++] = e;
      if (n > 0) return n;
    }
    for (const e of list) if (e.ejectedUntil <= now) out[n++] = e;
    if (n === 0) out[n++] = list.reduce((a, b) => (b.ejectedUntil < a.ejectedUntil ? b : a));
    return n;
  }

  /** p2c-ewma's cost of one more call: the latency EWMA, decayed toward 0 while it takes no samples (so an idle endpoint is tried again), times the calls it would have. */
  #cost(e: Endpoint<P>, now: number): number {
    const latency = e.latencyAt < 0 ? e.latency : e.latency * Math.exp(-(now - e.latencyAt) / EWMA_DECAY_MS);
    return latency * (e.busy + 1);
  }

  /** The median latency of the endpoints that took a sample; null: none has. */
  #medianLatency(): number | null {
    const measured = this.#list.filter((e) => e.latencyAt >= 0).map((e) => e.latency);
    if (measured.length === 0) return null;
    measured.sort((a, b) => a - b);
    const mid = measured.length >> 1;
    return measured.length % 2 === 1 ? (measured[mid] as number) : ((measured[mid - 1] as number) + (measured[mid] as number)) / 2;
  }

  /** A call to `endpoint` ended; `failed`: it could not be reached or answered 5xx. */
  done(endpoint: Endpoint<P>, failed: boolean): void {
    endpoint.outstanding--;
    if (!failed) {
      endpoint.failures = 0;
      return;
    }
    endpoint.failures++;
    const limit = this.#options.consecutiveFailures;
    if (limit > 0 && endpoint.failures >= limit) this.eject(endpoint);
  }

  /** A call to `endpoint` ended that says nothing of its health (a probe of a route it may not have): neither a failure nor a success. */
  release(endpoint: Endpoint<P>): void {
    endpoint.outstanding--;
  }

  /** Takes an endpoint out for the ejection time (also used by active health checks). */
  eject(endpoint: Endpoint<P>): void {
    endpoint.ejectedUntil = this.#now() + this.#options.ejectionMs;
    endpoint.failures = 0;
  }

  /** Puts an endpoint back (a passing health check). */
  restore(endpoint: Endpoint<P>): void {
    endpoint.ejectedUntil = 0;
  }

  status(): EndpointStatus[] {
    const now = this.#now();
    return this.#list.map((e) => {
      const status = { url: e.url, outstanding: e.outstanding, ejected: e.ejectedUntil > now };
      return e.poolName === null ? status : { ...status, pool: e.poolName };
    });
  }

  #start(endpoint: Endpoint<P>): Endpoint<P> {
    endpoint.outstanding++;
    return endpoint;
  }
}
