/**
 * The replicas of one remote version, as every remote kind (openai, anthropic) reaches them: a
 * keep-alive undici pool per endpoint, balancing, placement by priority and passive ejection
 * (./endpoints.ts), active health checks, and one POST whose failures become the catalogue's
 * upstream errors, counted against the endpoint only where they are the upstream's own fault. The
 * endpoints are listed in the config, or discovered (./discovery.ts: the fleet registry, DNS) and
 * followed as they come and go. A kind adds its paths, headers and bodies; the mapping of failures
 * is the same for all of them.
 */
import type { Pool } from 'undici';
import { ClientGoneError, type Cancellation } from '../core/call.js';
import { ApiError, fastError } from '../core/errors.js';
import type { UpstreamOutcome } from '../core/observer.js';
import { TextBackend, type BackendHealth, type Occupancy } from './backend.js';
import { DnsSource, type DiscoveredEndpoint, type DnsDiscovery, type EndpointSource, type RegistryDiscovery } from './discovery.js';
import { Endpoint, Endpoints, type Balance, type EndpointStatus, type PoolPreference } from './endpoints.js';
import type { BackendContext } from './plugin.js';
import { UpstreamCallError, undici, upstreamCall, type UpstreamResponse } from './upstream-call.js';

/** The options of a remote kind that say where its upstream is and how it is reached (named as in the config). */
export interface UpstreamOptions {
  readonly base_url?: string | undefined;
  readonly endpoints?:
    ReadonlyArray<{ readonly base_url: string; readonly weight: number; readonly pool?: string | undefined }> | undefined;
  readonly discovery?: { readonly registry?: RegistryDiscovery | undefined; readonly dns?: DnsDiscovery | undefined } | undefined;
  readonly balance: Balance;
  readonly pools?: PoolPreference | undefined;
  readonly passive_health: { readonly consecutive_failures: number; readonly ejection_ms: number };
  readonly health_check: { readonly interval_ms: number; readonly path: string; readonly timeout_ms: number };
  readonly timeout_ms: number;
  readonly connect_timeout_ms: number;
  readonly connections: number;
}

/**
 * A text backend on remote servers: its upstreams opened on load and closed on unload, and its
 * health, endpoints and calls in flight reported alike for every remote kind.
 */
export abstract class RemoteTextBackend extends TextBackend {
  /** Where the calls go. */
  protected readonly upstreams: Upstreams;

  /** `headers` go with every request (the kind's credentials among them); `context` gives discovery, the observer and the logger. */
  constructor(options: UpstreamOptions, headers: Readonly<Record<string, string>>, context: UpstreamContext = {}) {
    super();
    this.upstreams = new Upstreams(options, headers, context);
  }

  /** Opens the pools; a discovered version also waits for its source's first answer (never for long: see DnsSource). */
  async load(): Promise<void> {
    await this.upstreams.open();
  }

  async unload(): Promise<void> {
    await this.upstreams.close();
  }

  health(): BackendHealth {
    return this.upstreams.health();
  }

  /** Where calls go: each endpoint's URL, calls in flight, and whether it is ejected. */
  endpointStatus(): EndpointStatus[] {
    return this.upstreams.status();
  }

  /** Upstream calls in flight (over every endpoint); what waits is the upstream's to say. */
  occupancy(): Occupancy | null {
    return this.upstreams.occupancy();
  }
}

/** An upstream's whole answer as JSON; one that is not JSON is the upstream's fault (502 `upstream_error`, naming `what`), never the client's. */
export function upstreamJson(res: UpstreamResponse, what: string): unknown {
  try {
    return JSON.parse((res.body as Buffer).toString('utf8')) as unknown;
  } catch {
    throw new ApiError('upstream_error', `the upstream returned ${what} that is not JSON`);
  }
}

/** How one POST upstream is made. */
export interface PostOptions {
  /**
   * Whether the call's outcome counts toward passive ejection (default true). False for a route a
   * healthy server may lack (Anthropic's count_tokens: a server without it answers 404 or 501),
   * whose failures must not eject the endpoint that serves the kind's main route.
   */
  readonly passiveHealth?: boolean;
}

/** One replica's connection pool and the path its API lives under. */
interface Upstream {
  readonly pool: Pool;
  readonly basePath: string;
}

/** What Upstreams takes from the backend context: discovery through the fleet registry, the deployment's observer, the logger. */
export type UpstreamContext = Pick<BackendContext, 'discover' | 'observer' | 'log'>;

/** The load failure of a version configured with registry discovery where there is no fleet registry. */
const NO_FLEET_STORE = 'discovery.registry needs a fleet store (state.redis_url or fleet.etcd_url)';

const noop = (): void => undefined;

/**
 * The endpoints of one remote version: `open` makes a pool per endpoint (and, for a discovered
 * version, follows its source: pools opened for endpoints that come, closed for those that go)
 * and starts active health checks, `post` sends one call to the endpoint balancing and placement
 * pick, `close` ends them all.
 */
export class Upstreams {
  readonly #options: UpstreamOptions;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #context: UpstreamContext;
  /** The observer's upstream counter, resolved once (a no-op where nobody counts). */
  readonly #counted: (pool: string | null, outcome: UpstreamOutcome) => void;
  /** What the version's endpoints are found by, in messages: null for listed ones. */
  readonly #discovered: string | null;
  /** Whether calls are timed (the latency EWMA of `p2c-ewma`); other balancing does not pay for the clock. */
  readonly #timed: boolean;
  #endpoints: Endpoints<Upstream> | null = null;
  #source: EndpointSource | null = null;
  /** Whether the source gave its first answer: until then, no endpoints means still loading. */
  #answered = false;
  #healthTimer: NodeJS.Timeout | null = null;

  /** `headers` go with every request (the kind's credentials among them). */
  constructor(options: UpstreamOptions, headers: Readonly<Record<string, string>>, context: UpstreamContext = {}) {
    this.#options = options;
    this.#headers = headers;
    this.#context = context;
    const observer = context.observer;
    this.#counted = observer?.upstream === undefined ? noop : observer.upstream.bind(observer);
    this.#discovered = describeDiscovery(options.discovery);
    this.#timed = options.balance === 'p2c-ewma';
  }

  /**
   * Opens a pool per endpoint (no connection is made until the first call) and starts the active
   * health checks. A discovered version starts its source and waits for its first answer; it
   * rejects only where the source cannot be had (registry discovery without a fleet registry).
   */
  async open(): Promise<void> {
    const options = this.#options;
    const endpoints = new Endpoints<Upstream>([], {
      balance: options.balance,
      consecutiveFailures: options.passive_health.consecutive_failures,
      ejectionMs: options.passive_health.ejection_ms,
      pools: options.pools ?? null,
    });
    const source = this.#sourceOf(options);
    if (source === null) {
      const list = options.endpoints ?? [{ base_url: options.base_url as string, weight: 1 }];
      endpoints.replace(
        list.map((e) => ({ url: e.base_url, weight: e.weight, pool: e.pool ?? null, load: 0 })),
        (e) => this.#upstream(e),
      );
      this.#answered = true;
    } else {
      this.#source = source;
      source.onChange((list) => this.#follow(list));
    }
    this.#endpoints = endpoints;
    if (options.health_check.interval_ms > 0) {
      this.#healthTimer = setInterval(() => void this.#checkHealth(), options.health_check.interval_ms);
      this.#healthTimer.unref();
    }
    if (source !== null) {
      this.#follow(source.current());
      await source.ready?.();
      this.#answered = true;
    }
  }

  /** The version's source of endpoints: null for listed ones; throws where registry discovery has no registry. */
  #sourceOf(options: UpstreamOptions): EndpointSource | null {
    const { registry, dns } = options.discovery ?? {};
    if (dns !== undefined) return new DnsSource(dns, this.#context.log ?? null);
    if (registry === undefined) return null;
    const discover = this.#context.discover;
    if (discover === undefined) throw new Error(NO_FLEET_STORE);
    return discover(registry);
  }

  /**
   * Makes `list` the set: new endpoints get a pool, endpoints that left get no new calls, and
   * their pools close once the calls they have in flight end (undici's close waits for them).
   */
  #follow(list: readonly DiscoveredEndpoint[]): void {
    const endpoints = this.#endpoints;
    if (endpoints === null) return;
    if (list.length > 0) this.#answered = true;
    // A source's URL that is not an http(s) URL (a registry instance's typo) is left out rather than failing the others.
    const usable = list.every(isHttpUrl) ? list : list.filter(isHttpUrl);
    const gone = endpoints.replace(usable, (e) => this.#upstream(e));
    for (const e of gone) e.pool.pool.close().catch(noop);
  }

  /** A keep-alive pool for one endpoint. */
  #upstream(e: DiscoveredEndpoint): Upstream {
    const options = this.#options;
    const url = new URL(e.url);
    const dns = options.discovery?.dns;
    // An address found for a name is connected to by address; its certificate is for the name.
    const servername = dns !== undefined && dns.type !== 'SRV' && url.protocol === 'https:' ? dns.name : undefined;
    const pool = new (undici().Pool)(url.origin, {
      connections: options.connections,
      headersTimeout: options.timeout_ms,
      connect: servername === undefined ? { timeout: options.connect_timeout_ms } : { timeout: options.connect_timeout_ms, servername },
      bodyTimeout: options.timeout_ms,
      // Shorter than common upstreams' idle time-outs (uvicorn 5 s, nginx 75 s): a POST sent on a socket
      // the upstream has just closed may have reached it, so it is not retried; better not to reuse one that old.
      keepAliveTimeout: 4_000,
    });
    return { pool, basePath: url.pathname.replace(/\/+$/, '') };
  }

  /** Stops the source and the health checks and closes every pool (calls in flight end first). */
  async close(): Promise<void> {
    const endpoints = this.#endpoints;
    this.#endpoints = null;
    this.#source?.close();
    this.#source = null;
    if (this.#healthTimer !== null) clearInterval(this.#healthTimer);
    await Promise.all((endpoints?.list ?? []).map((e) => e.pool.pool.close()));
  }

  /** Whether the pools are open (between `open` and `close`). */
  get isOpen(): boolean {
    return this.#endpoints !== null;
  }

  /**
   * Ready once open with at least one endpoint. A discovered version with none is not ready:
   * loading (no error) until its source first answered, then with the reason, "no endpoints
   * discovered for ...", until some come (so /health/ready says why, and a balancer in front
   * sends its calls elsewhere).
   */
  health(): BackendHealth {
    const endpoints = this.#endpoints;
    if (endpoints === null) return { ready: false, error: null };
    if (endpoints.list.length > 0) return { ready: true, error: null };
    return { ready: false, error: this.#answered ? this.#noEndpoints() : null };
  }

  #noEndpoints(): string {
    return `no endpoints discovered for ${this.#discovered ?? 'the version'}`;
  }

  /** Where calls go: each endpoint's URL, calls in flight, and whether it is ejected. */
  status(): EndpointStatus[] {
    return this.#endpoints?.status() ?? [];
  }

  /** Upstream calls in flight (over every endpoint); what waits is the upstream's to say. */
  occupancy(): Occupancy | null {
    const endpoints = this.#endpoints;
    if (endpoints === null) return null;
    let running = 0;
    for (const e of endpoints.status()) running += e.outstanding;
    return { running, waiting: 0 };
  }

  /** Active health checks: GET `path` on each endpoint; a failure ejects it, a pass puts it back. Never rejects. */
  async #checkHealth(): Promise<void> {
    const endpoints = this.#endpoints;
    if (endpoints === null) return;
    await Promise.all(
      endpoints.list.map(async (e) => {
        if (await this.#passes(e.pool)) endpoints.restore(e);
        else endpoints.eject(e);
      }),
    );
  }

  /**
   * Whether one endpoint answers the health check with 2xx. Whatever goes wrong (no answer, a body
   * that fails while it is drained) is a failed check, never a rejection: the checks run from a
   * timer that nobody awaits, where a rejection would be unhandled and end the process.
   */
  async #passes(upstream: Upstream): Promise<boolean> {
    const { path, timeout_ms: timeout } = this.#options.health_check;
    try {
      const res = await upstream.pool.request({
        method: 'GET',
        path: upstream.basePath + path,
        headers: this.#headers,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
      await res.body.dump();
      return res.statusCode >= 200 && res.statusCode < 300;
    } catch {
      return false;
    }
  }

  /** A call to `endpoint` ended: frees its place (and, where `passive`, counts its outcome toward ejection), and counts it by pool. */
  #done(endpoints: Endpoints<Upstream>, endpoint: Endpoint<Upstream>, passive: boolean, failed: boolean): void {
    if (passive) endpoints.done(endpoint, failed);
    else endpoints.release(endpoint);
    this.#counted(endpoint.poolName, failed ? 'error' : 'ok');
  }

  /** The upstream request's headers: the configured ones, and the trace the call is part of (W3C traceparent). */
  #headersFor(call: Cancellation): Readonly<Record<string, string>> {
    const scope = call.traceScope;
    return scope === undefined ? this.#headers : { ...this.#headers, traceparent: scope.traceparent };
  }

  /**
   * POSTs JSON upstream (`path` below the endpoint's base URL); answers >= 400 become ApiErrors
   * (client errors keep the upstream's message). A call counts against its endpoint (passive
   * ejection) only for the upstream's own faults: unreachable, reset, timed out, or 5xx. What the
   * request itself causes (a body that cannot be serialised, a 4xx) and our own bugs never do,
   * and fail before an endpoint is picked where they can. With `passiveHealth: false` nothing
   * about the call counts, success or failure.
   */
  async post(path: string, body: object, call: Cancellation, stream: boolean, options: PostOptions = {}): Promise<UpstreamResponse> {
    const endpoints = this.#endpoints;
    if (endpoints === null) throw fastError('model_not_ready', 'the upstream connection pool is closed');
    const json = serialise(body);
    // Discovery found none (now): not the upstream's failure, and a fallback may serve the call.
    if (endpoints.list.length === 0) throw fastError('model_not_ready', this.#noEndpoints());
    const endpoint = endpoints.pick(call.priority);
    // An uncounted call only frees its place, leaving the failure streak as it was.
    const passive = options.passiveHealth !== false;
    const upstream = endpoint.pool;
    const started = this.#timed ? performance.now() : 0;
    let res: UpstreamResponse;
    try {
      res = await upstreamCall(
        upstream.pool,
        { method: 'POST', path: upstream.basePath + path, headers: this.#headersFor(call), body: json },
        call,
        stream,
      );
    } catch (err) {
      const cause = err instanceof UpstreamCallError ? (err.cause as Error) : err;
      // Cancelled by our side (the client left, or the deadline passed): not the upstream's failure.
      if (cause instanceof undici().errors.RequestAbortedError || cause instanceof ClientGoneError) {
        this.#done(endpoints, endpoint, passive, false);
        throw new ClientGoneError();
      }
      const e = upstreamFailure(cause, err instanceof UpstreamCallError && err.sent);
      this.#done(endpoints, endpoint, passive, e !== null && e.code !== 'model_not_ready');
      throw e ?? cause;
    }
    // Time to the answer's headers (a whole answer: to its end, which an upstream that answers whole sends right after them).
    if (this.#timed && res.status < 500) endpoints.observe(endpoint, performance.now() - started);
    if (res.status < 400) {
      // A stream stays outstanding on its endpoint until it ends.
      if (Buffer.isBuffer(res.body)) this.#done(endpoints, endpoint, passive, false);
      else res.body.once('close', () => this.#done(endpoints, endpoint, passive, false));
      return res;
    }
    this.#done(endpoints, endpoint, passive, res.status >= 500);
    throw upstreamStatus(res.status, (res.body as Buffer).toString('utf8'), headerValue(res.headers['retry-after']));
  }
}

/** Whether a discovered endpoint's URL is one a pool can be opened for. */
function isHttpUrl(e: DiscoveredEndpoint): boolean {
  return /^https?:\/\//.test(e.url) && URL.canParse(e.url);
}

/** How a version's endpoints are found, as messages name it ("dns SRV _http._tcp.vllm"); null: they are listed. */
function describeDiscovery(discovery: UpstreamOptions['discovery']): string | null {
  const { registry, dns } = discovery ?? {};
  if (dns !== undefined) return `dns ${dns.type} ${dns.name}`;
  if (registry === undefined) return null;
  const pool = registry.pool === undefined ? '' : ` in pool ${registry.pool}`;
  return `registry model ${registry.model}${registry.version === undefined ? '' : ` version ${registry.version}`}${pool}`;
}

/** A response header's (first) value. */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The upstream body as JSON text. A body that cannot be written (nested so deep that
 * `JSON.stringify` overflows the stack) is the request's fault: 400 naming the field, before any
 * endpoint is picked, so it never counts as a failure of the upstream. Anything else is our bug,
 * thrown as it is: a 500 `internal_error` with its cause logged, which counts against nothing.
 */
function serialise(body: object): string {
  try {
    return JSON.stringify(body);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    const field = Object.keys(body).find((key) => !serialisable((body as Record<string, unknown>)[key]));
    const what = field === undefined ? 'the body' : `\`${field}\``;
    const why = /call stack/i.test(err.message) ? 'is nested too deeply' : 'is too large';
    throw fastError('invalid_request', `${what} ${why} to forward to the upstream (${err.message})`, field ?? null);
  }
}

function serialisable(value: unknown): boolean {
  try {
    JSON.stringify(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * A call that failed before an answer came. Only faults of the upstream or the network become
 * upstream errors (and count against the endpoint and the breaker); they are retryable, but only
 * those that provably left nothing upstream are safe to retry (`mayHaveRun` false): a refused
 * connection, a connect time-out, a reset before the request went out. An error undici raises
 * against the request itself (an invalid argument) is our bug: null, and the caller throws it as
 * it is (a 500 that counts against nothing). A pool closed under the call (the version unloaded)
 * is `model_not_ready`.
 */
function upstreamFailure(err: unknown, sent: boolean): ApiError | null {
  const undiciErrors = undici().errors;
  if (
    err instanceof undiciErrors.InvalidArgumentError ||
    err instanceof undiciErrors.InvalidReturnValueError ||
    err instanceof undiciErrors.NotSupportedError
  ) {
    return null;
  }
  if (err instanceof undiciErrors.ClientDestroyedError || err instanceof undiciErrors.ClientClosedError) {
    return fastError('model_not_ready', 'the upstream connection pool was closed under the call (the version is being unloaded)');
  }
  if (err instanceof undiciErrors.ConnectTimeoutError) {
    // Nothing was sent: safe to try again.
    return new ApiError('upstream_timeout', 'the upstream model server could not be reached in time (connect)', null, {
      cause: err,
      retryable: true,
    });
  }
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return new ApiError('upstream_timeout', 'the upstream model server did not answer in time', null, { cause: err });
  }
  const code = (err as { code?: string }).code ?? (err as Error).message;
  return new ApiError(
    'upstream_unavailable',
    `the upstream model server could not be reached (${code}${sent ? ', after the request was sent' : ''})`,
    null,
    { cause: err, retryable: true, mayHaveRun: sent },
  );
}

/** Anthropic's own status for an overloaded server: like a 503, the call was not run. */
const OVERLOADED = 529;

/**
 * An upstream answer >= 400, with the upstream's message where its body is OpenAI's error JSON
 * (`{error: {message, param}}`) or Anthropic's (`{type: 'error', error: {type, message}}`). A 4xx
 * says the request is bad: the client's mistake, which keeps the upstream's message and counts
 * against nothing (400 `invalid_request`, 413 `body_too_large`), except 401, 403 and 407 (our
 * credentials), 408 and 429. 5xx (and Anthropic's 529) are the upstream's. Retried: 429, 503
 * and 529, which say the call was not run and may be retried (`Retry-After` honoured); 502 and
 * 504, after which the upstream may still be running it, only where the policy allows.
 */
export function upstreamStatus(status: number, text: string, retryAfter: string | undefined): ApiError {
  let message = text.slice(0, 500);
  let param: string | null = null;
  try {
    const parsed = JSON.parse(text) as { error?: { message?: string; param?: string } | string; message?: string };
    const e = parsed.error;
    message = (typeof e === 'string' ? e : e?.message) ?? parsed.message ?? message;
    if (typeof e === 'object' && typeof e.param === 'string') param = e.param;
  } catch {
    // not JSON: keep the text
  }
  if (status === 413) return new ApiError('body_too_large', `upstream refused the request as too large: ${message}`, param);
  if (status < 500 && status !== 401 && status !== 403 && status !== 407 && status !== 408 && status !== 429) {
    return new ApiError('invalid_request', `upstream rejected the request: ${message}`, param);
  }
  const details = {
    retryable: status === 429 || status === 502 || status === 503 || status === 504 || status === OVERLOADED,
    mayHaveRun: status === 502 || status === 504,
    retryAfterS: parseRetryAfter(retryAfter),
  };
  if (status === 429) return new ApiError('upstream_rate_limited', `upstream rate-limited the call: ${message}`, null, details);
  if (status === OVERLOADED) return new ApiError('upstream_error', `upstream is overloaded (529): ${message}`, null, details);
  return new ApiError('upstream_error', `upstream answered ${status}: ${message}`, null, details);
}

/** `Retry-After` in seconds or as an HTTP date, as whole seconds from now; null if absent or unreadable. */
export function parseRetryAfter(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
