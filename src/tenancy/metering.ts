/**
 * Counts the tokens of a text answer as it flows, for token limits and the ledger, from the
 * answer's typed events (core/text.ts): exact totals from its `usage` event (the gateway asks
 * every metered call for one), and while it flows each text or tool-call event counts as one
 * token, charged every {@link CHARGE_EVERY}; when the allowance runs out the stream ends with a
 * rate_limited error, its generation cancelled. An upstream's bytes passed through are read in
 * passing with the upstream protocol's own decoder, and pass on untouched unless an event must
 * be dropped (a usage event the client did not ask for) or the stream cut.
 */
import { SseParser, SseRelay, formatEvent, type SseEvent } from '../core/sse.js';
import { Readable } from 'node:stream';
import { ClientGoneError, isClientGone } from '../core/call.js';
import type { RawText, TextEvent, TextResponse, TextStream } from '../core/text.js';
import { ApiError, ERROR_CATALOGUE, fastError } from '../core/errors.js';

/** Tokens counted locally between two charges to the (possibly remote) counters. */
export const CHARGE_EVERY = 16;

/** What a metered answer reports to. */
export interface Meter {
  /** Tokens left before a token limit; Infinity when none applies. */
  readonly allowance: number;
  charge(tokens: number): Promise<number>;
  /** The call ended: exact tokens when known, else as counted, and the status it ended with; charges what `charge` has not. */
  finish(prompt: number, completion: number, status: number): void;
}

interface Usage {
  readonly prompt: number;
  readonly completion: number;
}

/**
 * Wraps a text answer so its tokens reach `meter`: as its events flow, cut when the allowance
 * runs out (`streamed`: a whole answer is counted, never cut). Bytes passed through keep flowing as bytes; their usage event is passed on only if
 * `clientWantsUsage` (typed events carry it always: their encoder sends it only if asked).
 */
export function meterText(response: TextResponse, meter: Meter, clientWantsUsage: boolean, streamed: boolean): TextResponse {
  if (response.type === 'events') return { ...response, events: meteredEvents(response, meter, streamed) };
  if (Buffer.isBuffer(response.body)) {
    const usage = response.sse ? usageOfSse(response, response.body.toString('utf8')) : usageOfJson(response, response.body);
    meter.finish(usage?.prompt ?? 0, usage?.completion ?? 0, 200);
    return response;
  }
  const body = response.body;
  const metered = response.sse ? meteredSse(response, body, meter, clientWantsUsage) : meteredJson(response, body, meter);
  return { ...response, body: Readable.from(metered, { objectMode: false }) };
}

/** Tracks the allowance of one stream: counts tokens, charges every few, and says when to cut. */
class Flow {
  readonly #meter: Meter;
  #left: number;
  #pending = 0;
  counted = 0;

  constructor(meter: Meter) {
    this.#meter = meter;
    this.#left = meter.allowance;
  }

  /** Whether the allowance is spent: the next token must not go out. */
  get spent(): boolean {
    return this.#left <= 0;
  }

  async token(): Promise<void> {
    this.counted++;
    this.#left--;
    if (++this.#pending >= CHARGE_EVERY || this.#left <= 0) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#pending === 0) return;
    const n = this.#pending;
    this.#pending = 0;
    this.#left = Math.min(this.#left, await this.#meter.charge(n));
  }

  /** Reports the call with exact totals when the stream gave them (the meter charges what is left). */
  async finish(usage: Usage | null, error: unknown): Promise<void> {
    await this.flush();
    this.#meter.finish(usage?.prompt ?? 0, usage?.completion ?? this.counted, error === null ? 200 : statusOf(error));
  }

  cutError(): ApiError {
    return fastError('rate_limited', `the stream was cut after ${this.counted} tokens: the token limit or quota ran out; retry later`);
  }
}

/** The events of `stream`, counted; with `cut`, ends with a rate_limited error once the allowance is spent. */
async function* meteredEvents(stream: TextStream, meter: Meter, cut: boolean): AsyncGenerator<TextEvent> {
  const flow = new Flow(meter);
  let usage: Usage | null = null;
  let error: unknown = null;
  // Still false in `finally` when the consumer stopped early: the client went away.
  let done = false;
  try {
    for await (const event of stream.events) {
      if (event.type === 'usage') usage = { prompt: event.promptTokens, completion: event.completionTokens };
      else if (event.type === 'text' || event.type === 'tool_call') {
        // A whole answer is charged as it is made and never cut: the client gets all of it or an error.
        if (cut && flow.spent) throw (error = flow.cutError());
        await flow.token();
      }
      yield event;
    }
    done = true;
  } catch (err) {
    error ??= err;
    throw err;
  } finally {
    await flow.finish(usage, error ?? (done ? null : new ClientGoneError()));
  }
}

/** What one wire event says, in typed events: empty for one the decoder refuses (an error event, passed on as it came). */
function decoded(raw: RawText, data: string): readonly TextEvent[] {
  try {
    return raw.decode(data);
  } catch {
    return [];
  }
}

/** A usage event among `events`, or null. */
function usageIn(events: readonly TextEvent[]): Usage | null {
  for (const e of events) if (e.type === 'usage') return { prompt: e.promptTokens, completion: e.completionTokens };
  return null;
}

/**
 * Server-Sent Events as bytes from a remote server: the events each piece completes are passed on
 * at once and as they came (any line ends), unless one is dropped (the usage event the client did
 * not ask for) or the stream is cut; only then are that piece's events written out anew.
 */
async function* meteredSse(raw: RawText, body: Readable, meter: Meter, wantsUsage: boolean): AsyncGenerator<string> {
  const flow = new Flow(meter);
  let usage: Usage | null = null;
  let error: unknown = null;
  // Still false in `finally` when the consumer stopped early: the client went away.
  let done = false;
  const relay = new SseRelay();
  body.setEncoding('utf8');
  try {
    for await (const chunk of body as AsyncIterable<string>) {
      const events = relay.push(chunk);
      // The events to pass on once one was dropped; null while every event goes out as it came.
      let kept: SseEvent[] | null = null;
      for (let i = 0; i < events.length; i++) {
        const event = events[i] as SseEvent;
        const typed = decoded(raw, event.data);
        let tokens = 0;
        let used: Usage | null = null;
        // Whether the event says anything besides usage (only an event that says nothing else is dropped).
        let more = false;
        for (const e of typed) {
          if (e.type === 'usage') used = { prompt: e.promptTokens, completion: e.completionTokens };
          else {
            more = true;
            if (e.type === 'text' || e.type === 'tool_call') tokens++;
          }
        }
        if (used !== null) usage = used;
        // Only OpenAI streams send usage a client may not have asked for (a chunk of its own); Anthropic's rides
        // `message_delta`, which its clients always get, even where it says nothing else.
        if (used !== null && !more && !wantsUsage && raw.protocol === 'openai') {
          kept ??= events.slice(0, i);
          continue;
        }
        if (tokens > 0) {
          if (flow.spent) {
            const cut = flow.cutError();
            error = cut;
            done = true;
            const before = (kept ?? events.slice(0, i)).map(formatEvent).join('');
            yield before + raw.encodeError(cut);
            return;
          }
          for (let t = 0; t < tokens; t++) await flow.token();
        }
        kept?.push(event);
      }
      const text = kept === null ? relay.text : kept.map(formatEvent).join('');
      if (text !== '') yield text;
    }
    if (relay.rest !== '') yield relay.rest;
    done = true;
  } catch (err) {
    error = err;
    throw err;
  } finally {
    await flow.finish(usage, error ?? (done ? null : new ClientGoneError()));
  }
}

/** A whole JSON answer from a remote server, streamed through; its usage is decoded once it is complete. */
async function* meteredJson(raw: RawText, body: Readable, meter: Meter): AsyncGenerator<Buffer> {
  const chunks: Buffer[] = [];
  let done = false;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      yield chunk;
    }
    done = true;
  } finally {
    const usage = done ? usageOfJson(raw, Buffer.concat(chunks)) : null;
    meter.finish(usage?.prompt ?? 0, usage?.completion ?? 0, done ? 200 : statusOf(new ClientGoneError()));
  }
}

/** The usage of a whole JSON answer, by the protocol's decoder; null if it has none. */
function usageOfJson(raw: RawText, body: Buffer): Usage | null {
  return usageIn(decoded(raw, body.toString('utf8')));
}

/** The last usage among the events of a whole Server-Sent Events body. */
function usageOfSse(raw: RawText, text: string): Usage | null {
  let usage: Usage | null = null;
  for (const event of new SseParser().push(text)) usage = usageIn(decoded(raw, event.data)) ?? usage;
  return usage;
}

/** The status a call ended with, for the ledger: 499 `client_closed_request` (as nginx logs it) when the client left first. */
export function statusOf(error: unknown): number {
  if (error instanceof ApiError) return error.status;
  if (isClientGone(error)) return ERROR_CATALOGUE.client_closed_request.status;
  return 500;
}
