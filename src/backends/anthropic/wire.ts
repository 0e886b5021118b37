/**
 * An Anthropic Messages API upstream's answer as a {@link RawText}: the bytes as they came, for a
 * client that speaks the same API, and the decoder that reads them as typed events, for metering
 * (one event at a time, as the bytes flow past) and for every other transport (`events()`).
 *
 * Anthropic's stream says some things once that the typed events say elsewhere: the prompt's
 * tokens come in `message_start` and the output's in `message_delta`, and a tool call's
 * argument fragments name their content block, not the call. So a decoder keeps a little state
 * across one stream's events; each answer owns one for `decode`, and each `events()` reads
 * with a fresh one (metering's pass and a transport's must not share it).
 */
import type { Readable } from 'node:stream';
import { ApiError, ERROR_CATALOGUE, fastError, type ErrorCode } from '../../core/errors.js';
import type { FinishReason, RawText, TextEvent, TextStream } from '../../core/text.js';
import { sseError } from '../../protocols/anthropic/encode.js';
import { sseData, wholeData } from '../upstream-body.js';

/** An upstream's answer to a Messages request, as bytes with its decoder. */
export function anthropicText(contentType: string, body: Buffer | Readable): RawText {
  const sse = contentType.startsWith('text/event-stream');
  const decoder = new Decoder();
  return {
    type: 'raw',
    protocol: 'anthropic',
    contentType,
    sse,
    body,
    decode: sse ? (data) => decoder.event(data) : (data) => decoder.message(data),
    encodeError: sseError,
    events: openEvents,
  };
}

/** What an event or a message may hold; every field is checked before it is used. */
interface Wire {
  readonly type?: unknown;
  readonly id?: unknown;
  readonly index?: unknown;
  readonly message?: unknown;
  readonly content_block?: unknown;
  readonly content?: unknown;
  readonly delta?: unknown;
  readonly usage?: unknown;
  readonly stop_reason?: unknown;
  readonly stop_sequence?: unknown;
  readonly error?: unknown;
}

/** A content block (of a message, or starting in a stream) or a delta: the fields of each type that are read. */
interface WireBlock {
  readonly type?: unknown;
  readonly text?: unknown;
  readonly id?: unknown;
  readonly name?: unknown;
  readonly input?: unknown;
  readonly partial_json?: unknown;
}

interface WireUsage {
  readonly input_tokens?: unknown;
  readonly output_tokens?: unknown;
  readonly cache_creation_input_tokens?: unknown;
  readonly cache_read_input_tokens?: unknown;
}

/** A tool_use block of the stream: which call it is, and whether its arguments came as fragments. */
interface ToolBlock {
  readonly index: number;
  /** The `input` its start carried: the arguments when no fragment follows. */
  readonly input: unknown;
  fragments: boolean;
}

/** No events: shared, never written to. */
const NONE: readonly TextEvent[] = Object.freeze([]);

/** Each stop reason as the typed events say it; a reason not listed here ends as `stop`. */
const FINISH_REASONS: Readonly<Record<string, FinishReason>> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

/** Reads one answer's events in order; the state is what Anthropic's stream says once for later events. */
class Decoder {
  /** The answer's id, once `message_start` (or the message) gave it. */
  id: string | null = null;
  /** Whether `message_stop` came: a stream that ends before it was cut short. */
  stopped = false;
  /** The prompt's tokens, from `message_start`. */
  #prompt = 0;
  /** Tool blocks so far: the next one's call index. */
  #calls = 0;
  /** The stream's tool_use blocks by their content block index. */
  readonly #tools = new Map<number, ToolBlock>();

  /** The typed events of one Server-Sent Event's data; throws the ApiError an `error` event describes. */
  event(data: string): readonly TextEvent[] {
    const event = parse(data, 'stream sent an event');
    switch (event.type) {
      case 'message_start':
        return this.#start(event.message);
      case 'content_block_start':
        return this.#blockStart(event.index, event.content_block);
      case 'content_block_delta':
        return this.#blockDelta(event.index, event.delta);
      case 'content_block_stop':
        return this.#blockStop(event.index);
      case 'message_delta':
        return this.#messageDelta(event.delta, event.usage);
      case 'message_stop':
        this.stopped = true;
        return NONE;
      case 'error':
        throw upstreamError(event.error);
      default:
        // `ping`, and event types newer than this decoder: nothing for the typed events.
        return NONE;
    }
  }

  /** The typed events of a whole message (a non-streamed answer). */
  message(data: string): readonly TextEvent[] {
    const message = parse(data, 'returned an answer');
    if (message.type === 'error') throw upstreamError(message.error);
    if (typeof message.id === 'string') this.id = message.id;
    const events: TextEvent[] = [];
    if (Array.isArray(message.content)) {
      let calls = 0;
      for (const block of message.content as Array<WireBlock | null>) {
        if (typeof block !== 'object' || block === null) continue;
        if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') {
          events.push({ type: 'text', text: block.text, logprobs: null });
        } else if (block.type === 'tool_use') {
          events.push({
            type: 'tool_call',
            index: calls++,
            id: typeof block.id === 'string' ? block.id : null,
            name: typeof block.name === 'string' ? block.name : null,
            arguments: JSON.stringify(block.input ?? {}),
          });
        }
      }
    }
    const finish = finishOf(message.stop_reason, message.stop_sequence);
    if (finish !== null) events.push(finish);
    const usage = message.usage;
    if (typeof usage === 'object' && usage !== null) {
      const u = usage as WireUsage;
      events.push({ type: 'usage', promptTokens: promptTokens(u), completionTokens: count(u.output_tokens), timings: null });
    }
    return events;
  }

  /** A new message: its id and prompt tokens; the state starts afresh (a decoder read twice reads the same). */
  #start(message: unknown): readonly TextEvent[] {
    const m = (typeof message === 'object' && message !== null ? message : {}) as Wire;
    this.id = typeof m.id === 'string' ? m.id : this.id;
    this.#prompt = typeof m.usage === 'object' && m.usage !== null ? promptTokens(m.usage as WireUsage) : 0;
    this.#calls = 0;
    this.#tools.clear();
    this.stopped = false;
    return NONE;
  }

  #blockStart(index: unknown, block: unknown): readonly TextEvent[] {
    if (typeof block !== 'object' || block === null) return NONE;
    const b = block as WireBlock;
    if (b.type === 'text') return typeof b.text === 'string' && b.text !== '' ? [{ type: 'text', text: b.text, logprobs: null }] : NONE;
    if (b.type !== 'tool_use' || typeof index !== 'number') return NONE;
    const tool: ToolBlock = { index: this.#calls++, input: b.input, fragments: false };
    this.#tools.set(index, tool);
    return [
      {
        type: 'tool_call',
        index: tool.index,
        id: typeof b.id === 'string' ? b.id : null,
        name: typeof b.name === 'string' ? b.name : null,
        arguments: '',
      },
    ];
  }

  #blockDelta(index: unknown, delta: unknown): readonly TextEvent[] {
    if (typeof delta !== 'object' || delta === null) return NONE;
    const d = delta as WireBlock;
    if (d.type === 'text_delta')
      return typeof d.text === 'string' && d.text !== '' ? [{ type: 'text', text: d.text, logprobs: null }] : NONE;
    if (d.type !== 'input_json_delta' || typeof d.partial_json !== 'string' || d.partial_json === '') return NONE;
    const tool = typeof index === 'number' ? this.#tools.get(index) : undefined;
    if (tool === undefined) return NONE;
    tool.fragments = true;
    return [{ type: 'tool_call', index: tool.index, id: null, name: null, arguments: d.partial_json }];
  }

  /** The end of a block: a tool call whose arguments came as no fragment gets them whole (its start's `input`, `{}` by default). */
  #blockStop(index: unknown): readonly TextEvent[] {
    const tool = typeof index === 'number' ? this.#tools.get(index) : undefined;
    if (tool === undefined || tool.fragments) return NONE;
    tool.fragments = true;
    return [{ type: 'tool_call', index: tool.index, id: null, name: null, arguments: JSON.stringify(tool.input ?? {}) }];
  }

  /** The stop reason, and the usage: output tokens from here, the prompt's from `message_start` unless this event counts them too. */
  #messageDelta(delta: unknown, usage: unknown): readonly TextEvent[] {
    const d = (typeof delta === 'object' && delta !== null ? delta : {}) as Wire;
    const finish = finishOf(d.stop_reason, d.stop_sequence);
    if (typeof usage !== 'object' || usage === null) return finish === null ? NONE : [finish];
    const u = usage as WireUsage;
    const prompt = typeof u.input_tokens === 'number' ? promptTokens(u) : this.#prompt;
    const used: TextEvent = { type: 'usage', promptTokens: prompt, completionTokens: count(u.output_tokens), timings: null };
    return finish === null ? [used] : [finish, used];
  }
}

/** The finish event of a stop reason; null while there is none. */
function finishOf(reason: unknown, sequence: unknown): TextEvent | null {
  if (typeof reason !== 'string') return null;
  const finish: FinishReason = FINISH_REASONS[reason] ?? 'stop';
  return reason === 'stop_sequence' && typeof sequence === 'string'
    ? { type: 'finish', reason: finish, stopSequence: sequence }
    : { type: 'finish', reason: finish };
}

/** The prompt's tokens: Anthropic counts those read from or written to its prompt cache apart from `input_tokens`. */
function promptTokens(u: WireUsage): number {
  return count(u.input_tokens) + count(u.cache_creation_input_tokens) + count(u.cache_read_input_tokens);
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/** One JSON object of the upstream's; anything else is the upstream's fault. */
function parse(data: string, what: string): Wire {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    throw fastError('upstream_error', `the upstream ${what} that is not JSON: ${data.trim().slice(0, 80)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fastError('upstream_error', `the upstream ${what} that is not an Anthropic object: ${data.trim().slice(0, 80)}`);
  }
  return value as Wire;
}

/** Each Anthropic error type as the catalogue's code, for an `error` the upstream sent in place of an answer or mid-stream. */
const ERROR_TYPES: Readonly<Record<string, ErrorCode>> = {
  invalid_request_error: 'invalid_request',
  request_too_large: 'body_too_large',
  rate_limit_error: 'upstream_rate_limited',
  timeout_error: 'upstream_timeout',
};

/**
 * The ApiError an `error` event describes: infergate's own `code` where the upstream is an
 * infergate that sent one of the catalogue's (a limit that cut it upstream), else by its type:
 * the request's fault for invalid requests, the upstream's for everything else (`overloaded_error`,
 * `api_error`, and credentials the upstream refused).
 */
function upstreamError(error: unknown): ApiError {
  const e = (typeof error === 'object' && error !== null ? error : {}) as { type?: unknown; message?: unknown; code?: unknown };
  const message = typeof e.message === 'string' ? e.message : 'the stream failed';
  if (typeof e.code === 'string' && Object.hasOwn(ERROR_CATALOGUE, e.code)) return fastError(e.code as ErrorCode, message);
  const code = (typeof e.type === 'string' ? ERROR_TYPES[e.type] : undefined) ?? 'upstream_error';
  return fastError(code, code === 'upstream_error' && typeof e.type === 'string' ? `upstream ${e.type}: ${message}` : message);
}

let fallbackIds = 0;

/** A message id for an answer whose upstream named none. */
function fallbackId(): string {
  return `msg_${Date.now().toString(36)}${(fallbackIds++).toString(36)}`;
}

/**
 * Reads `this.body` (the answer's, or the copy metering made of it) with a fresh decoder: a whole
 * message at once, or a stream up to its first event (`message_start`, the answer's id), then the
 * rest as events. The body is destroyed when the events end, fail, or are left.
 */
async function openEvents(this: RawText): Promise<TextStream> {
  const decoder = new Decoder();
  const created = Math.floor(Date.now() / 1000);
  if (!this.sse) {
    let events: readonly TextEvent[] = NONE;
    for await (const data of wholeData(this.body)) events = decoder.message(data);
    return { type: 'events', id: decoder.id ?? fallbackId(), created, events };
  }
  const source = sseData(this.body);
  let first: readonly TextEvent[] | null;
  try {
    const next = await source.next();
    // An error in place of the first event fails the call before it has an answer.
    first = next.done === true ? null : decoder.event(next.value);
  } catch (err) {
    await source.return(undefined);
    throw err;
  }
  return { type: 'events', id: decoder.id ?? fallbackId(), created, events: streamEvents(first, source, decoder) };
}

/** `first`'s events, then those of the rest of `source`; a stream that ends before `message_stop` fails as cut short. */
async function* streamEvents(
  first: readonly TextEvent[] | null,
  source: AsyncGenerator<string, void, undefined>,
  decoder: Decoder,
): AsyncGenerator<TextEvent> {
  try {
    if (first !== null) {
      yield* first;
      for (;;) {
        const next = await source.next();
        if (next.done === true) break;
        yield* decoder.event(next.value);
      }
    }
    if (!decoder.stopped) {
      throw new ApiError('upstream_unavailable', 'the upstream model server ended its stream before `message_stop`', null, {
        mayHaveRun: true,
      });
    }
  } finally {
    await source.return(undefined);
  }
}
