/**
 * The replicas behind one remote version: which one a call goes to (least outstanding requests by
 * default, round robin, or smooth weighted round robin as nginx does it), and which are out: an
 * endpoint that fails `consecutive_failures` times in a row is ejected for `ejection_ms` (passive
 * health, like Envoy's outlier detection), as is one that fails an active health check. If every
 * endpoint is out, calls still go to the one ejected longest ago rather than nowhere (Envoy's
 * panic mode). Logic only: pools come from a factory, the clock is injected.
 */

/** How a call's endpoint is chosen among those not ejected. */
export type Balance = 'least-outstanding' | 'round-robin' | 'weighted';

/** Balancing and passive ejection settings; `now` is the clock in ms (default Date.now), for tests. */
export interface EndpointOptions {
  readonly balance: Balance;
  /** 0: no passive ejection. */
  readonly consecutiveFailures: number;
  readonly ejectionMs: number;
  readonly now?: () => number;
}

/** One replica: its base URL, weight and connection pool, with the counters balancing and ejection keep. */
export class Endpoint<P> {
  readonly url: string;
  readonly weight: number;
  readonly pool: P;
  outstanding = 0;
  failures = 0;
  ejectedUntil = 0;
  /** Smooth weighted round robin's running weight. */
  current = 0;

  constructor(url: string, weight: number, pool: P) {
    this.url = url;
    this.weight = weight;
    this.pool = pool;
  }
}

/** One endpoint as health reports show it: calls in flight, and whether it is ejected now. */
export interface EndpointStatus {
  readonly url: string;
  readonly outstanding: number;
  readonly ejected: boolean;
}

/** The endpoints of one remote version: picks one per call and ejects and restores them as they fail and recover. */
export class Endpoints<P> {
  readonly list: ReadonlyArray<Endpoint<P>>;
  readonly #options: EndpointOptions;
  readonly #now: () => number;
  #next = 0;

  constructor(list: ReadonlyArray<Endpoint<P>>, options: EndpointOptions) {
    this.list = list;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The endpoint for the next call; the caller must report it with `done`. */
  pick(): Endpoint<P> {
    const list = this.list;
    const first = list[0] as Endpoint<P>;
    if (list.length === 1) return this.#start(first);
    const now = this.#now();
    let candidates = list.filter((e) => e.ejectedUntil <= now);
    if (candidates.length === 0) candidates = [list.reduce((a, b) => (b.ejectedUntil < a.ejectedUntil ? b : a))];
    let chosen: Endpoint<P>;
    switch (this.#options.balance) {
      case 'round-robin':
        chosen = candidates[this.#next++ % candidates.length] as Endpoint<P>;
        break;
      case 'weighted': {
        let total = 0;
        chosen = candidates[0] as Endpoint<P>;
        for (const e of candidates) {
          e.current += e.weight;
          total += e.weight;
          if (e.current > chosen.current) chosen = e;
        }
        chosen.current -= total;
        break;
      }
      default: {
        // Least outstanding; ties rotate so equal endpoints share the load.
        const offset = this.#next++;
        chosen = candidates[offset % candidates.length] as Endpoint<P>;
        for (let i = 1; i < candidates.length; i++) {
          const e = candidates[(offset + i) % candidates.length] as Endpoint<P>;
          if (e.outstanding < chosen.outstanding) chosen = e;
        }
      }
    }
    return this.#start(chosen);
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
    return this.list.map((e) => ({ url: e.url, outstanding: e.outstanding, ejected: e.ejectedUntil > now }));
  }

  #start(endpoint: Endpoint<P>): Endpoint<P> {
    endpoint.outstanding++;
    return endpoint;
  }
}
