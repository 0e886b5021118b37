/**
 * The backend interface: what a model runtime or a remote model server must offer. A backend
 * knows nothing about tenants, HTTP or routing; a new kind is one new folder next to this file.
 */
import type { Readable } from 'node:stream';
import { fastError } from '../core/errors.js';
import type { Tensor, TensorSpec } from '../core/tensor.js';

/** What a backend can serve; endpoints check this before calling it. */
export type Task = 'tensor' | 'embedding' | 'chat' | 'completion';

/** A tensor request after decoding and validation against the model's signature. */
export interface InferRequest {
  readonly inputs: readonly Tensor[];
  /** Output names the client asked for; null: all of them. */
  readonly outputs: readonly string[] | null;
}

export interface InferResult {
  readonly outputs: readonly Tensor[];
}

export interface EmbedRequest {
  /** One text per row. */
  readonly input: readonly string[];
  /** Length the client wants the vectors to have; null: the model's own. */
  readonly dimensions: number | null;
}

/** The 400 for a `dimensions` a model with fixed-size vectors cannot give. */
export function checkDimensions(request: EmbedRequest, dim: number): void {
  if (request.dimensions !== null && request.dimensions !== dim) {
    throw fastError(
      'invalid_request',
      `\`dimensions\` must be ${dim} for this model (its vectors cannot be shortened), got ${request.dimensions}`,
      'dimensions',
    );
  }
}

export interface EmbedResult {
  /** One vector per input, in order. */
  readonly vectors: readonly Float32Array[];
  readonly promptTokens: number;
}

/** A chat or completion request: the validated OpenAI body, passed on to the backend whole. */
export interface TextRequest {
  readonly kind: 'chat' | 'completion';
  /** The model name the client sent (a name or alias). */
  readonly model: string;
  readonly stream: boolean;
  readonly body: Readonly<Record<string, unknown>>;
}

/**
 * A backend's answer to a text request, in the cheapest form it has:
 * - `json`: an OpenAI response object, encoded by the transport;
 * - `events`: OpenAI stream chunks, encoded by the transport as Server-Sent Events;
 * - `raw`: bytes already in the wire format (a remote server's body, passed through untouched).
 */
export type TextResponse =
  | { readonly type: 'json'; readonly body: object }
  | { readonly type: 'events'; readonly events: AsyncIterable<object> }
  | { readonly type: 'raw'; readonly contentType: string; readonly body: Buffer | Readable };

/** Inputs and outputs of a tensor model, as KServe metadata reports them. */
export interface Signature {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

export interface BackendHealth {
  readonly ready: boolean;
  /** Why it is not ready, if it failed. */
  readonly error: string | null;
}

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
}

/** Requests a backend is working on, and waiting inside it (for a sequence, a batch). */
export interface Occupancy {
  readonly running: number;
  readonly waiting: number;
}

export interface Backend {
  readonly kind: string;
  readonly tasks: ReadonlySet<Task>;
  /** Loads weights or opens connections; rejects if the backend cannot serve. */
  load(): Promise<void>;
  unload(): Promise<void>;
  health(): BackendHealth;
  /** Remote backends: where calls go (replicas, calls in flight, ejected or not). */
  endpointStatus?(): ReadonlyArray<{ readonly url: string; readonly outstanding: number; readonly ejected: boolean }>;
  /** Requests in the backend now, for the metrics; null: not loaded. Absent: it does not say. */
  occupancy?(): Occupancy | null;
  /** Tokens one request can hold (prompt and completion), for text models that know it; null until loaded. */
  contextLength?(): number | null;
  /** Tensor signature, for backends that serve `tensor`; null otherwise. */
  signature(): Signature | null;
  infer(request: InferRequest, call: Cancellation): Promise<InferResult>;
  embed(request: EmbedRequest, call: Cancellation): Promise<EmbedResult>;
  generate(request: TextRequest, call: Cancellation): Promise<TextResponse>;
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

/** The answer of a backend asked for a task it does not list in `tasks`. */
export function unsupported(kind: string, task: Task): Promise<never> {
  return Promise.reject(fastError('unsupported_operation', `a ${kind} backend does not serve ${task} requests`));
}

/** Defaults for backends that serve text and embeddings but no tensors (remote servers, mock). */
export abstract class TextBackend implements Backend {
  abstract readonly kind: string;
  readonly tasks: ReadonlySet<Task> = new Set<Task>(['chat', 'completion', 'embedding']);
  abstract load(): Promise<void>;
  abstract unload(): Promise<void>;
  abstract health(): BackendHealth;
  abstract embed(request: EmbedRequest, call: Cancellation): Promise<EmbedResult>;
  abstract generate(request: TextRequest, call: Cancellation): Promise<TextResponse>;

  signature(): Signature | null {
    return null;
  }

  infer(): Promise<InferResult> {
    return unsupported(this.kind, 'tensor');
  }
}
