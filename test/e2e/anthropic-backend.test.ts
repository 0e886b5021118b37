/**
 * The `anthropic` backend kind end to end: infergate A serves tiny-chat (llama.cpp in-process) and
 * its /v1/messages; infergate B's model `via-anthropic` is an anthropic backend pointed at A. Through
 * B, the official `openai` SDK chats whole and streamed, forces a tool call and sends its result
 * (translated to Messages requests and back), and `@anthropic-ai/sdk` is passed through; B's
 * ledger and token limits count the tokens A reports.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { TINY_CHAT, get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY, tenantWithKey } from '../helpers/tenancy.js';

const WEATHER = {
  type: 'object',
  properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
} as const;
const validWeather = new Ajv().compile(WEATHER);

const TOOLS: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: WEATHER } },
];
const weatherTool = { name: 'get_weather', description: 'The weather in a city', input_schema: WEATHER } as unknown as Anthropic.Tool;

const QUESTION: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
const HELLO: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hello there' },
];

/** Greedy sampling: the same prompt gives the same text on A directly and through B. */
const GREEDY = { temperature: 0 } as const;

/** Whether arguments (JSON text) parse and validate against the weather schema. */
function validates(args: string): boolean {
  return validWeather(JSON.parse(args));
}

describe('an anthropic backend pointed at another infergate’s /v1/messages', () => {
  let a: RunningServer;
  let b: RunningServer;
  let key: string;
  const openai = (k = key): OpenAI => new OpenAI({ baseURL: `${b.url}/v1`, apiKey: k, maxRetries: 0 });
  const anthropic = (k = key): Anthropic => new Anthropic({ baseURL: b.url, apiKey: k, maxRetries: 0 });

  before(async () => {
    a = await startServer({
      config: writeConfig(`
models:${TINY_CHAT}`),
    });
    b = await startServer({
      config: writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
usage: { flush_interval_ms: 50 }
models:
  - name: via-anthropic
    versions:
      - version: '1'
        backend: { kind: anthropic, base_url: '${a.url}', model: tiny-chat, health_check: { interval_ms: 60000 } }
`),
    });
    key = (await tenantWithKey(b.url, { id: 'team', models: ['via-anthropic'] })).key;
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  describe('an OpenAI client, translated to Messages and back', () => {
    it('chats whole: the same text and usage as tiny-chat gives directly, system prompt included', async () => {
      const answer = await openai().chat.completions.create({ model: 'via-anthropic', messages: HELLO, max_tokens: 8, ...GREEDY });
      const direct = await post(`${a.url}/v1/chat/completions`, { model: 'tiny-chat', messages: HELLO, max_tokens: 8, ...GREEDY });
      assert.equal(direct.status, 200);
      const choice = answer.choices[0] as OpenAI.ChatCompletion.Choice;
      assert.equal(answer.object, 'chat.completion');
      assert.equal(choice.message.role, 'assistant');
      assert.equal(choice.message.content, direct.body.choices[0].message.content);
      assert.equal(choice.finish_reason, direct.body.choices[0].finish_reason);
      assert.deepEqual(
        [answer.usage?.prompt_tokens, answer.usage?.completion_tokens],
        [direct.body.usage.prompt_tokens, direct.body.usage.completion_tokens],
      );
    });

    it('streams: the same text as the whole answer, then the usage chunk when asked for, and none when not', async () => {
      const whole = await openai().chat.completions.create({ model: 'via-anthropic', messages: HELLO, max_tokens: 8, ...GREEDY });
      const stream = await openai().chat.completions.create({
        model: 'via-anthropic',
        messages: HELLO,
        max_tokens: 8,
        ...GREEDY,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let finish: string | null = null;
      let usage: OpenAI.CompletionUsage | null | undefined = null;
      for await (const chunk of stream) {
        assert.equal(chunk.object, 'chat.completion.chunk');
        for (const choice of chunk.choices) {
          text += choice.delta.content ?? '';
          if (choice.finish_reason !== null) finish = choice.finish_reason;
        }
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, whole.choices[0]?.message.content);
      assert.equal(finish, whole.choices[0]?.finish_reason);
      assert.deepEqual(usage, whole.usage);
      const plain = await openai().chat.completions.create({ model: 'via-anthropic', messages: HELLO, max_tokens: 4, stream: true });
      for await (const chunk of plain) assert.ok(!chunk.usage, 'no usage chunk unless asked');
    });

    it('forces a named function: one call whose arguments validate against its schema, whole and streamed with its index', async () => {
      const forced = { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } } } as const;
      const answer = await openai().chat.completions.create({ model: 'via-anthropic', messages: QUESTION, max_tokens: 120, ...forced });
      const choice = answer.choices[0] as OpenAI.ChatCompletion.Choice;
      assert.equal(choice.finish_reason, 'tool_calls');
      const calls = choice.message.tool_calls ?? [];
      assert.equal(calls.length, 1);
      const call = calls[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
      assert.equal(call.type, 'function');
      assert.ok(call.id.length > 0);
      assert.equal(call.function.name, 'get_weather');
      assert.ok(validates(call.function.arguments), call.function.arguments);

      const stream = await openai().chat.completions.create({
        model: 'via-anthropic',
        messages: QUESTION,
        max_tokens: 120,
        ...forced,
        stream: true,
      });
      const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
      let finish: string | null = null;
      for await (const chunk of stream) {
        for (const c of chunk.choices) {
          deltas.push(...(c.delta.tool_calls ?? []));
          if (c.finish_reason !== null) finish = c.finish_reason;
        }
      }
      assert.equal(finish, 'tool_calls');
      assert.ok(deltas.length >= 2, 'the call, then its argument fragments');
      for (const d of deltas) assert.equal(d.index, 0);
      assert.ok((deltas[0]?.id ?? '').length > 0);
      assert.equal(deltas[0]?.function?.name, 'get_weather');
      for (const d of deltas.slice(1)) assert.equal(d.id, undefined);
      assert.ok(validates(deltas.map((d) => d.function?.arguments ?? '').join('')));
    });

    it("answers the follow-up turn with the tool's result, the call and the result both in the prompt", async () => {
      const first = await openai().chat.completions.create({
        model: 'via-anthropic',
        messages: QUESTION,
        max_tokens: 120,
        tools: TOOLS,
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
      });
      const call = first.choices[0]?.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
      assert.ok(call !== undefined);
      const next = await openai().chat.completions.create({
        model: 'via-anthropic',
        max_tokens: 8,
        tools: TOOLS,
        tool_choice: 'none',
        messages: [
          ...QUESTION,
          { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', tool_call_id: call.id, content: '{"temperature": 18, "unit": "celsius"}' },
        ],
      });
      const choice = next.choices[0] as OpenAI.ChatCompletion.Choice;
      assert.ok(choice.finish_reason === 'stop' || choice.finish_reason === 'length', String(choice.finish_reason));
      assert.equal((choice.message.tool_calls ?? []).length, 0, '`none`: an answer in text');
      // Against the question alone under the same `none` (which leaves the tools out of a llama prompt).
      const alone = await openai().chat.completions.create({
        model: 'via-anthropic',
        messages: QUESTION,
        max_tokens: 1,
        tools: TOOLS,
        tool_choice: 'none',
      });
      assert.ok((next.usage?.prompt_tokens ?? 0) > (alone.usage?.prompt_tokens ?? Infinity), 'the call and its result lengthen the prompt');
    });

    it('refuses what the Messages API cannot do with a 400 naming the field, before calling upstream', async () => {
      await assert.rejects(
        openai().chat.completions.create({ model: 'via-anthropic', messages: HELLO, temperature: 1.5 }),
        (e: unknown) => e instanceof OpenAI.APIError && e.status === 400 && (e.error as { param?: string }).param === 'temperature',
      );
      await assert.rejects(
        openai().chat.completions.create({ model: 'via-anthropic', messages: HELLO, response_format: { type: 'json_object' } }),
        (e: unknown) => e instanceof OpenAI.APIError && e.status === 400 && (e.error as { param?: string }).param === 'response_format',
      );
      // The kind serves chat only.
      const completion = await post(
        `${b.url}/v1/completions`,
        { model: 'via-anthropic', prompt: 'Hi' },
        { authorization: `Bearer ${key}` },
      );
      assert.equal(completion.status, 400);
      assert.equal(completion.body.error.code, 'unsupported_operation');
    });
  });

  describe('an Anthropic client, passed through', () => {
    const hello: Anthropic.MessageParam[] = [{ role: 'user', content: 'Hello there' }];

    it('creates a message with the text and usage tiny-chat gives directly', async () => {
      const message = await anthropic().messages.create({
        model: 'via-anthropic',
        max_tokens: 8,
        ...GREEDY,
        system: 'Be brief.',
        messages: hello,
      });
      const direct = await new Anthropic({ baseURL: a.url, apiKey: 'x', maxRetries: 0 }).messages.create({
        model: 'tiny-chat',
        max_tokens: 8,
        ...GREEDY,
        system: 'Be brief.',
        messages: hello,
      });
      assert.equal(message.type, 'message');
      assert.deepEqual(message.content, direct.content);
      assert.equal(message.stop_reason, direct.stop_reason);
      assert.deepEqual(message.usage, direct.usage);
    });

    it('streams with finalMessage(): the same message as the whole answer', async () => {
      const whole = await anthropic().messages.create({ model: 'via-anthropic', max_tokens: 8, ...GREEDY, messages: hello });
      const stream = anthropic().messages.stream({ model: 'via-anthropic', max_tokens: 8, ...GREEDY, messages: hello });
      const types: string[] = [];
      stream.on('streamEvent', (event) => void types.push(event.type));
      const final = await stream.finalMessage();
      assert.equal(types[0], 'message_start');
      assert.deepEqual(types.slice(-2), ['message_delta', 'message_stop']);
      assert.deepEqual(final.content, whole.content);
      assert.equal(final.stop_reason, whole.stop_reason);
      assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
      assert.equal(final.usage.input_tokens, whole.usage.input_tokens);
    });

    it('forces tool use with input that validates against input_schema', async () => {
      const message = await anthropic().messages.create({
        model: 'via-anthropic',
        max_tokens: 120,
        tools: [weatherTool],
        tool_choice: { type: 'tool', name: 'get_weather' },
        messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      });
      assert.equal(message.stop_reason, 'tool_use');
      const use = message.content.find((block): block is Anthropic.ToolUseBlock => block.type === 'tool_use');
      assert.ok(use !== undefined, JSON.stringify(message.content));
      assert.equal(use.name, 'get_weather');
      assert.ok(validWeather(use.input), JSON.stringify(validWeather.errors));
    });

    it('counts tokens upstream: what A counts for the same request', async () => {
      const params = { system: 'Be brief.', messages: hello, tools: [weatherTool] };
      const counted = await anthropic().messages.countTokens({ model: 'via-anthropic', ...params });
      const direct = await new Anthropic({ baseURL: a.url, apiKey: 'x', maxRetries: 0 }).messages.countTokens({
        model: 'tiny-chat',
        ...params,
      });
      assert.ok(counted.input_tokens > 0);
      assert.equal(counted.input_tokens, direct.input_tokens);
    });
  });

  describe("the tenant's ledger and limits", () => {
    it('records each call with the tokens A reported, OpenAI and Anthropic clients, whole and streamed', async () => {
      const t = await tenantWithKey(b.url, { id: 'ledger', models: ['via-anthropic'] });
      let prompt = 0;
      let completion = 0;
      const whole = await openai(t.key).chat.completions.create({ model: 'via-anthropic', messages: HELLO, max_tokens: 6 });
      prompt += whole.usage?.prompt_tokens ?? NaN;
      completion += whole.usage?.completion_tokens ?? NaN;
      const stream = await openai(t.key).chat.completions.create({
        model: 'via-anthropic',
        messages: HELLO,
        max_tokens: 6,
        stream: true,
        stream_options: { include_usage: true },
      });
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
      prompt += usage?.prompt_tokens ?? NaN;
      completion += usage?.completion_tokens ?? NaN;
      const message = await anthropic(t.key).messages.create({
        model: 'via-anthropic',
        max_tokens: 6,
        messages: [{ role: 'user', content: 'Hi' }],
      });
      prompt += message.usage.input_tokens;
      completion += message.usage.output_tokens;
      const streamed = await anthropic(t.key)
        .messages.stream({ model: 'via-anthropic', max_tokens: 6, messages: [{ role: 'user', content: 'Hi' }] })
        .finalMessage();
      prompt += streamed.usage.input_tokens;
      completion += streamed.usage.output_tokens;
      assert.ok(prompt > 0 && completion > 0);

      const own = await get(`${b.url}/v1/usage`, { authorization: `Bearer ${t.key}` });
      assert.equal(own.status, 200);
      assert.deepEqual(own.body.data, [
        {
          tenant: 'ledger',
          group: null,
          requests: 4,
          errors: 0,
          prompt_tokens: prompt,
          completion_tokens: completion,
          total_tokens: prompt + completion,
        },
      ]);
    });

    it("refuses the next call once a call's tokens spent the tenant's tokens per minute", async () => {
      const t = await tenantWithKey(b.url, { id: 'tight', models: ['via-anthropic'], limits: { tokens_per_minute: 10 } });
      // A whole answer is never cut: it is counted in full (its prompt alone passes the limit).
      const first = await anthropic(t.key).messages.create({
        model: 'via-anthropic',
        max_tokens: 4,
        system: 'Be brief.',
        messages: [{ role: 'user', content: 'Hello there' }],
      });
      assert.ok(first.usage.input_tokens + first.usage.output_tokens > 10);
      await assert.rejects(
        openai(t.key).chat.completions.create({ model: 'via-anthropic', messages: HELLO, max_tokens: 4 }),
        (e: unknown) => e instanceof OpenAI.APIError && e.status === 429 && /10 tokens per minute/.test(e.message),
      );
      await assert.rejects(
        anthropic(t.key).messages.create({ model: 'via-anthropic', max_tokens: 4, messages: [{ role: 'user', content: 'Hi' }] }),
        (e: unknown) => e instanceof Anthropic.APIError && e.status === 429 && e.type === 'rate_limit_error',
      );
    });
  });
});
