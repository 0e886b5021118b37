/**
 * The Responses API end to end, through the real server and the official `openai` SDK: plain and
 * streamed responses on tiny-chat (in-process, and through a second infergate whose `openai`
 * backend translates them to chat completions), stored, retrieved, listed, deleted and continued
 * with `previous_response_id`; structured output; function calls; each tenant's responses its own;
 * retention.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import SQLite from 'better-sqlite3';
import OpenAI from 'openai';
import type { ResponseStreamEvent } from 'openai/resources/responses/responses';
import { get, post, startServer, startServers, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY, adminCall, postgresAnswers, tenantWithKey } from '../helpers/tenancy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { CALL_ARGUMENTS, startToolUpstream, type ToolUpstream } from '../helpers/tool-upstream.js';

const GGUF = '${MODELS}/tiny-chat/1/model.gguf';

function sdk(url: string, key: string): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
}

/** The echoed `store`, which the SDK's Response type leaves out. */
function echoedStore(response: object): unknown {
  return (response as { store?: unknown }).store;
}

/** Whether `promise` rejects with a 404 from the server. */
async function notFound(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (e: unknown) => e instanceof OpenAI.NotFoundError);
}

/** The events of a streamed response, in order. */
async function streamEvents(client: OpenAI, body: OpenAI.Responses.ResponseCreateParamsNonStreaming): Promise<ResponseStreamEvent[]> {
  const stream = await client.responses.create({ ...body, stream: true });
  const events: ResponseStreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

/** The event types of a streamed text answer, with the run of deltas as one `delta*`. */
function shape(events: readonly ResponseStreamEvent[]): string[] {
  const types: string[] = [];
  for (const e of events) {
    const t = e.type === 'response.output_text.delta' ? 'delta*' : e.type;
    if (t !== types[types.length - 1] || t !== 'delta*') types.push(t);
  }
  return types;
}

const ANSWER_SCHEMA = {
  type: 'object',
  properties: { answer: { type: 'string', enum: ['yes', 'no'] }, sure: { type: 'boolean' } },
  required: ['answer', 'sure'],
  additionalProperties: false,
} as const;

let first: RunningServer;
let proxy: RunningServer;
let upstream: Upstream;
let tools: ToolUpstream;
let alpha: { id: string; key: string };
let beta: { id: string; key: string };

before(async () => {
  upstream = await startUpstream();
  tools = await startToolUpstream();
  first = await startServer({
    config: writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
usage: { flush_interval_ms: 50 }
models:
  - name: tiny-chat
    versions: [{ version: '1', backend: { kind: llama, path: ${GGUF}, threads: 1, sequences: 2 } }]
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, text: 'one two three four', stream_chunks: 4 } }]
  - name: remote
    versions: [{ version: '1', backend: { kind: openai, base_url: '${upstream.url}' } }]
  - name: tools
    versions: [{ version: '1', backend: { kind: openai, base_url: '${tools.url}' } }]
`),
  });
  alpha = await tenantWithKey(first.url, { id: 'alpha', models: ['*'] });
  beta = await tenantWithKey(first.url, { id: 'beta', models: ['*'] });
  proxy = await startServer({
    config: writeConfig(`
models:
  - name: tiny-chat
    versions: [{ version: '1', backend: { kind: openai, base_url: '${first.url}/v1', api_key: '${alpha.key}', model: tiny-chat } }]
`),
  });
});

after(async () => {
  await proxy?.stop();
  await first?.stop();
  await upstream?.close();
  await tools?.close();
});

const targets = [
  { name: 'in-process', client: () => sdk(first.url, alpha.key) },
  { name: 'through a second infergate (translated to chat completions)', client: () => sdk(proxy.url, 'unused') },
];

for (const target of targets)
  describe(`Responses API on tiny-chat, ${target.name}`, () => {
    it('creates a response with one message, its output_text, usage and the request echoed', async () => {
      const client = target.client();
      const r = await client.responses.create({ model: 'tiny-chat', input: 'hello there', instructions: 'be brief', max_output_tokens: 8 });
      assert.match(r.id, /^resp_/);
      assert.equal(r.object, 'response');
      assert.equal(r.model, 'tiny-chat');
      assert.ok(r.status === 'completed' || r.status === 'incomplete', r.status);
      if (r.status === 'incomplete') assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
      const message = r.output[0];
      assert.ok(message?.type === 'message', JSON.stringify(r.output));
      assert.equal(message.role, 'assistant');
      assert.match(message.id, /^msg_/);
      const part = message.content[0];
      assert.ok(part?.type === 'output_text');
      assert.equal(r.output_text, part.text);
      assert.ok(r.usage !== undefined && r.usage.input_tokens > 0, JSON.stringify(r.usage));
      assert.ok(r.usage.output_tokens <= 8);
      assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
      assert.equal(r.instructions, 'be brief');
      assert.equal(r.max_output_tokens, 8);
      assert.equal(echoedStore(r), true);
      assert.equal(r.error, null);
    });

    it('streams the events in order, numbered from 0, the deltas adding up to the final text', async () => {
      const events = await streamEvents(target.client(), { model: 'tiny-chat', input: 'tell me more', max_output_tokens: 6 });
      assert.deepEqual(
        events.map((e) => e.sequence_number),
        events.map((_, i) => i),
      );
      const last = events[events.length - 1];
      assert.ok(last?.type === 'response.completed' || last?.type === 'response.incomplete', last?.type);
      const text = last.response.output_text ?? '';
      const expected = [
        'response.created',
        'response.in_progress',
        'response.output_item.added',
        'response.content_part.added',
        ...(text === '' ? [] : ['delta*']),
        'response.output_text.done',
        'response.content_part.done',
        'response.output_item.done',
        last.type,
      ];
      assert.deepEqual(shape(events), expected);
      const deltas = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : []));
      assert.equal(deltas.join(''), text);
      const created = events[0];
      assert.ok(created?.type === 'response.created');
      assert.equal(created.response.id, last.response.id);
      assert.equal(created.response.status, 'in_progress');
      assert.ok((last.response.usage?.output_tokens ?? 0) >= deltas.length);
    });

    it("gives the SDK's stream helper a final response equal to the stored one", async () => {
      const client = target.client();
      const stream = client.responses.stream({ model: 'tiny-chat', input: 'stream helper', max_output_tokens: 5 });
      const final = await stream.finalResponse();
      const stored = await client.responses.retrieve(final.id);
      assert.equal(stored.output_text, final.output_text);
      assert.equal(stored.status, final.status);
      // The helper adds `parsed` to each text part; the items are otherwise the same.
      assert.deepEqual(
        stored.output.map((item) => [item.type, item.id]),
        final.output.map((item) => [item.type, item.id]),
      );
      assert.deepEqual(stored.usage, final.usage);
    });

    it('stores a response: retrieved whole, with its input items listed', async () => {
      const client = target.client();
      const r = await client.responses.create({
        model: 'tiny-chat',
        input: [
          { role: 'user', content: 'first question' },
          { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'second part' }] },
        ],
        max_output_tokens: 4,
        metadata: { purpose: 'test' },
      });
      const stored = await client.responses.retrieve(r.id);
      assert.equal(stored.id, r.id);
      assert.deepEqual(stored.output, r.output);
      assert.deepEqual(stored.usage, r.usage);
      assert.deepEqual(stored.metadata, { purpose: 'test' });
      const items = await client.responses.inputItems.list(r.id, { order: 'asc' });
      assert.deepEqual(
        items.data.map((i) => (i.type === 'message' ? i.content.map((p) => (p.type === 'input_text' ? p.text : p.type)) : i.type)),
        [['first question'], ['second part']],
      );
      for (const item of items.data) assert.match(item.id, /^msg_/);
    });

    it('continues with previous_response_id: the second prompt holds the first turn, not its instructions', async () => {
      const client = target.client();
      const one = await client.responses.create({
        model: 'tiny-chat',
        input: 'my name is Ada',
        instructions: 'a long instruction that is not carried over',
        max_output_tokens: 4,
      });
      const two = await client.responses.create({
        model: 'tiny-chat',
        input: 'what is it?',
        previous_response_id: one.id,
        max_output_tokens: 4,
      });
      const alone = await client.responses.create({ model: 'tiny-chat', input: 'what is it?', max_output_tokens: 4 });
      assert.equal(two.previous_response_id, one.id);
      const [a, b, c] = [one.usage?.input_tokens ?? 0, two.usage?.input_tokens ?? 0, alone.usage?.input_tokens ?? 0];
      assert.ok(b > c, `the continued prompt (${b} tokens) holds more than the new input alone (${c})`);
      // The first turn's input and output are in the second prompt; its instructions are not.
      const withInstructions = await client.responses.create({ model: 'tiny-chat', input: 'my name is Ada', max_output_tokens: 1 });
      const instructionTokens = a - (withInstructions.usage?.input_tokens ?? 0);
      assert.ok(instructionTokens > 0, 'the instructions took tokens in the first prompt');
      assert.ok(b >= c + (a - instructionTokens), `${b} >= ${c} + ${a - instructionTokens}`);
      // A third turn continues the second, so holds the first turn too.
      const three = await client.responses.create({
        model: 'tiny-chat',
        input: 'again?',
        previous_response_id: two.id,
        max_output_tokens: 2,
      });
      assert.ok((three.usage?.input_tokens ?? 0) > b);
    });

    it('does not store a response with store: false, so neither GET nor previous_response_id finds it', async () => {
      const client = target.client();
      const r = await client.responses.create({ model: 'tiny-chat', input: 'forget me', store: false, max_output_tokens: 2 });
      assert.equal(echoedStore(r), false);
      await notFound(client.responses.retrieve(r.id));
      await assert.rejects(
        client.responses.create({ model: 'tiny-chat', input: 'x', previous_response_id: r.id }),
        (e: unknown) => e instanceof OpenAI.NotFoundError && e.param === 'previous_response_id',
      );
    });

    it('deletes a stored response', async () => {
      const client = target.client();
      const r = await client.responses.create({ model: 'tiny-chat', input: 'short lived', max_output_tokens: 2 });
      await client.responses.delete(r.id);
      await notFound(client.responses.retrieve(r.id));
      await notFound(client.responses.delete(r.id));
      await notFound(client.responses.inputItems.list(r.id));
    });

    it('answers text.format json_schema with JSON that the schema accepts', async () => {
      const r = await target.client().responses.create({
        model: 'tiny-chat',
        input: 'answer in JSON',
        max_output_tokens: 64,
        text: { format: { type: 'json_schema', name: 'answer', schema: ANSWER_SCHEMA, strict: true } },
      });
      assert.equal(r.status, 'completed', JSON.stringify(r.incomplete_details));
      const value: unknown = JSON.parse(r.output_text);
      const validate = new Ajv().compile(ANSWER_SCHEMA);
      assert.ok(validate(value), `${r.output_text}: ${JSON.stringify(validate.errors)}`);
      assert.deepEqual(r.text?.format, { type: 'json_schema', name: 'answer', schema: ANSWER_SCHEMA, strict: true });
    });

    it('names max_output_tokens, the field the client sent, when the budget does not fit the context', async () => {
      await assert.rejects(
        target.client().responses.create({ model: 'tiny-chat', input: 'x', max_output_tokens: 1_000_000 }),
        (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'max_output_tokens' && /max_output_tokens/.test(e.message),
      );
    });

    it('answers a required function tool with a function_call whose arguments match its schema', async () => {
      const parameters = {
        type: 'object',
        properties: { city: { type: 'string', enum: ['Oslo', 'Rome'] } },
        required: ['city'],
        additionalProperties: false,
      };
      const r = await target.client().responses.create({
        model: 'tiny-chat',
        input: 'what is the weather?',
        tools: [{ type: 'function', name: 'weather', parameters, strict: true }],
        tool_choice: 'required',
        max_output_tokens: 64,
      });
      const call = r.output.find((item) => item.type === 'function_call');
      assert.ok(call?.type === 'function_call', JSON.stringify(r.output));
      assert.equal(call.name, 'weather');
      assert.match(call.call_id, /\S/);
      assert.ok(new Ajv().compile(parameters)(JSON.parse(call.arguments)), call.arguments);
    });
  });

describe('Responses API: conversations, function calls and errors (mock and remote backends)', () => {
  it('sends a remote backend the stored conversation as chat messages, with the new instructions only', async () => {
    const client = sdk(first.url, alpha.key);
    const one = await client.responses.create({ model: 'remote', input: 'first', instructions: 'old rules' });
    assert.equal(one.output_text, 'upstream says hi');
    await client.responses.create({ model: 'remote', input: 'second', instructions: 'new rules', previous_response_id: one.id });
    const sent = upstream.received[upstream.received.length - 1];
    assert.equal(sent?.path, '/v1/chat/completions');
    assert.deepEqual(sent.body.messages, [
      { role: 'system', content: 'new rules' },
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'upstream says hi' },
      { role: 'user', content: 'second' },
    ]);
  });

  it('resolves an item_reference to a stored item of the same tenant', async () => {
    const client = sdk(first.url, alpha.key);
    const one = await client.responses.create({ model: 'remote', input: 'question' });
    const answerId = one.output[0]?.id as string;
    await client.responses.create({
      model: 'remote',
      input: [
        { type: 'item_reference', id: answerId },
        { role: 'user', content: 'next' },
      ],
    });
    assert.deepEqual(upstream.received[upstream.received.length - 1]?.body.messages, [
      { role: 'assistant', content: 'upstream says hi' },
      { role: 'user', content: 'next' },
    ]);
    await assert.rejects(
      sdk(first.url, beta.key).responses.create({ model: 'remote', input: [{ type: 'item_reference', id: answerId }] }),
      (e: unknown) => e instanceof OpenAI.NotFoundError && e.param === 'input[0].id',
    );
  });

  it('answers a function call as a function_call item, whole and streamed, and sends its output back as a tool message', async () => {
    const client = sdk(first.url, alpha.key);
    const weather = { type: 'function' as const, name: 'weather', parameters: { type: 'object' }, strict: false };
    const r = await client.responses.create({ model: 'tools', input: 'weather?', tools: [weather], tool_choice: 'required' });
    const call = r.output[0];
    assert.ok(call?.type === 'function_call', JSON.stringify(r.output));
    assert.deepEqual(
      { name: call.name, call_id: call.call_id, arguments: call.arguments, status: call.status },
      {
        name: 'weather',
        call_id: 'call_up1',
        arguments: CALL_ARGUMENTS,
        status: 'completed',
      },
    );
    assert.match(call.id ?? '', /^fc_/);
    assert.deepEqual(tools.received[tools.received.length - 1]?.tools, [
      { type: 'function', function: { name: 'weather', parameters: { type: 'object' } } },
    ]);
    assert.equal(tools.received[tools.received.length - 1]?.tool_choice, 'required');

    const events = await streamEvents(client, { model: 'tools', input: 'weather?', tools: [weather] });
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'response.created',
        'response.in_progress',
        'response.output_item.added',
        'response.function_call_arguments.delta',
        'response.function_call_arguments.delta',
        'response.function_call_arguments.done',
        'response.output_item.done',
        'response.completed',
      ],
    );
    const done = events[5];
    assert.ok(done?.type === 'response.function_call_arguments.done');
    assert.equal(done.arguments, CALL_ARGUMENTS);

    const next = await client.responses.create({
      model: 'tools',
      previous_response_id: r.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
      tools: [weather],
    });
    assert.equal(next.output_text, 'done: sunny');
    assert.deepEqual(tools.received[tools.received.length - 1]?.messages, [
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_up1', type: 'function', function: { name: 'weather', arguments: CALL_ARGUMENTS } }],
      },
      { role: 'tool', content: 'sunny', tool_call_id: 'call_up1' },
    ]);
  });

  it('ends a stream that fails midway with response.failed, carrying the error', async () => {
    upstream.faults.push({ cutAfterChunks: 1 });
    const events = await streamEvents(sdk(first.url, alpha.key), { model: 'remote', input: 'cut me', store: false });
    const last = events[events.length - 1];
    assert.ok(last?.type === 'response.failed', events.map((e) => e.type).join(', '));
    assert.equal(last.response.status, 'failed');
    assert.match(String(last.response.error?.code), /^upstream_/);
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
    );
  });

  it('answers an unknown previous_response_id with 404 in OpenAI shape naming the field', async () => {
    const res = await post(
      `${first.url}/v1/responses`,
      { model: 'chat', input: 'x', previous_response_id: 'resp_nope' },
      { authorization: `Bearer ${alpha.key}` },
    );
    assert.equal(res.status, 404);
    assert.deepEqual(res.body, {
      error: {
        message: "Previous response with id 'resp_nope' not found.",
        type: 'invalid_request_error',
        param: 'previous_response_id',
        code: 'not_found',
      },
    });
  });

  it('refuses tools other than functions, naming tools[i].type', async () => {
    await assert.rejects(
      sdk(first.url, alpha.key).responses.create({ model: 'chat', input: 'x', tools: [{ type: 'web_search' }] }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'tools[0].type',
    );
  });

  it('lists input items newest first by default, in pages with limit and after', async () => {
    const client = sdk(first.url, alpha.key);
    const r = await client.responses.create({
      model: 'chat',
      input: ['a', 'b', 'c'].map((text) => ({ role: 'user' as const, content: text })),
    });
    const texts = (page: OpenAI.Responses.ResponseItemList['data']): string[] =>
      page.map((i) => (i.type === 'message' && i.content[0]?.type === 'input_text' ? i.content[0].text : '?'));
    assert.deepEqual(texts((await client.responses.inputItems.list(r.id)).data), ['c', 'b', 'a']);
    const page = await client.responses.inputItems.list(r.id, { order: 'asc', limit: 2 });
    assert.deepEqual(texts(page.data), ['a', 'b']);
    assert.equal(page.has_more, true);
    const rest = await client.responses.inputItems.list(r.id, { order: 'asc', limit: 2, after: page.data[1]?.id });
    assert.deepEqual(texts(rest.data), ['c']);
    assert.equal(rest.has_more, false);
    const raw = await get(`${first.url}/v1/responses/${r.id}/input_items?limit=500`, { authorization: `Bearer ${alpha.key}` });
    assert.equal(raw.status, 400);
    assert.equal(raw.body.error.param, 'limit');
  });

  it('answers DELETE with the deleted object', async () => {
    const auth = { authorization: `Bearer ${alpha.key}` };
    const r = await post(`${first.url}/v1/responses`, { model: 'chat', input: 'x' }, auth);
    const res = await fetch(`${first.url}/v1/responses/${r.body.id}`, { method: 'DELETE', headers: auth });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { id: r.body.id, object: 'response.deleted', deleted: true });
  });

  it("keeps each tenant's responses its own: another tenant's key gets 404 for every use of one", async () => {
    const mine = sdk(first.url, alpha.key);
    const theirs = sdk(first.url, beta.key);
    const r = await mine.responses.create({ model: 'chat', input: 'private' });
    await notFound(theirs.responses.retrieve(r.id));
    await notFound(theirs.responses.inputItems.list(r.id));
    await notFound(theirs.responses.delete(r.id));
    await assert.rejects(
      theirs.responses.create({ model: 'chat', input: 'x', previous_response_id: r.id }),
      (e: unknown) => e instanceof OpenAI.NotFoundError && e.param === 'previous_response_id',
    );
    assert.equal((await mine.responses.retrieve(r.id)).output_text, 'one two three four');
    await assert.rejects(sdk(first.url, 'wrong-key').responses.retrieve(r.id), (e: unknown) => e instanceof OpenAI.AuthenticationError);
  });

  it("deletes a tenant's stored responses with it: a new tenant of the same id does not see them", async () => {
    const before = await tenantWithKey(first.url, { id: 'gamma', models: ['*'] });
    const r = await sdk(first.url, before.key).responses.create({ model: 'chat', input: 'mine alone' });
    assert.equal((await sdk(first.url, before.key).responses.retrieve(r.id)).id, r.id);
    assert.equal((await adminCall(first.url, 'DELETE', '/admin/tenants/gamma')).status, 204);
    const again = await tenantWithKey(first.url, { id: 'gamma', models: ['*'] });
    await notFound(sdk(first.url, again.key).responses.retrieve(r.id));
    await notFound(sdk(first.url, again.key).responses.inputItems.list(r.id));
  });

  it("counts a response's tokens in the tenant's usage", async () => {
    const client = sdk(first.url, beta.key);
    const before = await get(`${first.url}/v1/usage`, { authorization: `Bearer ${beta.key}` });
    const tokens = (u: { body: { data: Array<{ total_tokens: number }> } }): number =>
      u.body.data.reduce((n, row) => n + row.total_tokens, 0);
    const r = await client.responses.create({ model: 'chat', input: 'count these words please' });
    const streamed = await streamEvents(client, { model: 'chat', input: 'and these' });
    const last = streamed[streamed.length - 1];
    assert.ok(last?.type === 'response.completed');
    const after = await get(`${first.url}/v1/usage`, { authorization: `Bearer ${beta.key}` });
    assert.equal(tokens(after) - tokens(before), (r.usage?.total_tokens ?? 0) + (last.response.usage?.total_tokens ?? 0));
  });
});

describe('Responses API: the responses settings', () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer({
      config: writeConfig(`
responses: { store: false, retention_hours: 0.001 } # 3.6 s
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock } }]
`),
    });
  });
  after(async () => {
    await server?.stop();
  });

  it('stores only what asks to be stored when `store` is off by default, and forgets it after the retention', async () => {
    const client = sdk(server.url, 'unused');
    const unasked = await client.responses.create({ model: 'chat', input: 'x' });
    assert.equal(echoedStore(unasked), false);
    await notFound(client.responses.retrieve(unasked.id));
    const asked = await client.responses.create({ model: 'chat', input: 'x', store: true });
    assert.equal((await client.responses.retrieve(asked.id)).id, asked.id);
    await sleep(4000);
    await notFound(client.responses.retrieve(asked.id));
    await assert.rejects(
      client.responses.create({ model: 'chat', input: 'x', previous_response_id: asked.id }),
      (e: unknown) => e instanceof OpenAI.NotFoundError,
    );
  });
});

describe('Responses API: a database that cannot store', () => {
  let server: RunningServer;
  let file: string;

  before(async () => {
    file = join(mkdtempSync(join(tmpdir(), 'infergate-unstored-')), 'db.sqlite');
    server = await startServer({
      config: writeConfig(`
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, text: 'one two three four', stream_chunks: 4 } }]
`),
      env: { DATABASE_URL: `sqlite:${file}` },
    });
  });
  after(async () => {
    await server?.stop();
  });

  it('still answers a finished response, whole and streamed, and logs that it could not store it', async () => {
    const client = sdk(server.url, 'unused');
    assert.equal((await client.responses.retrieve((await client.responses.create({ model: 'chat', input: 'x' })).id)).status, 'completed');
    // Another connection takes the table away: every later write of the server fails.
    const sqlite = new SQLite(file);
    try {
      sqlite.exec('DROP TABLE responses');
    } finally {
      sqlite.close();
    }
    const whole = await client.responses.create({ model: 'chat', input: 'x' });
    assert.equal(whole.output_text, 'one two three four');
    const streamed = await streamEvents(client, { model: 'chat', input: 'x' });
    assert.equal(streamed.at(-1)?.type, 'response.completed');
    // The log may reach this process after the answer: bounded wait for both lines.
    const logged = (): number => server.output().match(/storing a response failed/g)?.length ?? 0;
    for (let i = 0; i < 100 && logged() < 2; i++) await sleep(50);
    assert.equal(logged(), 2, server.output());
  });
});

const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

describe('Responses API: stored in PostgreSQL, shared by two replicas', async () => {
  if (!(await postgresAnswers(DATABASE_URL))) {
    it('needs PostgreSQL', (t) => t.skip(`no PostgreSQL answers at ${DATABASE_URL}; set DATABASE_URL to run these tests`));
    return;
  }

  it('retrieves, lists, continues and deletes on one replica what the other stored', async () => {
    const config = writeConfig(`
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, text: 'from the mock' } }]
`);
    const env = { DATABASE_URL };
    const [a, b] = await startServers([
      { config, env },
      { config, env },
    ]);
    try {
      const one = await sdk(a.url, 'unused').responses.create({ model: 'chat', input: 'stored in postgres' });
      const other = sdk(b.url, 'unused');
      assert.equal((await other.responses.retrieve(one.id)).output_text, 'from the mock');
      const items = await other.responses.inputItems.list(one.id);
      assert.equal(items.data.length, 1);
      const two = await other.responses.create({ model: 'chat', input: 'and more', previous_response_id: one.id });
      assert.ok((two.usage?.input_tokens ?? 0) > (one.usage?.input_tokens ?? 0));
      await other.responses.delete(one.id);
      await notFound(sdk(a.url, 'unused').responses.retrieve(one.id));
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it("deletes a tenant's stored responses with the tenant", async () => {
    const server = await startServer({
      config: writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, text: 'from the mock' } }]
`),
      env: { DATABASE_URL },
    });
    // The database outlives test runs: a fresh id each time.
    const id = `gone-${Date.now().toString(36)}`;
    try {
      const before = await tenantWithKey(server.url, { id, models: ['*'] });
      const r = await sdk(server.url, before.key).responses.create({ model: 'chat', input: 'mine alone' });
      assert.equal((await adminCall(server.url, 'DELETE', `/admin/tenants/${id}`)).status, 204);
      const again = await tenantWithKey(server.url, { id, models: ['*'] });
      await notFound(sdk(server.url, again.key).responses.retrieve(r.id));
      await adminCall(server.url, 'DELETE', `/admin/tenants/${id}`);
    } finally {
      await server.stop();
    }
  });
});
