/** The request context of a gRPC call: its metadata, its deadline, and its cancellation. */
import type { Metadata, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';

/** A unary or server-streaming call, as the context reads it. */
type ServerSurfaceCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;
import { signalOf, type TraceScope } from '../../backends/backend.js';
import { callPriority, NO_MODEL, type RequestContext } from '../../core/context.js';
import type { ModelVersion } from '../../routing/registry.js';
import type { Priority } from '../../scheduling/admission.js';
import type { CallFacts } from '../../telemetry/calls.js';
import type { RequestTrace } from '../../telemetry/tracing.js';
import type { Principal } from '../../tenancy/directory.js';

/** One metadata value as a string (the first, if sent several times); undefined when absent or binary. */
export function metadataValue(metadata: Metadata, key: string): string | undefined {
  const v = metadata.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

export class GrpcContext implements RequestContext, CallFacts {
  readonly timeoutMs: number | undefined;
  readonly priority: Priority;
  readonly traceScope: TraceScope | undefined;
  model = NO_MODEL;
  version = NO_MODEL;
  promptTokens: number | null = null;
  completionTokens: number | null = null;
  firstByteAt = 0;
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
    // The client's deadline is the call's deadline; the version's cap still applies.
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    this.timeoutMs = Number.isFinite(at) ? Math.max(1, at - Date.now()) : undefined;
    this.priority = callPriority(metadataValue(call.metadata, 'x-priority'), principal);
    const traceparent = metadataValue(call.metadata, 'traceparent');
    this.traceScope = trace ?? (traceparent === undefined ? undefined : { traceparent, stage: () => undefined });
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

  routed(version: ModelVersion): void {
    this.model = version.model.name;
    this.version = version.version;
  }

  counted(prompt: number, completion: number): void {
    this.promptTokens = prompt;
    this.completionTokens = completion;
  }
}
