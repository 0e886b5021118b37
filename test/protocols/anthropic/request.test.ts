/** Anthropic Messages bodies parsed into the core's chat request: system, content blocks, tools, tool_choice, sampling, refusals by field path. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refused } from '../../helpers/text.js';
import { Ajv } from 'ajv';
import { ApiError } from '../../../src/core/errors.js';
import { validSampling } from '../../../src/core/sampling.js';
import { validationError, type AjvError } from '../../../src/api/errors.js';
import { countTokensRequest, messagesRequest } from '../../../src/protocols/anthropic/request.js';
import { CountTokensRequest, MessagesRequest } from '../../../src/protocols/anthropic/schemas.js';

const hi = [{ role: 'user', content: 'hi' }];
const body = (extra: Record<string, unknown> = {}): MessagesRequest =>
  ({ model: 'm', max_tokens: 16, messages: hi, ...extra }) as MessagesRequest;
const turns = (...messages: unknown[]): MessagesRequest => body({ messages });

const WEATHER = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
const weather = { name: 'get_weather', description: 'The weather in a city', input_schema: WEATHER };

describe('messagesRequest', () => {
  it('parses a minimal body: max_tokens, usage always reported, the body kept for pass-through', () => {
    const b = body();
    const req = messagesRequest(b);
    assert.deepEqual(req, {
      kind: 'chat',
      model: 'm',
      stream: false,
      sampling: validSampling('chat', { max_tokens: 16 }),
      includeUsage: true,
      reportUsage: false,
      tools: [],
      toolChoice: { type: 'none' },
      parallelToolCalls: true,
      openai: null,
      anthropic: b,
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(req.anthropic, b, 'the very body');
    assert.equal(messagesRequest(body({ stream: true })).stream, true);
  });

  it('maps temperature, top_p, top_k and stop_sequences onto the core sampling', () => {
    const s = messagesRequest(body({ temperature: 0.5, top_p: 0.9, top_k: 40, stop_sequences: ['\n\n', 'END', 'a', 'b', 'c'] })).sampling;
    assert.equal(s.maxTokens, 16);
    assert.equal(s.temperature, 0.5);
    assert.equal(s.topP, 0.9);
    assert.equal(s.topK, 40);
    assert.deepEqual(s.stop, ['\n\n', 'END', 'a', 'b', 'c'], 'Anthropic has no limit of 4');
    refused(() => messagesRequest(body({ stop_sequences: ['x', ''] })), 'stop_sequences[1]', /must not contain empty strings/);
  });

  it('puts the system prompt first, as a string or its text blocks', () => {
    assert.deepEqual(messagesRequest(body({ system: 'Be brief.' })).messages, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hi' },
    ]);
    const blocks = messagesRequest(
      body({
        system: [
          { type: 'text', text: 'One.' },
          { type: 'text', text: 'Two.', cache_control: { type: 'ephemeral' } },
        ],
      }),
    );
    assert.deepEqual(blocks.messages[0], {
      role: 'system',
      content: [
        { type: 'text', text: 'One.' },
        { type: 'text', text: 'Two.' },
      ],
    });
  });

  it('reads text blocks as the text, one block as a string', () => {
    const req = messagesRequest(
      turns(
        { role: 'user', content: [{ type: 'text', text: 'a' }] },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'b' },
            { type: 'text', text: 'c' },
          ],
        },
        { role: 'user', content: 'd' },
      ),
    );
    assert.deepEqual(req.messages, [
      { role: 'user', content: 'a' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'b' },
          { type: 'text', text: 'c' },
        ],
      },
      { role: 'user', content: 'd' },
    ]);
  });

  it('reads tool_use as the assistant calls and each tool_result as a tool message, in order', () => {
    const req = messagesRequest(
      turns(
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Rome' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' },
            {
              type: 'tool_result',
              tool_use_id: 'toolu_2',
              content: [
                { type: 'text', text: 'no' },
                { type: 'text', text: 'data' },
              ],
              is_error: true,
            },
            { type: 'text', text: 'Summarise.' },
          ],
        },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_3', name: 'get_weather', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_3' }] },
      ),
    );
    assert.deepEqual(req.messages, [
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: 'Checking.',
        toolCalls: [
          { id: 'toolu_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
          { id: 'toolu_2', name: 'get_weather', arguments: '{"city":"Rome"}' },
        ],
      },
      { role: 'tool', toolCallId: 'toolu_1', content: 'sunny' },
      { role: 'tool', toolCallId: 'toolu_2', content: 'Error: no\ndata' },
      { role: 'user', content: 'Summarise.' },
      { role: 'assistant', content: null, toolCalls: [{ id: 'toolu_3', name: 'get_weather', arguments: '{}' }] },
      { role: 'tool', toolCallId: 'toolu_3', content: '' },
    ]);
  });

  it("drops an earlier turn's thinking blocks, as Anthropic does", () => {
    const req = messagesRequest(
      turns(
        hi[0],
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'hmm', signature: 's' },
            { type: 'text', text: 'yes' },
          ],
        },
        { role: 'user', content: 'ok' },
      ),
    );
    assert.deepEqual(req.messages[1], { role: 'assistant', content: 'yes' });
  });

  it('refuses images and documents by path, saying no backend takes them', () => {
    const image = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } };
    refused(
      () => messagesRequest(turns({ role: 'user', content: [{ type: 'text', text: 'what is this?' }, image] })),
      'messages[0].content[1].type',
      /image blocks are not supported: no backend here takes images/,
    );
    refused(
      () => messagesRequest(turns({ role: 'user', content: [{ type: 'document', source: {} }] })),
      'messages[0].content[0].type',
      /document blocks are not supported/,
    );
    refused(
      () => messagesRequest(turns({ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [image] }] })),
      'messages[0].content[0].content[0].type',
      /image blocks/,
    );
    refused(
      () => messagesRequest(turns({ role: 'user', content: [{ type: 'search_result' }] })),
      'messages[0].content[0].type',
      /"search_result"/,
    );
  });

  it('refuses malformed blocks by path', () => {
    const user = (block: unknown) => turns({ role: 'user', content: [block] });
    const assistant = (block: unknown) => turns(hi[0], { role: 'assistant', content: [block] });
    refused(() => messagesRequest(user({ type: 'text', text: 3 })), 'messages[0].content[0].text', /must be a string/);
    refused(
      () => messagesRequest(user({ type: 'tool_use', id: 'a', name: 'f', input: {} })),
      'messages[0].content[0].type',
      /assistant messages/,
    );
    refused(() => messagesRequest(assistant({ type: 'tool_result', tool_use_id: 'a' })), 'messages[1].content[0].type', /user messages/);
    refused(() => messagesRequest(assistant({ type: 'tool_use', name: 'f', input: {} })), 'messages[1].content[0].id', /string/);
    refused(() => messagesRequest(assistant({ type: 'tool_use', id: 'a', input: {} })), 'messages[1].content[0].name', /string/);
    refused(
      () => messagesRequest(assistant({ type: 'tool_use', id: 'a', name: 'f', input: '{}' })),
      'messages[1].content[0].input',
      /object/,
    );
    refused(() => messagesRequest(user({ type: 'tool_result' })), 'messages[0].content[0].tool_use_id', /id of the tool_use/);
    refused(
      () => messagesRequest(user({ type: 'tool_result', tool_use_id: 'a', is_error: 'yes' })),
      'messages[0].content[0].is_error',
      /true or false/,
    );
    refused(
      () => messagesRequest(user({ type: 'tool_result', tool_use_id: 'a', content: 5 })),
      'messages[0].content[0].content',
      /string or an array/,
    );
  });

  it('reads tools as function tools whose parameters are the input_schema', () => {
    const req = messagesRequest(
      body({ tools: [weather, { name: 'now', input_schema: { type: 'object' }, strict: true, cache_control: { type: 'ephemeral' } }] }),
    );
    assert.deepEqual(req.tools, [
      { name: 'get_weather', description: 'The weather in a city', parameters: WEATHER, strict: false },
      { name: 'now', description: null, parameters: { type: 'object' }, strict: true },
    ]);
    assert.deepEqual(req.toolChoice, { type: 'auto' }, 'auto by default with tools');
    refused(() => messagesRequest(body({ tools: [{ name: 'bad name', input_schema: WEATHER }] })), 'tools[0].name', /letters, digits/);
    refused(() => messagesRequest(body({ tools: [{ name: 'f' }] })), 'tools[0].input_schema', /JSON Schema/);
    refused(() => messagesRequest(body({ tools: [{ name: 'f', input_schema: { type: 'string' } }] })), 'tools[0].input_schema', /"object"/);
    refused(
      () => messagesRequest(body({ tools: [weather, { name: 'f', input_schema: WEATHER, description: 1 }] })),
      'tools[1].description',
      /string/,
    );
    refused(
      () => messagesRequest(body({ tools: [{ type: 'web_search_20250305', name: 'web_search' }] })),
      'tools[0].type',
      /"web_search_20250305" are not supported/,
    );
  });

  it('maps tool_choice: auto, any (required), tool (named), none, and disable_parallel_tool_use', () => {
    const choice = (tool_choice: unknown) => messagesRequest(body({ tools: [weather], tool_choice }));
    assert.deepEqual(choice({ type: 'auto' }).toolChoice, { type: 'auto' });
    assert.deepEqual(choice({ type: 'any' }).toolChoice, { type: 'required' });
    assert.deepEqual(choice({ type: 'tool', name: 'get_weather' }).toolChoice, { type: 'function', name: 'get_weather' });
    assert.deepEqual(choice({ type: 'none' }).toolChoice, { type: 'none' });
    assert.equal(choice({ type: 'auto' }).parallelToolCalls, true);
    assert.equal(choice({ type: 'any', disable_parallel_tool_use: true }).parallelToolCalls, false);
    refused(() => choice({ type: 'tool', name: 'other' }), 'tool_choice.name', /"other", which is not among the tools/);
    refused(() => choice({ type: 'tool' }), 'tool_choice.name', /must name the tool/);
    refused(() => choice({ type: 'auto', disable_parallel_tool_use: 1 }), 'tool_choice.disable_parallel_tool_use', /true or false/);
    refused(() => messagesRequest(body({ tool_choice: { type: 'any' } })), 'tool_choice', /no tools were given/);
    assert.deepEqual(messagesRequest(body({ tool_choice: { type: 'auto' } })).toolChoice, { type: 'none' }, 'nothing to choose from');
  });

  it('refuses thinking unless disabled, and ignores metadata and unknown fields', () => {
    refused(() => messagesRequest(body({ thinking: { type: 'enabled', budget_tokens: 1024 } })), 'thinking', /not supported/);
    assert.equal(messagesRequest(body({ thinking: { type: 'disabled' }, metadata: { user_id: 'u' }, service_tier: 'auto' })).model, 'm');
  });

  it('checks sampling ranges by field', () => {
    refused(() => messagesRequest(body({ top_k: -1 })), 'top_k', /integer >= 0/);
    refused(() => messagesRequest(body({ max_tokens: 0 })), 'max_tokens', /integer >= 1/);
  });
});

describe('countTokensRequest', () => {
  it('parses the prompt, tools included, with default sampling', () => {
    const b = { model: 'm', system: 'S', messages: hi, tools: [weather] } as CountTokensRequest;
    const req = countTokensRequest(b);
    assert.deepEqual(req.messages, [
      { role: 'system', content: 'S' },
      { role: 'user', content: 'hi' },
    ]);
    assert.equal(req.tools.length, 1);
    assert.equal(req.stream, false);
    assert.deepEqual(req.sampling, validSampling('chat', {}));
  });
});

describe('the Messages schemas', () => {
  const ajv = new Ajv({ strict: false, verbose: true });
  const messages = ajv.compile(MessagesRequest);
  const count = ajv.compile(CountTokensRequest);
  const error = (validate: typeof messages, value: unknown): ApiError => {
    assert.equal(validate(value), false);
    return validationError(validate.errors as AjvError[]);
  };

  it('requires max_tokens on messages, not on count_tokens', () => {
    const e = error(messages, { model: 'm', messages: hi });
    assert.equal(e.param, 'max_tokens');
    assert.match(e.message, /`max_tokens` is required/);
    assert.equal(count({ model: 'm', messages: hi }), true);
  });

  it('checks roles, content, ranges and tool_choice by field', () => {
    assert.equal(error(messages, body({ messages: [{ role: 'system', content: 'x' }] })).param, 'messages[0].role');
    assert.equal(error(messages, body({ messages: [{ role: 'user', content: 5 }] })).param, 'messages[0].content');
    assert.equal(error(messages, body({ messages: [] })).param, 'messages');
    assert.equal(error(messages, body({ temperature: 1.5 })).param, 'temperature');
    assert.equal(error(messages, body({ max_tokens: 1.5 })).param, 'max_tokens');
    assert.equal(error(messages, body({ stop_sequences: 'x' })).param, 'stop_sequences');
    assert.match(error(messages, body({ tool_choice: { type: 'required' } })).message, /one of auto, any, tool, none/);
    assert.equal(error(messages, body({ system: [{ type: 'image' }] })).param, 'system');
    assert.equal(messages(body({ unknown_field: 1, metadata: { user_id: 'u' } })), true);
  });
});
