import type { Cancellation } from '../backends/backend.js';

/** Request-scoped facts, in one typed object passed down the pipeline (never in globals). */
export interface RequestContext extends Cancellation {
  /** From the client's `x-request-id`, else generated; echoed in the response. */
  readonly id: string;
  /** Version pinned by the `x-model-version` header or a KServe URL. */
  readonly pinnedVersion: string | undefined;
  /** Aborted when the client goes away; backends stop their work on it. */
  readonly signal: AbortSignal;
}
