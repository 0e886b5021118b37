/** How a call's trace reaches backends, without loading the OpenTelemetry SDK: the scope remote calls join. */
import type { TraceScope } from '../core/call.js';
import type { RequestTrace } from './tracing.js';

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
