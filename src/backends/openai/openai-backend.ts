/**
 * Any OpenAI-compatible server (vLLM, TGI, llama.cpp server, Ollama, OpenAI itself) over a
 * keep-alive undici pool. Bodies go upstream with `model` rewritten (request-body.ts); answers come
 * back as bytes, untouched, so a stream passes through chunk by chunk with the socket's own
 * backpressure, and are decoded into typed events only where something needs them (wire.ts).
 */
import { Pool, errors as undiciErrors } from 'undici';
import type { OpenAIBackendConfig } from './config.js';
import { ApiError, fastError } from '../../core/errors.js';
import { TextBackend, type BackendHealth, type Occupancy } from '../backend.js';
import { ClientGoneError, type Cancellation, type EmbedRequest, type EmbedResult } from '../../core/call.js';
import type { RawText, TextRequest } from '../../core/text.js';
import { Endpoint, Endpoints, type EndpointStatus } from './endpoints.js';
import { upstreamBody } from './request-body.js';
import { UpstreamCallError, upstreamCall, type UpstreamResponse } from './upstream-call.js';
import { openaiText } from './wire.js';

/** One replica's connection pool and the path its API lives under. */
interface Upstream {
  readonly pool: Pool;
  readonly basePath: string;
}

/**
 * A remote version on OpenAI-compatible servers: `load` opens a pool per endpoint and starts active
 * health checks; calls are balanced over the endpoints and upstream failures become ApiErrors.
 */
export class OpenAIBackend extends TextBackend {
  readonly kind = 'openai';
  readonly #config: OpenAIBackendConfig;
  readonly #modelName: string;
  readonly #headers: Record<string, string>;
  #endpoints: Endpoints<Upstream> | null = null;
  #healthTimer: NodeJS.Timeout | null = null;

  /** `modelName` is used upstream unless the config names another. */
  constructor(config: OpenAIBackendConfig, modelName: string) {
    super();
    this.#config = config;
    this.#modelName = config.model ?? modelName;
    this.#headers = { 'content-type': 'application/json', ...config.headers };
    if (config.api_key !== undefined && config.api_key !== '') this.#headers.authorization = `Bearer ${config.api_key}`;
  }

  async load(): Promise<void> {
    const config = this.#config;
    const list = config.endpoints ?? [{ base_url: config.base_url as string, weight: 1 }];
    const endpoints = list.map((e) => {
      const url = new URL(e.base_url);
      const pool = new Pool(url.origin, {
        connections: config.connections,
        headersTimeout: config.timeout_ms,
        connect: { timeout: config.connect_timeout_ms },
        bodyTimeout: config.timeout_ms,
        // Shorter than common upstreams' idle time-outs (uvicorn 5 s, nginx 75 s): a POST sent on a socket
        // the upstream has just closed may have reached it, so it is not retried; better not to reuse one that old.
        keepAliveTimeout: 4_000,
      });
      return new Endpoint<Upstream>(e.base_url, e.weight, { pool, basePath: url.pathname.replace(/\/+$/, '') });
    });
    this.#endpoints = new Endpoints(endpoints, {
      balance: config.balance,
      consecutiveFailures: config.passive_health.consecutive_failures,
      ejectionMs: config.passive_health.ejection_ms,
    });
    if (config.health_check.interval_ms > 0) {
      this.#healthTimer = setInterval(() => void this.#checkHealth(), config.health_check.interval_ms);
      this.#healthTimer.unref();
    }
  }

  async unload(): Promise<void> {
    const endpoints = this.#endpoints;
    this.#endpoints = null;
    if (this.#healthTimer !== null) clearInterval(this.#healthTimer);
    await Promise.all((endpoints?.list ?? []).map((e) => e.pool.pool.close()));
  }

  health(): BackendHealth {
    return { ready: this.#endpoints !== null, error: null };
  }

  /** Where calls go: each endpoint's URL, calls in flight, and whether it is ejected. */
  endpointStatus(): EndpointStatus[] {
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

  /** Active health checks: GET `path` on each endpoint; a failure ejects it, a pass puts it back. */
  async #checkHealth(): Promise<void> {
    const endpoints = this.#endpoints;
    if (endpoints === null) return;
    const { path, timeout_ms: timeout } = this.#config.health_check;
    await Promise.all(
      endpoints.list.map(async (e) => {
        const ok = await e.pool.pool
          .request({ method: 'GET', path: e.pool.basePath + path, headers: this.#headers, headersTimeout: timeout, bodyTimeout: timeout })
          .then(
            async (res) => {
              await res.body.dump();
              return res.statusCode >= 200 && res.statusCode < 300;
            },
            () => false,
          );
        if (ok) endpoints.restore(e);
        else endpoints.eject(e);
      }),
    );
  }

  /** The upstream's answer as it sent it (bytes, untouched), with the decoder that reads it as typed events. */
  async generate(request: TextRequest, call: Cancellation): Promise<RawText> {
    const path = request.kind === 'chat' ? '/chat/completions' : '/completions';
    const res = await this.#post(path, upstreamBody(request, this.#modelName), call, request.stream);
    return openaiText(request.kind, headerValue(res.headers['content-type']) ?? 'application/json', res.body);
  }

  async embed(request: EmbedRequest, call: Cancellation): Promise<EmbedResult> {
    const res = await this.#post(
      '/embeddings',
      {
        model: this.#modelName,
        input: request.input,
        encoding_format: 'float',
        ...(request.dimensions === null ? {} : { dimensions: request.dimensions }),
      },
      call,
      false,
    );
    // What the upstream sent is its own fault when unreadable: upstream_error (502), never the client's 400.
    let body: { data?: unknown; usage?: { prompt_tokens?: unknown } };
    try {
      body = JSON.parse((res.body as Buffer).toString('utf8')) as typeof body;
    } catch {
      throw new ApiError('upstream_error', 'the upstream returned an embeddings response that is not JSON');
    }
    const n = request.input.length;
    const vectors = new Array<Float32Array>(n);
    if (Array.isArray(body?.data) && body.data.length === n) {
      for (const item of body.data as Array<{ index?: unknown; embedding?: unknown }>) {
        const index = item?.index;
        if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= n || !Array.isArray(item.embedding)) break;
        vectors[index] = Float32Array.from(item.embedding as number[]);
      }
    }
    for (let i = 0; i < n; i++) {
      if (vectors[i] === undefined) throw new ApiError('upstream_error', 'the upstream returned an embeddings response of the wrong shape');
    }
    const tokens = body.usage?.prompt_tokens;
    return { vectors, promptTokens: typeof tokens === 'number' ? tokens : 0 };
  }

  /** The upstream request's headers: the configured ones, and the trace the call is part of (W3C traceparent). */
  #headersFor(call: Cancellation): Record<string, string> {
    const scope = call.traceScope;
    return scope === undefined ? this.#headers : { ...this.#headers, traceparent: scope.traceparent };
  }

  /**
   * POSTs JSON upstream; answers >= 400 become ApiErrors (client errors keep the upstream's
   * message). A call counts against its endpoint (passive ejection) only for the upstream's own
   * faults: unreachable, reset, timed out, or 5xx. What the request itself causes (a body that
   * cannot be serialised, a 4xx) and our own bugs never do, and fail before an endpoint is picked
   * where they can.
   */
  async #post(path: string, body: object, call: Cancellation, stream: boolean): Promise<UpstreamResponse> {
    const endpoints = this.#endpoints;
    if (endpoints === null) throw fastError('model_not_ready', 'the upstream connection pool is closed');
    const json = serialise(body);
    const endpoint = endpoints.pick();
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
        endpoints.done(endpoint, false);
        throw new ClientGoneError();
      }
      const e = upstreamFailure(cause, err instanceof UpstreamCallError && err.sent);
      endpoints.done(endpoint, e !== null && e.code !== 'model_not_ready');
      throw e ?? cause;
    }
    if (res.status < 400) {
      // A stream stays outstanding on its endpoint until it ends.
      if (Buffer.isBuffer(res.body)) endpoints.done(endpoint, false);
      else res.body.once('close', () => endpoints.done(endpoint, false));
      return res;
    }
    endpoints.done(endpoint, res.status >= 500);
    throw upstreamStatus(res.status, (res.body as Buffer).toString('utf8'), headerValue(res.headers['retry-after']));
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
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

/**
 * An upstream answer >= 400. A 4xx says the request is bad: the client's mistake, which keeps the
 * upstream's message and counts against nothing (400 `invalid_request`, 413 `body_too_large`),
 * except 401, 403 and 407 (our credentials), 408 and 429. 5xx are the upstream's. Retried: 429
 * and 503, which say the call was not run and may be retried (`Retry-After` honoured); 502 and
 * 504, after which the upstream may still be running it, only where the policy allows.
 */
function upstreamStatus(status: number, text: string, retryAfter: string | undefined): ApiError {
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
    retryable: status === 429 || status === 502 || status === 503 || status === 504,
    mayHaveRun: status === 502 || status === 504,
    retryAfterS: parseRetryAfter(retryAfter),
  };
  return status === 429
    ? new ApiError('upstream_rate_limited', `upstream rate-limited the call: ${message}`, null, details)
    : new ApiError('upstream_error', `upstream answered ${status}: ${message}`, null, details);
}

/** `Retry-After` in seconds or as an HTTP date, as whole seconds from now; null if absent or unreadable. */
export function parseRetryAfter(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
