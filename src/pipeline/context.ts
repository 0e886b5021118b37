import type { Cancellation } from '../core/call.js';
import { PRIORITIES, type Priority } from '../scheduling/admission.js';
import { fastError } from '../core/errors.js';
import type { Principal } from '../tenancy/directory.js';
import type { ModelVersion } from '../routing/registry.js';
import type { RequestTrace } from '../telemetry/tracing.js';

/** Request-scoped facts, in one typed object passed down the pipeline (never in globals). */
export interface RequestContext extends Cancellation {
  /** From the client's `x-request-id`, else generated; echoed in the response. */
  readonly id: string;
  /** Version pinned by the `x-model-version` header or a KServe URL. */
  readonly pinnedVersion: string | undefined;
  /** Deadline the client asked for (`x-request-timeout-ms`), before the version's cap; undefined: the version's default. */
  readonly timeoutMs: number | undefined;
  /** Admission priority: the tenant's class, or lower when `x-priority` asks. */
  readonly priority: Priority;
  /** The tenant and key that authenticated; null without authentication (`auth.mode: none`). */
  readonly principal: Principal | null;
  /** The request's trace when it is sampled; its stages add child spans. Null: not traced. */
  readonly trace: RequestTrace | null;
  /** Aborted when the client goes away; backends stop their work on it. */
  readonly signal: AbortSignal;
  /** Told the version chosen to serve the call (each fallback tried tells again), for metrics and logs. */
  routed(version: ModelVersion): void;
  /** Told the call's tokens once they are known (where the usage ledger counts them), for the access log. */
  counted(prompt: number, completion: number): void;
}

/**
 * A call's admission priority from `x-priority` (high, normal, low; else 400): a tenant's priority
 * class caps it (a tenant may ask for less than its class, never more) and is the default.
 */
export function callPriority(header: string | string[] | undefined, principal: Principal | null): Priority {
  let asked: Priority = 'normal';
  if (header === 'high' || header === 'normal' || header === 'low') asked = header;
  else if (header !== undefined) {
    throw fastError(
      'invalid_request',
      `the header x-priority must be high, normal or low, got ${JSON.stringify(header).slice(0, 40)}`,
      'x-priority',
    );
  }
  if (principal !== null) {
    const own = principal.tenant.priority;
    if (header === undefined || PRIORITIES.indexOf(asked) < PRIORITIES.indexOf(own)) asked = own;
  }
  return asked;
}
