/** The request context of an HTTP request: id, pinned version, and a signal aborted when the client leaves. */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { signalOf } from '../../core/call.js';
import { callPriority, type RequestContext } from '../../pipeline/context.js';
import { fastError } from '../../core/errors.js';
import type { Priority } from '../../scheduling/admission.js';
import type { Principal } from '../../tenancy/directory.js';
import { CallState } from '../../telemetry/calls.js';
import { traceScopeOf } from '../../telemetry/trace-scope.js';
import type { RequestTrace } from '../../telemetry/tracing.js';
import type { TraceScope } from '../../core/call.js';

/** Creates the AbortController (about 1 µs and a listener) only when a backend reads `signal`. */
export class HttpContext extends CallState implements RequestContext {
  readonly id: string;
  readonly pinnedVersion: string | undefined;
  readonly timeoutMs: number | undefined;
  readonly priority: Priority;
  readonly principal: Principal | null;
  readonly trace: RequestTrace | null;
  /** The trace remote backends join: ours when sampled, else the client's own `traceparent`, passed on as sent. */
  readonly traceScope: TraceScope | undefined;
  readonly #res: ServerResponse;
  #signal: AbortSignal | null = null;

  constructor(
    id: string,
    pinnedVersion: string | undefined,
    timeoutMs: number | undefined,
    priority: Priority,
    principal: Principal | null,
    res: ServerResponse,
    trace: RequestTrace | null,
    traceparent: string | string[] | undefined,
  ) {
    super();
    this.id = id;
    this.pinnedVersion = pinnedVersion;
    this.timeoutMs = timeoutMs;
    this.priority = priority;
    this.principal = principal;
    this.#res = res;
    this.trace = trace;
    this.traceScope = traceScopeOf(trace, traceparent);
  }

  get signal(): AbortSignal {
    return (this.#signal ??= signalOf(this));
  }

  onAbort(listener: () => void): void {
    const res = this.#res;
    if (res.closed) {
      if (!res.writableFinished) listener();
      return;
    }
    res.once('close', () => res.writableFinished || listener());
  }
}

/**
 * The context of one call: a version pinned by the URL wins over the `x-model-version` header; a
 * tenant's priority class caps `x-priority` (a tenant may ask for less than its class, never more).
 */
export function httpContext(
  id: string,
  headers: IncomingHttpHeaders,
  res: ServerResponse,
  principal: Principal | null,
  pinnedVersion: string | undefined,
  trace: RequestTrace | null,
): HttpContext {
  const header = headers['x-model-version'];
  const pinned = pinnedVersion ?? (typeof header === 'string' && header !== '' ? header : undefined);
  const asked = callPriority(headers['x-priority'], principal);
  return new HttpContext(id, pinned, requestTimeout(headers['x-request-timeout-ms']), asked, principal, res, trace, headers.traceparent);
}

/** `x-request-timeout-ms`: a positive whole number of milliseconds, else 400. */
function requestTimeout(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const ms = Number(header);
  if (typeof header !== 'string' || !/^\d+$/.test(header) || ms < 1) {
    throw fastError(
      'invalid_request',
      `the header x-request-timeout-ms must be a positive whole number of milliseconds, got ${JSON.stringify(header).slice(0, 40)}`,
      'x-request-timeout-ms',
    );
  }
  return ms;
}
