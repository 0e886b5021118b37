/**
 * One gRPC model call through the envelope (../envelope.ts): its request is the decoded message,
 * its deadline the client's, its cancellation the stream's; it answers with a message (or, for a
 * streamed method, the messages its work wrote) and the status in trailers.
 */
import type { TraceAttributes } from '../../core/call.js';
import { clientClosedError, fastError, type ApiError, type ErrorCode } from '../../core/errors.js';
import type { Principal } from '../../tenancy/directory.js';
import { CallContext, type CallRoute, type Envelope, type Peer, type RequestHeaders } from '../envelope.js';
import { GRPC_STATUS, grpcError } from './errors.js';
import { Status, type GrpcCall, type MetadataList } from './transport.js';

/**
 * A model method's work: the decoded request and the call's context in, the response message out
 * (a streamed method writes its messages to `call` itself and resolves when they are all sent).
 */
export type Work<Req, Res> = (request: Req, ctx: GrpcContext, call: GrpcCall) => Promise<Res>;

/** A model method, made once when the server is: its name, where its request pins a version, its work. */
export class GrpcMethod<Req, Res> implements CallRoute {
  /** The full method name, `inference.GRPCInferenceService/ModelInfer`: the server span's name. */
  readonly span: string;
  readonly #service: string;
  readonly #method: string;

  /** `streams`: the work writes the answer's messages itself; the call then ends with OK and no message of its own. */
  constructor(
    name: string,
    readonly pinnedOf: (request: Req) => string | undefined,
    readonly work: Work<Req, Res>,
    readonly streams: boolean,
  ) {
    this.span = name;
    [this.#service, this.#method] = name.split('/') as [string, string];
  }

  traceAttributes(id: string): TraceAttributes {
    return { 'rpc.system': 'grpc', 'rpc.service': this.#service, 'rpc.method': this.#method, 'infergate.request_id': id };
  }
}

/** A model method of any request and response type, as a call holds it: its request is the method's own. */
export type AnyMethod = GrpcMethod<never, unknown>;

/**
 * A gRPC call as the pipeline's RequestContext: timeout from the client's deadline, priority from
 * `x-priority` metadata (a bad value throws invalid_request), trace scope from `traceparent`.
 */
export class GrpcContext extends CallContext<unknown, unknown> {
  readonly #method: AnyMethod;
  readonly #call: GrpcCall;
  readonly #request: unknown;

  /** `request`: the decoded message, of the type `method` takes. */
  constructor(envelope: Envelope, method: AnyMethod, call: GrpcCall, request: unknown) {
    super(envelope, method, call.metadata('x-request-id'), call.metadata('traceparent'), call.path);
    this.#method = method;
    this.#call = call;
    this.#request = request;
  }

  /** Cancelled by the client, or its deadline passed: the work behind the call stops. */
  get cancelled(): boolean {
    return this.#call.cancelled;
  }

  /** Whether the client's deadline (rather than the client leaving) cancelled the call: a time-out, not a 499. */
  get expired(): boolean {
    return deadlinePassed(this.#call);
  }

  get method(): string {
    return this.#method.span;
  }

  get url(): undefined {
    return undefined;
  }

  onAbort(listener: () => void): void {
    this.#call.onCancel(listener);
  }

  protected header(name: string): string | undefined {
    return this.#call.metadata(name);
  }

  protected get requestHeaders(): RequestHeaders {
    return this.#call.headers;
  }

  protected get peer(): Peer {
    return this.#call;
  }

  /** As the transport checked the key on arrival (the server's admission hook), before any message was read. */
  protected override authenticate(): Principal | null {
    return admitted(this.#call);
  }

  protected read(): unknown {
    return this.#request;
  }

  protected serve(request: unknown, principal: Principal | null): Promise<unknown> {
    this.open(principal, versionOf(this.#method.pinnedOf(request as never)));
    return this.#method.work(request as never, this, this.#call);
  }

  // The client's deadline is the call's deadline; the version's cap still applies.
  protected requestTimeout(): number | undefined {
    const deadline = this.#call.deadline;
    return Number.isFinite(deadline) ? Math.max(1, deadline - Date.now()) : undefined;
  }

  protected answer(response: unknown): number {
    const trailers: MetadataList =
      this.version === '' ? ['x-request-id', this.id] : ['x-request-id', this.id, 'x-model-version', this.version];
    if (this.#method.streams) this.#call.end(trailers);
    else this.#call.reply(response, trailers);
    return 200;
  }

  protected override failure(thrown: unknown): ApiError {
    return this.#call.cancelled ? cancellation(this.#call) : super.failure(thrown);
  }

  protected refuse(e: ApiError): boolean {
    failCall(this.#call, e, this.id);
    return true;
  }

  protected outcome(_status: number, code: string): TraceAttributes {
    return { 'rpc.grpc.status_code': code === '' ? Status.OK : GRPC_STATUS[code as ErrorCode] };
  }
}

/** Ends `call` with `e` in gRPC's terms: its status and message, and trailers with its code and the request id (grpcError). */
export function failCall(call: GrpcCall, e: ApiError, id: string): void {
  const { code, details, metadata } = grpcError(e, id);
  call.fail(code, details, metadata);
}

/** The caller's principal, as the server's admission hook checked it when the call's headers came; 401 UNAUTHENTICATED otherwise. */
export function admitted(call: GrpcCall): Principal | null {
  if (call.refusal !== null) throw call.refusal;
  return call.admitted as Principal | null;
}

/** A version named in a request: proto3's empty string is an unset field, so none. */
export function versionOf(version: string | undefined): string | undefined {
  return version === undefined || version === '' ? undefined : version;
}

/**
 * What a call the transport cancelled came to, whatever its work then threw: past its deadline, a
 * time-out (the transport has answered DEADLINE_EXCEEDED); else the client went away (CANCELLED, 499).
 */
export function cancellation(call: GrpcCall): ApiError {
  return deadlinePassed(call)
    ? fastError('upstream_timeout', 'the call passed the deadline the client set')
    : clientClosedError('the client cancelled the call');
}

/**
 * Slack for telling a deadline from a cancel. A client gives up at its own deadline too (grpc-js
 * resets the stream, as a cancel does), which is earlier than ours by the time its headers took to
 * be read here (`grpc-timeout` is relative); and our deadline timer runs on the event loop's cached
 * clock. So a cancel this close to the deadline is taken for it.
 */
const DEADLINE_SLACK_MS = 250;

/** Whether a cancelled call was cancelled by its deadline passing (DEADLINE_EXCEEDED), not by the client going away. */
export function deadlinePassed(call: Pick<GrpcCall, 'cancelled' | 'deadline'>): boolean {
  return call.cancelled && call.deadline - Date.now() <= DEADLINE_SLACK_MS;
}
