/**
 * Counts the tokens of a text answer as it flows, for token limits and the ledger. Streams report
 * exact totals at their end (the gateway asks every backend for `stream_options.include_usage`,
 * and removes that chunk again when the client did not ask for it); while a stream flows each
 * content chunk counts as one token, charged every {@link CHARGE_EVERY}, and when the allowance
 * runs out the stream ends with an error event and `[DONE]`, its generation cancelled.
 */
import { SseRelay, formatEvent, type SseEvent } from '../core/sse.js';
import { Readable } from 'node:stream';
import type { TextResponse } from '../core/call.js';
import { ClientGoneError, isClientGone } from '../core/call.js';
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
  prompt_tokens?: number;
  completion_tokens?: number;
}

/**
 * Wraps a text answer so its tokens reach `meter`: a whole answer at once, a stream as it flows, cut
 * when the allowance runs out. The usage chunk of a stream is passed on only if `clientWantsUsage`.
 */
export function meterText(response: TextResponse, meter: Meter, clientWantsUsage: boolean): TextResponse {
  switch (response.type) {
    case 'json': {
      const usage = (response.body as { usage?: Usage }).usage;
      meter.finish(usage?.prompt_tokens ?? 0, usage?.completion_tokens ?? 0, 200);
      return response;
    }
    case 'events':
      return { type: 'events', events: meteredEvents(response.events, meter, clientWantsUsage) };
    case 'raw': {
      if (Buffer.isBuffer(response.body)) {
        const usage = usageIn(response.body.toString('utf8'));
        meter.finish(usage.prompt, usage.completion, 200);
        return response;
      }
      const sse = response.contentType.startsWith('text/event-stream');
      const body = Readable.from(sse ? meteredSse(response.body, meter, clientWantsUsage) : meteredJson(response.body, meter), {
        objectMode: false,
      });
      return { type: 'raw', contentType: response.contentType, body };
    }
  }
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
    this.#meter.finish(usage?.prompt_tokens ?? 0, usage?.completion_tokens ?? this.counted, error === null ? 200 : statusOf(error));
  }

  cutError(): ApiError {
    return fastError('rate_limited', `the stream was cut after ${this.counted} tokens: the token limit or quota ran out; retry later`);
  }
}

async function* meteredEvents(events: AsyncIterable<object>, meter: Meter, wantsUsage: boolean): AsyncGenerator<object> {
  const flow = new Flow(meter);
  let usage: Usage | null = null;
  let error: unknown = null;
  // Still false in `finally` when the consumer stopped early: the client went away.
  let done = false;
  try {
    for await (const event of events) {
      const e = event as { usage?: Usage | null; choices?: unknown[] };
      if (e.usage != null && e.choices?.length === 0) {
        usage = e.usage;
        if (wantsUsage) yield event;
        continue;
      }
      if (flow.spent) throw (error = flow.cutError());
      yield event;
      await flow.token();
    }
    done = true;
  } catch (err) {
    error ??= err;
    throw err;
  } finally {
    await flow.finish(usage, error ?? (done ? null : new ClientGoneError()));
  }
}

/**
 * Server-Sent Events as bytes from a remote server: the events each piece completes are passed on
 * at once and as they came (any line ends), unless one is dropped (the usage chunk the client did
 * not ask for) or the stream is cut; only then are that piece's events written out anew.
 */
async function* meteredSse(body: Readable, meter: Meter, wantsUsage: boolean): AsyncGenerator<string> {
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
        const data = event.data;
        if (data.includes('"usage"') && /"choices"\s*:\s*\[\s*\]/.test(data)) {
          usage = usageOfEvent(data) ?? usage;
          if (!wantsUsage) {
            kept ??= events.slice(0, i);
            continue;
          }
        } else if (data !== '[DONE]' && !data.includes('"error"')) {
          if (flow.spent) {
            const cut = flow.cutError();
            error = cut;
            done = true;
            const before = (kept ?? events.slice(0, i)).map(formatEvent).join('');
            yield `${before}data: ${JSON.stringify({ error: { message: cut.message, type: 'rate_limit_error', param: null, code: cut.code } })}\n\ndata: [DONE]\n\n`;
            return;
          }
          await flow.token();
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

/** A whole JSON answer from a remote server, streamed through; its `usage` is read from the end. */
async function* meteredJson(body: Readable, meter: Meter): AsyncGenerator<Buffer> {
  let tail = '';
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      tail = (tail + chunk.toString('latin1')).slice(-4096);
      yield chunk;
    }
  } finally {
    const usage = usageIn(tail);
    meter.finish(usage.prompt, usage.completion, 200);
  }
}

function usageOfEvent(data: string): Usage | null {
  try {
    return (JSON.parse(data) as { usage?: Usage }).usage ?? null;
  } catch {
    return null;
  }
}

/** The token counts in an OpenAI answer's `usage`, found by name: it comes last in every server seen. */
function usageIn(text: string): { prompt: number; completion: number } {
  const prompt = /"prompt_tokens"\s*:\s*(\d+)/.exec(text);
  const completion = /"completion_tokens"\s*:\s*(\d+)/.exec(text);
  return { prompt: prompt === null ? 0 : Number(prompt[1]), completion: completion === null ? 0 : Number(completion[1]) };
}

/** The status a call ended with, for the ledger: 499 `client_closed_request` (as nginx logs it) when the client left first. */
export function statusOf(error: unknown): number {
  if (error instanceof ApiError) return error.status;
  if (isClientGone(error)) return ERROR_CATALOGUE.client_closed_request.status;
  return 500;
}
