/** How a call's trace reaches backends, without loading the OpenTelemetry SDK: the scope remote calls join. */
import type { Cancellation, TraceScope } from '../core/call.js';
import type { RequestTrace, SpanScope } from './tracing.js';

/** A W3C traceparent of version 00. */
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * The trace remote backends join: the call's own when it is sampled, else the client's
 * `traceparent` passed on as sent (a trace this process does not record), else none.
 */
export function traceScopeOf(trace: RequestTrace | null, traceparent: unknown): TraceScope | undefined {
  if (trace !== null) return trace;
  return typeof traceparent === 'string' && TRACEPARENT.test(traceparent) ? { traceparent, stage: () => undefined } : undefined;
}

/** A call as a backend sees it, inside the span of one attempt: remote backends send that span's traceparent. */
export class TracedCall implements Cancellation {
  constructor(
    readonly call: Cancellation,
    readonly traceScope: SpanScope,
  ) {}

  get signal(): AbortSignal {
    return this.call.signal;
  }

  get expired(): boolean | undefined {
    return this.call.expired;
  }

  onAbort(listener: () => void): void {
    this.call.onAbort(listener);
  }
}
