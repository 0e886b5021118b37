/** The request context of a gRPC call: its metadata, its deadline, and its cancellation. */
import { signalOf, type TraceScope } from '../../core/call.js';
import { callPriority, type RequestContext } from '../../pipeline/context.js';
import type { Priority } from '../../scheduling/admission.js';
import { CallState } from '../../telemetry/calls.js';
import { traceScopeOf } from '../../telemetry/trace-scope.js';
import type { RequestTrace } from '../../telemetry/tracing.js';
import type { Principal } from '../../tenancy/directory.js';
import type { GrpcCall } from './transport.js';

/**
 * A gRPC call as the pipeline's RequestContext: timeout from the client's deadline, priority from
 * `x-priority` metadata (a bad value throws invalid_request), trace scope from `traceparent`.
 */
export class GrpcContext extends CallState implements RequestContext {
  readonly timeoutMs: number | undefined;
  readonly priority: Priority;
  readonly traceScope: TraceScope | undefined;
  #signal: AbortSignal | null = null;
  readonly #call: GrpcCall;

  constructor(
    readonly id: string,
    readonly pinnedVersion: string | undefined,
    readonly principal: Principal | null,
    readonly trace: RequestTrace | null,
    call: GrpcCall,
  ) {
    super();
    this.#call = call;
    // The client's deadline is the call's deadline; the version's cap still applies.
    this.timeoutMs = Number.isFinite(call.deadline) ? Math.max(1, call.deadline - Date.now()) : undefined;
    this.priority = callPriority(call.metadata('x-priority'), principal);
    this.traceScope = traceScopeOf(trace, call.metadata('traceparent'));
  }

  /** Cancelled by the client, or its deadline passed: the work behind the call stops. */
  get cancelled(): boolean {
    return this.#call.cancelled;
  }

  /** Whether the client's deadline (rather than the client leaving) cancelled the call: a time-out, not a 499. */
  get expired(): boolean {
    return deadlinePassed(this.#call);
  }

  get signal(): AbortSignal {
    return (this.#signal ??= signalOf(this));
  }

  onAbort(listener: () => void): void {
    this.#call.onCancel(listener);
  }
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
