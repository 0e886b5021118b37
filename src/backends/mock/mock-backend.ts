/**
 * A model that answers at once (or after `latency_ms`) with fixed text and deterministic
 * embeddings: for benchmarks of the gateway itself and for tests.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { MockBackendConfig } from '../../config/schema.js';
import { checkDimensions, TextBackend, type BackendHealth } from '../backend.js';
import { type Cancellation, type EmbedRequest, type EmbedResult, type TextRequest, type TextResponse } from '../../core/call.js';

/**
 * The mock backend: every chat or completion answers `text` (streamed in `stream_chunks` pieces),
 * whatever the request asks; embeddings are unit vectors hashed from the text. Tokens are words.
 */
export class MockBackend extends TextBackend {
  readonly kind = 'mock';
  readonly #config: MockBackendConfig;
  readonly #completionTokens: number;
  readonly #chunks: string[];

  constructor(config: MockBackendConfig) {
    super();
    this.#config = config;
    this.#completionTokens = countWords(config.text);
    this.#chunks = splitInto(config.text, config.stream_chunks);
  }

  async load(): Promise<void> {}
  async unload(): Promise<void> {}

  health(): BackendHealth {
    return { ready: true, error: null };
  }

  async generate(request: TextRequest, call: Cancellation): Promise<TextResponse> {
    if (this.#config.latency_ms > 0) await sleep(this.#config.latency_ms, undefined, { signal: call.signal });
    const promptTokens = countPromptTokens(request.body);
    const created = Math.floor(Date.now() / 1000);
    const chat = request.kind === 'chat';
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-mock${created}`;
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: this.#completionTokens,
      total_tokens: promptTokens + this.#completionTokens,
    };
    if (!request.stream) {
      const choice = chat
        ? { index: 0, message: { role: 'assistant', content: this.#config.text }, finish_reason: 'stop', logprobs: null }
        : { index: 0, text: this.#config.text, finish_reason: 'stop', logprobs: null };
      return {
        type: 'json',
        body: { id, object: chat ? 'chat.completion' : 'text_completion', created, model: request.model, choices: [choice], usage },
      };
    }
    const includeUsage = (request.body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    return { type: 'events', events: this.#stream(id, created, request.model, chat, includeUsage ? usage : null) };
  }

  async *#stream(id: string, created: number, model: string, chat: boolean, usage: object | null): AsyncIterable<object> {
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const chunk = (delta: object | string, finish: string | null): object =>
      chat
        ? { id, object, created, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] }
        : { id, object, created, model, choices: [{ index: 0, text: delta, finish_reason: finish, logprobs: null }] };
    if (chat) yield chunk({ role: 'assistant', content: '' }, null);
    for (const piece of this.#chunks) yield chunk(chat ? { content: piece } : piece, null);
    yield chunk(chat ? {} : '', 'stop');
    if (usage !== null) yield { id, object, created, model, choices: [], usage };
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

function countWords(text: string): number {
  const m = text.match(/\S+/g);
  return m === null ? 0 : m.length;
}

function countPromptTokens(body: Readonly<Record<string, unknown>>): number {
  if (Array.isArray(body.messages)) {
    let n = 0;
    for (const m of body.messages as Array<{ content?: unknown }>) n += typeof m.content === 'string' ? countWords(m.content) : 1;
    return n;
  }
  const prompt = body.prompt;
  if (typeof prompt === 'string') return countWords(prompt);
  return Array.isArray(prompt) ? prompt.length : 0;
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
