/** The request context of an HTTP request: id, pinned version, and a signal aborted when the client leaves. */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { signalOf } from '../../backends/backend.js';
import { callPriority, NO_MODEL, type RequestContext } from '../../core/context.js';
import { fastError } from '../../core/errors.js';
import type { Priority } from '../../scheduling/admission.js';
import type { Principal } from '../../tenancy/directory.js';
import type { ModelVersion } from '../../routing/registry.js';
import type { RequestTrace } from '../../telemetry/tracing.js';
import type { TraceScope } from '../../backends/backend.js';

/** Creates the AbortController (about 1 µs and a listener) only when a backend reads `signal`. */
export class HttpContext implements RequestContext {
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
  /** The model and version that served (or last tried); NO_MODEL until routed. */
  model = NO_MODEL;
  version = NO_MODEL;
  /** Tokens, once counted; null when nothing counts them (no ledger). */
  promptTokens: number | null = null;
  completionTokens: number | null = null;
  /** When a streamed answer's first chunk was written (performance.now()); 0: not yet, or not streamed. */
  firstByteAt = 0;

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
    this.id = id;
    this.pinnedVersion = pinnedVersion;
    this.timeoutMs = timeoutMs;
    this.priority = priority;
    this.principal = principal;
    this.#res = res;
    this.trace = trace;
    this.traceScope = trace ?? (typeof traceparent === 'string' && TRACEPARENT.test(traceparent) ? passOn(traceparent) : undefined);
  }

  routed(version: ModelVersion): void {
    this.model = version.model.name;
    this.version = version.version;
  }

  counted(prompt: number, completion: number): void {
    this.promptTokens = prompt;
    this.completionTokens = completion;
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

/** A W3C traceparent of version 00 (lower-case hex, not all zeros is the receiver's to check). */
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** A client's trace this process does not record: remote backends get its traceparent unchanged. */
function passOn(traceparent: string): TraceScope {
  return { traceparent, stage: () => undefined };
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
