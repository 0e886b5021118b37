/**
 * The call types every layer shares: what a request to a model is (tensors, embeddings, text),
 * what comes back, and how a call is cancelled and traced. The ground floor: it imports nothing
 * of the project but tensors and errors, so backends, policies, telemetry and transports all
 * import down to it.
 */
import type { Tensor, TensorSpec } from './tensor.js';

/** What a backend can serve; endpoints check this before calling it. */
export type Task = 'tensor' | 'embedding' | 'chat' | 'completion';

/** A tensor request after decoding and validation against the model's signature. */
export interface InferRequest {
  readonly inputs: readonly Tensor[];
  /** Output names the client asked for; null: all of them. */
  readonly outputs: readonly string[] | null;
}

/** A tensor model's answer: the outputs asked for, in that order (null `outputs`: all, in the model's order). */
export interface InferResult {
  readonly outputs: readonly Tensor[];
}

/** An embeddings request, its input already split into one text per row. */
export interface EmbedRequest {
  /** One text per row. */
  readonly input: readonly string[];
  /** Length the client wants the vectors to have; null: the model's own. */
  readonly dimensions: number | null;
}

/** An embedding backend's answer; `promptTokens` is the total over every input. */
export interface EmbedResult {
  /** One vector per input, in order. */
  readonly vectors: readonly Float32Array[];
  readonly promptTokens: number;
}

/** Inputs and outputs of a tensor model, as KServe metadata reports them. */
export interface Signature {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/**
 * A call's admission priority (scheduling's `Priority`, named here so that every layer can read it
 * without importing the scheduler): the order calls leave a queue, and which endpoints of a remote
 * version a call prefers (`pools.prefer`).
 */
export type CallPriority = 'high' | 'normal' | 'low';

/** Span attribute values, as OpenTelemetry takes them. */
export type TraceAttributes = Readonly<Record<string, string | number | boolean>>;

/** The span of a traced call that a backend may add to: its stages become child spans; remote calls carry its id. */
export interface TraceScope {
  /** The W3C `traceparent` header naming this span, for requests to remote servers. */
  readonly traceparent: string;
  /** Records a finished stage (`performance.now()` times) as a child span. */
  stage(name: string, start: number, end: number, attributes?: TraceAttributes): void;
}

/**
 * How a call learns that its client went away. `signal` is created on first read; `onAbort` is
 * the cheaper hook (no AbortController, no EventTarget) for backends that can stop work directly.
 */
export interface Cancellation {
  readonly signal: AbortSignal;
  /** True once a deadline (rather than the client leaving) cancelled the call; absent: no deadline. */
  readonly expired?: boolean;
  /** Calls `listener` once if the client disconnects before the response is complete. */
  onAbort(listener: () => void): void;
  /** The trace this call is part of; undefined: not traced (not sampled, or tracing is off). */
  readonly traceScope?: TraceScope | undefined;
  /**
   * The request's priority, for backends that place calls by it (a remote version's `pools`); the
   * pipeline's call contexts always carry it. Absent: `normal`.
   */
  readonly priority?: CallPriority;
}

/** An AbortSignal that aborts when `cancellation` does: for the `signal` getters, made on first read. */
export function signalOf(cancellation: Pick<Cancellation, 'onAbort'>): AbortSignal {
  const controller = new AbortController();
  cancellation.onAbort(() => controller.abort());
  return controller.signal;
}

/** Why a backend stopped work: its client disconnected (nothing can be sent to it any more). */
export class ClientGoneError extends Error {
  constructor() {
    super('the client went away');
    this.name = 'ClientGoneError';
  }
}

/**
 * Whether work stopped because its client went away: a backend's ClientGoneError, or the
 * AbortError of work stopped by the call's signal (a deadline is turned into a time-out before
 * anything reads this). Such a call comes to 499 `client_closed_request` everywhere it is recorded.
 */
export function isClientGone(error: unknown): boolean {
  return error instanceof ClientGoneError || (error as { name?: unknown } | null)?.name === 'AbortError';
}

/** Model and version of a call that did not resolve to one (a 401, an unknown name): never the name sent, so clients cannot add metric series. */
export const NO_MODEL = '';
