/**
 * The replicas of one remote version, as every remote kind (openai, anthropic) reaches them: a
 * keep-alive undici pool per endpoint, balancing and passive ejection (./endpoints.ts),
 * active health checks, and one POST whose failures become the catalogue's upstream errors,
 * counted against the endpoint only where they are the upstream's own fault. A kind adds its
 * paths, headers and bodies; the mapping of failures is the same for all of them.
 */
import { Pool, errors as undiciErrors } from 'undici';
import { ClientGoneError, type Cancellation } from '../core/call.js';
import { ApiError, fastError } from '../core/errors.js';
import { TextBackend, type BackendHealth, type Occupancy } from './backend.js';
import { Endpoint, Endpoints, type Balance, type EndpointStatus } from './endpoints.js';
import { UpstreamCallError, upstreamCall, type UpstreamResponse } from './upstream-call.js';

/** The options of a remote kind that say where its upstream is and how it is reached (named as in the config). */
export interface UpstreamOptions {
  readonly base_url?: string | undefined;
  readonly endpoints?: ReadonlyArray<{ readonly base_url: string; readonly weight: number }> | undefined;
  readonly balance: Balance;
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

  /** `headers` go with every request (the kind's credentials among them). */
  constructor(options: UpstreamOptions, headers: Readonly<Record<string, string>>) {
    super();
    this.upstreams = new Upstreams(options, headers);
  }

  async load(): Promise<void> {
    this.upstreams.open();
  }

  async unload(): Promise<void> {
    await this.upstreams.close();
  }

  health(): BackendHealth {
    return { ready: this.upstreams.isOpen, error: null };
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

/**
 * The endpoints of one remote version: `open` makes a pool per endpoint and starts active health
 * checks, `post` sends one call to the endpoint balancing picks, `close` ends them all.
 */
export class Upstreams {
  readonly #options: UpstreamOptions;
  readonly #headers: Readonly<Record<string, string>>;
  #endpoints: Endpoints<Upstream> | null = null;
  #healthTimer: NodeJS.Timeout | null = null;

  /** `headers` go with every request (the kind's credentials among them). */
  constructor(options: UpstreamOptions, headers: Readonly<Record<string, string>>) {
    this.#options = options;
    this.#headers = headers;
  }

  /** Opens a pool per endpoint (no connection is made until the first call) and starts the active health checks. */
  open(): void {
    const options = this.#options;
    const list = options.endpoints ?? [{ base_url: options.base_url as string, weight: 1 }];
    const endpoints = list.map((e) => {
      const url = new URL(e.base_url);
      const pool = new Pool(url.origin, {
        connections: options.connections,
        headersTimeout: options.timeout_ms,
        connect: { timeout: options.connect_timeout_ms },
        bodyTimeout: options.timeout_ms,
        // Shorter than common upstreams' idle time-outs (uvicorn 5 s, nginx 75 s): a POST sent on a socket
        // the upstream has just closed may have reached it, so it is not retried; better not to reuse one that old.
        keepAliveTimeout: 4_000,
      });
      return new Endpoint<Upstream>(e.base_url, e.weight, { pool, basePath: url.pathname.replace(/\/+$/, '') });
    });
    this.#endpoints = new Endpoints(endpoints, {
      balance: options.balance,
      consecutiveFailures: options.passive_health.consecutive_failures,
      ejectionMs: options.passive_health.ejection_ms,
    });
    if (options.health_check.interval_ms > 0) {
      this.#healthTimer = setInterval(() => void this.#checkHealth(), options.health_check.interval_ms);
      this.#healthTimer.unref();
    }
  }

  /** Stops the health checks and closes every pool (calls in flight end first). */
  async close(): Promise<void> {
    const endpoints = this.#endpoints;
    this.#endpoints = null;
    if (this.#healthTimer !== null) clearInterval(this.#healthTimer);
    await Promise.all((endpoints?.list ?? []).map((e) => e.pool.pool.close()));
  }

  /** Whether the pools are open (between `open` and `close`). */
  get isOpen(): boolean {
    return this.#endpoints !== null;
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
    const endpoint = endpoints.pick();
    // Where the outcome is reported: an uncounted call only frees its place, leaving the failure streak as it was.
    const health: Pick<Endpoints<Upstream>, 'done'> = options.passiveHealth === false
      ? { done: (e: Endpoint<Upstream>) => endpoints.release(e) }
      : endpoints;
    const upstream = endpoint.pool;
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
      if (cause instanceof undiciErrors.RequestAbortedError || cause instanceof ClientGoneError) {
        health.done(endpoint, false);
        throw new ClientGoneError();
      }
      const e = upstreamFailure(cause, err instanceof UpstreamCallError && err.sent);
      health.done(endpoint, e !== null && e.code !== 'model_not_ready');
      throw e ?? cause;
    }
    if (res.status < 400) {
      // A stream stays outstanding on its endpoint until it ends.
      if (Buffer.isBuffer(res.body)) health.done(endpoint, false);
      else res.body.once('close', () => health.done(endpoint, false));
      return res;
    }
    health.done(endpoint, res.status >= 500);
    throw upstreamStatus(res.status, (res.body as Buffer).toString('utf8'), headerValue(res.headers['retry-after']));
  }
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
