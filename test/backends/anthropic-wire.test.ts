/**
 * An Anthropic Messages API upstream's answer decoded into typed events (backends/anthropic/wire.ts),
 * from the event stream and the message as Anthropic sends them (its streaming docs' examples), and
 * metered as raw bytes (tenancy/metering.ts) with the exact usage and the bytes untouched.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { anthropicText } from '../../src/backends/anthropic/wire.js';
import { ApiError, fastError } from '../../src/core/errors.js';
import type { TextEvent, TextStream } from '../../src/core/text.js';
import { meterText, type Meter } from '../../src/tenancy/metering.js';

const SSE = 'text/event-stream; charset=utf-8';

/** An event as Anthropic's API writes it: its name, then its data, then a blank line. */
const event = (data: object): string => `event: ${(data as { type: string }).type}\ndata: ${JSON.stringify(data)}\n\n`;

/** The text answer of Anthropic's streaming docs: "Hello!" over two deltas, with a ping among them. */
const HELLO = [
  event({
    type: 'message_start',
    message: {
      id: 'msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY',
      type: 'message',
      role: 'assistant',
      content: [],
      model: 'claude-opus-4-6',
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 25, output_tokens: 1 },
    },
  }),
  event({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  event({ type: 'ping' }),
  event({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
  event({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '!' } }),
  event({ type: 'content_block_stop', index: 0 }),
  event({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 15 } }),
  event({ type: 'message_stop' }),
].join('');

/** The tool-use answer of Anthropic's docs: a text block, then two tool_use blocks whose input arrives in fragments (or not at all). */
const TOOLS = [
  event({
    type: 'message_start',
    message: {
      id: 'msg_014p7gG3wDgGV9EUtLvnow3U',
      type: 'message',
      role: 'assistant',
      model: 'claude-opus-4-6',
      stop_sequence: null,
      usage: { input_tokens: 472, output_tokens: 2, cache_read_input_tokens: 8 },
      content: [],
      stop_reason: null,
    },
  }),
  event({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  event({ type: 'ping' }),
  event({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Okay, let me check.' } }),
  event({ type: 'content_block_stop', index: 0 }),
  event({
    type: 'content_block_start',
    index: 1,
    content_block: { type: 'tool_use', id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', input: {} },
  }),
  event({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } }),
  event({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"location":' } }),
  event({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ' "San Francisco, CA"}' } }),
  event({ type: 'content_block_stop', index: 1 }),
  event({ type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_02', name: 'get_time', input: {} } }),
  event({ type: 'content_block_stop', index: 2 }),
  event({ type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 89 } }),
  event({ type: 'message_stop' }),
].join('');

/** A body that arrives in these pieces, one per read, as a socket would deliver them. */
function pieces(...parts: string[]): Readable {
  return Readable.from(
    parts.map((p) => Buffer.from(p)),
    { objectMode: false },
  );
}

/** `text` cut into pieces of `size` bytes, so events and line ends straddle reads. */
function cut(text: string, size: number): Readable {
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
  return pieces(...parts);
}

async function collect(stream: TextStream): Promise<TextEvent[]> {
  const out: TextEvent[] = [];
  for await (const e of stream.events) out.push(e);
  return out;
}

/** The data of each event of an SSE text, decoded one by one with `raw.decode`, as metering reads them. */
function decodeAll(decode: (data: string) => readonly TextEvent[], text: string): TextEvent[] {
  return [...text.matchAll(/^data: (.*)$/gm)].flatMap((m) => decode(m[1] as string));
}

const HELLO_EVENTS: TextEvent[] = [
  { type: 'text', text: 'Hello', logprobs: null },
  { type: 'text', text: '!', logprobs: null },
  { type: 'finish', reason: 'stop' },
  { type: 'usage', promptTokens: 25, completionTokens: 15, timings: null },
];

const TOOL_EVENTS: TextEvent[] = [
  { type: 'text', text: 'Okay, let me check.', logprobs: null },
  { type: 'tool_call', index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', arguments: '' },
  { type: 'tool_call', index: 0, id: null, name: null, arguments: '{"location":' },
  { type: 'tool_call', index: 0, id: null, name: null, arguments: ' "San Francisco, CA"}' },
  { type: 'tool_call', index: 1, id: 'toolu_02', name: 'get_time', arguments: '' },
  { type: 'tool_call', index: 1, id: null, name: null, arguments: '{}' },
  { type: 'finish', reason: 'tool_calls' },
  // The prompt's tokens count those read from the cache.
  { type: 'usage', promptTokens: 480, completionTokens: 89, timings: null },
];

describe('Anthropic answers as typed events', () => {
  it("reads a text stream cut anywhere: the text, the stop and the usage of message_start and message_delta, with the message's id", async () => {
    const raw = anthropicText(SSE, cut(HELLO, 7));
    assert.equal(raw.protocol, 'anthropic');
    assert.equal(raw.sse, true);
    const stream = await raw.events();
    assert.equal(stream.id, 'msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY');
    assert.deepEqual(await collect(stream), HELLO_EVENTS);
  });

  it('numbers tool calls by their place among the tool blocks, fragments following their block, and gives a call without fragments `{}`', async () => {
    assert.deepEqual(await collect(await anthropicText(SSE, cut(TOOLS, 11)).events()), TOOL_EVENTS);
  });

  it("decodes event by event with the answer's own state, and a second read of the same answer starts afresh", () => {
    const raw = anthropicText(SSE, Buffer.from(TOOLS));
    assert.deepEqual(decodeAll(raw.decode, TOOLS), TOOL_EVENTS);
    assert.deepEqual(decodeAll(raw.decode, TOOLS), TOOL_EVENTS, 'message_start resets the tool numbering');
    // Another answer has its own state: its tool numbering and prompt tokens are not the first one's.
    const other = anthropicText(SSE, Buffer.from(HELLO));
    assert.deepEqual(decodeAll(other.decode, HELLO), HELLO_EVENTS);
  });

  it('reads events() from a fresh state even after decode read the same events (as metering does first)', async () => {
    const raw = anthropicText(SSE, cut(TOOLS, 64));
    decodeAll(raw.decode, TOOLS);
    assert.deepEqual(await collect(await raw.events()), TOOL_EVENTS);
  });

  it('maps each stop reason, with the stop sequence that ended it, and prefers message_delta’s input tokens where it has them', () => {
    const raw = anthropicText(SSE, Buffer.from(''));
    raw.decode(JSON.stringify({ type: 'message_start', message: { id: 'msg_x', usage: { input_tokens: 3, output_tokens: 1 } } }));
    const delta = (stop_reason: string, stop_sequence: string | null = null, usage: object = { output_tokens: 4 }) =>
      raw.decode(JSON.stringify({ type: 'message_delta', delta: { stop_reason, stop_sequence }, usage }));
    assert.deepEqual(delta('stop_sequence', '###'), [
      { type: 'finish', reason: 'stop', stopSequence: '###' },
      { type: 'usage', promptTokens: 3, completionTokens: 4, timings: null },
    ]);
    assert.deepEqual(delta('max_tokens')[0], { type: 'finish', reason: 'length' });
    assert.deepEqual(delta('end_turn')[0], { type: 'finish', reason: 'stop' });
    assert.deepEqual(delta('tool_use')[0], { type: 'finish', reason: 'tool_calls' });
    assert.deepEqual(delta('refusal')[0], { type: 'finish', reason: 'content_filter' });
    assert.deepEqual(delta('end_turn', null, { input_tokens: 9, output_tokens: 4 })[1], {
      type: 'usage',
      promptTokens: 9,
      completionTokens: 4,
      timings: null,
    });
  });

  it('says nothing for ping, content_block_stop of text, message_stop, thinking deltas and event types it does not know', () => {
    const raw = anthropicText(SSE, Buffer.from(''));
    for (const data of [
      { type: 'ping' },
      { type: 'content_block_stop', index: 0 },
      { type: 'message_stop' },
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hmm' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'EqQB' } },
      { type: 'something_new', x: 1 },
    ]) {
      assert.deepEqual(raw.decode(JSON.stringify(data)), [], JSON.stringify(data));
    }
  });

  it('throws an error event as the ApiError it describes: the type’s code, or infergate’s own code when an infergate sent it', () => {
    const raw = anthropicText(SSE, Buffer.from(''));
    const thrown = (error: object): ApiError => {
      try {
        raw.decode(JSON.stringify({ type: 'error', error }));
      } catch (err) {
        assert.ok(err instanceof ApiError);
        return err;
      }
      assert.fail('expected a throw');
    };
    const overloaded = thrown({ type: 'overloaded_error', message: 'Overloaded' });
    assert.equal(overloaded.code, 'upstream_error');
    assert.match(overloaded.message, /overloaded_error: Overloaded/);
    assert.equal(thrown({ type: 'invalid_request_error', message: 'bad' }).code, 'invalid_request');
    assert.equal(thrown({ type: 'rate_limit_error', message: 'slow down' }).code, 'upstream_rate_limited');
    assert.equal(thrown({ type: 'api_error', message: 'oops' }).code, 'upstream_error');
    const cut = thrown({ type: 'rate_limit_error', message: 'the stream was cut', code: 'rate_limited' });
    assert.equal(cut.code, 'rate_limited');
    assert.equal(cut.message, 'the stream was cut');
  });

  it('fails a stream whose first event is an error before it has an answer, and one cut off mid-stream', async () => {
    const error = event({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    await assert.rejects(anthropicText(SSE, pieces(error)).events(), (e: unknown) => e instanceof ApiError && e.code === 'upstream_error');
    const midway = HELLO.slice(0, HELLO.indexOf('event: message_delta')) + error;
    const stream = await anthropicText(SSE, pieces(midway)).events();
    await assert.rejects(collect(stream), (e: unknown) => e instanceof ApiError && /Overloaded/.test(e.message));
    // The body ends without message_stop: the upstream cut its answer short.
    const short = await anthropicText(SSE, pieces(HELLO.slice(0, HELLO.indexOf('event: message_stop')))).events();
    await assert.rejects(collect(short), (e: unknown) => e instanceof ApiError && e.code === 'upstream_unavailable');
  });

  it('throws upstream_error for an event that is not JSON', () => {
    const raw = anthropicText(SSE, Buffer.from(''));
    assert.throws(
      () => raw.decode('{"type": "content_block_delta", "ind'),
      (e: unknown) => e instanceof ApiError && e.code === 'upstream_error',
    );
  });

  it('reads a whole message, buffered or streamed: text and tool_use blocks, the stop reason and the usage', async () => {
    const message = {
      id: 'msg_01Aq9w938a90dw8q',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5',
      content: [
        { type: 'thinking', thinking: 'The user wants the weather.', signature: 'EqQB' },
        { type: 'text', text: 'I will check.' },
        { type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', input: { location: 'San Francisco, CA' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 2095, output_tokens: 503, cache_creation_input_tokens: 5, cache_read_input_tokens: null },
    };
    const expected: TextEvent[] = [
      { type: 'text', text: 'I will check.', logprobs: null },
      {
        type: 'tool_call',
        index: 0,
        id: 'toolu_01A09q90qw90lq917835lq9',
        name: 'get_weather',
        arguments: '{"location":"San Francisco, CA"}',
      },
      { type: 'finish', reason: 'tool_calls' },
      { type: 'usage', promptTokens: 2100, completionTokens: 503, timings: null },
    ];
    const json = JSON.stringify(message);
    for (const body of [Buffer.from(json), cut(json, 9)]) {
      const raw = anthropicText('application/json', body);
      assert.equal(raw.sse, false);
      assert.deepEqual(raw.decode(json), expected);
      const stream = await raw.events();
      assert.equal(stream.id, 'msg_01Aq9w938a90dw8q');
      assert.deepEqual(await collect(stream), expected);
    }
    await assert.rejects(
      anthropicText(
        'application/json',
        Buffer.from('{"type":"error","error":{"type":"api_error","message":"Internal server error"}}'),
      ).events(),
      (e: unknown) => e instanceof ApiError && e.code === 'upstream_error' && /Internal server error/.test(e.message),
    );
  });

  it('ends a stream with an error as Anthropic does: an `error` event with the Anthropic error body', () => {
    const raw = anthropicText(SSE, Buffer.from(''));
    const text = raw.encodeError(fastError('rate_limited', 'the stream was cut after 3 tokens'));
    assert.equal(
      text,
      'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error","message":"the stream was cut after 3 tokens","code":"rate_limited"}}\n\n',
    );
  });
});

/** A meter over a fixed allowance that records what it is told. */
class Recorder implements Meter {
  finished: [number, number, number] | null = null;
  #left: number;

  constructor(readonly allowance: number) {
    this.#left = allowance;
  }

  charge(tokens: number): Promise<number> {
    this.#left -= tokens;
    return Promise.resolve(this.#left);
  }

  finish(prompt: number, completion: number, status: number): void {
    this.finished = [prompt, completion, status];
  }
}

async function bytesOf(body: Buffer | Readable): Promise<string> {
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  let text = '';
  for await (const piece of body as AsyncIterable<Buffer | string>) text += piece.toString();
  return text;
}

describe('an Anthropic stream metered as bytes', () => {
  it('passes every event on untouched (message_delta included, whatever the client asked) and reports the exact usage', async () => {
    for (const wantsUsage of [false, true]) {
      const meter = new Recorder(Infinity);
      const metered = meterText(anthropicText(SSE, cut(TOOLS, 13)), meter, wantsUsage, true);
      assert.equal(metered.type, 'raw');
      assert.equal(await bytesOf(metered.body), TOOLS);
      assert.deepEqual(meter.finished, [480, 89, 200]);
    }
  });

  it('passes on a message_delta that carries only usage, though the client did not ask for usage (it is not an OpenAI usage chunk)', async () => {
    const text = HELLO.replace('"stop_reason":"end_turn"', '"stop_reason":null');
    const meter = new Recorder(Infinity);
    const metered = meterText(anthropicText(SSE, pieces(text)), meter, false, true);
    assert.equal(metered.type, 'raw');
    assert.equal(await bytesOf(metered.body), text);
    assert.deepEqual(meter.finished, [25, 15, 200]);
  });

  it('gives the typed events of the metered copy to a transport that reads events()', async () => {
    const meter = new Recorder(Infinity);
    const metered = meterText(anthropicText(SSE, cut(HELLO, 5)), meter, false, true);
    assert.equal(metered.type, 'raw');
    assert.deepEqual(await collect(await metered.events()), HELLO_EVENTS);
    assert.deepEqual(meter.finished, [25, 15, 200]);
  });

  it('meters a whole message from its usage', async () => {
    const json = JSON.stringify({
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      content: [{ type: 'text', text: 'Hi' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 12, output_tokens: 6 },
    });
    const meter = new Recorder(Infinity);
    meterText(anthropicText('application/json', Buffer.from(json)), meter, false, false);
    assert.deepEqual(meter.finished, [12, 6, 200]);
  });

  it('cuts a stream whose allowance runs out with an Anthropic error event', async () => {
    const meter = new Recorder(1);
    const metered = meterText(anthropicText(SSE, pieces(HELLO)), meter, false, true);
    assert.equal(metered.type, 'raw');
    const text = await bytesOf(metered.body);
    assert.ok(text.includes('"text":"Hello"'), 'the first token went out');
    assert.ok(!text.includes('"text":"!"'), 'the second did not');
    assert.match(
      text,
      /event: error\ndata: \{"type":"error","error":\{"type":"rate_limit_error","message":"the stream was cut after 1 tokens/,
    );
    assert.equal(meter.finished?.[2], 429);
  });
});
