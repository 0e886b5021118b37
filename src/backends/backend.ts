/**
 * The backend interface: what a model runtime or a remote model server must offer. A backend
 * knows nothing about tenants, HTTP or routing; a new kind is one new folder next to this file.
 */
import { fastError } from '../core/errors.js';
import type { Cancellation, EmbedRequest, EmbedResult, InferRequest, InferResult, Signature, Task } from '../core/call.js';
import type { ChatRequest, TextRequest, TextResponse } from '../core/text.js';

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

/** Whether a backend can serve now. */
export interface BackendHealth {
  readonly ready: boolean;
  /** Why it is not ready, if it failed. */
  readonly error: string | null;
}

/** Requests a backend is working on, and waiting inside it (for a sequence, a batch). */
export interface Occupancy {
  readonly running: number;
  readonly waiting: number;
}

/** A model runtime or remote model server, one per model version; the gateway calls it only for the tasks in `tasks`. */
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
  /** The tokens a chat request's prompt takes, its tools included (Anthropic's `count_tokens`); absent: the backend cannot say. */
  countTokens?(request: ChatRequest, call: Cancellation): Promise<number>;
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

  infer(_request: InferRequest, _call: Cancellation): Promise<InferResult> {
    return unsupported(this.kind, 'tensor');
  }
}
