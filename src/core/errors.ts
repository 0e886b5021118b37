import type { RateLimit } from './rate-limit.js';

/**
 * The one error catalogue. Every failure a user can see is an {@link ApiError} with a stable
 * snake_case `code`; each protocol maps the code once (see `api/http/errors.ts`). The README's
 * error table lists the same codes, and a test checks that the two agree.
 */

/** Every code a client can receive, with its HTTP status and a one-line meaning (used in docs). */
export const ERROR_CATALOGUE = {
  invalid_request: { status: 400, doc: 'The body or a parameter is malformed; `param` names the field.' },
  invalid_api_key: {
    status: 401,
    doc: 'No API key, or one that is unknown or revoked (`Authorization: Bearer <key>` or `x-api-key`); for /admin/*, not the admin key.',
  },
  permission_denied: {
    status: 403,
    doc: 'A tenant key was sent to /admin/*, which only the admin key may use; or another web page called the open admin API (no admin key, loopback).',
  },
  rate_limited: {
    status: 429,
    doc: "The tenant's or key's requests, tokens or concurrent requests per its limits are spent; retry after `Retry-After` seconds.",
  },
  insufficient_quota: { status: 429, doc: "The tenant's or key's monthly token quota is spent; `Retry-After` says when the month ends." },
  invalid_json: { status: 400, doc: 'The body is not valid JSON.' },
  invalid_config: {
    status: 400,
    doc: 'POST /admin/reload found the config file invalid (`problems` lists each field and why); the previous config is still served.',
  },
  body_too_large: { status: 413, doc: "The body exceeds `server.body_limit_bytes`, or the remote model server's own limit." },
  request_timeout: {
    status: 408,
    doc: 'The request (headers within `server.headers_timeout_ms`, all of it within `server.request_timeout_ms`) came too slowly; the connection is closed.',
  },
  headers_too_large: {
    status: 431,
    doc: "The request's headers are larger than the server accepts (Node's 16 KiB); the connection is closed.",
  },
  not_found: { status: 404, doc: 'No such endpoint (path and method).' },
  model_not_found: { status: 404, doc: 'No model has this name or alias.' },
  version_not_found: { status: 404, doc: 'The model has no such version (`x-model-version` or URL).' },
  unsupported_operation: { status: 400, doc: 'The model cannot serve this endpoint (e.g. chat on a tensor model).' },
  context_length_exceeded: { status: 400, doc: 'The input is longer than the model accepts.' },
  model_not_ready: {
    status: 503,
    doc: 'The model version is still loading, or failed to load: the message says why, as `/health/ready` does.',
  },
  overloaded: { status: 503, doc: 'Every slot of the model is busy and its queue is full; retry after `Retry-After` seconds.' },
  upstream_error: { status: 502, doc: 'The remote model server answered with an error.' },
  upstream_unavailable: { status: 502, doc: 'The remote model server could not be reached.' },
  upstream_timeout: {
    status: 504,
    doc: 'The call passed its deadline (`x-request-timeout-ms` or `policies.timeout_ms`) or the remote server did not answer in time.',
  },
  upstream_rate_limited: { status: 429, doc: 'The remote model server rate-limited the call; retry after `Retry-After` seconds.' },
  circuit_open: { status: 503, doc: "The version's circuit breaker is open after repeated failures; retry after `Retry-After` seconds." },
  client_closed_request: {
    status: 499,
    doc: 'The client went away (closed the connection, cut the stream, cancelled the gRPC call) first; only recorded, never sent.',
  },
  fleet_unavailable: {
    status: 503,
    doc: 'A fleet operation (weights, rollouts, instances) needs the shared store (Redis or etcd), which cannot be reached or is not configured.',
  },
  internal_error: { status: 500, doc: 'A bug: the response carries the request id; the cause is logged.' },
} as const satisfies Record<string, { status: number; doc: string }>;

/** A code of the catalogue, as clients receive it. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** A failure a user may see. `param` is the dotted path of the offending field, when there is one. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly param: string | null;
  /** Seconds the client should wait before retrying (sent as `Retry-After`); null: no advice. */
  readonly retryAfterS: number | null;
  /** Whether trying the same call again may succeed (connection failures, 502/503/504/429 upstream). */
  readonly retryable: boolean;
  /**
   * Whether the upstream may have received the call before it failed (a connection reset or cut
   * after the request was written, a 502 or 504), so that a retry could run a generation twice:
   * such failures are retried only where `policies.retry.on_sent` allows.
   */
  readonly mayHaveRun: boolean;
  /** Where the caller stands against its rate limits (a 429's `x-ratelimit-*`); null: not a limit. */
  readonly rateLimit: RateLimit | null;
  /** The tenant or key limit that refused the call (`requests_per_minute`, ...), for metrics; null: not a limit. */
  readonly limit: string | null;

  /** An error of the catalogue; everything it says is fixed here (nothing is set on it later). */
  constructor(code: ErrorCode, message: string, param: string | null = null, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ApiError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.param = param;
    this.retryAfterS = details.retryAfterS ?? null;
    this.retryable = details.retryable ?? false;
    this.mayHaveRun = details.mayHaveRun ?? false;
    this.rateLimit = details.rateLimit ?? null;
    this.limit = details.limit ?? null;
  }
}

/** What an ApiError says beyond its code, message and field; each is absent (null, false) unless given. */
export interface ErrorDetails {
  readonly cause?: unknown;
  readonly retryAfterS?: number | null;
  readonly retryable?: boolean;
  readonly mayHaveRun?: boolean;
  readonly rateLimit?: RateLimit | null;
  readonly limit?: string | null;
}

/**
 * Builds an ApiError without capturing a stack trace: for failures expected at a high rate
 * (unknown model, bad input under load), where the trace costs more than the request.
 */
export function fastError(code: ErrorCode, message: string, param: string | null = null, details?: ErrorDetails): ApiError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ApiError(code, message, param, details);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The 503 for a full queue or a slot that never came: the client should come back in a second. */
export function overloadedError(message: string): ApiError {
  return fastError('overloaded', message, null, { retryAfterS: 1 });
}

/** What a call came to when its client went away before the answer was complete (nobody reads it: it is for metrics, logs and traces). */
export function clientClosedError(message = 'the client went away'): ApiError {
  return fastError('client_closed_request', message);
}

/** Turns a JSON pointer (`/messages/0/role`) into the dotted path users read (`messages[0].role`). */
export function pointerToPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out;
}
