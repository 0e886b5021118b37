/**
 * Tool calls as agent frameworks make them, against the real server on the bundled tiny-chat:
 * the Vercel AI SDK (`ai` with `@ai-sdk/openai`'s chat-completions provider) and LangChain
 * (`@langchain/openai`: `bindTools` with a forced tool, and `withStructuredOutput` by function calling);
 * then the same through a second infergate whose `openai` backend points at the first.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, streamText, tool } from 'ai';
import { z } from 'zod';
import { startTinyChatAndProxy, type RunningServer } from '../helpers/server.js';

const Weather = z.object({ city: z.string(), unit: z.enum(['celsius', 'fahrenheit']) });

let local: RunningServer;
let proxy: RunningServer;

before(async () => {
  ({ local, proxy } = await startTinyChatAndProxy());
});
after(async () => {
  await proxy?.stop();
  await local?.stop();
});

for (const [where, target] of [
  ['in process', () => local],
  ['through an openai backend', () => proxy],
] as const)
  describe(`agent frameworks calling tools, ${where}`, () => {
    const server = {
      get url(): string {
        return target().url;
      },
    };

    describe('Vercel AI SDK', () => {
      const provider = () => createOpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' });
      const tools = { get_weather: tool({ description: 'Weather for a city', inputSchema: Weather }) };

      it('generateText with a required tool gets a call whose input parses with the schema', async () => {
        const result = await generateText({
          model: provider().chat('tiny-chat'),
          prompt: 'Weather in Paris?',
          tools,
          toolChoice: 'required',
          maxOutputTokens: 80,
          maxRetries: 0,
        });
        assert.equal(result.finishReason, 'tool-calls');
        const call = result.toolCalls[0];
        assert.equal(call?.toolName, 'get_weather');
        assert.ok(Weather.safeParse(call?.input).success, JSON.stringify(call?.input));
      });

      it('streamText streams the same call', async () => {
        const result = streamText({
          model: provider().chat('tiny-chat'),
          prompt: 'Weather in Paris?',
          tools,
          toolChoice: { type: 'tool', toolName: 'get_weather' },
          maxOutputTokens: 80,
          maxRetries: 0,
        });
        const calls = await result.toolCalls;
        assert.equal(calls.length, 1);
        assert.ok(Weather.safeParse(calls[0]?.input).success);
        assert.equal(await result.finishReason, 'tool-calls');
        assert.ok(((await result.usage).outputTokens ?? 0) > 0);
      });
    });

    describe('LangChain', () => {
      const chat = () =>
        new ChatOpenAI({
          model: 'tiny-chat',
          apiKey: 'unused',
          configuration: { baseURL: `${server.url}/v1` },
          maxTokens: 80,
          maxRetries: 0,
        });

      it('bindTools with a forced tool answers an AIMessage with the call, its args parsed', async () => {
        const bound = chat().bindTools(
          [
            {
              type: 'function',
              function: { name: 'get_weather', description: 'Weather', parameters: z.toJSONSchema(Weather) as Record<string, unknown> },
            },
          ],
          { tool_choice: 'get_weather' },
        );
        const message = await bound.invoke('Weather in Paris?');
        const call = message.tool_calls?.[0];
        assert.equal(call?.name, 'get_weather');
        assert.match(call?.id ?? '', /^call_/);
        assert.ok(Weather.safeParse(call?.args).success, JSON.stringify(call?.args));
      });

      it('withStructuredOutput by function calling returns an object of the schema', async () => {
        const structured = chat().withStructuredOutput(Weather, { method: 'functionCalling', name: 'weather' });
        const answer = await structured.invoke('Weather in Paris?');
        assert.ok(Weather.safeParse(answer).success, JSON.stringify(answer));
      });
    });
  });
