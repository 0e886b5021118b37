/** The pure parts of llama function calling: the chat history a template renders, and the bounds that keep a forced call within budget. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../src/core/errors.js';
import { boundedSchema, chatHistory } from '../../src/backends/llama/tools.js';

describe('chatHistory', () => {
  it("gives an assistant's calls the results of the tool messages that answer them, by id, and continues that turn", () => {
    const history = chatHistory([
      { role: 'system', content: 'brief' },
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: 'checking',
        toolCalls: [
          { id: 'a', name: 'get_weather', arguments: '{"city":"Paris"}' },
          { id: 'b', name: 'get_weather', arguments: '{"city":"Rome"}' },
        ],
      },
      { role: 'tool', content: 'rain', toolCallId: 'b' },
      { role: 'tool', content: [{ type: 'text', text: 'sun' }], toolCallId: 'a' },
    ]);
    assert.deepEqual(history, [
      { type: 'system', text: 'brief' },
      { type: 'user', text: 'weather?' },
      {
        type: 'model',
        response: [
          'checking',
          { type: 'functionCall', name: 'get_weather', params: { city: 'Paris' }, result: 'sun' },
          { type: 'functionCall', name: 'get_weather', params: { city: 'Rome' }, result: 'rain' },
        ],
      },
    ]);
  });

  it("starts the model's own turn after a plain conversation", () => {
    assert.deepEqual(chatHistory([{ role: 'user', content: 'hi' }]), [
      { type: 'user', text: 'hi' },
      { type: 'model', response: [] },
    ]);
  });

  it('refuses a result for a call nobody made, and a call without a result, naming the message', () => {
    const refused = (messages: Parameters<typeof chatHistory>[0]): string | null => {
      try {
        chatHistory(messages);
        return null;
      } catch (err) {
        assert.ok(err instanceof ApiError);
        return err.param;
      }
    };
    assert.equal(
      refused([
        { role: 'user', content: 'x' },
        { role: 'tool', content: 'y', toolCallId: 'z' },
      ]),
      'messages[1].tool_call_id',
    );
    assert.equal(
      refused([
        { role: 'user', content: 'x' },
        { role: 'assistant', content: null, toolCalls: [{ id: 'c', name: 'f', arguments: '{}' }] },
        { role: 'user', content: 'next' },
      ]),
      'messages[1].tool_calls[0]',
    );
  });
});

describe('boundedSchema', () => {
  it('bounds strings and arrays the schema leaves open so the whole value fits the budget, keeping its own bounds', () => {
    const schema = {
      type: 'object',
      properties: {
        name: { type: 'string' },
        code: { type: 'string', maxLength: 3 },
        tags: { type: 'array', items: { type: 'string' } },
        unit: { type: 'string', enum: ['c', 'f'] },
      },
    };
    const bounded = boundedSchema(schema, 200) as { properties: Record<string, Record<string, unknown>> };
    const { name, code, tags, unit } = bounded.properties as Record<string, Record<string, unknown>>;
    assert.equal(code?.maxLength, 3);
    assert.deepEqual(unit, { type: 'string', enum: ['c', 'f'] });
    const nameMax = name?.maxLength as number;
    const items = tags?.maxItems as number;
    const itemMax = (tags?.items as { maxLength: number }).maxLength;
    assert.ok(nameMax > 0 && items > 0 && itemMax >= 0);
    // Worst case written out: every string and array at its bound, with quotes, separators and names.
    const worst = JSON.stringify({
      name: 'x'.repeat(nameMax),
      code: 'xxx',
      tags: Array.from({ length: items }, () => 'x'.repeat(itemMax)),
      unit: 'c',
    });
    assert.ok(worst.length <= 200 + 20, `${worst.length} characters`);
    // The schema itself is not changed.
    assert.equal((schema.properties.name as Record<string, unknown>).maxLength, undefined);
  });

  it('bounds a nullable string as a string', () => {
    const bounded = boundedSchema({ type: ['string', 'null'] }, 40) as { maxLength: number };
    assert.equal(bounded.maxLength, 38);
  });

  it('keeps a minimum length above the share', () => {
    const bounded = boundedSchema({ type: 'string', minLength: 50 }, 10) as { maxLength: number };
    assert.equal(bounded.maxLength, 50);
  });
});
