/**
 * The shape of a deployment's policies (admission, retries and breaker, observation): each one a
 * wrapper that takes the call at a model version and returns a call, composed once per version
 * when the config loads (pipeline/policies.ts) in the manner of undici's interceptors. A policy a
 * version does not have is not in its chain at all. Here are the types every layer shares; the
 * wrappers are in policies/, the chain is kept by the registry.
 */
import type { Cancellation, Task, TraceAttributes, TraceScope } from './call.js';

/** Closed: calls go; open: calls fail fast with circuit_open; half-open: one probe call is let through. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** A breaker as the admin API shows it; `consecutive_failures` is the configured threshold that opens it, not a running count. */
export interface BreakerStatus {
  readonly state: BreakerState;
  readonly consecutive_failures: number;
  /** When it last opened (ISO time); null if never. */
  readonly opened_at: string | null;
}

/** A deployment's retries and breaker as the admin API and the metrics see them (the wrapper is in its chain). */
export interface CallPolicy {
  /** The breaker's state; null when the deployment has none. */
  status(): BreakerStatus | null;
}

/** The span of one attempt at a backend, as the observation wrapper ends it. */
export interface CallSpan extends TraceScope {
  /** Ends the span at `end` (`performance.now()`), failed when `error` is given. */
  end(end: number, error?: unknown): void;
}

/** A sampled request's trace, as the policies add to it: their stages, and a span per backend attempt. */
export interface CallTrace extends TraceScope {
  /** Records a stage that failed with `error`. */
  failed(name: string, start: number, end: number, error: unknown): void;
  /** Starts the span of an attempt; `remote`: a client span (the backend is another server). */
  child(name: string, start: number, remote: boolean, attributes: TraceAttributes): CallSpan;
}

/**
 * Keeps what a call holds (its admission slot) until `result` is consumed, calling `release` once:
 * a stream keeps it until it ends; a whole answer gives it back at once.
 */
export type Hold<T> = (result: T, release: () => void) => T;

/**
 * What the policies read of one request, for the whole of its call (fallbacks included): it is
 * the call's Cancellation under its deadline, with the facts a policy needs. One object per
 * request, made by the pipeline (policies/deadline.ts), every field set in its constructor.
 */
export interface CallContext<T> extends Cancellation {
  /** True once the request's deadline passed (rather than the client leaving). */
  readonly expired: boolean;
  /** Admission priority (scheduling's `Priority`): high, normal or low. */
  readonly priority: 'high' | 'normal' | 'low';
  /** The request's trace when it is sampled; null: not traced. */
  readonly trace: CallTrace | null;
  /** What is asked of the backend, for the span's operation name. */
  readonly task: Task;
  /** How the answer keeps its admission slot while it streams; null: the slot is released when the call settles. */
  readonly hold: Hold<T> | null;
}

/**
 * One try of a request's work at a version `V` (a model version, in the registry): `call` is the
 * Cancellation the backend should see (it carries the attempt's span when traced).
 */
export type Attempt<V, T> = (version: V, call: Cancellation) => Promise<T>;

/** A request's call at one version, through the version's policies; the innermost one calls the backend. */
export type VersionCall<V> = <T>(work: Attempt<V, T>, ctx: CallContext<T>) => Promise<T>;

/**
 * One policy: takes the call it wraps and returns the call with the policy around it. Made by a
 * factory from the policy's settings, `(settings) => (next) => function policied(work, ctx) {...}`,
 * returning a named function so stack traces read well.
 */
export type Wrapper<V> = (next: VersionCall<V>) => VersionCall<V>;
