/**
 * The Anthropic Messages API through the official `@anthropic-ai/sdk` against the real server: whole
 * and streamed messages on tiny-chat (llama.cpp in-process) and a mock, stop sequences, forced tool
 * use and a tool_result turn, count_tokens, the models list, Anthropic's error shapes and statuses,
 * and tenant keys sent as `x-api-key`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { Ajv } from 'ajv';
import { TINY_CHAT, get, post, startServer, startTinyChatAndProxy, writeConfig, type RunningServer } from '../helpers/server.js';
import { keysConfig, tenantWithKey } from '../helpers/tenancy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const VERSION = { 'anthropic-version': '2023-06-01' };

const WEATHER: Anthropic.Tool.InputSchema = {
  type: 'object',
  properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const weatherTool: Anthropic.Tool = { name: 'get_weather', description: 'The weather in a city', input_schema: WEATHER };

/**
 * Greedy sampling, spread into params: this SDK's types no longer list `temperature` (newer models
 * refuse it), but the SDK sends what it is given and infergate honours it, so answers repeat.
 */
const GREEDY: object = { temperature: 0 };

/** The text of a message's text blocks. */
function textOf(message: Anthropic.Message): string {
  return message.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
}

/** Asserts that `call` fails with `status` and Anthropic's `type`, its body in Anthropic's error shape; returns the error. */
async function refused(
  call: () => Promise<unknown>,
  status: number | undefined,
  type: string,
): Promise<InstanceType<typeof Anthropic.APIError>> {
  try {
    await call();
  } catch (err) {
    assert.ok(err instanceof Anthropic.APIError, String(err));
    assert.equal(err.status, status, err.message);
    assert.equal(err.type, type);
    const body = err.error as { type: string; error: { type: string; message: string } };
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, type);
    assert.equal(typeof body.error.message, 'string');
    return err;
  }
  assert.fail('expected the call to fail');
}

describe('Anthropic Messages API through @anthropic-ai/sdk', () => {
  let server: RunningServer;
  let upstream: Upstream;
  let client: Anthropic;

  before(async () => {
    upstream = await startUpstream();
    const config = writeConfig(`
models:${TINY_CHAT}  - name: mock-chat
    versions:
      - version: '1'
        backend: { kind: mock, text: 'one two three four', stream_chunks: 4 }
  - name: remote
    versions:
      - version: '1'
        backend: { kind: openai, base_url: '${upstream.url}', model: upstream-model }
`);
    server = await startServer({ config });
    client = new Anthropic({ baseURL: server.url, apiKey: 'x', maxRetries: 0 });
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  const hello: Anthropic.MessageParam[] = [{ role: 'user', content: 'Hello there' }];

  it('creates a message on a mock: one text block, end_turn, usage counted', async () => {
    const message = await client.messages.create({ model: 'mock-chat', max_tokens: 16, system: 'Be brief.', messages: hello });
    assert.match(message.id, /^msg_/);
    assert.equal(message.type, 'message');
    assert.equal(message.role, 'assistant');
    assert.equal(message.model, 'mock-chat');
    assert.deepEqual(message.content, [{ type: 'text', text: 'one two three four' }]);
    assert.equal(message.stop_reason, 'end_turn');
    assert.equal(message.stop_sequence, null);
    // The mock counts words: two of the system prompt, two of the message.
    assert.deepEqual(message.usage, { input_tokens: 4, output_tokens: 4, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  });

  it('creates a message on tiny-chat through its template, the same text as chat completions, ending at max_tokens', async () => {
    const message = await client.messages.create({ model: 'tiny-chat', max_tokens: 8, ...GREEDY, messages: hello });
    assert.equal(message.stop_reason, 'max_tokens');
    assert.equal(message.usage.output_tokens, 8);
    assert.ok(message.usage.input_tokens > 0);
    const chat = await post(`${server.url}/v1/chat/completions`, { model: 'tiny-chat', max_tokens: 8, ...GREEDY, messages: hello });
    assert.equal(chat.status, 200);
    assert.equal(textOf(message), chat.body.choices[0].message.content);
    assert.equal(message.usage.input_tokens, chat.body.usage.prompt_tokens);
  });

  it('streams a message with finalMessage(): Anthropic event order, the same text and usage as the whole answer', async () => {
    const whole = await client.messages.create({ model: 'tiny-chat', max_tokens: 8, ...GREEDY, messages: hello });
    const stream = client.messages.stream({ model: 'tiny-chat', max_tokens: 8, ...GREEDY, messages: hello });
    const events: Anthropic.MessageStreamEvent[] = [];
    stream.on('streamEvent', (event) => void events.push(event));
    const final = await stream.finalMessage();
    const types = events.map((e) => e.type);
    assert.equal(types[0], 'message_start');
    assert.equal(types[1], 'content_block_start');
    assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
    assert.ok(types.slice(2, -3).every((t) => t === 'content_block_delta'));
    const deltas = events.flatMap((e) => (e.type === 'content_block_delta' && e.delta.type === 'text_delta' ? [e.delta.text] : []));
    assert.equal(deltas.join(''), textOf(whole));
    assert.equal(textOf(final), textOf(whole));
    assert.equal(final.stop_reason, 'max_tokens');
    assert.equal(final.usage.output_tokens, 8);
    assert.equal(final.usage.input_tokens, whole.usage.input_tokens);
    assert.match(final.id, /^msg_/);
  });

  it('streams a mock in its pieces, as named SSE events with a ping after message_start', async () => {
    const res = await fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...VERSION },
      body: JSON.stringify({ model: 'mock-chat', max_tokens: 16, stream: true, messages: hello }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = (await res.text())
      .trim()
      .split('\n\n')
      .map((raw) => {
        const m = /^event: (\w+)\ndata: (.+)$/.exec(raw);
        assert.ok(m !== null, raw);
        const data = JSON.parse(m[2] as string);
        assert.equal(data.type, m[1], 'the event name is the data type');
        return data;
      });
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'message_start',
        'ping',
        'content_block_start',
        'content_block_delta',
        'content_block_delta',
        'content_block_delta',
        'content_block_delta',
        'content_block_stop',
        'message_delta',
        'message_stop',
      ],
    );
    assert.equal(events.map((e) => e.delta?.text ?? '').join(''), 'one two three four');
    assert.deepEqual(events[8], {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { input_tokens: 2, output_tokens: 4, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    });
  });

  it('stops at a stop sequence, leaves it out, and names it', async () => {
    // Waits on the llama backend reporting which stop sequence ended a generation (finish.stopSequence).
    const full = textOf(await client.messages.create({ model: 'tiny-chat', max_tokens: 40, ...GREEDY, messages: hello }));
    const stop = full.slice(12, 15);
    const cut = full.indexOf(stop);
    const message = await client.messages.create({
      model: 'tiny-chat',
      max_tokens: 40,
      ...GREEDY,
      stop_sequences: ['never-generated-text', stop],
      messages: hello,
    });
    assert.equal(textOf(message), full.slice(0, cut));
    assert.equal(message.stop_reason, 'stop_sequence');
    assert.equal(message.stop_sequence, stop);
  });

  it('answers a forced tool use on tiny-chat with input that validates against input_schema, then a tool_result turn', async () => {
    const validate = new Ajv().compile(WEATHER);
    const message = await client.messages.create({
      model: 'tiny-chat',
      max_tokens: 64,
      tools: [weatherTool],
      tool_choice: { type: 'tool', name: 'get_weather' },
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    });
    assert.equal(message.stop_reason, 'tool_use');
    const use = message.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    assert.ok(use !== undefined, JSON.stringify(message.content));
    assert.equal(use.name, 'get_weather');
    assert.ok(validate(use.input), JSON.stringify(validate.errors));
    assert.ok(use.id.length > 0);

    const next = await client.messages.create({
      model: 'tiny-chat',
      max_tokens: 8,
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'What is the weather in Paris?' },
        { role: 'assistant', content: message.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18 degrees and sunny' }] },
      ],
    });
    assert.ok(['end_turn', 'max_tokens', 'tool_use'].includes(next.stop_reason ?? ''), String(next.stop_reason));
    assert.ok(next.usage.input_tokens > message.usage.input_tokens, 'the result is in the prompt');
  });

  it('streams a forced tool use on tiny-chat as input_json_delta that finalMessage() parses', async () => {
    const validate = new Ajv().compile(WEATHER);
    const stream = client.messages.stream({
      model: 'tiny-chat',
      max_tokens: 64,
      tools: [weatherTool],
      tool_choice: { type: 'any' },
      messages: [{ role: 'user', content: 'Weather in Rome?' }],
    });
    const events: Anthropic.MessageStreamEvent[] = [];
    stream.on('streamEvent', (event) => void events.push(event));
    const final = await stream.finalMessage();
    const start = events.find((e) => e.type === 'content_block_start' && e.content_block.type === 'tool_use');
    assert.ok(start !== undefined);
    assert.ok(events.some((e) => e.type === 'content_block_delta' && e.delta.type === 'input_json_delta'));
    assert.equal(final.stop_reason, 'tool_use');
    const use = final.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    assert.ok(use !== undefined);
    assert.ok(validate(use.input), JSON.stringify(validate.errors));
  });

  it('reads tool_use and tool_result blocks in the conversation (a mock: the prompt tokens count the result)', async () => {
    const message = await client.messages.create({
      model: 'mock-chat',
      max_tokens: 16,
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        {
          role: 'assistant',
          content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris', unit: 'celsius' } }],
        },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'eighteen degrees' }] }] },
      ],
    });
    assert.equal(message.stop_reason, 'end_turn');
    // Words: three of the question, one for the assistant's turn of only a call (the mock counts a message without text as one), two of the result.
    assert.equal(message.usage.input_tokens, 3 + 1 + 2);
  });

  it('counts tokens as the answer counts its input, tools and system included', async () => {
    const params = { model: 'mock-chat', system: 'Be brief.', messages: [{ role: 'user' as const, content: 'hello there friend' }] };
    const counted = await client.messages.countTokens(params);
    const message = await client.messages.create({ ...params, max_tokens: 4 });
    assert.deepEqual(counted, { input_tokens: 5 });
    assert.equal(counted.input_tokens, message.usage.input_tokens);
  });

  it('counts tokens on tiny-chat as its generation counts its prompt', async () => {
    // Waits on countTokens in the llama backend (until then: 400 unsupported_operation).
    const counted = await client.messages.countTokens({ model: 'tiny-chat', messages: hello });
    const message = await client.messages.create({ model: 'tiny-chat', max_tokens: 1, messages: hello });
    assert.equal(counted.input_tokens, message.usage.input_tokens);
  });

  it('translates a message for an OpenAI-API upstream and its answer back', async () => {
    const message = await client.messages.create({
      model: 'remote',
      max_tokens: 16,
      system: 'Be brief.',
      stop_sequences: ['END'],
      tools: [weatherTool],
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      messages: hello,
    });
    assert.deepEqual(message.content, [{ type: 'text', text: 'upstream says hi' }]);
    assert.equal(message.model, 'remote');
    assert.equal(message.stop_reason, 'end_turn');
    assert.deepEqual(message.usage, { input_tokens: 2, output_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
    const sent = upstream.received.at(-1);
    assert.equal(sent?.path, '/v1/chat/completions');
    assert.deepEqual(sent?.body, {
      model: 'upstream-model',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello there' },
      ],
      stream: false,
      max_tokens: 16,
      stop: ['END'],
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: WEATHER } }],
      tool_choice: 'required',
      parallel_tool_calls: false,
    });
  });

  it('streams from an OpenAI-API upstream as Anthropic events, usage included', async () => {
    const final = await client.messages.stream({ model: 'remote', max_tokens: 16, messages: hello }).finalMessage();
    assert.equal(textOf(final), 'tok0 tok1 tok2 ');
    assert.equal(final.stop_reason, 'end_turn');
    assert.deepEqual(final.usage.output_tokens, 3);
    assert.equal(final.usage.input_tokens, 2);
  });

  it('ends a stream that fails after its first byte with an error event the SDK throws', async () => {
    upstream.faults.push({ malformedAfterChunks: 1 });
    const stream = client.messages.stream({ model: 'remote', max_tokens: 16, messages: hello });
    const texts: string[] = [];
    stream.on('text', (t) => void texts.push(t));
    const err = await refused(() => stream.finalMessage(), undefined, 'api_error');
    assert.deepEqual(texts, ['tok0 '], 'the text before the failure came through');
    assert.match(err.message, /upstream/i);
  });

  it('lists the models in Anthropic shape for an Anthropic client, and in OpenAI shape otherwise', async () => {
    const models: Anthropic.ModelInfo[] = [];
    for await (const m of client.models.list()) models.push(m);
    assert.deepEqual(models.map((m) => m.id).sort(), ['mock-chat', 'remote', 'tiny-chat']);
    for (const m of models) {
      assert.equal(m.type, 'model');
      assert.equal(m.display_name, m.id);
      assert.match(m.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.ok(Math.abs(Date.parse(m.created_at) - Date.now()) < 3_600_000, 'created when the server loaded it');
    }
    const one = await client.models.retrieve('tiny-chat');
    assert.equal(one.id, 'tiny-chat');
    assert.equal(one.type, 'model');
    const list = await get(`${server.url}/v1/models`, VERSION);
    assert.equal(list.body.has_more, false);
    assert.equal(list.body.first_id, list.body.data[0].id);
    assert.equal(list.body.last_id, list.body.data.at(-1).id);
    const openai = await get(`${server.url}/v1/models`);
    assert.equal(openai.body.object, 'list');
    assert.equal(openai.body.data[0].object, 'model');
    await refused(() => client.models.retrieve('no-such-model'), 404, 'not_found_error');
  });

  it('answers an unknown model with 404 not_found_error, whole and streamed', async () => {
    const err = await refused(
      () => client.messages.create({ model: 'no-such-model', max_tokens: 4, messages: hello }),
      404,
      'not_found_error',
    );
    assert.ok(err instanceof Anthropic.NotFoundError);
    assert.match(err.message, /no-such-model/);
    await refused(
      () => client.messages.stream({ model: 'no-such-model', max_tokens: 4, messages: hello }).finalMessage(),
      404,
      'not_found_error',
    );
    await refused(() => client.messages.countTokens({ model: 'no-such-model', messages: hello }), 404, 'not_found_error');
  });

  it('answers a missing max_tokens with 400 invalid_request_error naming it', async () => {
    const err = await refused(
      () => client.messages.create({ model: 'mock-chat', messages: hello } as unknown as Anthropic.MessageCreateParamsNonStreaming),
      400,
      'invalid_request_error',
    );
    assert.ok(err instanceof Anthropic.BadRequestError);
    assert.match(err.message, /`max_tokens` is required/);
    assert.equal((err.error as { error: { param: string } }).error.param, 'max_tokens');
  });

  it('refuses an image block with 400 naming its path', async () => {
    const err = await refused(
      () =>
        client.messages.create({
          model: 'mock-chat',
          max_tokens: 4,
          messages: [
            {
              role: 'user',
              content: [
                { type: 'text', text: 'What is this?' },
                { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
              ],
            },
          ],
        }),
      400,
      'invalid_request_error',
    );
    assert.match(err.message, /messages\[0\]\.content\[1\]\.type.*no backend here takes images/);
  });

  it('refuses thinking and unknown routes in Anthropic shape', async () => {
    await refused(
      () =>
        client.messages.create({
          model: 'mock-chat',
          max_tokens: 2048,
          thinking: { type: 'enabled', budget_tokens: 1024 },
          messages: hello,
        }),
      400,
      'invalid_request_error',
    );
    const res = await post(`${server.url}/v1/messages/batches`, {}, VERSION);
    assert.equal(res.status, 404);
    assert.equal(res.body.type, 'error');
    assert.equal(res.body.error.type, 'not_found_error');
  });
});

describe('Anthropic Messages API with tenant keys', () => {
  let server: RunningServer;
  let key: string;

  before(async () => {
    server = await startServer({ config: keysConfig() });
    key = (await tenantWithKey(server.url, { id: 'acme', models: ['*'] })).key;
  });
  after(() => server?.stop());

  it('serves a key sent as x-api-key or as a bearer token', async () => {
    const byKey = new Anthropic({ baseURL: server.url, apiKey: key, maxRetries: 0 });
    const message = await byKey.messages.create({ model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(message.stop_reason, 'end_turn');
    const byToken = new Anthropic({ baseURL: server.url, authToken: key, apiKey: null, maxRetries: 0 });
    assert.equal(
      (await byToken.messages.countTokens({ model: 'chat', messages: [{ role: 'user', content: 'hi there' }] })).input_tokens,
      2,
    );
    const models: string[] = [];
    for await (const m of byKey.models.list()) models.push(m.id);
    assert.deepEqual(models, ['chat']);
  });

  it("limits and records count_tokens like a call: the tenant's request limit refuses the next one, and the ledger holds it with 0 tokens", async () => {
    const counter = await tenantWithKey(server.url, { id: 'counter', models: ['*'], limits: { requests_per_minute: 2 } });
    const client = new Anthropic({ baseURL: server.url, apiKey: counter.key, maxRetries: 0 });
    const params = { model: 'chat', messages: [{ role: 'user' as const, content: 'count these four' }] };
    assert.equal((await client.messages.countTokens(params)).input_tokens, 3);
    assert.equal((await client.messages.countTokens(params)).input_tokens, 3);
    await assert.rejects(client.messages.countTokens(params), (e: unknown) => e instanceof Anthropic.RateLimitError);
    const usage = await get(`${server.url}/v1/usage`, { authorization: `Bearer ${counter.key}` });
    assert.equal(usage.status, 200, JSON.stringify(usage.body));
    assert.deepEqual(usage.body.data, [
      { tenant: 'counter', group: null, requests: 2, errors: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    ]);
  });

  it('answers 401 authentication_error without a key or with an unknown one', async () => {
    const res = await post(
      `${server.url}/v1/messages`,
      { model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] },
      VERSION,
    );
    assert.equal(res.status, 401);
    assert.equal(res.body.type, 'error');
    assert.equal(res.body.error.type, 'authentication_error');
    const wrong = new Anthropic({ baseURL: server.url, apiKey: 'ig-not-a-key', maxRetries: 0 });
    const err = await refused(
      () => wrong.messages.create({ model: 'chat', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }),
      401,
      'authentication_error',
    );
    assert.ok(err instanceof Anthropic.AuthenticationError);
    const models = await get(`${server.url}/v1/models`, VERSION);
    assert.equal(models.status, 401);
    assert.equal(models.body.error.type, 'authentication_error');
  });
});

describe("Anthropic Messages API through a second infergate's openai backend", () => {
  let local: RunningServer;
  let proxy: RunningServer;
  let client: Anthropic;

  before(async () => {
    ({ local, proxy } = await startTinyChatAndProxy());
    client = new Anthropic({ baseURL: proxy.url, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await proxy?.stop();
    await local?.stop();
  });

  it('creates and streams a message on tiny-chat, with the same text and usage as the model itself gives', async () => {
    const params = { model: 'tiny-chat', max_tokens: 12, messages: [{ role: 'user' as const, content: 'Hello' }], ...GREEDY };
    const direct = await new Anthropic({ baseURL: local.url, apiKey: 'unused', maxRetries: 0 }).messages.create(params);
    const message = await client.messages.create(params);
    assert.equal(textOf(message), textOf(direct));
    assert.deepEqual(message.usage.output_tokens, direct.usage.output_tokens);
    assert.equal(message.usage.input_tokens, direct.usage.input_tokens);
    assert.equal(message.stop_reason, 'max_tokens');
    const streamed = await client.messages.stream(params).finalMessage();
    assert.equal(textOf(streamed), textOf(direct));
    assert.equal(streamed.usage.output_tokens, direct.usage.output_tokens);
  });

  it('forces a tool use whose input validates, whole and streamed, then takes a tool_result turn', async () => {
    const validate = new Ajv().compile(WEATHER);
    const ask = [{ role: 'user' as const, content: 'What is the weather in Paris?' }];
    const message = await client.messages.create({
      model: 'tiny-chat',
      max_tokens: 64,
      tools: [weatherTool],
      tool_choice: { type: 'tool', name: 'get_weather' },
      messages: ask,
    });
    assert.equal(message.stop_reason, 'tool_use');
    const use = message.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    assert.ok(use !== undefined && validate(use.input), JSON.stringify(message.content));
    const streamed = await client.messages
      .stream({ model: 'tiny-chat', max_tokens: 64, tools: [weatherTool], tool_choice: { type: 'any' }, messages: ask })
      .finalMessage();
    const streamedUse = streamed.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    assert.ok(streamedUse !== undefined && validate(streamedUse.input), JSON.stringify(streamed.content));
    const next = await client.messages.create({
      model: 'tiny-chat',
      max_tokens: 8,
      tools: [weatherTool],
      messages: [
        ...ask,
        { role: 'assistant', content: message.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18 degrees and sunny' }] },
      ],
    });
    assert.ok(next.usage.input_tokens > message.usage.input_tokens, 'the result is in the prompt');
  });
});
