/** validSampling: OpenAI's sampling fields checked once for every transport, each error naming its field, and the defaults filled in. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../src/core/errors.js';
import { validSampling, type SamplingInput } from '../../src/core/sampling.js';

/** Asserts that `input` is refused with invalid_request naming `param`, and a message matching `message`. */
function refused(kind: 'chat' | 'completion', input: SamplingInput, param: string, message: RegExp): void {
  assert.throws(
    () => validSampling(kind, input),
    (err: unknown) => {
      assert.ok(err instanceof ApiError, String(err));
      assert.equal(err.code, 'invalid_request');
      assert.equal(err.status, 400);
      assert.equal(err.param, param, err.message);
      assert.match(err.message, message);
      return true;
    },
    JSON.stringify(input),
  );
}

describe('validSampling', () => {
  it("fills in OpenAI's defaults when nothing is given", () => {
    const expected = {
      maxTokens: null,
      temperature: 1,
      topP: 1,
      topK: 0,
      minP: 0,
      seed: null,
      presencePenalty: 0,
      frequencyPenalty: 0,
      logitBias: {},
      stop: [],
      logprobs: null,
      responseFormat: { type: 'text' },
      n: 1,
      bestOf: 1,
      echo: false,
      suffix: null,
    };
    assert.deepEqual(validSampling('chat', {}), expected);
    assert.deepEqual(validSampling('completion', {}), expected);
  });

  it('counts null as not given', () => {
    const nulls: SamplingInput = {
      max_tokens: null,
      max_completion_tokens: null,
      temperature: null,
      top_p: null,
      top_k: null,
      min_p: null,
      seed: null,
      presence_penalty: null,
      frequency_penalty: null,
      logit_bias: null,
      stop: null,
      logprobs: null,
      top_logprobs: null,
      response_format: null,
      n: null,
      best_of: null,
      echo: null,
      suffix: null,
    };
    assert.deepEqual(validSampling('chat', nulls), validSampling('chat', {}));
    assert.deepEqual(validSampling('completion', nulls), validSampling('completion', {}));
  });

  it('keeps the values given', () => {
    const s = validSampling('completion', {
      max_tokens: 12,
      temperature: 0,
      top_p: 0.5,
      top_k: 40,
      min_p: 0.1,
      seed: -3,
      presence_penalty: 1.5,
      frequency_penalty: -2,
      logit_bias: { '17': -100, '4': 2.5 },
      stop: ['\n', 'END'],
      logprobs: 3,
      response_format: { type: 'json_object' },
      n: 2,
      best_of: 3,
      echo: true,
      suffix: '!',
    });
    assert.deepEqual(s, {
      maxTokens: 12,
      temperature: 0,
      topP: 0.5,
      topK: 40,
      minP: 0.1,
      seed: -3,
      presencePenalty: 1.5,
      frequencyPenalty: -2,
      logitBias: { '17': -100, '4': 2.5 },
      stop: ['\n', 'END'],
      logprobs: 3,
      responseFormat: { type: 'json_object' },
      n: 2,
      bestOf: 3,
      echo: true,
      suffix: '!',
    });
  });

  it('takes max_completion_tokens over max_tokens in chat, and only max_tokens in completions', () => {
    assert.equal(validSampling('chat', { max_completion_tokens: 3, max_tokens: 50 }).maxTokens, 3);
    assert.equal(validSampling('chat', { max_tokens: 50 }).maxTokens, 50);
    assert.equal(validSampling('chat', { max_completion_tokens: 3, max_tokens: null }).maxTokens, 3);
    assert.equal(validSampling('completion', { max_completion_tokens: 3, max_tokens: 50 }).maxTokens, 50);
  });

  it('leaves the completion-only fields at their defaults in chat', () => {
    const s = validSampling('chat', { best_of: 4, echo: true, suffix: 'x' });
    assert.deepEqual([s.bestOf, s.echo, s.suffix], [1, false, null]);
  });

  it('takes a single stop string as one sequence', () => {
    assert.deepEqual(validSampling('chat', { stop: 'END' }).stop, ['END']);
  });

  it('turns chat logprobs into the number of alternatives: 0 unless top_logprobs says', () => {
    assert.equal(validSampling('chat', { logprobs: true }).logprobs, 0);
    assert.equal(validSampling('chat', { logprobs: true, top_logprobs: 5 }).logprobs, 5);
    assert.equal(validSampling('chat', { logprobs: false }).logprobs, null);
    assert.equal(validSampling('completion', { logprobs: 0 }).logprobs, 0);
  });

  it('parses a JSON Schema response format', () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } } };
    assert.deepEqual(
      validSampling('chat', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } }).responseFormat,
      {
        type: 'json_schema',
        schema,
      },
    );
    assert.deepEqual(validSampling('chat', { response_format: { type: 'text' } }).responseFormat, { type: 'text' });
  });

  const cases: Array<[string, 'chat' | 'completion', SamplingInput, string, RegExp]> = [
    ['temperature above 2', 'chat', { temperature: 2.5 }, 'temperature', /^`temperature` must be a number in \[0, 2\], got 2.5$/],
    ['temperature of the wrong type', 'chat', { temperature: 'hot' }, 'temperature', /must be a number in \[0, 2\], got "hot"/],
    ['temperature NaN', 'chat', { temperature: Number.NaN }, 'temperature', /must be a number in \[0, 2\]/],
    ['top_p above 1', 'chat', { top_p: 1.5 }, 'top_p', /`top_p` must be a number in \[0, 1\], got 1.5/],
    ['top_k below 0', 'chat', { top_k: -1 }, 'top_k', /`top_k` must be an integer >= 0, got -1/],
    ['top_k not an integer', 'completion', { top_k: 1.5 }, 'top_k', /`top_k` must be an integer >= 0/],
    ['min_p above 1', 'chat', { min_p: 2 }, 'min_p', /`min_p` must be a number in \[0, 1\], got 2/],
    ['seed not an integer', 'chat', { seed: 1.5 }, 'seed', /`seed` must be an integer, got 1.5/],
    ['presence_penalty out of range', 'chat', { presence_penalty: 3 }, 'presence_penalty', /must be a number in \[-2, 2\], got 3/],
    ['frequency_penalty out of range', 'chat', { frequency_penalty: -2.1 }, 'frequency_penalty', /must be a number in \[-2, 2\]/],
    ['max_tokens of 0', 'chat', { max_tokens: 0 }, 'max_tokens', /`max_tokens` must be an integer >= 1, got 0/],
    ['max_completion_tokens of 0', 'chat', { max_completion_tokens: 0 }, 'max_completion_tokens', /must be an integer >= 1/],
    ['max_tokens bad beside a good max_completion_tokens', 'chat', { max_completion_tokens: 5, max_tokens: 'x' }, 'max_tokens', /integer/],
    ['n of 0', 'chat', { n: 0 }, 'n', /`n` must be an integer in \[1, 128\], got 0/],
    ['best_of of 0', 'completion', { best_of: 0 }, 'best_of', /`best_of` must be an integer >= 1/],
    ['echo not a boolean', 'completion', { echo: 'yes' }, 'echo', /`echo` must be true or false/],
    ['suffix not a string', 'completion', { suffix: 3 }, 'suffix', /`suffix` must be a string/],
    ['an empty stop string', 'chat', { stop: '' }, 'stop', /^`stop` sequences must not be empty$/],
    ['an empty stop sequence in a list', 'chat', { stop: ['a', ''] }, 'stop[1]', /^`stop` sequences must not be empty$/],
    ['a stop sequence that is not a string', 'chat', { stop: ['a', 7] }, 'stop[1]', /`stop\[1\]` must be a string/],
    ['five stop sequences', 'chat', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /up to 4 strings/],
    ['chat logprobs not a boolean', 'chat', { logprobs: 2 }, 'logprobs', /^`logprobs` must be true or false$/],
    ['top_logprobs without logprobs', 'chat', { top_logprobs: 2 }, 'top_logprobs', /^`top_logprobs` requires `logprobs: true`$/],
    ['top_logprobs with logprobs false', 'chat', { logprobs: false, top_logprobs: 2 }, 'top_logprobs', /requires `logprobs: true`/],
    ['top_logprobs above 20', 'chat', { logprobs: true, top_logprobs: 21 }, 'top_logprobs', /an integer in \[0, 20\], got 21/],
    ['completion logprobs above 5', 'completion', { logprobs: 6 }, 'logprobs', /`logprobs` must be an integer in \[0, 5\], got 6/],
    ['completion logprobs true', 'completion', { logprobs: true }, 'logprobs', /an integer in \[0, 5\], got true/],
    ['logit_bias an array', 'chat', { logit_bias: [1] }, 'logit_bias', /must be an object mapping token ids to numbers in \[-100, 100\]/],
    [
      'a logit_bias out of range',
      'chat',
      { logit_bias: { '5': 101 } },
      'logit_bias.5',
      /`logit_bias.5` must be a number in \[-100, 100\], got 101/,
    ],
    ['a logit_bias not a number', 'chat', { logit_bias: { '5': 'x' } }, 'logit_bias.5', /got "x"/],
    [
      'an unknown response format',
      'chat',
      { response_format: { type: 'xml' } },
      'response_format.type',
      /one of text, json_object, json_schema/,
    ],
    ['a response format that is not an object', 'chat', { response_format: 'json' }, 'response_format.type', /one of text/],
    [
      'a JSON Schema format without a schema',
      'chat',
      { response_format: { type: 'json_schema', json_schema: { name: 'x' } } },
      'response_format.json_schema.schema',
      /must be a JSON Schema object/,
    ],
  ];
  for (const [name, kind, input, param, message] of cases) {
    it(`refuses ${name}, naming ${param}`, () => refused(kind, input, param, message));
  }

  it('cuts a long value short in the message', () => {
    assert.throws(
      () => validSampling('chat', { temperature: 'x'.repeat(1000) }),
      (err: ApiError) => err.message.length < 200,
    );
  });

  it('does not check logit_bias ids against a vocabulary (the model does)', () => {
    assert.deepEqual(validSampling('chat', { logit_bias: { '99999999': 1 } }).logitBias, { '99999999': 1 });
  });
});
