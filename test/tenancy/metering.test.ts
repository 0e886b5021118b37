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

async function drain(events: AsyncIterable<TextEvent>): Promise<TextEvent[]> {
  const out: TextEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

function eventsOf(response: ReturnType<typeof meterText>): AsyncIterable<TextEvent> {
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
