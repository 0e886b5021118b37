/**
 * A model that answers at once (or after `latency_ms`) with fixed text and deterministic
 * embeddings: for benchmarks of the gateway itself and for tests.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { MockBackendConfig } from './config.js';
import { checkDimensions, TextBackend, type BackendHealth } from '../backend.js';
import type { Cancellation, EmbedRequest, EmbedResult } from '../../core/call.js';
import type { ChatMessage, ChatRequest, Prompt, TextEvent, TextRequest, TextStream } from '../../core/text.js';

/**
 * The mock backend: every chat or completion answers `text` (streamed in `stream_chunks` pieces),
 * whatever the request asks; embeddings are unit vectors hashed from the text. Tokens are words.
 */
export class MockBackend extends TextBackend {
  readonly kind = 'mock';
  readonly #config: MockBackendConfig;
  readonly #completionTokens: number;
  readonly #chunks: readonly TextEvent[];
  /** A whole answer's text in one event: the transport gathers it anyway, and a meter counts one piece. */
  readonly #whole: readonly TextEvent[];

  constructor(config: MockBackendConfig) {
    super();
    this.#config = config;
    this.#completionTokens = countWords(config.text);
    this.#chunks = textEvents(splitInto(config.text, config.stream_chunks));
    this.#whole = textEvents(config.text === '' ? [] : [config.text]);
  }

  async load(): Promise<void> {}
  async unload(): Promise<void> {}

  health(): BackendHealth {
    return { ready: true, error: null };
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
