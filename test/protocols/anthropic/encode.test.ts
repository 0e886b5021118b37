/** Typed text events encoded as Anthropic answers: the whole message, the event stream, stop reasons, usage and SSE text. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANSWER_CREATED, answer } from '../../helpers/text.js';
import { ClientGoneError } from '../../../src/core/call.js';
import { fastError } from '../../../src/core/errors.js';
import type { TextEvent, TextRequest, TextStream } from '../../../src/core/text.js';
import { messageEvents, messageId, sseError, sseEvent, wholeMessage, type StreamEvent } from '../../../src/protocols/anthropic/encode.js';
import { messagesRequest } from '../../../src/protocols/anthropic/request.js';
import type { MessagesRequest } from '../../../src/protocols/anthropic/schemas.js';

const CREATED = ANSWER_CREATED;
const request: TextRequest = messagesRequest({
  model: 'alias',
  max_tokens: 8,
  messages: [{ role: 'user', content: 'hi' }],
} as MessagesRequest);

async function streamed(stream: TextStream): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const e of messageEvents(stream, request)) out.push(e);
  return out;
}

const text = (t: string): TextEvent => ({ type: 'text', text: t, logprobs: null });
const call = (index: number, args: string, id: string | null = null, name: string | null = null): TextEvent => ({
  type: 'tool_call',
  index,
  id,
  name,
  arguments: args,
});
const finish = (reason: 'stop' | 'length' | 'tool_calls' | 'content_filter', stopSequence?: string): TextEvent =>
  stopSequence === undefined ? { type: 'finish', reason } : { type: 'finish', reason, stopSequence };
const usage: TextEvent = { type: 'usage', promptTokens: 5, completionTokens: 2, timings: null };
/** The cache counts every usage object has (the SDKs' types require them): no prompt caching, so 0. */
const NO_CACHE = { cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
/** A tool_use id made here: `toolu_` and 24 random base64url characters. */
const MADE_ID = /^toolu_[A-Za-z0-9_-]{24}$/;

const start = {
  type: 'message_start',
  message: {
    id: 'msg_test1',
    type: 'message',
    role: 'assistant',
    model: 'alias',
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: 0, output_tokens: 0, ...NO_CACHE },
  },
};

describe('wholeMessage', () => {
  it('gathers text into one text block, with the stop reason and usage', async () => {
    assert.deepEqual(await wholeMessage(answer([text('Hel'), text('lo'), finish('stop'), usage]), request), {
      id: 'msg_test1',
      type: 'message',
      role: 'assistant',
      model: 'alias',
      content: [{ type: 'text', text: 'Hello' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 5, output_tokens: 2, ...NO_CACHE },
    });
  });

  it('encodes an answer given as an array at once, without a promise', () => {
    const whole = wholeMessage({ type: 'events', id: 'msg_abc', created: CREATED, events: [text('x'), finish('length')] }, request);
    assert.ok(!(whole instanceof Promise));
    assert.equal(whole.id, 'msg_abc', 'an Anthropic id kept as it is');
    assert.equal(whole.stop_reason, 'max_tokens');
    assert.deepEqual(whole.usage, { input_tokens: 0, output_tokens: 0, ...NO_CACHE });
  });

  it('says which stop sequence ended the answer', async () => {
    const whole = await wholeMessage(answer([text('a'), finish('stop', 'END'), usage]), request);
    assert.equal(whole.stop_reason, 'stop_sequence');
    assert.equal(whole.stop_sequence, 'END');
  });

  it('puts the text first, then one tool_use block per call in index order, input parsed', async () => {
    const events = [
      text('Let me check.'),
      call(1, '{"city":', 'call_b', 'get_weather'),
      call(0, '{}', 'call_a', 'now'),
      call(1, '"Rome"}'),
      finish('tool_calls'),
      usage,
    ];
    const whole = await wholeMessage(answer(events), request);
    assert.deepEqual(whole.content, [
      { type: 'text', text: 'Let me check.' },
      { type: 'tool_use', id: 'call_a', name: 'now', input: {} },
      { type: 'tool_use', id: 'call_b', name: 'get_weather', input: { city: 'Rome' } },
    ]);
    assert.equal(whole.stop_reason, 'tool_use');
  });

  it('reads calls under `stop` as a tool use, empty arguments as {}, and has no text block without text', async () => {
    const whole = await wholeMessage(answer([call(0, '', 'c', 'f'), finish('stop')]), request);
    assert.deepEqual(whole.content, [{ type: 'tool_use', id: 'c', name: 'f', input: {} }]);
    assert.equal(whole.stop_reason, 'tool_use');
  });

  it('gives a call without an id a random toolu_ id, different in every answer', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const whole = await wholeMessage(answer([call(0, '{}', null, 'f'), call(1, '{}', null, 'g'), finish('tool_calls')]), request);
      for (const block of whole.content) {
        assert.ok(block.type === 'tool_use');
        assert.match(block.id, MADE_ID);
        ids.add(block.id);
      }
    }
    assert.equal(ids.size, 6);
  });

  it("refuses arguments that are not JSON as the model's failure", async () => {
    await assert.rejects(async () => wholeMessage(answer([call(0, '{"a":', 'c', 'f'), finish('tool_calls')]), request), {
      code: 'upstream_error',
    });
  });

  it('maps content_filter to refusal', async () => {
    assert.equal((await wholeMessage(answer([finish('content_filter')]), request)).stop_reason, 'refusal');
  });

  it('throws ClientGoneError for events that end before their finish, and the error the events throw', async () => {
    await assert.rejects(async () => wholeMessage(answer([text('a')]), request), ClientGoneError);
    await assert.rejects(async () => wholeMessage(answer([text('a'), finish('stop')], 1), request), { code: 'upstream_error' });
  });
});

describe('messageEvents', () => {
  it('streams message_start, ping, one text block, message_delta with usage, message_stop', async () => {
    assert.deepEqual(await streamed(answer([text('Hel'), text(''), text('lo'), finish('stop'), usage])), [
      start,
      { type: 'ping' },
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hel' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'lo' } },
      { type: 'content_block_stop', index: 0 },
      {
        type: 'message_delta',
        delta: { stop_reason: 'end_turn', stop_sequence: null },
        usage: { input_tokens: 5, output_tokens: 2, ...NO_CACHE },
      },
      { type: 'message_stop' },
    ]);
  });

  it('opens a tool_use block per call with input {}, then its arguments as input_json_delta', async () => {
    const events = [
      text('ok'),
      call(0, '{"city"', 'call_a', 'get_weather'),
      call(0, ':"Paris"}'),
      call(1, '{}', 'call_b', 'now'),
      finish('tool_calls'),
      usage,
    ];
    assert.deepEqual((await streamed(answer(events))).slice(2), [
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'ok' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'call_a', name: 'get_weather', input: {} } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city"' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ':"Paris"}' } },
      { type: 'content_block_stop', index: 1 },
      { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'call_b', name: 'now', input: {} } },
      { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{}' } },
      { type: 'content_block_stop', index: 2 },
      {
        type: 'message_delta',
        delta: { stop_reason: 'tool_use', stop_sequence: null },
        usage: { input_tokens: 5, output_tokens: 2, ...NO_CACHE },
      },
      { type: 'message_stop' },
    ]);
  });

  it('streams a call without an id under one random toolu_ id, different in every answer', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      for (const e of await streamed(answer([call(0, '{"a"'), call(0, ':1}'), finish('tool_calls')]))) {
        if (e.type === 'content_block_start' && e.content_block.type === 'tool_use') ids.push(e.content_block.id);
      }
    }
    assert.equal(ids.length, 2);
    for (const id of ids) assert.match(id, MADE_ID);
    assert.notEqual(ids[0], ids[1]);
  });

  it('opens a new text block for text after a call', async () => {
    const types = (await streamed(answer([call(0, '{}', 'c', 'f'), text('after'), finish('stop')]))).map((e) =>
      'index' in e ? `${e.type}:${e.index}` : e.type,
    );
    assert.deepEqual(types, [
      'message_start',
      'ping',
      'content_block_start:0',
      'content_block_delta:0',
      'content_block_stop:0',
      'content_block_start:1',
      'content_block_delta:1',
      'content_block_stop:1',
      'message_delta',
      'message_stop',
    ]);
  });

  it('carries the stop sequence and max_tokens in message_delta', async () => {
    const last = async (events: TextEvent[]) => (await streamed(answer(events))).at(-2);
    assert.deepEqual(await last([text('a'), finish('stop', '\n'), usage]), {
      type: 'message_delta',
      delta: { stop_reason: 'stop_sequence', stop_sequence: '\n' },
      usage: { input_tokens: 5, output_tokens: 2, ...NO_CACHE },
    });
    assert.deepEqual(((await last([text('a'), finish('length')])) as { delta: unknown }).delta, {
      stop_reason: 'max_tokens',
      stop_sequence: null,
    });
  });

  it('ends a stream cut before its finish without message_delta or message_stop', async () => {
    const types = (await streamed(answer([text('a')]))).map((e) => e.type);
    assert.deepEqual(types, ['message_start', 'ping', 'content_block_start', 'content_block_delta']);
  });

  it('sends nothing before the first event, and throws what the events throw', async () => {
    const out: string[] = [];
    await assert.rejects(
      async () => {
        for await (const e of messageEvents(answer([text('a'), finish('stop')], 0), request)) out.push(e.type);
      },
      { code: 'upstream_error' },
    );
    assert.deepEqual(out, []);
  });
});

describe('SSE text', () => {
  it('names each event and gives its JSON as data', () => {
    assert.equal(sseEvent({ type: 'ping' }), 'event: ping\ndata: {"type":"ping"}\n\n');
    assert.equal(
      sseEvent({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'a\nb' } }),
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\\nb"}}\n\n',
    );
  });

  it("writes an error as Anthropic's error event", () => {
    const e = sseError(fastError('overloaded', 'busy'));
    assert.match(e, /^event: error\ndata: /);
    const data = JSON.parse(e.slice(e.indexOf('data: ') + 6));
    assert.equal(data.type, 'error');
    assert.equal(data.error.type, 'overloaded_error');
    assert.equal(data.error.message, 'busy');
  });

  it('makes message ids from answer ids', () => {
    assert.equal(messageId('chatcmpl-abc'), 'msg_abc');
    assert.equal(messageId('msg_01XYZ'), 'msg_01XYZ');
    assert.equal(messageId('plain'), 'msg_plain');
  });
});
