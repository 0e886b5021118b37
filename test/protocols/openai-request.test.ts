/** OpenAI chat and completion bodies parsed into the core's typed requests: sampling, usage, tools, messages and the body kept for pass-through. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refused } from '../helpers/text.js';
import { validSampling } from '../../src/core/sampling.js';
import { chatRequest, completionRequest } from '../../src/protocols/openai/request.js';
import type { ChatRequest } from '../../src/protocols/openai/schemas.js';

const hi = [{ role: 'user', content: 'hi' }];
const chat = (extra: Record<string, unknown> = {}): ChatRequest => ({ model: 'm', messages: hi, ...extra }) as ChatRequest;

describe('chatRequest', () => {
  it('parses a minimal body with every default', () => {
    const body = chat();
    const req = chatRequest(body);
    assert.deepEqual(req, {
      kind: 'chat',
      model: 'm',
      stream: false,
      sampling: validSampling('chat', {}),
      includeUsage: false,
      reportUsage: false,
      tools: [],
      toolChoice: { type: 'none' },
      parallelToolCalls: true,
      openai: body,
      anthropic: null,
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(req.openai, body, 'the very body, for pass-through');
  });

  it('streams only for `stream: true`, and includes usage only when asked', () => {
    assert.equal(chatRequest(chat({ stream: null })).stream, false);
    const req = chatRequest(chat({ stream: true, stream_options: { include_usage: true } }));
    assert.equal(req.stream, true);
    assert.equal(req.includeUsage, true);
    assert.equal(chatRequest(chat({ stream: true, stream_options: null })).includeUsage, false);
    assert.equal(req.reportUsage, false);
  });

  it('checks sampling with the chat rules, fields outside the schema included', () => {
    const req = chatRequest(chat({ max_completion_tokens: 3, max_tokens: 9, top_k: 5, logprobs: true, top_logprobs: 2 }));
    assert.equal(req.sampling.maxTokens, 3);
    assert.equal(req.sampling.topK, 5);
    assert.equal(req.sampling.logprobs, 2);
    refused(() => chatRequest(chat({ top_k: -1 })), 'top_k', /integer >= 0/);
  });

  it('refuses n > 1 when streaming, and allows it otherwise', () => {
    refused(() => chatRequest(chat({ n: 2, stream: true })), 'n', /^`n` must be 1 when streaming$/);
    assert.equal(chatRequest(chat({ n: 2 })).sampling.n, 2);
    assert.equal(chatRequest(chat({ n: 1, stream: true })).sampling.n, 1);
  });

  it('gives messages a null content when none was sent, and keeps content parts', () => {
    const parts = [{ type: 'text', text: 'look' }, { type: 'image_url' }];
    const req = chatRequest(
      chat({
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'assistant', content: null },
          { role: 'function' },
          { role: 'user', content: parts },
        ],
      }),
    );
    assert.deepEqual(req.messages, [
      { role: 'system', content: 'be brief' },
      { role: 'assistant', content: null },
      { role: 'function', content: null },
      { role: 'user', content: parts },
    ]);
  });

  it('refuses a text part without its text', () => {
    refused(
      () =>
        chatRequest(
          chat({
            messages: [
              { role: 'user', content: 'x' },
              { role: 'user', content: [{ type: 'text', text: 3 }] },
            ],
          }),
        ),
      'messages[1].content[0].text',
      /must be a string/,
    );
  });

  it('reads tool_choice, the deprecated function_call and parallel_tool_calls, checking a named function against the tools', () => {
    const tools = [{ type: 'function', function: { name: 'f' } }];
    assert.deepEqual(chatRequest(chat({ tools })).toolChoice, { type: 'auto' }, 'auto by default with tools');
    assert.deepEqual(chatRequest(chat()).toolChoice, { type: 'none' }, 'none without tools');
    for (const choice of ['none', 'auto', 'required'] as const)
      assert.deepEqual(chatRequest(chat({ tools, tool_choice: choice })).toolChoice, { type: choice });
    assert.deepEqual(chatRequest(chat({ tools, tool_choice: { type: 'function', function: { name: 'f' } } })).toolChoice, {
      type: 'function',
      name: 'f',
    });
    assert.deepEqual(chatRequest(chat({ functions: [{ name: 'f' }], function_call: { name: 'f' } })).toolChoice, {
      type: 'function',
      name: 'f',
    });
    assert.equal(chatRequest(chat({ tools, parallel_tool_calls: false })).parallelToolCalls, false);
    refused(
      () => chatRequest(chat({ tools, tool_choice: { type: 'function', function: { name: 'g' } } })),
      'tool_choice',
      /"g", which is not among the tools/,
    );
    refused(() => chatRequest(chat({ tool_choice: 'required' })), 'tool_choice', /no tools were given/);
    refused(() => chatRequest(chat({ tools, tool_choice: 'always' })), 'tool_choice', /must be "none", "auto", "required"/);
    refused(() => chatRequest(chat({ tools, parallel_tool_calls: 'yes' })), 'parallel_tool_calls', /true or false/);
  });

  it("reads an assistant's tool calls and the tool messages that answer them, naming each bad field", () => {
    const call = { id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } };
    const req = chatRequest(
      chat({
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', tool_call_id: 'c1', content: 'done' },
        ],
      }),
    );
    assert.deepEqual(req.messages.slice(1), [
      { role: 'assistant', content: null, toolCalls: [{ id: 'c1', name: 'f', arguments: '{"a":1}' }] },
      { role: 'tool', content: 'done', toolCallId: 'c1' },
    ]);
    const bad = (m: object): ChatRequest => chat({ messages: [{ role: 'user', content: 'go' }, m] });
    refused(() => chatRequest(bad({ role: 'tool', content: 'x' })), 'messages[1].tool_call_id', /the id of the call/);
    refused(
      () => chatRequest(bad({ role: 'user', content: 'x', tool_calls: [call] })),
      'messages[1].tool_calls',
      /only allowed on assistant/,
    );
    refused(
      () => chatRequest(bad({ role: 'assistant', tool_calls: [{ ...call, function: { name: 'f', arguments: '{a' } }] })),
      'messages[1].tool_calls[0].function.arguments',
      /as JSON text/,
    );
    refused(() => chatRequest(bad({ role: 'assistant', tool_calls: [{ ...call, id: 3 }] })), 'messages[1].tool_calls[0].id', /string/);
  });

  it('parses function tools, keeping the body for pass-through', () => {
    const tools = [
      { type: 'function', function: { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object' }, strict: true } },
      { type: 'function', function: { name: 'now' } },
    ];
    const req = chatRequest(chat({ tools, tool_choice: 'auto' }));
    assert.deepEqual(req.tools, [
      { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object' }, strict: true },
      { name: 'now', description: null, parameters: null, strict: false },
    ]);
    assert.equal(req.openai?.tools, tools);
    assert.equal(req.openai?.tool_choice, 'auto');
    assert.deepEqual(chatRequest(chat({ tools: null })).tools, []);
  });

  const malformed: Array<[string, unknown, string]> = [
    ['tools not an array', { type: 'function' }, 'tools'],
    ['a tool not an object', ['get_weather'], 'tools[0]'],
    ['a tool of another type', [{ type: 'retrieval', function: { name: 'x' } }], 'tools[0].type'],
    ['a tool without its function', [{ type: 'function', function: { name: 'a' } }, { type: 'function' }], 'tools[1].function'],
    ['a function without a name', [{ type: 'function', function: {} }], 'tools[0].function.name'],
    ['a function name with spaces', [{ type: 'function', function: { name: 'get weather' } }], 'tools[0].function.name'],
    ['a description not a string', [{ type: 'function', function: { name: 'a', description: 1 } }], 'tools[0].function.description'],
    ['parameters not an object', [{ type: 'function', function: { name: 'a', parameters: [] } }], 'tools[0].function.parameters'],
    ['strict not a boolean', [{ type: 'function', function: { name: 'a', strict: 'yes' } }], 'tools[0].function.strict'],
  ];
  for (const [name, tools, param] of malformed) {
    it(`refuses ${name}, naming ${param}`, () => refused(() => chatRequest(chat({ tools })), param, /`tools/));
  }

  it('reads the deprecated `functions` as function tools after `tools`, and names their fields', () => {
    const req = chatRequest(
      chat({ tools: [{ type: 'function', function: { name: 'a' } }], functions: [{ name: 'b', parameters: { type: 'object' } }] }),
    );
    assert.deepEqual(
      req.tools.map((t) => [t.name, t.parameters]),
      [
        ['a', null],
        ['b', { type: 'object' }],
      ],
    );
    refused(() => chatRequest(chat({ functions: { name: 'b' } })), 'functions', /`functions`/);
    refused(() => chatRequest(chat({ functions: [{ name: 'ok' }, { name: 'no way' }] })), 'functions[1].name', /`functions\[1\]\.name`/);
  });
});

describe('completionRequest', () => {
  it('parses the prompt and the completion sampling rules', () => {
    const body = { model: 'm', prompt: [1, 2, 3], logprobs: 2, echo: true, max_completion_tokens: 4, max_tokens: 7, tools: 'ignored' };
    const req = completionRequest(body as Parameters<typeof completionRequest>[0]);
    assert.equal(req.kind, 'completion');
    assert.deepEqual(req.prompt, [1, 2, 3]);
    assert.equal(req.sampling.logprobs, 2);
    assert.equal(req.sampling.echo, true);
    assert.equal(req.sampling.maxTokens, 7);
    assert.deepEqual(req.tools, []);
    assert.equal(req.openai, body);
    assert.equal(req.stream, false);
    assert.equal(req.includeUsage, false);
  });

  it('streams with usage when asked, and refuses out-of-range logprobs', () => {
    const req = completionRequest({ model: 'm', prompt: 'x', stream: true, stream_options: { include_usage: true } });
    assert.equal(req.stream, true);
    assert.equal(req.includeUsage, true);
    refused(
      () => completionRequest({ model: 'm', prompt: 'x', logprobs: 6 } as Parameters<typeof completionRequest>[0]),
      'logprobs',
      /\[0, 5\]/,
    );
  });
});
