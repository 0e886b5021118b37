/**
 * OpenAI response objects for a generation: the whole answer, or the stream of chunks exactly as
 * OpenAI sends them (first chunk with the role, content deltas, a last chunk with
 * `finish_reason`, then, if asked, a chunk with `usage` and no choices).
 */
import type { FinishReason, GenerationTimings, TokenLogprob } from './generation.js';

/** OpenAI's `usage` object, in tokens. */
export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

/** Non-standard timings after llama.cpp server's, in milliseconds; clients that do not know them ignore them. */
export interface Timings {
  readonly queued_ms: number;
  readonly prompt_n: number;
  readonly prompt_ms: number;
  readonly predicted_n: number;
  readonly predicted_ms: number;
  readonly predicted_per_second: number;
}

/** The usage object for these token counts. */
export function usage(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** Timings from a generation's measurements and its time queued (ms), rounded to the microsecond; the rate leaves out the first token. */
export function timings(queuedMs: number, t: GenerationTimings, completionTokens: number): Timings {
  const round = (ms: number): number => Math.round(ms * 1000) / 1000;
  return {
    queued_ms: round(queuedMs),
    prompt_n: t.promptEvaluated,
    prompt_ms: round(t.promptMs),
    predicted_n: completionTokens,
    predicted_ms: round(t.predictedMs),
    // The first token's time is in prompt_ms, so the rate covers the tokens after it.
    predicted_per_second: completionTokens > 1 && t.predictedMs > 0 ? round(((completionTokens - 1) * 1000) / t.predictedMs) : 0,
  };
}

/** Builds the objects of one response; `chat` selects the chat or the legacy completions shape. */
export class ResponseFormat {
  readonly #chat: boolean;
  readonly #id: string;
  readonly #created: number;
  readonly #model: string;

  constructor(chat: boolean, id: string, model: string) {
    this.#chat = chat;
    this.#id = id;
    this.#created = Math.floor(Date.now() / 1000);
    this.#model = model;
  }

  get chat(): boolean {
    return this.#chat;
  }

  whole(text: string, finish: FinishReason, logprobs: readonly TokenLogprob[] | null, usage: Usage, timings: Timings): object {
    const choice = this.#chat
      ? {
          index: 0,
          message: { role: 'assistant', content: text, refusal: null },
          logprobs: this.#logprobs(logprobs, 0),
          finish_reason: finish,
        }
      : { index: 0, text, logprobs: this.#logprobs(logprobs, 0), finish_reason: finish };
    return { ...this.#head(false), choices: [choice], usage, timings };
  }

  /** The chat stream's first chunk: the role, before any token. */
  role(): object {
    return { ...this.#head(true), choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] };
  }

  delta(text: string, logprobs: TokenLogprob | null, offset: number): object {
    const lp = logprobs === null ? null : this.#logprobs([logprobs], offset);
    const choice = this.#chat
      ? { index: 0, delta: { content: text }, logprobs: lp, finish_reason: null }
      : { index: 0, text, logprobs: lp, finish_reason: null };
    return { ...this.#head(true), choices: [choice] };
  }

  finish(reason: FinishReason): object {
    const choice = this.#chat
      ? { index: 0, delta: {}, logprobs: null, finish_reason: reason }
      : { index: 0, text: '', logprobs: null, finish_reason: reason };
    return { ...this.#head(true), choices: [choice] };
  }

  usage(usage: Usage, timings: Timings): object {
    return { ...this.#head(true), choices: [], usage, timings };
  }

  #head(chunk: boolean): { id: string; object: string; created: number; model: string } {
    const object = this.#chat ? (chunk ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
    return { id: this.#id, object, created: this.#created, model: this.#model };
  }

  /** Chat: `{content: [{token, logprob, bytes, top_logprobs}]}`. Completions: `{tokens, token_logprobs, top_logprobs, text_offset}`. */
  #logprobs(items: readonly TokenLogprob[] | null, offset: number): object | null {
    if (items === null) return null;
    if (this.#chat) {
      const entry = (token: string, logprob: number) => ({ token, logprob, bytes: [...Buffer.from(token, 'utf8')] });
      return {
        content: items.map((t) => ({ ...entry(t.token, t.logprob), top_logprobs: t.top.map((a) => entry(a.token, a.logprob)) })),
        refusal: null,
      };
    }
    const textOffset: number[] = [];
    let at = offset;
    for (const t of items) {
      textOffset.push(at);
      at += t.token.length;
    }
    return {
      tokens: items.map((t) => t.token),
      token_logprobs: items.map((t) => t.logprob),
      top_logprobs: items.map((t) => Object.fromEntries(t.top.map((a) => [a.token, a.logprob]))),
      text_offset: textOffset,
    };
  }
}
