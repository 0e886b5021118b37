/**
 * The clients that speak the Responses API by default, against the real server on tiny-chat
 * (in-process, and through a second infergate whose `openai` backend translates to chat
 * completions): the Vercel AI SDK's default OpenAI provider (`generateText`, `streamText`, and a
 * tool loop whose next turn refers to a stored answer by `item_reference`), and LangChain's
 * `ChatOpenAI` with `useResponsesApi`. Each answer is checked against the Response the server stored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';
import OpenAI from 'openai';
import { startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { CALL_ARGUMENTS, startToolUpstream, type ToolUpstream } from '../helpers/tool-upstream.js';

const GGUF = '${MODELS}/tiny-chat/1/model.gguf';

let first: RunningServer;
let proxy: RunningServer;
let tools: ToolUpstream;

before(async () => {
  tools = await startToolUpstream();
  first = await startServer({
    config: writeConfig(`
models:
  - name: tiny-chat
    versions: [{ version: '1', backend: { kind: llama, path: ${GGUF}, threads: 1, sequences: 2 } }]
  - name: tools
    versions: [{ version: '1', backend: { kind: openai, base_url: '${tools.url}' } }]
`),
  });
  proxy = await startServer({
    config: writeConfig(`
models:
  - name: tiny-chat
    versions: [{ version: '1', backend: { kind: openai, base_url: '${first.url}/v1', model: tiny-chat } }]
`),
  });
});

after(async () => {
  await proxy?.stop();
  await first?.stop();
  await tools?.close();
});

const targets = [
  { name: 'in-process', url: () => first.url },
  { name: 'through a second infergate', url: () => proxy.url },
];

/** The Response the server stored under `id`, read with the official SDK. */
function storedResponse(url: string, id: string): Promise<OpenAI.Responses.Response> {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 }).responses.retrieve(id);
}

for (const target of targets)
  describe(`Responses API clients on tiny-chat, ${target.name}`, () => {
    it("answers the Vercel AI SDK's default provider in generateText, with the stored text and usage", async () => {
      const openai = createOpenAI({ baseURL: `${target.url()}/v1`, apiKey: 'unused' });
      const result = await generateText({ model: openai('tiny-chat'), prompt: 'say something', maxOutputTokens: 6, maxRetries: 0 });
      assert.match(result.response.id, /^resp_/);
      const stored = await storedResponse(target.url(), result.response.id);
      assert.equal(result.text, stored.output_text);
      assert.equal(result.usage.inputTokens, stored.usage?.input_tokens);
      assert.equal(result.usage.outputTokens, stored.usage?.output_tokens);
      assert.equal(result.finishReason, stored.status === 'incomplete' ? 'length' : 'stop');
    });

    it("streams to the Vercel AI SDK's streamText, the text adding up to the stored response", async () => {
      const openai = createOpenAI({ baseURL: `${target.url()}/v1`, apiKey: 'unused' });
      const errors: unknown[] = [];
      const result = streamText({
        model: openai('tiny-chat'),
        prompt: 'stream something',
        maxOutputTokens: 6,
        maxRetries: 0,
        onError: ({ error }) => void errors.push(error),
      });
      let text = '';
      for await (const delta of result.textStream) text += delta;
      assert.deepEqual(errors, []);
      const response = await result.response;
      const stored = await storedResponse(target.url(), response.id);
      assert.equal(text, stored.output_text);
      assert.equal((await result.usage).outputTokens, stored.usage?.output_tokens);
      assert.ok(['stop', 'length'].includes(await result.finishReason));
    });

    it("answers LangChain's ChatOpenAI with useResponsesApi", async () => {
      const model = new ChatOpenAI({
        model: 'tiny-chat',
        useResponsesApi: true,
        configuration: { baseURL: `${target.url()}/v1` },
        apiKey: 'unused',
        maxTokens: 6,
        maxRetries: 0,
      });
      const message = await model.invoke('hello');
      const id = message.response_metadata.id as string;
      assert.match(id, /^resp_/);
      const stored = await storedResponse(target.url(), id);
      assert.equal(message.text, stored.output_text);
      assert.equal(message.usage_metadata?.input_tokens, stored.usage?.input_tokens);
      assert.equal(message.usage_metadata?.output_tokens, stored.usage?.output_tokens);
    });
  });

describe('Responses API clients: a Vercel AI SDK tool loop', () => {
  it('runs a tool call and its result, then a next turn that sends the answer by item_reference, through a remote backend', async () => {
    // What the SDK sends, to see that its second step names the first step's call by reference.
    const sent: Array<{ input: Array<{ type?: string }> }> = [];
    const openai = createOpenAI({
      baseURL: `${first.url}/v1`,
      apiKey: 'unused',
      fetch: (url, init) => {
        sent.push(JSON.parse(String(init?.body)) as (typeof sent)[number]);
        return fetch(url, init);
      },
    });
    const inputs: unknown[] = [];
    const result = await generateText({
      model: openai('tools'),
      prompt: 'weather in Oslo?',
      maxRetries: 0,
      tools: {
        weather: tool({
          description: 'the weather in a city',
          inputSchema: jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
          execute: async (input) => {
            inputs.push(input);
            return 'sunny';
          },
        }),
      },
      stopWhen: stepCountIs(2),
    });
    assert.deepEqual(inputs, [JSON.parse(CALL_ARGUMENTS)]);
    assert.equal(result.steps.length, 2);
    assert.equal(result.steps[0]?.toolCalls[0]?.toolName, 'weather');
    assert.equal(result.text, 'done: sunny');
    // The second step's chat messages hold the call and its result.
    let messages = tools.received[tools.received.length - 1]?.messages as Array<Record<string, unknown>>;
    assert.deepEqual(
      messages.map((m) => m.role),
      ['user', 'assistant', 'tool'],
    );
    assert.deepEqual(messages[1]?.tool_calls, [
      { id: 'call_up1', type: 'function', function: { name: 'weather', arguments: CALL_ARGUMENTS } },
    ]);
    assert.equal(messages[2]?.tool_call_id, 'call_up1');

    // A next turn sends the answer's text by reference to its stored item: the server looks it up.
    const next = await generateText({
      model: openai('tools'),
      messages: [{ role: 'user', content: 'weather in Oslo?' }, ...result.response.messages, { role: 'user', content: 'thanks' }],
      maxRetries: 0,
    });
    assert.equal(next.text, 'done: thanks');
    assert.deepEqual(
      sent[sent.length - 1]?.input.map((item) => item.type),
      [undefined, 'function_call', 'function_call_output', 'item_reference', undefined],
    );
    messages = tools.received[tools.received.length - 1]?.messages as Array<Record<string, unknown>>;
    assert.deepEqual(
      messages.map((m) => [m.role, m.content]),
      [
        ['user', 'weather in Oslo?'],
        ['assistant', null],
        ['tool', 'sunny'],
        ['assistant', 'done: sunny'],
        ['user', 'thanks'],
      ],
    );
  });
});
