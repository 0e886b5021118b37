/**
 * What one deployment (a model version) tells telemetry as it serves, from the stages that know
 * it: the admission queue, the policies, the backend. Metrics implement it; without metrics every
 * version gets {@link NO_OBSERVER}, and the stages skip their clocks when they see it.
 */

/** Why a call was refused at admission: its queue was full, or its deadline passed while it waited. */
export type ShedReason = 'queue_full' | 'queue_timeout';

/** The events of one deployment that telemetry counts; durations are in seconds. */
export interface DeploymentObserver {
  /** Waited `seconds` for an admission slot (versions with `policies.admission`; 0 when one was free). */
  queued(seconds: number): void;
  /** Refused before it ran, the version being at capacity. */
  shed(reason: ShedReason): void;
  /** One attempt at the backend took `seconds` (a stream: until it began). */
  attempt(seconds: number): void;
  /** A failed attempt is tried again. */
  retried(): void;
  /** The version failed and a fallback (or the degraded answer) was tried in its place. */
  fellBack(): void;
  /** The backend executed the model once for `requests` requests holding `rows` rows (Triton's exec vs inference counts). */
  executed(rows: number, requests: number): void;
  /**
   * A remote backend made one request upstream, to an endpoint of `pool` (null: an endpoint in no
   * pool); `error` when it failed for the upstream's own fault (unreachable, timed out, 5xx), as
   * passive health counts failures, else `ok`. Optional, so that observers that count none need
   * not say so; backends resolve it once, not per call.
   */
  upstream?(pool: string | null, outcome: UpstreamOutcome): void;
}

/** How one upstream request ended, for {@link DeploymentObserver.upstream}. */
export type UpstreamOutcome = 'ok' | 'error';

const noop = (): void => undefined;

/** The observer of a version nobody watches. */
export const NO_OBSERVER: DeploymentObserver = Object.freeze({
  queued: noop,
  shed: noop,
  attempt: noop,
  retried: noop,
  fellBack: noop,
  executed: noop,
  upstream: noop,
});

/** Measurements of one finished generation, for whoever observes them (logs now, metrics later); backends that generate in process report them. */
export interface GenerationStats {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Waiting for a free sequence. */
  readonly queuedMs: number;
  /** From the request reaching the backend to the first token. */
  readonly timeToFirstTokenMs: number;
  /** Completion tokens after the first, per second of generation. */
  readonly tokensPerSecond: number;
  readonly finishReason: 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'cancelled';
}

/** Told each generation's stats once: when it finishes, or when its client leaves first. */
export type GenerationObserver = (stats: GenerationStats) => void;
