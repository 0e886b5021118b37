/**
 * An OpenAI-compatible upstream's answer as a {@link RawText}: the bytes as they came, for a client
 * that speaks the same API, and the decoder that reads them as typed events, for metering (one
 * event at a time, as the bytes flow past) and for every other transport (`events()`). The
 * decoder runs on every event of a metered stream: one `JSON.parse`, then property reads.
 */
import type { Readable } from 'node:stream';
import { ApiError, ERROR_CATALOGUE, fastError, type ErrorCode } from '../../core/errors.js';
import { sseData, wholeData } from '../upstream-body.js';
import type { FinishReason, RawText, TextEvent, TextStream, Timings, TokenLogprob } from '../../core/text.js';
import { openaiErrorBody } from '../../protocols/openai/errors.js';

/** An upstream's answer to a chat (`chat`) or completion request, as bytes with its decoder. */
export function openaiText(kind: 'chat' | 'completion', contentType: string, body: Buffer | Readable): RawText {
  const sse = contentType.startsWith('text/event-stream');
  // Module functions only, nothing bound per answer: `events` reads `this`, so an answer copied
  // with another body (the metering's) reads that body.
  return {
    type: 'raw',
    protocol: 'openai',
    contentType,
    sse,
    body,
    decode: sse ? decodeEvent : decodeAnswer,
    encodeError: endWithError,
    events: kind === 'chat' ? chatEvents : completionEvents,
  };
}

/** The end of an OpenAI stream cut by `error`: the error as an event, then `[DONE]`, as OpenAI's own streams end. */
function endWithError(error: ApiError): string {
  return `data: ${openaiErrorBody(error)}\n\ndata: [DONE]\n\n`;
}

/** The typed events of one Server-Sent Event's data: a chunk, `[DONE]`, or an error. */
function decodeEvent(data: string): readonly TextEvent[] {
  const chunk = parseEvent(data);
  return chunk === null ? NONE : decodeChunk(chunk);
}

/** The typed events of a whole JSON answer (`choices[].message`, or a stream's chunk sent as one body). */
function decodeAnswer(data: string): readonly TextEvent[] {
  return decodeChunk(parseAnswer(data));
}

/** What an upstream chunk or answer may hold; every field is checked before it is used. */
interface Wire {
  readonly id?: unknown;
  readonly created?: unknown;
  readonly choices?: unknown;
  readonly usage?: unknown;
  readonly timings?: unknown;
  readonly error?: unknown;
}

interface WireChoice {
  readonly index?: unknown;
  readonly delta?: WireMessage | null;
  readonly message?: WireMessage | null;
  readonly text?: unknown;
  readonly logprobs?: unknown;
  readonly finish_reason?: unknown;
}

interface WireMessage {
  readonly content?: unknown;
  readonly tool_calls?: unknown;
}

interface WireToolCall {
  readonly index?: unknown;
  readonly id?: unknown;
  readonly function?: { readonly name?: unknown; readonly arguments?: unknown } | null;
}

interface WireLogprob {
  readonly token?: unknown;
  readonly logprob?: unknown;
  readonly top_logprobs?: unknown;
}

/** No events: shared, never written to. */
const NONE: readonly TextEvent[] = Object.freeze([]);

/** A chunk that says nothing. */
const EMPTY: Wire = Object.freeze({});

const FINISH_REASONS: Readonly<Record<string, FinishReason>> = {
  stop: 'stop',
  length: 'length',
  tool_calls: 'tool_calls',
  content_filter: 'content_filter',
  // The legacy name of a tool call.
  function_call: 'tool_calls',
};

/** An SSE event's data as a chunk; null for `[DONE]`. */
function parseEvent(data: string): Wire | null {
  // Compared first: a throw from JSON.parse costs more than the comparison on every event.
  if (data === '[DONE]') return null;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    const trimmed = data.trim();
    if (trimmed === '[DONE]') return null;
    // An event with empty data (a keep-alive some servers send) says nothing.
    if (trimmed === '') return EMPTY;
    throw fastError('upstream_error', `the upstream's stream sent an event that is not JSON: ${trimmed.slice(0, 80)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fastError('upstream_error', `the upstream's stream sent an event that is not an OpenAI chunk: ${data.trim().slice(0, 80)}`);
  }
  return value as Wire;
}

/** A whole JSON body as an answer. */
function parseAnswer(data: string): Wire {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    throw fastError('upstream_error', `the upstream returned an answer that is not JSON: ${data.trim().slice(0, 80)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fastError('upstream_error', `the upstream returned an answer that is not an OpenAI completion: ${data.trim().slice(0, 80)}`);
  }
  return value as Wire;
}

/** A chunk's (or an answer's) events, in the order the contract has them: text, tool calls, finish, usage. */
function decodeChunk(chunk: Wire): readonly TextEvent[] {
  if (chunk.error !== undefined && chunk.error !== null) throw upstreamStreamError(chunk.error);
  let events: TextEvent[] | null = null;
  const choice = firstChoice(chunk.choices);
  if (choice !== null) {
    const message = choice.delta ?? choice.message;
    if (typeof message === 'object' && message !== null) {
      const content = message.content;
      if (typeof content === 'string' && content !== '') events = textEvents(content, choice.logprobs);
      if (Array.isArray(message.tool_calls)) events = toolCallEvents(message.tool_calls, events);
    } else if (typeof choice.text === 'string' && choice.text !== '') {
      events = textEvents(choice.text, choice.logprobs);
    }
    const reason = choice.finish_reason;
    if (typeof reason === 'string') (events ??= []).push({ type: 'finish', reason: FINISH_REASONS[reason] ?? 'stop' });
  }
  const usage = chunk.usage;
  if (typeof usage === 'object' && usage !== null) {
    const u = usage as { prompt_tokens?: unknown; completion_tokens?: unknown };
    (events ??= []).push({
      type: 'usage',
      promptTokens: typeof u.prompt_tokens === 'number' ? u.prompt_tokens : 0,
      completionTokens: typeof u.completion_tokens === 'number' ? u.completion_tokens : 0,
      timings: timingsOf(chunk.timings),
    });
  }
  return events ?? NONE;
}

/**
 * The choice the typed events follow: the first, which is choice 0 of a single-choice answer.
 * With `n` > 1 each chunk carries one choice by its `index`, and only choice 0's are events
 * (the typed events have no choice index; the bytes passed through still carry them all).
 */
function firstChoice(choices: unknown): WireChoice | null {
  if (!Array.isArray(choices) || choices.length === 0) return null;
  const choice = choices[0] as WireChoice | null;
  if (typeof choice !== 'object' || choice === null) return null;
  return choice.index === undefined || choice.index === 0 ? choice : null;
}

/**
 * The text of a delta (or of a whole answer) as events, each with its token's log probabilities
 * where the upstream sent them: one event per token where the tokens spell the text (a whole
 * answer, or a delta of several tokens), else one with the first token's.
 */
function textEvents(text: string, logprobs: unknown): TextEvent[] {
  if (logprobs === undefined || logprobs === null) return [{ type: 'text', text, logprobs: null }];
  const tokens = tokenLogprobs(logprobs);
  if (tokens.length > 1 && tokens.map((t) => t.token).join('') === text) {
    return tokens.map((t) => ({ type: 'text', text: t.token, logprobs: t }));
  }
  return [{ type: 'text', text, logprobs: tokens[0] ?? null }];
}

/** Chat's `logprobs.content[]`, or completions' `logprobs.tokens` with `token_logprobs` and `top_logprobs`. */
function tokenLogprobs(logprobs: unknown): TokenLogprob[] {
  const lp = logprobs as { content?: unknown; tokens?: unknown; token_logprobs?: unknown; top_logprobs?: unknown };
  if (Array.isArray(lp.content)) {
    const out: TokenLogprob[] = [];
    for (const item of lp.content as WireLogprob[]) {
      if (typeof item?.token !== 'string' || typeof item.logprob !== 'number') return out;
      const top = Array.isArray(item.top_logprobs)
        ? (item.top_logprobs as WireLogprob[])
            .filter((t) => typeof t?.token === 'string' && typeof t.logprob === 'number')
            .map((t) => ({ token: t.token as string, logprob: t.logprob as number }))
        : [];
      out.push({ token: item.token, logprob: item.logprob, top });
    }
    return out;
  }
  if (!Array.isArray(lp.tokens) || !Array.isArray(lp.token_logprobs)) return [];
  const tops = Array.isArray(lp.top_logprobs) ? (lp.top_logprobs as unknown[]) : [];
  const out: TokenLogprob[] = [];
  for (let i = 0; i < lp.tokens.length; i++) {
    const token: unknown = lp.tokens[i];
    const logprob: unknown = lp.token_logprobs[i];
    if (typeof token !== 'string' || typeof logprob !== 'number') return out;
    const alternatives = tops[i];
    const top =
      typeof alternatives === 'object' && alternatives !== null
        ? Object.entries(alternatives as Record<string, unknown>)
            .filter((e): e is [string, number] => typeof e[1] === 'number')
            .map(([t, p]) => ({ token: t, logprob: p }))
        : [];
    out.push({ token, logprob, top });
  }
  return out;
}

/** Tool-call deltas (or a whole answer's calls, indexed by position) after `events`. */
function toolCallEvents(calls: readonly unknown[], events: TextEvent[] | null): TextEvent[] | null {
  for (let i = 0; i < calls.length; i++) {
    const call = calls[i] as WireToolCall | null;
    if (typeof call !== 'object' || call === null) continue;
    const fn = call.function;
    const name = fn?.name;
    const args = fn?.arguments;
    (events ??= []).push({
      type: 'tool_call',
      index: typeof call.index === 'number' ? call.index : i,
      id: typeof call.id === 'string' ? call.id : null,
      name: typeof name === 'string' ? name : null,
      arguments: typeof args === 'string' ? args : '',
    });
  }
  return events;
}

/** llama.cpp server's non-standard `timings`, where an upstream sends them. */
function timingsOf(value: unknown): Timings | null {
  if (typeof value !== 'object' || value === null) return null;
  const t = value as Partial<Record<keyof Timings, unknown>>;
  const n = (v: unknown): number => (typeof v === 'number' ? v : 0);
  return {
    queued_ms: n(t.queued_ms),
    prompt_n: n(t.prompt_n),
    prompt_ms: n(t.prompt_ms),
    predicted_n: n(t.predicted_n),
    predicted_ms: n(t.predicted_ms),
    predicted_per_second: n(t.predicted_per_second),
  };
}

/** An `error` the upstream sent in place of a chunk: its code where it is one of ours (a limit that cut it upstream), else upstream_error. */
function upstreamStreamError(error: unknown): ApiError {
  if (typeof error === 'string') return fastError('upstream_error', error);
  const e = error as { message?: unknown; code?: unknown };
  const code = typeof e.code === 'string' && Object.hasOwn(ERROR_CATALOGUE, e.code) ? (e.code as ErrorCode) : 'upstream_error';
  return fastError(code, typeof e.message === 'string' ? e.message : 'the stream failed');
}

function chatEvents(this: RawText): Promise<TextStream> {
  return openEvents(this, 'chatcmpl');
}

function completionEvents(this: RawText): Promise<TextStream> {
  return openEvents(this, 'cmpl');
}

let fallbackIds = 0;

/**
 * Reads `raw.body` up to its first chunk (the answer's id and creation time), then streams the rest
 * as events. The body is destroyed when the events end, fail, or are left (a client that left
 * cancels the upstream request).
 */
async function openEvents(raw: RawText, prefix: string): Promise<TextStream> {
  const source = raw.sse ? sseData(raw.body) : wholeData(raw.body);
  const parse = raw.sse ? parseEvent : parseAnswer;
  let first: Wire | null;
  let events: readonly TextEvent[];
  try {
    const next = await source.next();
    first = next.done === true ? null : parse(next.value);
    // An error in place of the first chunk fails the call before it has an answer.
    events = first === null ? NONE : decodeChunk(first);
  } catch (err) {
    await source.return(undefined);
    throw err;
  }
  const created = typeof first?.created === 'number' ? first.created : Math.floor(Date.now() / 1000);
  const id = typeof first?.id === 'string' ? first.id : `${prefix}-${created.toString(36)}${(fallbackIds++).toString(36)}`;
  return { type: 'events', id, created, events: streamEvents(first === null ? null : events, source, parse) };
}

/** `first`'s events, then those of the rest of `source`; null `first`: the answer already ended (`[DONE]`, or no events). */
async function* streamEvents(
  first: readonly TextEvent[] | null,
  source: AsyncGenerator<string, void, undefined>,
  parse: (data: string) => Wire | null,
): AsyncGenerator<TextEvent> {
  try {
    if (first === null) return;
    yield* first;
    for (;;) {
      const next = await source.next();
      if (next.done === true) return;
      const chunk = parse(next.value);
      if (chunk === null) return;
      yield* decodeChunk(chunk);
    }
  } finally {
    await source.return(undefined);
  }
}
