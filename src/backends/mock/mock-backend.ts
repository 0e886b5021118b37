/**
 * A model that answers at once (or after `latency_ms`) with fixed text and deterministic
 * embeddings, and with `tensor` also zero tensors over KServe v2: for benchmarks of the gateway
 * itself and for tests.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { MockBackendConfig } from './config.js';
import { checkDimensions, TextBackend, type BackendHealth } from '../backend.js';
import type { Cancellation, EmbedRequest, EmbedResult, InferRequest, InferResult, Signature, Task } from '../../core/call.js';
import { allocate, elementCount, type DataType, type Tensor, type TensorSpec } from '../../core/tensor.js';
import type { ChatMessage, ChatRequest, Prompt, TextEvent, TextRequest, TextStream } from '../../core/text.js';

/**
 * The mock backend: every chat or completion answers `text` (streamed in `stream_chunks` pieces),
 * whatever the request asks; embeddings are unit vectors hashed from the text. Tokens are words.
 * With `tensor`, infer requests (checked against its inputs by the gateway) answer zeros of its outputs' shapes.
 */
export class MockBackend extends TextBackend {
  readonly kind = 'mock';
  override readonly tasks: ReadonlySet<Task>;
  readonly #config: MockBackendConfig;
  readonly #signature: Signature | null;
  readonly #completionTokens: number;
  readonly #chunks: readonly TextEvent[];
  /** A whole answer's text in one event: the transport gathers it anyway, and a meter counts one piece. */
  readonly #whole: readonly TextEvent[];

  constructor(config: MockBackendConfig) {
    super();
    this.#config = config;
    const tensor = config.tensor;
    this.#signature = tensor === undefined ? null : { inputs: tensor.inputs.map(toSpec), outputs: tensor.outputs.map(toSpec) };
    this.tasks = new Set<Task>(tensor === undefined ? ['chat', 'completion', 'embedding'] : ['chat', 'completion', 'embedding', 'tensor']);
    this.#completionTokens = countWords(config.text);
    this.#chunks = textEvents(splitInto(config.text, config.stream_chunks));
    this.#whole = textEvents(config.text === '' ? [] : [config.text]);
  }

  async load(): Promise<void> {}
  async unload(): Promise<void> {}

  health(): BackendHealth {
    return { ready: true, error: null };
  }

  override signature(): Signature | null {
    return this.#signature;
  }

  /** Zeros of each output's shape (those asked for, in that order), a leading -1 being the first input's first dimension. */
  override async infer(request: InferRequest, call: Cancellation): Promise<InferResult> {
    const signature = this.#signature;
    if (signature === null) return super.infer(request, call);
    if (this.#config.latency_ms > 0) await sleep(this.#config.latency_ms, undefined, { signal: call.signal });
    const batch = request.inputs[0]?.shape[0] ?? 1;
    const specs =
      request.outputs === null
        ? signature.outputs
        : request.outputs.map((name) => signature.outputs.find((o) => o.name === name) as TensorSpec);
    return { outputs: specs.map((spec) => zeros(spec, batch)) };
  }

  async generate(request: TextRequest, call: Cancellation): Promise<TextStream> {
    if (this.#config.latency_ms > 0) await sleep(this.#config.latency_ms, undefined, { signal: call.signal });
    const promptTokens = request.kind === 'chat' ? countMessageTokens(request.messages) : countPromptTokens(request.prompt);
    const created = Math.floor(Date.now() / 1000);
    const id = `${request.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-mock${created}`;
    const usage: TextEvent = { type: 'usage', promptTokens, completionTokens: this.#completionTokens, timings: null };
    // The answer is complete at once: its events as an array, the fixed ones made when the backend was.
    return { type: 'events', id, created, events: [...(request.stream ? this.#chunks : this.#whole), usage] };
  }

  /** The prompt tokens its usage would report for `request`: the words of its messages. */
  async countTokens(request: ChatRequest): Promise<number> {
    return countMessageTokens(request.messages);
  }

  async embed(request: EmbedRequest): Promise<EmbedResult> {
    const dim = this.#config.embedding_dim;
    checkDimensions(request, dim);
    let tokens = 0;
    const vectors = request.input.map((text) => {
      tokens += countWords(text);
      return hashVector(text, dim);
    });
    return { vectors, promptTokens: tokens };
  }
}

function toSpec(spec: { readonly name: string; readonly datatype: string; readonly shape: readonly number[] }): TensorSpec {
  return { name: spec.name, datatype: spec.datatype as DataType, shape: [...spec.shape] };
}

/** A tensor of zeros (BYTES: empty strings) of `spec`'s shape, -1 answered as `batch`. */
function zeros(spec: TensorSpec, batch: number): Tensor {
  const shape = spec.shape.map((d) => (d < 0 ? batch : d));
  const data = allocate(spec.datatype, elementCount(shape));
  if (Array.isArray(data)) data.fill('');
  return { name: spec.name, datatype: spec.datatype, shape, data };
}

/** The text of `pieces` as events, then `stop`; shared by every answer (events are read-only). */
function textEvents(pieces: readonly string[]): readonly TextEvent[] {
  return Object.freeze([...pieces.map((text): TextEvent => ({ type: 'text', text, logprobs: null })), { type: 'finish', reason: 'stop' }]);
}

function countWords(text: string): number {
  const m = text.match(/\S+/g);
  return m === null ? 0 : m.length;
}

/** A chat's prompt tokens: the words of text messages, one for each message of content parts or none. */
function countMessageTokens(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) n += typeof m.content === 'string' ? countWords(m.content) : 1;
  return n;
}

/** A completion's prompt tokens: the words of a text, else one per item of the list. */
function countPromptTokens(prompt: Prompt): number {
  return typeof prompt === 'string' ? countWords(prompt) : prompt.length;
}

function splitInto(text: string, n: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / n));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/** A unit vector seeded by the text: same text, same vector. */
function hashVector(text: string, dim: number): Float32Array {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  const v = new Float32Array(dim);
  let norm = 0;
  for (let i = 0; i < dim; i++) {
    h = Math.imul(h ^ (h >>> 15), 2246822507) >>> 0;
    v[i] = (h / 4294967296) * 2 - 1;
    norm += (v[i] as number) ** 2;
  }
  const scale = 1 / Math.sqrt(norm);
  for (let i = 0; i < dim; i++) v[i] = (v[i] as number) * scale;
  return v;
}
