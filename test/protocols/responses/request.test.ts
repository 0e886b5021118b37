/** Responses API bodies parsed into the core's chat request: input items, instructions, sampling, tools, text formats, and the errors that name each field. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../../src/core/errors.js';
import {
  chatRequest,
  conversation,
  responsesCall,
  withIds,
  type Item,
  type ResponsesCall,
} from '../../../src/protocols/responses/request.js';
import type { ResponsesRequest } from '../../../src/protocols/responses/schemas.js';

const parse = (body: Record<string, unknown>, storeByDefault = true): ResponsesCall =>
  responsesCall({ model: 'tiny', ...body } as ResponsesRequest, storeByDefault);

/** The call's items with ids from a counter, as the caller gives them once references are looked up (none here). */
function items(call: ResponsesCall): Item[] {
  let n = 0;
  return withIds(call.input, (prefix) => `${prefix}_${n++}`) as Item[];
}

function refuses(body: Record<string, unknown>, param: string, message?: RegExp): void {
  assert.throws(
    () => parse(body),
    (e: unknown) => {
      assert.ok(e instanceof ApiError, String(e));
      assert.equal(e.code, 'invalid_request');
      assert.equal(e.param, param);
      if (message !== undefined) assert.match(e.message, message);
      return true;
    },
  );
}

describe('Responses request: input', () => {
  it('reads a string input as one user message, after the instructions as a system message', () => {
    const call = parse({ input: 'hello', instructions: 'be brief' });
    const request = chatRequest(call, items(call));
    assert.deepEqual(request.messages, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hello' },
    ]);
    assert.equal(request.kind, 'chat');
    assert.equal(request.openai, null, 'a remote backend gets chat completions written from the typed request');
    assert.equal(request.includeUsage, true);
    assert.equal(request.reportUsage, true);
  });

  it('reads messages with and without `type`, string content and text parts, in every role', () => {
    const call = parse({
      input: [
        { role: 'developer', content: 'rules' },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'a' }] },
        { role: 'assistant', content: [{ type: 'output_text', text: 'b' }] },
        {
          role: 'user',
          content: [
            { type: 'input_text', text: 'c' },
            { type: 'input_text', text: 'd' },
          ],
        },
      ],
    });
    assert.deepEqual(chatRequest(call, items(call)).messages, [
      { role: 'developer', content: 'rules' },
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'c' },
          { type: 'text', text: 'd' },
        ],
      },
    ]);
  });

  it('joins function calls to the assistant message before them and reads their outputs as tool messages', () => {
    const call = parse({
      input: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: 'checking' },
        { type: 'function_call', call_id: 'call_1', name: 'weather', arguments: '{"city":"Oslo"}' },
        { type: 'function_call', call_id: 'call_2', name: 'weather', arguments: '{"city":"Rome"}' },
        { type: 'function_call_output', call_id: 'call_1', output: 'cold' },
        { type: 'function_call_output', call_id: 'call_2', output: [{ type: 'input_text', text: 'warm' }] },
        { type: 'function_call', call_id: 'call_3', name: 'time', arguments: '{}' },
      ],
    });
    assert.deepEqual(chatRequest(call, items(call)).messages, [
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: 'checking',
        toolCalls: [
          { id: 'call_1', name: 'weather', arguments: '{"city":"Oslo"}' },
          { id: 'call_2', name: 'weather', arguments: '{"city":"Rome"}' },
        ],
      },
      { role: 'tool', content: 'cold', toolCallId: 'call_1' },
      { role: 'tool', content: 'warm', toolCallId: 'call_2' },
      { role: 'assistant', content: null, toolCalls: [{ id: 'call_3', name: 'time', arguments: '{}' }] },
    ]);
  });

  it('puts a stored conversation between the instructions and the new input, and does not carry old instructions', () => {
    const history: Item[] = [
      { type: 'message', id: 'msg_a', role: 'user', content: [{ type: 'input_text', text: 'first' }] },
      { type: 'message', id: 'msg_b', role: 'assistant', content: [{ type: 'output_text', text: 'reply' }] },
    ];
    const call = parse({ input: 'second', instructions: 'new rules', previous_response_id: 'resp_1' });
    assert.equal(call.previousResponseId, 'resp_1');
    assert.deepEqual(chatRequest(call, [...history, ...items(call)]).messages, [
      { role: 'system', content: 'new rules' },
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'reply' },
      { role: 'user', content: 'second' },
    ]);
  });

  it('keeps ids the client gave, gives ids to the rest, and leaves references for the caller', () => {
    const call = parse({
      input: [
        { id: 'msg_mine', role: 'user', content: 'x' },
        { role: 'user', content: 'y' },
        { type: 'function_call_output', call_id: 'c', output: 'z' },
        { type: 'item_reference', id: 'fc_abc_1' },
      ],
    });
    assert.deepEqual(
      items(call).map((i) => [i.type, i.id]),
      [
        ['message', 'msg_mine'],
        ['message', 'msg_0'],
        ['function_call_output', 'fco_1'],
        ['item_reference', 'fc_abc_1'],
      ],
    );
  });

  it('converts items of a whole conversation the same way on their own', () => {
    assert.deepEqual(conversation([{ type: 'function_call_output', id: 'x', call_id: 'c', output: 'o' }]), [
      { role: 'tool', content: 'o', toolCallId: 'c' },
    ]);
  });

  it('refuses a request with no input, or one that makes no messages', () => {
    refuses({}, 'input', /required/);
    const call = parse({ input: [] });
    assert.throws(
      () => chatRequest(call, []),
      (e: unknown) => e instanceof ApiError && e.param === 'input',
    );
  });

  it('names the path of a bad item, part, role or argument text', () => {
    refuses({ input: [{ role: 'user', content: 'a' }, { type: 'web_search_call' }] }, 'input[1].type', /web_search_call/);
    refuses({ input: [{ role: 'tool', content: 'a' }] }, 'input[0].role');
    refuses({ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] }, 'input[0].content[0].type', /input_image/);
    refuses({ input: [{ role: 'user', content: [{ type: 'input_text' }] }] }, 'input[0].content[0].text');
    refuses({ input: [{ role: 'user', content: 3 }] }, 'input[0].content');
    refuses({ input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: '{nope' }] }, 'input[0].arguments');
    refuses({ input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }, 'input[0].call_id');
    refuses({ input: [{ type: 'function_call_output', call_id: 'c', output: [{ type: 'input_file' }] }] }, 'input[0].output[0].type');
    refuses({ input: [{ type: 'item_reference' }] }, 'input[0].id');
  });
});

describe('Responses request: sampling, tools and formats', () => {
  it("maps max_output_tokens, temperature and top_p onto the core's sampling and echoes them", () => {
    const call = parse({ input: 'x', max_output_tokens: 7, temperature: 0.5, top_p: 0.9 });
    assert.equal(call.sampling.maxTokens, 7);
    assert.equal(call.sampling.temperature, 0.5);
    assert.equal(call.sampling.topP, 0.9);
    assert.equal(call.echo.max_output_tokens, 7);
    assert.equal(call.echo.temperature, 0.5);
    const defaults = parse({ input: 'x' });
    assert.equal(defaults.sampling.maxTokens, null);
    assert.equal(defaults.echo.temperature, 1);
    assert.equal(defaults.echo.top_p, 1);
  });

  it('reads flat function tools and every tool choice, and echoes them in the Responses spelling', () => {
    const weather = { type: 'function', name: 'weather', description: 'the weather', parameters: { type: 'object' }, strict: false };
    const call = parse({ input: 'x', tools: [weather], tool_choice: { type: 'function', name: 'weather' }, parallel_tool_calls: false });
    assert.deepEqual(call.tools, [{ name: 'weather', description: 'the weather', parameters: { type: 'object' }, strict: false }]);
    assert.deepEqual(call.toolChoice, { type: 'function', name: 'weather' });
    assert.equal(call.parallelToolCalls, false);
    assert.deepEqual(call.echo.tools, [weather]);
    assert.deepEqual(call.echo.tool_choice, { type: 'function', name: 'weather' });
    assert.deepEqual(parse({ input: 'x', tools: [weather], tool_choice: 'required' }).toolChoice, { type: 'required' });
    assert.deepEqual(parse({ input: 'x', tools: [weather] }).toolChoice, { type: 'auto' });
    assert.deepEqual(parse({ input: 'x' }).toolChoice, { type: 'none' });
    assert.equal(parse({ input: 'x' }).echo.tool_choice, 'auto');
    // Strict unless the client says otherwise, as OpenAI's function tools are.
    assert.equal(parse({ input: 'x', tools: [{ type: 'function', name: 'f' }] }).tools[0]?.strict, true);
  });

  it('refuses other tool types, bad tools and a choice of a function that is not there', () => {
    refuses({ input: 'x', tools: [{ type: 'function', name: 'f' }, { type: 'web_search' }] }, 'tools[1].type', /web_search/);
    refuses({ input: 'x', tools: [{ type: 'function', name: 'bad name' }] }, 'tools[0].name');
    refuses({ input: 'x', tools: [{ type: 'function', name: 'f', parameters: 'no' }] }, 'tools[0].parameters');
    refuses({ input: 'x', tools: [{ type: 'function', name: 'f' }], tool_choice: { type: 'function', name: 'g' } }, 'tool_choice', /"g"/);
    refuses({ input: 'x', tool_choice: 'required' }, 'tool_choice');
    refuses({ input: 'x', tool_choice: 'sometimes' }, 'tool_choice');
  });

  it('maps text.format onto the response format, and echoes it', () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } } };
    const call = parse({ input: 'x', text: { format: { type: 'json_schema', name: 'thing', schema, strict: true } } });
    assert.deepEqual(call.sampling.responseFormat, { type: 'json_schema', schema });
    assert.deepEqual(call.echo.text, { format: { type: 'json_schema', name: 'thing', schema, strict: true } });
    assert.deepEqual(parse({ input: 'x', text: { format: { type: 'json_object' } } }).sampling.responseFormat, { type: 'json_object' });
    assert.deepEqual(parse({ input: 'x', text: {} }).echo.text, { format: { type: 'text' } });
    assert.deepEqual(parse({ input: 'x' }).sampling.responseFormat, { type: 'text' });
  });

  it('refuses a bad text.format, naming its field', () => {
    refuses({ input: 'x', text: { format: { type: 'yaml' } } }, 'text.format.type');
    refuses({ input: 'x', text: { format: { type: 'json_schema', name: 'n' } } }, 'text.format.schema');
    refuses({ input: 'x', text: { format: { type: 'json_schema', name: 'a b', schema: {} } } }, 'text.format.name');
  });

  it('stores unless told not to, with the configured default when the body leaves it out', () => {
    assert.equal(parse({ input: 'x' }).store, true);
    assert.equal(parse({ input: 'x', store: false }).store, false);
    assert.equal(parse({ input: 'x' }, false).store, false);
    assert.equal(parse({ input: 'x', store: true }, false).store, true);
    assert.equal(parse({ input: 'x', store: false }).echo.store, false);
  });

  it('echoes metadata, user and previous_response_id, with OpenAI defaults when absent', () => {
    const call = parse({ input: 'x', metadata: { k: 'v' }, user: 'u1', previous_response_id: 'resp_9' });
    assert.deepEqual(call.echo.metadata, { k: 'v' });
    assert.equal(call.echo.user, 'u1');
    assert.equal(call.echo.previous_response_id, 'resp_9');
    const bare = parse({ input: 'x' });
    assert.deepEqual(bare.echo.metadata, {});
    assert.equal(bare.echo.previous_response_id, null);
    assert.equal(bare.stream, false);
    assert.equal(parse({ input: 'x', stream: true }).stream, true);
  });

  it('refuses what it cannot honour rather than ignore it', () => {
    refuses({ input: 'x', background: true }, 'background');
    refuses({ input: 'x', conversation: 'conv_1' }, 'conversation');
    refuses({ input: 'x', prompt: { id: 'pmpt_1' } }, 'prompt');
    assert.equal(parse({ input: 'x', background: false }).model, 'tiny');
  });
});
