/**
 * The envelope of a model call, one for every transport: the request id, the server span,
 * authentication, the call's context, the ApiError whatever it throws becomes, and one record of
 * how it ended (metrics, access log, trace). A transport subclasses CallContext with its wire
 * alone: how it reads the request, calls the model, and writes the answer or the error (HTTP:
 * bodies, status and headers; gRPC: messages, status and trailers).
 *
 * One object per call, the context itself, made when the call arrives: the steps are its methods,
 * so a call allocates no closures for them (the hot path of every request).
 */
import type { Logger } from 'pino';
import { signalOf, type TraceAttributes, type TraceScope } from '../core/call.js';
import type { ApiError } from '../core/errors.js';
import { callPriority, type RequestContext } from '../pipeline/context.js';
import type { Priority } from '../scheduling/admission.js';
import type { Directory, Principal } from '../tenancy/directory.js';
import { presentedKey } from '../tenancy/keys.js';
import type { AccessLog } from '../telemetry/access-log.js';
import { CallRecorder, CallState } from '../telemetry/calls.js';
import type { Metrics } from '../telemetry/metrics.js';
import { traceScopeOf } from '../telemetry/trace-scope.js';
import type { RequestTrace, Tracing } from '../telemetry/tracing.js';
import { toApiError, type RequestInfo } from './errors.js';
import { requestId } from './request-id.js';

/** A request's headers (HTTP) or metadata (gRPC) by lower-case name, as Node gives them. */
export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

/**
 * Where a call came from: its connection's socket, whose address only `trusted_header` mode reads
 * (and only for a call that names a tenant), so other modes pay nothing for it.
 */
export interface Peer {
  readonly remoteAddress?: string | undefined;
}

/**
 * The authenticate stage: the caller's principal from the key its headers present
 * (`authorization: Bearer`, else `x-api-key`) or, in `trusted_header` mode, from a trusted peer's
 * word (./trusted-header.ts); 401 otherwise.
 */
export type Authenticate = (headers: RequestHeaders, peer: Peer) => Principal;

/** The authenticate stage of a key directory (`auth.mode: keys`); null, no authentication, without one. */
export function keyAuthentication(directory: Directory | null): Authenticate | null {
  if (directory === null) return null;
  return function authenticate(headers) {
    const authorization = headers.authorization;
    return directory.authenticate(presentedKey(typeof authorization === 'string' ? authorization : undefined, headers['x-api-key']));
  };
}

/** How a transport turns what its calls throw into ApiErrors (HTTP first maps its framework's own errors). */
export type ErrorMapping = (error: unknown, request: RequestInfo, log: Logger) => ApiError;

/** What an Envelope is built from; each optional stage absent or null is off. */
export interface EnvelopeOptions {
  /** Where unexpected errors are logged, with the request id. */
  readonly log: Logger;
  /** null: no authentication (`auth.mode: none`). */
  readonly authenticate?: Authenticate | null;
  readonly metrics?: Metrics | null;
  /** One line per call; null: none. */
  readonly accessLog?: AccessLog | null;
  /** Traces of sampled calls; null: tracing is off. */
  readonly tracing?: Tracing | null;
  /** toApiError (src/api/errors.ts) when absent. */
  readonly toApiError?: ErrorMapping;
}

/**
 * The stages every call of one server goes through, set up once when the server is made. Its
 * fields are read by each call's CallContext and never written after construction.
 */
export class Envelope {
  readonly log: Logger;
  readonly authenticate: Authenticate | null;
  readonly tracing: Tracing | null;
  /** Null when nothing observes calls: then no clock is read either. */
  readonly recorder: CallRecorder | null;
  readonly toApiError: ErrorMapping;

  constructor(options: EnvelopeOptions) {
    const { metrics = null, accessLog = null, tracing = null } = options;
    this.log = options.log;
    this.authenticate = options.authenticate ?? null;
    this.tracing = tracing;
    this.recorder = metrics === null && accessLog === null && tracing === null ? null : new CallRecorder(metrics, accessLog);
    this.toApiError = options.toApiError ?? toApiError;
  }
}

/** A route as its traces name it, made once per route: the server span's name and first attributes. */
export interface CallRoute {
  /** `POST /v1/chat/completions`, `inference.GRPCInferenceService/ModelInfer`. */
  readonly span: string;
  /** The attributes a sampled call's server span starts with: its route's, `path`'s and the request id. */
  traceAttributes(id: string, path: string): TraceAttributes;
}

/**
 * One model call: its RequestContext, and its run through the envelope (`run`). A transport's
 * subclass supplies the wire: `header`, `read`, `serve`, `answer`, `refuse`, `outcome`,
 * `requestTimeout` and `onAbort`. `Request` is what `read` gives, `Answer` what `serve` resolves with.
 *
 * The context opens (`open`) once the transport has read and checked the request: until then it
 * has no principal, so a call refused before (a bad body or header) is recorded without a tenant.
 */
export abstract class CallContext<Request, Answer> extends CallState implements RequestContext, RequestInfo {
  readonly id: string;
  readonly trace: RequestTrace | null;
  /** The trace remote backends join: ours when sampled, else the client's own `traceparent`, passed on as sent. */
  readonly traceScope: TraceScope | undefined;
  readonly #envelope: Envelope;
  /** performance.now() when the call arrived; 0 when nothing records calls. */
  readonly #started: number;
  #principal: Principal | null = null;
  #pinnedVersion: string | undefined = undefined;
  #timeoutMs: number | undefined = undefined;
  #priority: Priority = 'normal';
  #signal: AbortSignal | null = null;

  /** `given`: the client's `x-request-id`, kept when sane; `path`: the request's, for its span. */
  protected constructor(
    envelope: Envelope,
    route: CallRoute,
    given: string | string[] | undefined,
    traceparent: string | string[] | undefined,
    path: string,
  ) {
    super();
    this.#envelope = envelope;
    const id = requestId(given);
    const started = envelope.recorder === null ? 0 : performance.now();
    const tracing = envelope.tracing;
    this.id = id;
    this.#started = started;
    this.trace = tracing === null ? null : tracing.start(route.span, traceparent, started, () => route.traceAttributes(id, path));
    this.traceScope = traceScopeOf(this.trace, traceparent);
  }

  /** The tenant and key that authenticated, once the context is open; null before, and without authentication. */
  get principal(): Principal | null {
    return this.#principal;
  }

  /** The version the URL, the `x-model-version` header or the request message pins, once the context is open. */
  get pinnedVersion(): string | undefined {
    return this.#pinnedVersion;
  }

  /** The deadline the client asked for, once the context is open; undefined: the version's own. */
  get timeoutMs(): number | undefined {
    return this.#timeoutMs;
  }

  /** The admission priority, once the context is open: the tenant's class, or lower when `x-priority` asks. */
  get priority(): Priority {
    return this.#priority;
  }

  /** Made (an AbortController, about 1 µs and a listener) only when a backend reads it. */
  get signal(): AbortSignal {
    return (this.#signal ??= signalOf(this));
  }

  /** Whether anything records calls (metrics, access log, traces): a transport times first bytes only then. */
  protected get observed(): boolean {
    return this.#envelope.recorder !== null;
  }

  /** What the log line of an unexpected error names: HTTP's method, gRPC's full method name. */
  abstract get method(): string;

  /** The request's URL, for the same log line; undefined where there is none (gRPC). */
  abstract get url(): string | undefined;

  /** The request's headers (HTTP) or metadata (gRPC), for the authenticate stage. */
  protected abstract get requestHeaders(): RequestHeaders;

  /** The connection the call came on, for the authenticate stage (`trusted_header` mode reads its address). */
  protected abstract get peer(): Peer;

  /** Calls `listener` once if the client goes away before the answer is complete. */
  abstract onAbort(listener: () => void): void;

  /**
   * Runs the call: authenticate, read, serve (the transport opens the context and calls the
   * model), answer. Whatever it throws becomes an ApiError, answered in the transport's shape.
   * The outcome is recorded once: here, or by the transport when a streamed answer ends.
   */
  async run(): Promise<void> {
    try {
      const principal = this.#authenticate();
      const read = this.read();
      // gRPC has its message already: only a body still arriving costs an await.
      const request = read instanceof Promise ? await read : read;
      const status = this.answer(await this.serve(request, principal));
      if (status !== null) this.ended(status, '');
    } catch (thrown) {
      const e = this.failure(thrown);
      if (!this.refuse(e)) return;
      if (e.limit !== null) this.#envelope.recorder?.metrics?.limited(this.#principal?.tenant.id ?? '', e.limit);
      this.ended(e.status, e.code);
    }
  }

  /** A request header (HTTP) or metadata value (gRPC) by its lower-case name. */
  protected abstract header(name: string): string | string[] | undefined;

  /** The request: a body still to be read (HTTP), or the message already decoded (gRPC). */
  protected abstract read(): Request | Promise<Request>;

  /** Checks the request, opens the context (`open`) and calls the model. */
  protected abstract serve(request: Request, principal: Principal | null): Promise<Answer>;

  /** The deadline the client asks for, in ms (HTTP's `x-request-timeout-ms`, gRPC's deadline); undefined: none. */
  protected abstract requestTimeout(): number | undefined;

  /** Writes the answer; returns its status, or null when the transport records the call itself later (`ended`), as a stream ends. */
  protected abstract answer(answer: Answer): number | null;

  /** Writes the error; false when the answer had begun, so the call is cut instead and its answer's outcome stands. */
  protected abstract refuse(error: ApiError): boolean;

  /** The trace attribute of the transport's own status for `status` and error `code` ('' on success). */
  protected abstract outcome(status: number, code: string): TraceAttributes;

  /**
   * The caller's principal: from the key its headers present (or a trusted peer's headers), checked
   * now; null without authentication. A transport that checks keys on arrival (gRPC) returns what it found.
   */
  protected authenticate(): Principal | null {
    const authenticate = this.#envelope.authenticate;
    return authenticate === null ? null : authenticate(this.requestHeaders, this.peer);
  }

  /** The ApiError a thrown value stands for; unexpected ones are logged with the request id. */
  protected failure(thrown: unknown): ApiError {
    const envelope = this.#envelope;
    return envelope.toApiError(thrown, this, envelope.log);
  }

  /**
   * Opens the context: the principal, the version the request pins, its priority (`x-priority`,
   * else 400; capped by the tenant's class) and its deadline (`requestTimeout`, which may throw too).
   */
  protected open(principal: Principal | null, pinnedVersion: string | undefined): void {
    this.#priority = callPriority(this.header('x-priority'), principal);
    this.#timeoutMs = this.requestTimeout();
    this.#pinnedVersion = pinnedVersion;
    this.#principal = principal;
  }

  /** Records how the call ended: `status` (HTTP's, or its equivalent) and error `code`, '' on success. */
  protected ended(status: number, code: string): void {
    this.#envelope.recorder?.finished(this.id, this, this.trace, status, code, this.#started, this.outcome(status, code));
  }

  #authenticate(): Principal | null {
    const principal = this.authenticate();
    if (this.trace !== null && this.#envelope.authenticate !== null) this.trace.stage('authenticate', this.#started, performance.now());
    return principal;
  }
}
