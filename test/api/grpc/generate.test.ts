/** A gRPC ChatRequest parsed into the core's ChatRequest: what it asks for, and how a mistake is refused (worded as over HTTP). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chatRequest, type ChatRequestIn } from '../../../src/api/grpc/generate.js';
import { ApiError } from '../../../src/core/errors.js';

const user = [{ role: 'user', content: 'hi' }];

/** The ApiError that parsing `req` throws. */
function refusal(req: ChatRequestIn): ApiError {
  try {
    chatRequest(req);
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    return err;
  }
  assert.fail('the request was accepted');
}

describe('gRPC chatRequest', () => {
  it('asks for a stream that ends with usage, with no tools and no OpenAI body', () => {
    const req = chatRequest({ model: 'chat', messages: [{ role: 'system', content: 'be brief' }, ...user] });
    assert.equal(req.kind, 'chat');
    assert.equal(req.model, 'chat');
    assert.deepEqual(req.messages, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
    ]);
    assert.equal(req.stream, true);
    assert.equal(req.includeUsage, true);
    assert.equal(req.reportUsage, true);
    assert.deepEqual(req.tools, []);
    assert.equal(req.openai, null);
  });

  it('reads an unset content as empty text', () => {
    assert.deepEqual(chatRequest({ model: 'chat', messages: [{ role: 'assistant' }] }).messages, [{ role: 'assistant', content: '' }]);
  });

  it('takes the sampling fields it is given, and the defaults for the rest', () => {
    const set = chatRequest({ model: 'chat', messages: user, max_tokens: 16, temperature: 0.5, top_p: 0.25, stop: ['\n'], seed: '42' });
    assert.equal(set.sampling.maxTokens, 16);
    assert.equal(set.sampling.temperature, 0.5);
    assert.equal(set.sampling.topP, 0.25);
    assert.deepEqual(set.sampling.stop, ['\n']);
    assert.equal(set.sampling.seed, 42);
    // proto3 cannot leave a repeated field unset: no stop texts is the default.
    const unset = chatRequest({ model: 'chat', messages: user, stop: [] });
    assert.equal(unset.sampling.maxTokens, null);
    assert.equal(unset.sampling.temperature, 1);
    assert.equal(unset.sampling.seed, null);
    assert.deepEqual(unset.sampling.stop, []);
  });

  it('refuses a missing or empty model, and no messages, naming the field', () => {
    for (const model of [undefined, '']) {
      const err = refusal({ model, messages: user });
      assert.equal(err.code, 'invalid_request');
      assert.equal(err.param, 'model');
      assert.equal(err.message, '`model` must NOT have fewer than 1 characters, got ""');
    }
    for (const messages of [undefined, []]) {
      const err = refusal({ model: 'chat', messages });
      assert.equal(err.param, 'messages');
      assert.equal(err.message, '`messages` must NOT have fewer than 1 items, got an array of 0 item(s)');
    }
  });

  it('refuses an unknown role with the accepted ones', () => {
    for (const role of [undefined, '', 'robot', '__proto__']) {
      const err = refusal({ model: 'chat', messages: [...user, { role, content: 'x' }] });
      assert.equal(err.code, 'invalid_request');
      assert.equal(err.param, 'messages[1].role');
      assert.equal(err.message, '`messages[1].role` must be one of system, developer, user, assistant, tool, function');
    }
  });

  it('refuses sampling out of range by the field', () => {
    assert.equal(refusal({ model: 'chat', messages: user, temperature: 7 }).param, 'temperature');
    assert.equal(refusal({ model: 'chat', messages: user, max_tokens: 0 }).param, 'max_tokens');
    assert.equal(refusal({ model: 'chat', messages: user, top_p: Number.NaN }).param, 'top_p');
  });
});
