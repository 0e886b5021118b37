/**
 * What the pipeline asks of a deployment's policies (retries and circuit breaker, composed per
 * model version when the config loads): run a call under them, and say how the breaker stands.
 * The implementation is policies/governor.ts; routing and the transports see only this.
 */
import type { Cancellation } from './call.js';

/** Closed: calls go; open: calls fail fast with circuit_open; half-open: one probe call is let through. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** A breaker as the admin API shows it; `consecutive_failures` is the configured threshold that opens it, not a running count. */
export interface BreakerStatus {
  readonly state: BreakerState;
  readonly consecutive_failures: number;
  /** When it last opened (ISO time); null if never. */
  readonly opened_at: string | null;
}

/** A deployment's policies around one call. */
export interface CallPolicy {
  /** Runs `work` under the policies: fails fast while the breaker is open, retries what is safe to retry. */
  run<T>(call: Cancellation, work: (call: Cancellation) => Promise<T>): Promise<T>;
  /** The breaker's state; null when the deployment has none. */
  status(): BreakerStatus | null;
}
