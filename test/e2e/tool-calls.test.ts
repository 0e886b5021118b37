/**
 * Tool calls on chat completions, through the official `openai` SDK against the real server: the
 * bundled tiny-chat (llama.cpp, its own template's call syntax, grammar-constrained arguments),
 * and a second infergate whose `openai` backend points at the first (passed through).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { zodFunction } from 'openai/helpers/zod';
import { z } from 'zod';
import { post, startTinyChatAndProxy, type RunningServer } from '../helpers/server.js';

const WEATHER = {
  type: 'object',
  properties: {
    city: { type: 'string' },
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
    days: { type: 'integer' },
  },
  required: ['city', 'unit', 'days'],
  additionalProperties: false,
} as const;
const TIME = { type: 'object', properties: { zone: { type: 'string', enum: ['utc', 'cet'] } }, required: ['zone'] } as const;

const TOOLS: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: WEATHER, strict: true } },
  { type: 'function', function: { name: 'get_time', description: 'The time in a zone', parameters: TIME } },
];

const ajv = new Ajv();
const validWeather = ajv.compile(WEATHER);
const validTime = ajv.compile(TIME);

/** Whether a call's arguments parse and validate against its function's schema. */
function validates(name: string, args: string): boolean {
  const parsed: unknown = JSON.parse(args);
  return name === 'get_weather' ? validWeather(parsed) : name === 'get_time' ? validTime(parsed) : false;
}

const MESSAGES: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];

describe('tool calls on chat completions', () => {
  let local: RunningServer;
  let proxy: RunningServer;

  before(async () => {
    ({ local, proxy } = await startTinyChatAndProxy());
  });
  after(async () => {
    await proxy?.stop();
    await local?.stop();
  });

  for (const [where, model, url] of [
    ['in-process llama', 'tiny-chat', () => local.url],
    ['through an openai backend', 'tiny-chat', () => proxy.url],
  ] as const) {
    describe(where, () => {
      const client = (): OpenAI => new OpenAI({ baseURL: `${url()}/v1`, apiKey: 'unused', maxRetries: 0 });

      it('a named function is always called, with arguments that validate against its schema', async () => {
        const answer = await client().chat.completions.create({
          model,
          messages: MESSAGES,
          tools: TOOLS,
          tool_choice: { type: 'function', function: { name: 'get_weather' } },
          max_tokens: 120,
        });
        const choice = answer.choices[0] as OpenAI.ChatCompletion.Choice;
        assert.equal(choice.finish_reason, 'tool_calls');
        assert.equal(choice.message.content, null);
        const calls = choice.message.tool_calls ?? [];
        assert.equal(calls.length, 1);
        const call = calls[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
        assert.equal(call.type, 'function');
        assert.match(call.id, /^call_/);
        assert.equal(call.function.name, 'get_weather');
        assert.ok(validates('get_weather', call.function.arguments), call.function.arguments);
        assert.ok((answer.usage?.completion_tokens ?? 0) > 0);
      });

      it('`required` calls one of the tools, and streams it as OpenAI does: index on every delta, id, type and name on the first', async () => {
        const stream = await client().chat.completions.create({
          model,
          messages: MESSAGES,
          tools: TOOLS,
          tool_choice: 'required',
          max_tokens: 120,
          stream: true,
          stream_options: { include_usage: true },
        });
        const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
        let finish: string | null = null;
        let usage: OpenAI.CompletionUsage | null | undefined = null;
        for await (const chunk of stream) {
          for (const choice of chunk.choices) {
            deltas.push(...(choice.delta.tool_calls ?? []));
            if (choice.finish_reason !== null) finish = choice.finish_reason;
          }
          if (chunk.usage) usage = chunk.usage;
        }
        assert.equal(finish, 'tool_calls');
        assert.ok(deltas.length >= 2, 'the name, then argument fragments');
        for (const d of deltas) assert.equal(d.index, 0);
        const first = deltas[0] as OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall;
        const rest = deltas.slice(1);
        assert.match(first.id ?? '', /^call_/);
        assert.equal(first.type, 'function');
        const name = first.function?.name ?? '';
        assert.ok(name === 'get_weather' || name === 'get_time', name);
        for (const d of rest) {
          assert.equal(d.id, undefined);
          assert.equal(d.function?.name, undefined);
        }
        const args = deltas.map((d) => d.function?.arguments ?? '').join('');
        assert.ok(validates(name, args), args);
        assert.ok(usage !== null && usage !== undefined && usage.completion_tokens > 0 && usage.prompt_tokens > 0);
      });

      it("the client's stop texts end text, never a forced call's name or arguments", async () => {
        const answer = await client().chat.completions.create({
          model,
          messages: MESSAGES,
          tools: TOOLS,
          tool_choice: 'required',
          stop: ['"', '}', '\n', '_'],
          max_tokens: 120,
        });
        const choice = answer.choices[0] as OpenAI.ChatCompletion.Choice;
        assert.equal(choice.finish_reason, 'tool_calls');
        const call = choice.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
        assert.ok(validates(call.function.name, call.function.arguments), call.function.arguments);
      });

      it('`none` answers in text, without calls', async () => {
        const answer = await client().chat.completions.create({
          model,
          messages: MESSAGES,
          tools: TOOLS,
          tool_choice: 'none',
          max_tokens: 8,
        });
        const choice = answer.choices[0] as OpenAI.ChatCompletion.Choice;
        assert.equal(choice.message.tool_calls, undefined);
        assert.equal(typeof choice.message.content, 'string');
        assert.notEqual(choice.finish_reason, 'tool_calls');
      });

      it('`auto` lets the model choose: text, or a call that validates', async () => {
        const answer = await client().chat.completions.create({ model, messages: MESSAGES, tools: TOOLS, max_tokens: 40 });
        const choice = answer.choices[0] as OpenAI.ChatCompletion.Choice;
        if (choice.finish_reason === 'tool_calls') {
          const call = choice.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
          assert.ok(validates(call.function.name, call.function.arguments));
        } else {
          assert.equal(choice.message.tool_calls, undefined);
          assert.equal(typeof choice.message.content, 'string');
        }
      });

      it("a follow-up turn carries the call and the tool's result into the prompt", async () => {
        const first = await client().chat.completions.create({
          model,
          messages: MESSAGES,
          tools: TOOLS,
          tool_choice: { type: 'function', function: { name: 'get_weather' } },
          max_tokens: 120,
        });
        const message = (first.choices[0] as OpenAI.ChatCompletion.Choice).message;
        const call = message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
        const followUp = await client().chat.completions.create({
          model,
          messages: [...MESSAGES, message, { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21, "sky": "clear"}' }],
          tools: TOOLS,
          tool_choice: 'none',
          max_tokens: 8,
        });
        const choice = followUp.choices[0] as OpenAI.ChatCompletion.Choice;
        assert.equal(typeof choice.message.content, 'string');
        // The call and its result are in the prompt: more tokens than the question alone (also under `none`).
        const alone = await client().chat.completions.create({
          model,
          messages: MESSAGES,
          tools: TOOLS,
          tool_choice: 'none',
          max_tokens: 1,
        });
        assert.ok((followUp.usage?.prompt_tokens ?? 0) > (alone.usage?.prompt_tokens ?? Infinity));
      });

      it("the SDK's zodFunction helper parses a required call's arguments", async () => {
        const answer = await client().chat.completions.parse({
          model,
          messages: MESSAGES,
          tools: [zodFunction({ name: 'get_time', parameters: z.object({ zone: z.enum(['utc', 'cet']) }) })],
          tool_choice: 'required',
          max_tokens: 60,
        });
        const call = answer.choices[0]?.message.tool_calls?.[0] as { function: { parsed_arguments: unknown } };
        const zone = (call.function.parsed_arguments as { zone: string }).zone;
        assert.ok(zone === 'utc' || zone === 'cet', zone);
      });
    });
  }

  it('refuses, with 400 naming the field, a choice of a function that is not among the tools', async () => {
    const res = await post(`${local.url}/v1/chat/completions`, {
      model: 'tiny-chat',
      messages: MESSAGES,
      tools: TOOLS,
      tool_choice: { type: 'function', function: { name: 'launch' } },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.param, 'tool_choice');
  });

  it('refuses a tool result that answers no call, and a call left without its result', async () => {
    const orphan = await post(`${local.url}/v1/chat/completions`, {
      model: 'tiny-chat',
      messages: [...MESSAGES, { role: 'tool', tool_call_id: 'call_x', content: 'sunny' }],
    });
    assert.equal(orphan.status, 400);
    assert.equal(orphan.body.error.param, 'messages[1].tool_call_id');
    const unanswered = await post(`${local.url}/v1/chat/completions`, {
      model: 'tiny-chat',
      messages: [
        ...MESSAGES,
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
        { role: 'user', content: 'and?' },
      ],
    });
    assert.equal(unanswered.status, 400);
    assert.equal(unanswered.body.error.param, 'messages[1].tool_calls[0]');
  });

  it('refuses arguments in the history that are not JSON, naming them', async () => {
    const res = await post(`${local.url}/v1/chat/completions`, {
      model: 'tiny-chat',
      messages: [
        ...MESSAGES,
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_time', arguments: '{zone' } }],
        },
        { role: 'tool', tool_call_id: 'c1', content: '12:00' },
      ],
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.param, 'messages[1].tool_calls[0].function.arguments');
  });
});
