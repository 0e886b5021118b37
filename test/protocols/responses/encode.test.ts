/** Typed text events encoded as the Responses API answers: the Response object, its stream of events in order, and its items to store. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientGoneError } from '../../../src/core/call.js';
import type { TextEvent } from '../../../src/core/text.js';
import { ResponseBuilder, sseEvent, type ResponseStreamEvent } from '../../../src/protocols/responses/encode.js';
import { responsesCall } from '../../../src/protocols/responses/request.js';
import type { ResponsesRequest } from '../../../src/protocols/responses/schemas.js';

const echo = responsesCall({ model: 'tiny', input: 'hi', instructions: 'be kind', max_output_tokens: 9 } as ResponsesRequest, true).echo;
const HEAD = { id: 'resp_1', createdAt: 1_700_000_000, model: 'tiny', echo };

function builder(streaming: boolean): ResponseBuilder {
  let n = 0;
  return new ResponseBuilder(HEAD, (prefix) => `${prefix}_${n++}`, streaming);
}

const text = (t: string): TextEvent => ({ type: 'text', text: t, logprobs: null });
const usage: TextEvent = { type: 'usage', promptTokens: 5, completionTokens: 3, timings: null };
const call = (index: number, args: string, id: string | null = null, name: string | null = null): TextEvent => ({
  type: 'tool_call',
  index,
  id,
  name,
  arguments: args,
});

/** Every stream event of `events`, from start to end. */
function streamed(events: readonly TextEvent[]): ResponseStreamEvent[] {
  const b = builder(true);
  const out = [...b.start()];
  for (const e of events) out.push(...b.add(e));
  out.push(...b.end(1_700_000_001));
  return out;
}

describe('Responses encoder: the whole Response', () => {
  it('gathers text into one message, with output_text, usage and the echoed request', () => {
    const b = builder(false);
    assert.deepEqual(b.start(), []);
    for (const e of [text('Hel'), text('lo'), { type: 'finish', reason: 'stop' } as TextEvent, usage]) assert.deepEqual(b.add(e), []);
    assert.deepEqual(b.end(1_700_000_001), []);
    assert.deepEqual(b.response(), {
      id: 'resp_1',
      object: 'response',
      created_at: 1_700_000_000,
      status: 'completed',
      completed_at: 1_700_000_001,
      error: null,
      incomplete_details: null,
      model: 'tiny',
      output: [
        {
          type: 'message',
          id: 'msg_0',
          status: 'completed',
          role: 'assistant',
          content: [{ type: 'output_text', text: 'Hello', annotations: [], logprobs: [] }],
        },
      ],
      output_text: 'Hello',
      usage: {
        input_tokens: 5,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: 3,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: 8,
      },
      truncation: 'disabled',
      instructions: 'be kind',
      max_output_tokens: 9,
      temperature: 1,
      top_p: 1,
      tools: [],
      tool_choice: 'auto',
      parallel_tool_calls: true,
      text: { format: { type: 'text' } },
      metadata: {},
      previous_response_id: null,
      store: true,
      user: null,
    });
  });

  it('says incomplete, with max_output_tokens as the reason, when the answer stopped at the limit', () => {
    const b = builder(false);
    for (const e of [text('cut'), { type: 'finish', reason: 'length' } as TextEvent, usage]) b.add(e);
    b.end(1);
    const r = b.response();
    assert.equal(r.status, 'incomplete');
    assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
    assert.equal(r.completed_at, null);
    assert.equal(r.output[0]?.status, 'incomplete');
  });

  it('answers text then function calls as separate items, each call with its id, call id, name and arguments', () => {
    const b = builder(false);
    const events: TextEvent[] = [
      text('let me see'),
      call(0, '{"city":', 'call_a', 'weather'),
      call(0, '"Oslo"}'),
      call(1, '{}', null, 'time'),
      { type: 'finish', reason: 'tool_calls' },
      usage,
    ];
    for (const e of events) b.add(e);
    b.end(1);
    const r = b.response();
    assert.equal(r.status, 'completed');
    assert.deepEqual(r.output, [
      {
        type: 'message',
        id: 'msg_0',
        status: 'completed',
        role: 'assistant',
        content: [{ type: 'output_text', text: 'let me see', annotations: [], logprobs: [] }],
      },
      { type: 'function_call', id: 'fc_1', call_id: 'call_a', name: 'weather', arguments: '{"city":"Oslo"}', status: 'completed' },
      // A call the backend gave no id gets one.
      { type: 'function_call', id: 'fc_2', call_id: 'call_3', name: 'time', arguments: '{}', status: 'completed' },
    ]);
    assert.equal(r.output_text, 'let me see');
    assert.deepEqual(b.items(), [
      { type: 'message', id: 'msg_0', role: 'assistant', content: [{ type: 'output_text', text: 'let me see' }] },
      { type: 'function_call', id: 'fc_1', call_id: 'call_a', name: 'weather', arguments: '{"city":"Oslo"}' },
      { type: 'function_call', id: 'fc_2', call_id: 'call_3', name: 'time', arguments: '{}' },
    ]);
  });

  it('answers an empty message when the model said nothing', () => {
    const b = builder(false);
    b.add({ type: 'finish', reason: 'stop' });
    b.add(usage);
    b.end(1);
    assert.equal(b.response().output.length, 1);
    assert.equal(b.response().output_text, '');
  });

  it('throws ClientGoneError when the events ended without a finish', () => {
    const b = builder(false);
    b.add(text('half'));
    assert.throws(() => b.end(1), ClientGoneError);
  });
});

describe('Responses encoder: the stream', () => {
  it('sends the events of a text answer in OpenAI order, numbered from 0', () => {
    const events = streamed([text('Hel'), text(''), text('lo'), { type: 'finish', reason: 'stop' }, usage]);
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'response.created',
        'response.in_progress',
        'response.output_item.added',
        'response.content_part.added',
        'response.output_text.delta',
        'response.output_text.delta',
        'response.output_text.done',
        'response.content_part.done',
        'response.output_item.done',
        'response.completed',
      ],
    );
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
    );
    const [created, , added, part, delta, , done, partDone, itemDone, completed] = events;
    assert.ok(created?.type === 'response.created');
    assert.equal(created.response.status, 'in_progress');
    assert.deepEqual(created.response.output, []);
    assert.equal(created.response.usage, null);
    assert.deepEqual(added, {
      type: 'response.output_item.added',
      output_index: 0,
      item: { type: 'message', id: 'msg_0', status: 'in_progress', role: 'assistant', content: [] },
      sequence_number: 2,
    });
    assert.deepEqual(part, {
      type: 'response.content_part.added',
      item_id: 'msg_0',
      output_index: 0,
      content_index: 0,
      part: { type: 'output_text', text: '', annotations: [], logprobs: [] },
      sequence_number: 3,
    });
    assert.deepEqual(delta, {
      type: 'response.output_text.delta',
      item_id: 'msg_0',
      output_index: 0,
      content_index: 0,
      delta: 'Hel',
      logprobs: [],
      sequence_number: 4,
    });
    assert.ok(done?.type === 'response.output_text.done' && done.text === 'Hello');
    assert.ok(partDone?.type === 'response.content_part.done' && partDone.part.text === 'Hello');
    assert.ok(itemDone?.type === 'response.output_item.done' && itemDone.item.status === 'completed');
    assert.ok(completed?.type === 'response.completed');
    assert.equal(completed.response.status, 'completed');
    assert.equal(completed.response.output_text, 'Hello');
    assert.equal(completed.response.usage?.total_tokens, 8);
  });

  it('ends with response.incomplete when the answer stopped at max_output_tokens', () => {
    const events = streamed([text('a'), { type: 'finish', reason: 'length' }, usage]);
    const last = events[events.length - 1];
    assert.ok(last?.type === 'response.incomplete');
    assert.deepEqual(last.response.incomplete_details, { reason: 'max_output_tokens' });
  });

  it('streams a function call as an added item, argument deltas, and its done events', () => {
    const events = streamed([text('ok'), call(0, '{"a":', 'call_x', 'f'), call(0, '1}'), { type: 'finish', reason: 'tool_calls' }, usage]);
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'response.created',
        'response.in_progress',
        'response.output_item.added',
        'response.content_part.added',
        'response.output_text.delta',
        'response.output_text.done',
        'response.content_part.done',
        'response.output_item.done',
        'response.output_item.added',
        'response.function_call_arguments.delta',
        'response.function_call_arguments.delta',
        'response.function_call_arguments.done',
        'response.output_item.done',
        'response.completed',
      ],
    );
    const added = events[8];
    assert.ok(added?.type === 'response.output_item.added');
    assert.deepEqual(added.item, { type: 'function_call', id: 'fc_1', call_id: 'call_x', name: 'f', arguments: '', status: 'in_progress' });
    assert.equal(added.output_index, 1);
    const argsDone = events[11];
    assert.deepEqual(argsDone, {
      type: 'response.function_call_arguments.done',
      item_id: 'fc_1',
      output_index: 1,
      name: 'f',
      arguments: '{"a":1}',
      sequence_number: 11,
    });
  });

  it('fails with response.failed carrying the error and what was said, numbered after the rest', () => {
    const b = builder(true);
    const out = [...b.start(), ...b.add(text('par'))];
    const failed = b.fail({ code: 'upstream_error', message: 'the upstream went away' });
    assert.equal(failed.sequence_number, out.length);
    assert.ok(failed.type === 'response.failed');
    assert.equal(failed.response.status, 'failed');
    assert.deepEqual(failed.response.error, { code: 'upstream_error', message: 'the upstream went away' });
    assert.equal(failed.response.output[0]?.status, 'incomplete');
    assert.equal(failed.response.output_text, 'par');
  });

  it('writes each event as a named Server-Sent Event', () => {
    const [created] = streamed([{ type: 'finish', reason: 'stop' }, usage]);
    const sse = sseEvent(created as ResponseStreamEvent);
    assert.match(sse, /^event: response\.created\ndata: \{.*\}\n\n$/);
    assert.deepEqual(JSON.parse(sse.split('\n')[1]?.slice('data: '.length) ?? ''), created);
  });
});
