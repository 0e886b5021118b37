/**
 * The policies of one deployment (a model version), composed once at start-up: a circuit breaker
 * around retries with back-off, and {@link govern}, the wrapper that puts them in the version's
 * chain. Hand-written rather than cockatiel's: the same policies through cockatiel 3.2 cost the
 * proxy benchmark 15 % of its throughput (0.83x against 0.98x without policies, wrk at 64
 * connections, interleaved rounds), and what is needed here is small. The success path of a
 * closed breaker allocates nothing. A version with neither policy (the default for in-process
 * backends) gets no governor, and no wrapper, at all.
 */
import type { Logger } from 'pino';
import { ClientGoneError, type Cancellation } from '../core/call.js';
import type { BackendKind, PoliciesConfig } from '../config/schema.js';
import { pluginOf } from '../backends/index.js';
import { ApiError, fastError } from '../core/errors.js';
import type { Attempt, BreakerState, BreakerStatus, CallContext, CallPolicy, VersionCall, Wrapper } from '../core/policy.js';
import type { RetryBudget } from './retry-budget.js';
import type { DeploymentObserver } from '../core/observer.js';

/**
 * Failures that say the deployment is unwell: faults of the upstream or the network only. Never
 * the request's own (invalid, too deep to serialise, refused by the upstream with a 4xx), flow
 * control, or our bugs (`internal_error`, or anything not an ApiError): a client must not be able
 * to open a breaker or trigger a fallback for every tenant by what it sends.
 */
export function isDeploymentFailure(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  const code = err.code;
  return code === 'upstream_error' || code === 'upstream_unavailable' || code === 'upstream_timeout';
}

/** Re-exported for the breaker's users (tests among them), defined in core/policy.ts. */
export type { BreakerState, BreakerStatus } from '../core/policy.js';

/** A Breaker's settings; times in milliseconds, `failureRate` from 0 to 1, `now` (for tests) Date.now by default. */
export interface BreakerOptions {
  /** Failures in a row that open it; 0: this rule is off. */
  readonly consecutiveFailures: number;
  /** Share of failed calls in the rolling window that opens it; 0: this rule is off. */
  readonly failureRate: number;
  readonly windowMs: number;
  readonly minimumCalls: number;
  readonly halfOpenAfterMs: number;
  readonly now?: () => number;
}

/** Buckets of the rolling window: counts age out a tenth of the window at a time. */
const BUCKETS = 10;

/**
 * A circuit breaker in the manner of gobreaker and resilience4j: closed, it opens after
 * `consecutiveFailures` in a row or when `failureRate` of the calls in the last `windowMs` failed
 * (once there were `minimumCalls`); open, it refuses until `halfOpenAfterMs` passed, then lets one
 * probe through (half-open); the probe's success closes it, its failure opens it again.
 */
export class Breaker {
  readonly #options: BreakerOptions;
  readonly #now: () => number;
  readonly #onChange: (state: BreakerState) => void;
  #state: BreakerState = 'closed';
  #consecutive = 0;
  #openedAt = 0;
  #probing = false;
  readonly #calls = new Array<number>(BUCKETS).fill(0);
  readonly #failures = new Array<number>(BUCKETS).fill(0);
  #bucket = 0;
  #bucketStart = 0;

  constructor(options: BreakerOptions, onChange: (state: BreakerState) => void) {
    this.#options = options;
    this.#onChange = onChange;
    this.#now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    return this.#state;
  }

  get openedAt(): number {
    return this.#openedAt;
  }

  /** Whether a call may go now; when half-open, the first call becomes the probe. */
  allow(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open') {
      if (this.#now() - this.#openedAt < this.#options.halfOpenAfterMs) return false;
      this.#set('half-open');
    }
    if (this.#probing) return false;
    this.#probing = true;
    return true;
  }

  /** Seconds until a probe may go, at least 1. */
  retryAfterS(): number {
    return Math.max(1, Math.ceil((this.#openedAt + this.#options.halfOpenAfterMs - this.#now()) / 1000));
  }

  success(): void {
    this.#consecutive = 0;
    if (this.#state === 'half-open') {
      this.#probing = false;
      this.#set('closed');
      return;
    }
    if (this.#options.failureRate > 0) this.#count(false);
  }

  failure(): void {
    if (this.#state === 'half-open') {
      this.#probing = false;
      return this.#open();
    }
    const { consecutiveFailures: limit, failureRate: rate, minimumCalls } = this.#options;
    if (limit > 0 && ++this.#consecutive >= limit) return this.#open();
    if (rate > 0) {
      this.#count(true);
      let calls = 0;
      let failures = 0;
      for (let i = 0; i < BUCKETS; i++) {
        calls += this.#calls[i] as number;
        failures += this.#failures[i] as number;
      }
      if (calls >= minimumCalls && failures / calls >= rate) this.#open();
    }
  }

  /** The call ended neither way (the client's mistake, or it left): a probe slot is given back. */
  neutral(): void {
    if (this.#state === 'half-open') this.#probing = false;
  }

  /** Counts a call in the current bucket, clearing buckets that aged out of the window. */
  #count(failed: boolean): void {
    const now = this.#now();
    const width = this.#options.windowMs / BUCKETS;
    const steps = Math.min(BUCKETS, Math.floor((now - this.#bucketStart) / width));
    for (let i = 0; i < steps; i++) {
      this.#bucket = (this.#bucket + 1) % BUCKETS;
      this.#calls[this.#bucket] = 0;
      this.#failures[this.#bucket] = 0;
    }
    if (steps > 0) this.#bucketStart = now - ((now - this.#bucketStart) % width);
    this.#calls[this.#bucket] = (this.#calls[this.#bucket] as number) + 1;
    if (failed) this.#failures[this.#bucket] = (this.#failures[this.#bucket] as number) + 1;
  }

  #open(): void {
    this.#consecutive = 0;
    this.#calls.fill(0);
    this.#failures.fill(0);
    this.#openedAt = this.#now();
    this.#set('open');
  }

  #set(state: BreakerState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#onChange(state);
  }
}

/** A deployment's retries and circuit breaker; made by `create`, which gives null when it has neither. */
export class Governor implements CallPolicy {
  readonly #attempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #retryOnSent: boolean;
  readonly #breaker: Breaker | null;
  readonly #threshold: number;
  readonly #budget: RetryBudget;
  readonly #observer: DeploymentObserver;

  private constructor(
    config: PoliciesConfig,
    attempts: number,
    threshold: number,
    budget: RetryBudget,
    breaker: Breaker | null,
    observer: DeploymentObserver,
  ) {
    this.#attempts = attempts;
    this.#baseDelayMs = config.retry.base_delay_ms;
    this.#maxDelayMs = config.retry.max_delay_ms;
    this.#retryOnSent = config.retry.on_sent;
    this.#threshold = threshold;
    this.#budget = budget;
    this.#breaker = breaker;
    this.#observer = observer;
  }

  /** The governor of a version, or null when it has no retries and no breaker. */
  static create(
    config: PoliciesConfig,
    kind: BackendKind,
    budget: RetryBudget,
    log: Logger,
    name: string,
    observer: DeploymentObserver,
  ): Governor | null {
    // Remote kinds (their plug-in says so) fail for passing reasons of the network or a replica: retried and guarded by default.
    const remote = pluginOf(kind)?.capabilities.remote === true;
    const attempts = config.retry.attempts ?? (remote ? 3 : 1);
    const threshold = config.breaker.consecutive_failures ?? (remote ? 5 : 0);
    if (attempts <= 1 && threshold === 0 && config.breaker.failure_rate === 0) return null;
    const b = config.breaker;
    const breaker =
      threshold === 0 && b.failure_rate === 0
        ? null
        : new Breaker(
            {
              consecutiveFailures: threshold,
              failureRate: b.failure_rate,
              windowMs: b.window_ms,
              minimumCalls: b.minimum_calls,
              halfOpenAfterMs: b.half_open_after_ms,
            },
            (state) => {
              const message =
                state === 'open'
                  ? 'circuit breaker opened'
                  : state === 'half-open'
                    ? 'circuit breaker half-open: letting a probe through'
                    : 'circuit breaker closed';
              log[state === 'open' ? 'warn' : 'info']({ deployment: name, state }, message);
            },
          );
    return new Governor(config, attempts, threshold, budget, breaker, observer);
  }

  /**
   * Runs one call under the policies, each try through `next`: an open breaker answers 503
   * `circuit_open` at once without calling; retryable failures are tried again after a back-off,
   * within the attempts and the retry budget; the final outcome feeds the breaker.
   */
  async run<V, T>(next: VersionCall<V>, work: Attempt<V, T>, ctx: CallContext<T>): Promise<T> {
    const breaker = this.#breaker;
    if (breaker !== null && !breaker.allow()) throw this.#openError(breaker);
    this.#budget.call();
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await next(work, ctx);
        breaker?.success();
        return result;
      } catch (err) {
        const delay = attempt < this.#attempts ? this.#retryDelay(err, attempt) : null;
        if (delay === null || !this.#budget.tryRetry()) {
          // A call cancelled by its deadline counts against the deployment (it was too slow); one the client left does not.
          if (isDeploymentFailure(err) || (err instanceof ClientGoneError && ctx.expired)) breaker?.failure();
          else breaker?.neutral();
          throw err;
        }
        this.#observer.retried();
        await backOff(delay, ctx);
      }
    }
  }

  status(): BreakerStatus | null {
    const breaker = this.#breaker;
    if (breaker === null) return null;
    return {
      state: breaker.state,
      consecutive_failures: this.#threshold,
      opened_at: breaker.openedAt === 0 ? null : new Date(breaker.openedAt).toISOString(),
    };
  }

  /**
   * The wait before retry `attempt` + 1, or null for no retry: full jitter (AWS's "Exponential
   * Backoff And Jitter"), or the upstream's Retry-After when it sent one and it is not too long.
   * A call the upstream may already have received is not retried unless the policy opts in:
   * generation is not idempotent.
   */
  #retryDelay(err: unknown, attempt: number): number | null {
    if (!(err instanceof ApiError) || !err.retryable || (err.mayHaveRun && !this.#retryOnSent)) return null;
    if (err.retryAfterS !== null) return err.retryAfterS * 1000 > this.#maxDelayMs ? null : err.retryAfterS * 1000;
    return Math.random() * Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
  }

  #openError(breaker: Breaker): ApiError {
    return fastError(
      'circuit_open',
      'this version failed repeatedly; its circuit breaker is open and calls fail fast until a probe succeeds',
      null,
      { retryAfterS: breaker.retryAfterS() },
    );
  }
}

/**
 * The wrapper of a version's retries and breaker: every call through it runs under `governor`,
 * each try going to the next wrapper (so an attempt is timed and traced per try).
 */
export function govern<V>(governor: Governor): Wrapper<V> {
  return (next) =>
    function governed(work, ctx) {
      return governor.run(next, work, ctx);
    };
}

/** Sleeps `ms`, or less if the call is aborted (the next try then fails at once). */
function backOff(ms: number, call: Cancellation): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    call.onAbort(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
