/**
 * The policies of one deployment (a model version), composed once at start-up: a circuit breaker
 * around retries with back-off. Built on cockatiel (maintained, typed, small, no dependencies):
 * its breaker and retry are the parts with state and timing subtleties worth not rewriting.
 * A version with neither (the default for in-process backends) gets no governor at all, so its
 * calls pay nothing.
 */
import type { Logger } from 'pino';
import {
  BrokenCircuitError,
  CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  DelegateBackoff,
  circuitBreaker,
  handleWhen,
  noop,
  retry,
  wrap,
  type IPolicy,
  type IRetryBackoffContext,
} from 'cockatiel';
import type { Cancellation } from '../backends/backend.js';
import type { BackendKind, PoliciesConfig } from '../config/schema.js';
import { ApiError, fastError } from '../core/errors.js';
import type { RetryBudget } from './retry-budget.js';

/** Failures that say the deployment is unwell (not the client's mistake, not flow control). */
export function isDeploymentFailure(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  const code = err.code;
  return code === 'upstream_error' || code === 'upstream_unavailable' || code === 'upstream_timeout' || code === 'internal_error';
}

export interface BreakerStatus {
  readonly state: 'closed' | 'open' | 'half-open';
  readonly consecutive_failures: number;
  /** When it last opened (ISO time); null if never. */
  readonly opened_at: string | null;
}

const REMOTE: ReadonlySet<BackendKind> = new Set(['openai']);

export class Governor {
  readonly #policy: IPolicy;
  readonly #breaker: CircuitBreakerPolicy | null;
  readonly #halfOpenAfterMs: number;
  readonly #threshold: number;
  readonly #budget: RetryBudget;
  #openedAt = 0;

  private constructor(
    policy: IPolicy,
    breaker: CircuitBreakerPolicy | null,
    config: PoliciesConfig,
    threshold: number,
    budget: RetryBudget,
  ) {
    this.#policy = policy;
    this.#budget = budget;
    this.#breaker = breaker;
    this.#halfOpenAfterMs = config.breaker.half_open_after_ms;
    this.#threshold = threshold;
  }

  /** The governor of a version, or null when it has no retries and no breaker. */
  static create(config: PoliciesConfig, kind: BackendKind, budget: RetryBudget, log: Logger, name: string): Governor | null {
    const remote = REMOTE.has(kind);
    const attempts = config.retry.attempts ?? (remote ? 3 : 1);
    const threshold = config.breaker.consecutive_failures ?? (remote ? 5 : 0);
    if (attempts <= 1 && threshold === 0) return null;

    const { base_delay_ms: base, max_delay_ms: max } = config.retry;
    const retryPolicy =
      attempts <= 1
        ? noop
        : retry(
            handleWhen((err) => {
              if (!(err instanceof ApiError) || !err.retryable) return false;
              if (err.retryAfterS !== null && err.retryAfterS * 1000 > max) return false; // asked to wait longer than we would
              return budget.tryRetry();
            }),
            {
              maxAttempts: attempts - 1,
              // Full jitter (AWS's "Exponential Backoff And Jitter"), or the upstream's Retry-After when it sent one.
              backoff: new DelegateBackoff<IRetryBackoffContext<unknown>>((context) => {
                const e = 'error' in context.result ? context.result.error : undefined;
                if (e instanceof ApiError && e.retryAfterS !== null) return e.retryAfterS * 1000;
                return Math.random() * Math.min(max, base * 2 ** (context.attempt - 1));
              }),
            },
          );
    let breaker: CircuitBreakerPolicy | null = null;
    if (threshold > 0) {
      breaker = circuitBreaker(handleWhen(isDeploymentFailure), {
        halfOpenAfter: config.breaker.half_open_after_ms,
        breaker: new ConsecutiveBreaker(threshold),
      });
    }
    const governor = new Governor(breaker === null ? retryPolicy : wrap(breaker, retryPolicy), breaker, config, threshold, budget);
    if (breaker !== null) {
      breaker.onBreak(() => {
        governor.#openedAt = Date.now();
        log.warn({ deployment: name, state: 'open' }, 'circuit breaker opened');
      });
      breaker.onHalfOpen(() => log.info({ deployment: name, state: 'half-open' }, 'circuit breaker half-open: letting a probe through'));
      breaker.onReset(() => log.info({ deployment: name, state: 'closed' }, 'circuit breaker closed'));
    }
    return governor;
  }

  /** Runs one call under the policies; an open breaker answers 503 `circuit_open` at once, without calling. */
  async run<T>(call: Cancellation, work: (call: Cancellation) => Promise<T>): Promise<T> {
    this.#budget.call();
    try {
      return await this.#policy.execute(() => work(call), call.signal);
    } catch (err) {
      if (err instanceof BrokenCircuitError) throw this.#openError();
      throw err;
    }
  }

  status(): BreakerStatus | null {
    const breaker = this.#breaker;
    if (breaker === null) return null;
    const state = breaker.state === CircuitState.Open ? 'open' : breaker.state === CircuitState.HalfOpen ? 'half-open' : 'closed';
    return {
      state,
      consecutive_failures: this.#threshold,
      opened_at: this.#openedAt === 0 ? null : new Date(this.#openedAt).toISOString(),
    };
  }

  #openError(): ApiError {
    const e = fastError(
      'circuit_open',
      'this version failed repeatedly; its circuit breaker is open and calls fail fast until a probe succeeds',
    );
    e.retryAfterS = Math.max(1, Math.ceil((this.#openedAt + this.#halfOpenAfterMs - Date.now()) / 1000));
    return e;
  }
}
