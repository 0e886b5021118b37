/** MockBackend: its fixed text as typed events, whatever the request asks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MockBackend } from '../../src/backends/mock/mock-backend.js';
import { chatRequest, collect, completionRequest, leavingCall } from './text-requests.js';

type MockConfig = ConstructorParameters<typeof MockBackend>[0];

const mock = (extra: Partial<MockConfig> = {}): MockBackend =>
  new MockBackend({ kind: 'mock', text: 'one two three four', latency_ms: 0, stream_chunks: 2, embedding_dim: 8, ...extra } as MockConfig);

describe('MockBackend', () => {
  it('streams a chat as its text in stream_chunks pieces, then `stop` and the usage in words', async () => {
    const request = chatRequest(
      'm',
      [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'hi there' }] },
        { role: 'assistant', content: null },
      ],
      {},
      { stream: true },
    );
    const answer = await mock().generate(request, leavingCall());
    assert.equal(answer.type, 'events');
    assert.equal(answer.id, `chatcmpl-mock${answer.created}`);
    assert.ok(Math.abs(answer.created - Date.now() / 1000) < 5);
    assert.deepEqual(await collect(answer.events), [
      { type: 'text', text: 'one two t', logprobs: null },
      { type: 'text', text: 'hree four', logprobs: null },
      { type: 'finish', reason: 'stop' },
      // Two words, then one token for each message without a text string.
      { type: 'usage', promptTokens: 4, completionTokens: 4, timings: null },
    ]);
  });

  it('answers a whole chat with its text in one piece', async () => {
    const answer = await mock().generate(chatRequest('m', [{ role: 'user', content: 'hi' }]), leavingCall());
    assert.deepEqual(await collect(answer.events), [
      { type: 'text', text: 'one two three four', logprobs: null },
      { type: 'finish', reason: 'stop' },
      { type: 'usage', promptTokens: 1, completionTokens: 4, timings: null },
    ]);
  });

  it('answers a completion the same way, streamed or not, counting prompt items as tokens', async () => {
    const backend = mock({ stream_chunks: 1 });
    for (const stream of [false, true]) {
      const answer = await backend.generate(completionRequest('m', [[1, 2], [3]], {}, { stream }), leavingCall());
      assert.match(answer.id, /^cmpl-mock\d+$/);
      assert.deepEqual(await collect(answer.events), [
        { type: 'text', text: 'one two three four', logprobs: null },
        { type: 'finish', reason: 'stop' },
        { type: 'usage', promptTokens: 2, completionTokens: 4, timings: null },
      ]);
    }
    const words = await backend.generate(completionRequest('m', 'a b c'), leavingCall());
    assert.deepEqual((await collect(words.events)).at(-1), { type: 'usage', promptTokens: 3, completionTokens: 4, timings: null });
  });

  it('waits latency_ms before answering, and stops waiting when the client leaves', async () => {
    const call = leavingCall();
    const answer = mock({ latency_ms: 60_000 }).generate(chatRequest('m', [{ role: 'user', content: 'x' }]), call);
    call.leave();
    await assert.rejects(answer, { name: 'AbortError' });
  });
});
