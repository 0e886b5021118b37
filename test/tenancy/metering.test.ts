/**
 * Metering on typed events (tenancy/metering.ts): tokens counted as text flows, charged every
 * CHARGE_EVERY, exact totals from the usage event, the stream cut with rate_limited when the
 * allowance is spent, and a client that leaves recorded as 499.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../src/core/errors.js';
import type { TextEvent, TextStream } from '../../src/core/text.js';
import { CHARGE_EVERY, meterText, type Meter } from '../../src/tenancy/metering.js';
import { Readable } from 'node:stream';
import { openaiText } from '../../src/backends/openai/wire.js';

/** A meter over a fixed allowance that records what it is told. */
class Recorder implements Meter {
  readonly charges: number[] = [];
  finished: [number, number, number] | null = null;
  #left: number;

  constructor(readonly allowance: number) {
    this.#left = allowance;
  }

  charge(tokens: number): Promise<number> {
    this.charges.push(tokens);
    this.#left -= tokens;
    return Promise.resolve(this.#left);
  }

  finish(prompt: number, completion: number, status: number): void {
    this.finished = [prompt, completion, status];
  }
}

function stream(texts: number, usage: boolean): TextStream {
  async function* events(): AsyncGenerator<TextEvent> {
    for (let i = 0; i < texts; i++) yield { type: 'text', text: `t${i} `, logprobs: null };
    yield { type: 'finish', reason: 'stop' };
    if (usage) yield { type: 'usage', promptTokens: 7, completionTokens: texts, timings: null };
  }
  return { type: 'events', id: 'chatcmpl-test', created: 0, events: events() };
}

async function drain(events: AsyncIterable<TextEvent> | readonly TextEvent[]): Promise<TextEvent[]> {
  const out: TextEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

function eventsOf(response: ReturnType<typeof meterText>): AsyncIterable<TextEvent> | readonly TextEvent[] {
  assert.equal(response.type, 'events');
  return response.events;
}

describe('metering on typed events', () => {
  it('passes every event on, charges as it flows and finishes with the usage event', async () => {
    const meter = new Recorder(Infinity);
    const out = await drain(eventsOf(meterText(stream(40, true), meter, false, true)));
    assert.equal(out.length, 42);
    assert.deepEqual(out.at(-1), { type: 'usage', promptTokens: 7, completionTokens: 40, timings: null });
    assert.deepEqual(meter.charges, [CHARGE_EVERY, CHARGE_EVERY, 40 - 2 * CHARGE_EVERY]);
    assert.deepEqual(meter.finished, [7, 40, 200]);
  });

  it('counts text events when the answer has no usage event', async () => {
    const meter = new Recorder(Infinity);
    await drain(eventsOf(meterText(stream(5, false), meter, false, true)));
    assert.deepEqual(meter.finished, [0, 5, 200]);
  });

  it('cuts the stream with rate_limited once the allowance is spent, and records 429', async () => {
    const meter = new Recorder(3);
    const seen: TextEvent[] = [];
    await assert.rejects(
      (async () => {
        for await (const e of eventsOf(meterText(stream(10, true), meter, false, true))) seen.push(e);
      })(),
      (err: unknown) => err instanceof ApiError && err.code === 'rate_limited' && /cut after 3 tokens/.test(err.message),
    );
    assert.equal(seen.length, 3, 'three tokens went out, the fourth did not');
    assert.deepEqual(meter.finished, [0, 3, 429]);
  });

  it('counts a whole answer past the allowance without cutting it', async () => {
    const meter = new Recorder(3);
    const out = await drain(eventsOf(meterText(stream(10, true), meter, false, false)));
    assert.equal(out.filter((e) => e.type === 'text').length, 10);
    assert.deepEqual(meter.finished, [7, 10, 200]);
  });

  it('records a client that stopped reading as 499 client_closed_request', async () => {
    const meter = new Recorder(Infinity);
    for await (const e of eventsOf(meterText(stream(10, true), meter, false, true))) {
      if (e.type === 'text') break;
    }
    assert.deepEqual(meter.finished, [0, 1, 499]);
  });
});

/** An OpenAI upstream's stream as bytes: `texts` content chunks, a finish chunk, a usage chunk, [DONE]; `eol` ends lines. */
function upstreamSse(texts: number, eol = '\n'): string {
  const chunk = (choices: object[], extra: object = {}) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-up', object: 'chat.completion.chunk', created: 1, model: 'up', choices, ...extra })}${eol}${eol}`;
  let out = '';
  for (let i = 0; i < texts; i++) out += chunk([{ index: 0, delta: { content: `w${i} ` }, finish_reason: null }]);
  out += chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]);
  out += chunk([], { usage: { prompt_tokens: 4, completion_tokens: texts, total_tokens: 4 + texts } });
  return `${out}data: [DONE]${eol}${eol}`;
}

async function bytesOf(response: ReturnType<typeof meterText>): Promise<string> {
  assert.equal(response.type, 'raw');
  let text = '';
  for await (const piece of response.body as Readable) text += String(piece);
  return text;
}

describe('metering a pass-through stream', () => {
  it('passes the bytes through untouched when the client asked for usage, and records the upstream usage', async () => {
    const meter = new Recorder(Infinity);
    const sent = upstreamSse(3, '\r\n');
    const raw = openaiText('chat', 'text/event-stream', Readable.from([sent.slice(0, 50), sent.slice(50)]));
    assert.equal(await bytesOf(meterText(raw, meter, true, true)), sent);
    assert.deepEqual(meter.finished, [4, 3, 200]);
  });

  it('drops only the usage event the client did not ask for', async () => {
    const meter = new Recorder(Infinity);
    const raw = openaiText('chat', 'text/event-stream', Readable.from([upstreamSse(2)]));
    const out = await bytesOf(meterText(raw, meter, false, true));
    assert.ok(!out.includes('"usage"'), out);
    assert.ok(out.includes('"finish_reason":"stop"') && out.endsWith('data: [DONE]\n\n'), out);
    assert.deepEqual(meter.finished, [4, 2, 200]);
  });

  it("cuts a stream past the allowance with OpenAI's error event and [DONE]", async () => {
    const meter = new Recorder(2);
    const raw = openaiText('chat', 'text/event-stream', Readable.from([upstreamSse(6)]));
    const out = await bytesOf(meterText(raw, meter, false, true));
    const data = out
      .split('\n\n')
      .filter((e) => e !== '')
      .map((e) => e.slice('data: '.length));
    assert.equal(data.at(-1), '[DONE]');
    const error = JSON.parse(data.at(-2) ?? '{}') as { error?: { code?: string; type?: string } };
    assert.equal(error.error?.code, 'rate_limited');
    assert.equal(error.error?.type, 'rate_limit_error');
    assert.equal(data.filter((d) => d.includes('"content"')).length, 2, 'two tokens went out');
    assert.deepEqual(meter.finished, [0, 2, 429]);
  });
});
