/** The Messages API body a chat request is sent to an anthropic backend's upstream as (backends/anthropic/request-body.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countTokensBody, messagesBody } from '../../src/backends/anthropic/request-body.js';
import { ApiError } from '../../src/core/errors.js';
import type { ChatMessage, Sampling } from '../../src/core/text.js';
import { chatRequest } from './text-requests.js';

const hi: ChatMessage[] = [{ role: 'user', content: 'Hello' }];

/** The 400 `body` throws, as [param, message]. */
function refused(body: () => unknown): [string | null, string] {
  try {
    body();
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.code, 'invalid_request');
    return [err.param, err.message];
  }
  assert.fail('expected a 400');
}

describe('the Messages API body', () => {
  it("sends an Anthropic client's body as it came, with the upstream's model name", () => {
    const anthropic = {
      model: 'alias',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'hi' }],
      metadata: { user_id: 'u1' },
      stream: true,
    };
    const body = messagesBody(chatRequest('alias', hi, {}, { anthropic, stream: true }), 'claude-sonnet-4-5', 4096);
    assert.deepEqual(body, { ...anthropic, model: 'claude-sonnet-4-5' });
    assert.equal(anthropic.model, 'alias', "the client's body is not changed");
  });

  it('writes a plain chat with the configured max_tokens when the request sets none, and only sampling that differs from the defaults', () => {
    assert.deepEqual(messagesBody(chatRequest('m', hi), 'up', 4096), {
      model: 'up',
      max_tokens: 4096,
      messages: [{ role: 'user', content: 'Hello' }],
    });
    const sampling: Partial<Sampling> = { maxTokens: 20, temperature: 0.5, topP: 0.9, topK: 40, stop: ['###', 'END'] };
    assert.deepEqual(messagesBody(chatRequest('m', hi, sampling, { stream: true }), 'up', 4096), {
      model: 'up',
      max_tokens: 20,
      messages: [{ role: 'user', content: 'Hello' }],
      stream: true,
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      stop_sequences: ['###', 'END'],
    });
  });

  it('moves system and developer messages to `system`: one as a string, several as text blocks in order', () => {
    const one = messagesBody(chatRequest('m', [{ role: 'system', content: 'Be brief.' }, ...hi]), 'up', 1);
    assert.equal(one.system, 'Be brief.');
    assert.deepEqual(one.messages, [{ role: 'user', content: 'Hello' }]);
    const several = messagesBody(
      chatRequest('m', [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
      ]),
      'up',
      1,
    );
    assert.deepEqual(several.system, [
      { type: 'text', text: 'Be brief.' },
      { type: 'text', text: 'Answer in French.' },
    ]);
    assert.deepEqual(several.messages, [{ role: 'user', content: 'Hello' }]);
  });

  it('writes text parts as text blocks, and refuses a part that is not text, naming it', () => {
    const body = messagesBody(
      chatRequest('m', [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'a' },
            { type: 'text', text: 'b' },
          ],
        },
      ]),
      'up',
      1,
    );
    assert.deepEqual(body.messages, [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'a' },
          { type: 'text', text: 'b' },
        ],
      },
    ]);
    const [param, message] = refused(() =>
      messagesBody(chatRequest('m', [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url' }] }]), 'up', 1),
    );
    assert.equal(param, 'messages[0].content[1].type');
    assert.match(message, /image_url/);
  });

  it('writes calls as tool_use blocks with their parsed input, and a run of tool results as one user message of tool_result blocks', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: null,
        toolCalls: [
          { id: 'call_1', name: 'weather', arguments: '{"city":"Paris"}' },
          { id: 'call_2', name: 'weather', arguments: '{"city":"Rome"}' },
        ],
      },
      { role: 'tool', content: '18C', toolCallId: 'call_1' },
      { role: 'tool', content: [{ type: 'text', text: '24C' }], toolCallId: 'call_2' },
      { role: 'assistant', content: 'Paris 18C, Rome 24C.', toolCalls: [] },
      { role: 'user', content: 'And Oslo?' },
      { role: 'assistant', content: 'Checking.', toolCalls: [{ id: 'call_3', name: 'weather', arguments: '{"city":"Oslo"}' }] },
      { role: 'tool', content: null, toolCallId: 'call_3' },
    ];
    assert.deepEqual(messagesBody(chatRequest('m', messages), 'up', 1).messages, [
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'call_1', name: 'weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'weather', input: { city: 'Rome' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '18C' },
          { type: 'tool_result', tool_use_id: 'call_2', content: [{ type: 'text', text: '24C' }] },
        ],
      },
      { role: 'assistant', content: 'Paris 18C, Rome 24C.' },
      { role: 'user', content: 'And Oslo?' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'call_3', name: 'weather', input: { city: 'Oslo' } },
        ],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_3' }] },
    ]);
  });

  it('refuses arguments that are not a JSON object, a tool message without its call id, and the legacy function role', () => {
    const call = (args: string): ChatMessage => ({
      role: 'assistant',
      content: null,
      toolCalls: [{ id: 'c', name: 'f', arguments: args }],
    });
    assert.equal(
      refused(() => messagesBody(chatRequest('m', [...hi, call('[1, 2]')]), 'up', 1))[0],
      'messages[1].tool_calls[0].function.arguments',
    );
    assert.equal(
      refused(() => messagesBody(chatRequest('m', [...hi, call('null')]), 'up', 1))[0],
      'messages[1].tool_calls[0].function.arguments',
    );
    assert.equal(
      refused(() => messagesBody(chatRequest('m', [...hi, { role: 'tool', content: 'x' }]), 'up', 1))[0],
      'messages[1].tool_call_id',
    );
    assert.equal(
      refused(() => messagesBody(chatRequest('m', [...hi, { role: 'function', content: 'x' }]), 'up', 1))[0],
      'messages[1].role',
    );
  });

  it('writes tools with their input_schema (an empty object schema when none was given) and each tool choice', () => {
    const tools = [
      {
        name: 'weather',
        description: 'Weather of a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } } },
        strict: true,
      },
      { name: 'now', description: null, parameters: null, strict: false },
    ];
    const body = (extra: object) => messagesBody(chatRequest('m', hi, {}, { tools, ...extra }), 'up', 1);
    assert.deepEqual(body({ toolChoice: { type: 'auto' } }).tools, [
      { name: 'weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
      { name: 'now', input_schema: { type: 'object', properties: {} } },
    ]);
    assert.deepEqual(body({ toolChoice: { type: 'auto' } }).tool_choice, { type: 'auto' });
    assert.deepEqual(body({ toolChoice: { type: 'required' } }).tool_choice, { type: 'any' });
    assert.deepEqual(body({ toolChoice: { type: 'function', name: 'now' } }).tool_choice, { type: 'tool', name: 'now' });
    assert.deepEqual(body({ toolChoice: { type: 'none' } }).tool_choice, { type: 'none' });
    assert.deepEqual(body({ toolChoice: { type: 'required' }, parallelToolCalls: false }).tool_choice, {
      type: 'any',
      disable_parallel_tool_use: true,
    });
    assert.deepEqual(body({ toolChoice: { type: 'none' }, parallelToolCalls: false }).tool_choice, { type: 'none' });
    assert.equal(messagesBody(chatRequest('m', hi), 'up', 1).tools, undefined, 'no tools: no tools field and no tool_choice');
  });

  it('refuses what the Messages API cannot do, naming the field: temperature above 1, JSON modes, log probabilities, several choices', () => {
    const refusal = (sampling: Partial<Sampling>) => refused(() => messagesBody(chatRequest('m', hi, sampling), 'up', 1));
    const [param, message] = refusal({ temperature: 1.5 });
    assert.equal(param, 'temperature');
    assert.match(message, /<= 1.*got 1\.5/);
    assert.deepEqual(messagesBody(chatRequest('m', hi, { temperature: 1 }), 'up', 1).temperature, undefined);
    assert.equal(messagesBody(chatRequest('m', hi, { temperature: 0 }), 'up', 1).temperature, 0);
    assert.equal(refusal({ responseFormat: { type: 'json_object' } })[0], 'response_format');
    assert.equal(refusal({ responseFormat: { type: 'json_schema', schema: { type: 'object' } } })[0], 'response_format');
    assert.equal(refusal({ logprobs: 0 })[0], 'logprobs');
    assert.equal(refusal({ n: 2 })[0], 'n');
    assert.equal(refusal({ seed: 7 })[0], 'seed');
    assert.equal(refusal({ presencePenalty: 0.5 })[0], 'presence_penalty');
    assert.equal(refusal({ frequencyPenalty: 0.5 })[0], 'frequency_penalty');
    assert.equal(refusal({ minP: 0.1 })[0], 'min_p');
    assert.equal(refusal({ logitBias: { '42': 5 } })[0], 'logit_bias');
  });

  it('counts tokens of the prompt only: model, system, messages and tools, without max_tokens or sampling', () => {
    const tools = [{ name: 'now', description: null, parameters: null, strict: false }];
    const request = chatRequest(
      'm',
      [{ role: 'system', content: 'Be brief.' }, ...hi],
      { temperature: 0.2, stop: ['x'] },
      {
        tools,
        toolChoice: { type: 'auto' },
        stream: true,
      },
    );
    assert.deepEqual(countTokensBody(request, 'up'), {
      model: 'up',
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'Hello' }],
      tools: [{ name: 'now', input_schema: { type: 'object', properties: {} } }],
      tool_choice: { type: 'auto' },
    });
    const anthropic = { model: 'alias', messages: [{ role: 'user', content: 'hi' }], system: 'S', max_tokens: 5 };
    assert.deepEqual(countTokensBody(chatRequest('alias', hi, {}, { anthropic }), 'up'), {
      model: 'up',
      messages: [{ role: 'user', content: 'hi' }],
      system: 'S',
    });
  });
});
