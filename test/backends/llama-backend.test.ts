/** LlamaBackend on tiny-chat (the bundled GGUF): typed requests in, typed events out, its one sequence always given back. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LlamaBackend } from '../../src/backends/llama/llama-backend.js';
import type { GenerationStats } from '../../src/core/observer.js';
import type { ChatRequest, Sampling, TextEvent, TextRequest } from '../../src/core/text.js';
import { MODELS } from '../helpers/server.js';
import { chatRequest, collect, completionRequest, leavingCall } from './text-requests.js';

type LlamaConfig = ConstructorParameters<typeof LlamaBackend>[0];

/** The text of an answer's events. */
const textOf = (events: readonly TextEvent[]): string => events.map((e) => (e.type === 'text' ? e.text : '')).join('');

describe('LlamaBackend on tiny-chat', () => {
  const stats: GenerationStats[] = [];
  // One sequence and no queue: a request while the sequence is held is refused at once.
  const config = {
    kind: 'llama',
    path: join(MODELS, 'tiny-chat/1/model.gguf'),
    context_size: 256,
    sequences: 1,
    queue_size: 0,
    threads: 1,
    gpu: false,
    gpu_layers: 'auto',
    flash_attention: false,
    chat_template: 'auto',
  } as LlamaConfig;
  const backend = new LlamaBackend(config, 1, (s) => stats.push(s));
  const hello = (extra: Partial<ChatRequest> = {}, sampling: Partial<Sampling> = {}) =>
    chatRequest('tiny', [{ role: 'user', content: 'Hello' }], { maxTokens: 6, temperature: 0, ...sampling }, extra);

  before(() => backend.load());
  after(() => backend.unload());

  it('answers with text events, then one finish and one usage with timings, and reports the generation once', async () => {
    stats.length = 0;
    const answer = await backend.generate(hello(), leavingCall());
    assert.match(answer.id, /^chatcmpl-\w+$/);
    const events = await collect(answer.events);
    const last = events.slice(-2);
    assert.deepEqual(last[0], { type: 'finish', reason: 'length' });
    const usage = last[1];
    assert.ok(usage?.type === 'usage');
    // BOS, <|im_start|>, "user\nHello" (10 bytes), <|im_end|>, "\n", <|im_start|>, "assistant\n" (10 bytes).
    assert.equal(usage.promptTokens, 25);
    assert.equal(usage.completionTokens, 6);
    assert.equal(usage.timings?.predicted_n, 6);
    assert.ok(events.slice(0, -2).every((e) => e.type === 'text' && e.text !== '' && e.logprobs === null));
    assert.equal(stats.length, 1);
    assert.equal(stats[0]?.finishReason, 'length');
  });

  it('gives the same text streamed and whole, and completions with logprobs', async () => {
    const whole = textOf(await collect((await backend.generate(hello(), leavingCall())).events));
    const streamed = textOf(await collect((await backend.generate(hello({ stream: true }), leavingCall())).events));
    assert.equal(streamed, whole);
    const completion = await backend.generate(
      completionRequest('tiny', 'Hello there', { maxTokens: 3, temperature: 0, logprobs: 2 }),
      leavingCall(),
    );
    assert.match(completion.id, /^cmpl-\w+$/);
    const events = await collect(completion.events);
    const texts = events.filter((e) => e.type === 'text');
    assert.equal(texts.length, 3);
    for (const e of texts) assert.equal(e.logprobs?.top.length, 2);
    assert.deepEqual(events.at(-1), { ...events.at(-1), type: 'usage', promptTokens: 12, completionTokens: 3 });
  });

  it('drops the whitespace a JSON grammar leaves at the end of a whole answer, not of a streamed one', async () => {
    const json = (stream: boolean) =>
      hello({ stream }, { maxTokens: 48, temperature: 1, seed: 1, responseFormat: { type: 'json_object' } });
    const streamed = await collect((await backend.generate(json(true), leavingCall())).events);
    const whole = await collect((await backend.generate(json(false), leavingCall())).events);
    // tiny-chat's JSON ends in whitespace that the grammar's stop trigger cuts short.
    assert.match(textOf(streamed), /\S\s+$/);
    assert.equal(textOf(whole), textOf(streamed).trimEnd());
    assert.deepEqual(whole.at(-2), streamed.at(-2));
    const tokens = (events: readonly TextEvent[]) => events.flatMap((e) => (e.type === 'usage' ? [e.completionTokens] : []));
    assert.deepEqual(tokens(whole), tokens(streamed));
  });

  it('refuses what a llama model cannot do with 400, naming the field', async () => {
    const cases: Array<[TextRequest, string, RegExp]> = [
      [hello({}, { n: 2 }), 'n', /^`n` must be 1 for llama models/],
      [completionRequest('tiny', 'x', { bestOf: 2 }), 'best_of', /^`best_of` must be 1 for llama models$/],
      [completionRequest('tiny', 'x', { echo: true }), 'echo', /^`echo` is not supported by llama models$/],
      [completionRequest('tiny', 'x', { suffix: '' }), 'suffix', /^`suffix` is not supported by llama models$/],
      [hello({}, { topK: 1_000_000 }), 'top_k', /^`top_k` must be an integer in \[0, \d+\], got 1000000$/],
      [hello({}, { logitBias: { 99999: 1 } }), 'logit_bias.99999', /^`logit_bias` keys must be token ids in \[0, \d+\], got "99999"$/],
      [hello({}, { logitBias: { 4: -100 } }), 'logit_bias.4', /^token 4 ends generation/],
      [chatRequest('tiny', [{ role: 'function', content: 'x' }]), 'messages[0].role', /^messages with role "function" are not supported/],
      [
        chatRequest('tiny', [{ role: 'tool', content: 'x', toolCallId: 'c' }]),
        'messages[0].tool_call_id',
        /^`messages\[0\]` answers the call "c", which no earlier assistant message made$/,
      ],
      [
        chatRequest('tiny', [{ role: 'user', content: [{ type: 'image_url' }] }]),
        'messages[0].content[0].type',
        /^content parts of type "image_url" are not supported by llama models$/,
      ],
      [completionRequest('tiny', ['a', 'b']), 'prompt', /^`prompt` must be one prompt for llama models, got 2$/],
    ];
    for (const [request, param, message] of cases) {
      await assert.rejects(backend.generate(request, leavingCall()), (err: { code?: string; param?: string; message: string }) => {
        assert.equal(err.code, 'invalid_request', param);
        assert.equal(err.param, param);
        assert.match(err.message, message);
        return true;
      });
    }
  });

  it('holds its sequence until the answer ends, and gives it back when the answer is abandoned unread', async () => {
    stats.length = 0;
    const held = await backend.generate(hello(), leavingCall());
    await assert.rejects(backend.generate(hello(), leavingCall()), { code: 'overloaded' });
    await (held.events as AsyncIterable<TextEvent>)[Symbol.asyncIterator]().return?.();
    assert.deepEqual(
      stats.map((s) => s.finishReason),
      ['cancelled'],
    );
    const next = await backend.generate(hello(), leavingCall());
    assert.equal((await collect(next.events)).at(-2)?.type, 'finish');
  });

  it('gives the sequence back when the client leaves before the answer is read, and the read fails as a client gone', async () => {
    const call = leavingCall();
    const answer = await backend.generate(hello({ stream: true }), call);
    call.leave();
    await assert.rejects(collect(answer.events), { name: 'ClientGoneError' });
    const next = await backend.generate(hello(), leavingCall());
    assert.equal((await collect(next.events)).at(-1)?.type, 'usage');
  });

  it('gives the sequence back when the reader stops in the middle', async () => {
    const answer = await backend.generate(hello({ stream: true }, { maxTokens: 200 }), leavingCall());
    for await (const event of answer.events) if (event.type === 'text') break;
    const next = await backend.generate(hello(), leavingCall());
    assert.equal((await collect(next.events)).at(-1)?.type, 'usage');
  });
});
