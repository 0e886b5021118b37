/** The request context of a gRPC call: its metadata, its deadline, and its cancellation. */
import type { Metadata, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';

/** A unary or server-streaming call, as the context reads it. */
type ServerSurfaceCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;
import { signalOf, type TraceScope } from '../../backends/backend.js';
import { callPriority, type RequestContext } from '../../core/context.js';
import type { Priority } from '../../scheduling/admission.js';
import { CallState } from '../../telemetry/calls.js';
import { traceScopeOf } from '../../telemetry/trace-scope.js';
import type { RequestTrace } from '../../telemetry/tracing.js';
import type { Principal } from '../../tenancy/directory.js';

/** One metadata value as a string (the first, if sent several times); undefined when absent or binary. */
export function metadataValue(metadata: Metadata, key: string): string | undefined {
  const v = metadata.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

export class GrpcContext extends CallState implements RequestContext {
  readonly timeoutMs: number | undefined;
  readonly priority: Priority;
  readonly traceScope: TraceScope | undefined;
  #cancelled = false;
  #listeners: Array<() => void> = [];
  #signal: AbortSignal | null = null;

  constructor(
    readonly id: string,
    readonly pinnedVersion: string | undefined,
    readonly principal: Principal | null,
    readonly trace: RequestTrace | null,
    call: ServerSurfaceCall,
  ) {
    super();
    // The client's deadline is the call's deadline; the version's cap still applies.
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    this.timeoutMs = Number.isFinite(at) ? Math.max(1, at - Date.now()) : undefined;
    this.priority = callPriority(metadataValue(call.metadata, 'x-priority'), principal);
    this.traceScope = traceScopeOf(trace, metadataValue(call.metadata, 'traceparent'));
    // Cancelled by the client, or its deadline passed: the work behind the call stops.
    call.on('cancelled', () => {
      this.#cancelled = true;
      const listeners = this.#listeners;
      this.#listeners = [];
      for (const listener of listeners) listener();
    });
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  get signal(): AbortSignal {
    return (this.#signal ??= signalOf(this));
  }

  onAbort(listener: () => void): void {
    if (this.#cancelled) listener();
    else this.#listeners.push(listener);
  }
}
