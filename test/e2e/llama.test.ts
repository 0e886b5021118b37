/**
 * GGUF models in-process: the real server runs tiny-chat through node-llama-cpp, and the official
 * `openai` SDK (or fetch, where headers matter) reads what it generates.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';

const GGUF = '${MODELS}/tiny-chat/1/model.gguf';
/** tiny-chat's id for <|im_end|>, its end-of-turn token (see models/gguf.mjs). */
const IM_END = 4;

interface GenerationLog {
  promptTokens: number;
  completionTokens: number;
  timeToFirstTokenMs: number;
  tokensPerSecond: number;
  finishReason: string;
}

/** Waits (up to 5 s: the server's stdout arrives on its own schedule) for a per-generation measurement logged at debug level. */
async function generationLog(server: RunningServer, match: (g: GenerationLog) => boolean): Promise<GenerationLog | undefined> {
  for (let i = 0; i < 100; i++) {
    const found = server
      .output()
      .split('\n')
      .filter((line) => line.includes('"msg":"generation"'))
      .map((line) => JSON.parse(line) as GenerationLog)
      .find(match);
    if (found !== undefined) return found;
    await sleep(50);
  }
  return undefined;
}

describe('llama backend: tiny-chat through the OpenAI API', () => {
  let server: RunningServer;
  let client: OpenAI;

  before(async () => {
    const config = writeConfig(`
server: { log_level: debug } # per-generation measurements are logged at debug
models:
  - name: tiny-chat
    aliases: [chat]
    versions:
      - version: '1'
        backend: { kind: llama, path: ${GGUF}, sequences: 2, queue_size: 4 }
  - name: tiny-chat-short
    versions:
      - version: '1'
        backend: { kind: llama, path: ${GGUF}, context_size: 256, sequences: 1 }
  - name: tiny-chat-single
    versions:
      - version: '1'
        backend: { kind: llama, path: ${GGUF}, sequences: 1, queue_size: 1 }
  - name: tiny-chat-plain
    versions:
      - version: '1'
        backend: { kind: llama, path: ${GGUF}, sequences: 1, chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}' }
  - name: tiny-chat-llama3
    versions:
      - version: '1'
        backend: { kind: llama, path: ${GGUF}, sequences: 1, chat_template: llama3 }
  - name: tiny-chat-misnamed
    versions:
      - version: '1'
        backend: { kind: llama, path: ${GGUF}, sequences: 1, chat_template: chatgpt }
`);
    server = await startServer({ config });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await server?.stop();
  });

  const chat = (extra: Record<string, unknown> = {}) =>
    client.chat.completions.create({
      model: 'tiny-chat',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 8,
      seed: 7,
      ...extra,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);

  it('lists llama models with their context length', async () => {
    const { body } = await get(`${server.url}/v1/models`);
    const byId = new Map((body.data as Array<{ id: string; context_length?: number }>).map((m) => [m.id, m]));
    assert.equal(byId.get('tiny-chat')?.context_length, 2048, 'the trained context of tiny-chat');
    assert.equal(byId.get('tiny-chat-short')?.context_length, 256);
  });

  it('answers a chat through the template, counting real tokens, and ends with `length` at max_tokens', async () => {
    const res = await chat();
    const choice = res.choices[0];
    assert.equal(choice?.message.role, 'assistant');
    assert.equal(typeof choice?.message.content, 'string');
    assert.ok((choice?.message.content ?? '').length > 0);
    assert.equal(choice?.finish_reason, 'length');
    // BOS, <|im_start|>, "user\nHello" (10 bytes), <|im_end|>, "\n", <|im_start|>, "assistant\n" (10 bytes).
    assert.deepEqual(res.usage, { prompt_tokens: 25, completion_tokens: 8, total_tokens: 33 });
    const timings = (res as unknown as { timings: Record<string, number> }).timings;
    assert.equal(timings.predicted_n, 8);
    assert.ok((timings.predicted_per_second ?? 0) > 0, 'tokens per second are measured');
    const logged = await generationLog(server, (g) => g.completionTokens === 8 && g.promptTokens === 25);
    assert.equal(logged?.finishReason, 'length');
    assert.ok((logged?.timeToFirstTokenMs ?? 0) > 0 && (logged?.tokensPerSecond ?? 0) > 0, JSON.stringify(logged));
  });

  it('uses the chat template of the config over the one in the GGUF: a Jinja template or a wrapper by name', async () => {
    const plain = await post(`${server.url}/v1/chat/completions`, {
      model: 'tiny-chat-plain',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 1,
    });
    assert.equal(plain.status, 200);
    // Only the message text (5 bytes) and at most a BOS token: no ChatML markers.
    assert.ok(plain.body.usage.prompt_tokens <= 6, JSON.stringify(plain.body.usage));
    const llama3 = await post(`${server.url}/v1/chat/completions`, {
      model: 'tiny-chat-llama3',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 1,
    });
    assert.equal(llama3.status, 200);
    assert.notEqual(llama3.body.usage.prompt_tokens, 25, 'not the GGUF template');
  });

  it('keeps serving when one version cannot load, answering 503 for it and naming it not ready', async () => {
    const res = await post(`${server.url}/v1/chat/completions`, {
      model: 'tiny-chat-misnamed',
      messages: [{ role: 'user', content: 'x' }],
    });
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'model_not_ready');
    const ready = await get(`${server.url}/health/ready`);
    assert.equal(ready.body.models['tiny-chat-misnamed'], false);
    assert.equal(ready.body.models['tiny-chat'], true);
    assert.match(server.output(), /chat_template \W+chatgpt\W+ is not a Jinja template, \W+auto\W+, or one of general, /);
  });

  it('honours max_completion_tokens over max_tokens', async () => {
    const res = await chat({ max_completion_tokens: 3, max_tokens: 50 });
    assert.equal(res.usage?.completion_tokens, 3);
  });

  it('gives the same output for the same seed and prompt, and another for another seed', async () => {
    const a = await chat({ max_tokens: 24, temperature: 1, seed: 42 });
    const b = await chat({ max_tokens: 24, temperature: 1, seed: 42 });
    const c = await chat({ max_tokens: 24, temperature: 1, seed: 43 });
    assert.equal(a.choices[0]?.message.content, b.choices[0]?.message.content);
    assert.notEqual(a.choices[0]?.message.content, c.choices[0]?.message.content);
  });

  it('stops at a stop sequence, leaves it out, and says `stop`', async () => {
    const full = (await chat({ max_tokens: 40, temperature: 0 })).choices[0]?.message.content ?? '';
    const stop = full.slice(12, 15);
    const cut = full.indexOf(stop);
    const res = await chat({ max_tokens: 40, temperature: 0, stop: ['never-generated-text', stop] });
    assert.equal(res.choices[0]?.message.content, full.slice(0, cut));
    assert.equal(res.choices[0]?.finish_reason, 'stop');
  });

  it('ends with `stop` when the model emits its end-of-turn token', async () => {
    // tiny-chat samples its end-of-turn token now and then at temperature 1 (models/gguf.mjs); find a seed where it does.
    let ended: OpenAI.ChatCompletion | null = null;
    for (let seed = 1; seed <= 30 && ended === null; seed++) {
      const res = await chat({ max_tokens: 400, temperature: 1, seed });
      if (res.choices[0]?.finish_reason === 'stop') ended = res;
      else assert.equal(res.usage?.completion_tokens, 400);
    }
    assert.ok(ended !== null, 'some seed ends by itself');
    assert.ok((ended.usage?.completion_tokens ?? 400) < 400);
  });

  it('streams chunks exactly as OpenAI does, with the same text as the whole answer, and usage when asked', async () => {
    const whole = await chat({ max_tokens: 16, temperature: 0 });
    const stream = await client.chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 16,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.deepEqual(chunks[0]?.choices[0]?.delta, { role: 'assistant', content: '' });
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(text, whole.choices[0]?.message.content);
    const last = chunks.at(-2);
    assert.equal(last?.choices[0]?.finish_reason, 'length');
    const usage = chunks.at(-1);
    assert.deepEqual(usage?.choices, []);
    assert.deepEqual(usage?.usage, { prompt_tokens: 25, completion_tokens: 16, total_tokens: 41 });
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]?.id));
  });

  it('ends the SSE body with data: [DONE]', async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'x' }], max_tokens: 2, stream: true }),
    });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const body = await res.text();
    assert.ok(body.endsWith('data: [DONE]\n\n'), body.slice(-80));
    for (const event of body.trim().split('\n\n')) assert.match(event, /^data: /);
  });

  it('serves legacy completions from a string or token ids, with logprobs', async () => {
    // Greedy from this prompt, tiny-chat does not end by itself within 5 tokens.
    const res = await client.completions.create({ model: 'tiny-chat', prompt: 'Hello there', max_tokens: 5, temperature: 0, logprobs: 2 });
    const choice = res.choices[0];
    assert.equal(res.object, 'text_completion');
    assert.equal(res.usage?.prompt_tokens, 1 + 'Hello there'.length, 'BOS plus one token per byte');
    assert.equal(res.usage?.completion_tokens, 5);
    assert.equal(choice?.logprobs?.tokens?.length, 5);
    assert.equal(choice?.logprobs?.tokens?.join(''), choice?.text);
    assert.equal(Object.keys(choice?.logprobs?.top_logprobs?.[0] ?? {}).length, 2);
    for (const lp of choice?.logprobs?.token_logprobs ?? []) assert.ok(lp <= 0);
    const ids = await client.completions.create({ model: 'tiny-chat', prompt: [1, 80, 81], max_tokens: 2 });
    assert.equal(ids.usage?.prompt_tokens, 3);
  });

  it('returns chat logprobs with top alternatives', async () => {
    const res = await chat({ max_tokens: 4, logprobs: true, top_logprobs: 3 });
    const content = res.choices[0]?.logprobs?.content ?? [];
    assert.equal(content.length, 4);
    for (const t of content) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 3);
      assert.deepEqual(t.bytes, [...Buffer.from(t.token)]);
    }
  });

  it('constrains output to a JSON Schema with response_format', async () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' }, n: { enum: [1, 2, 3] } }, required: ['ok', 'n'] };
    const res = await chat({ max_tokens: 64, response_format: { type: 'json_schema', json_schema: { name: 'answer', schema } } });
    const parsed = JSON.parse(res.choices[0]?.message.content ?? '');
    assert.equal(typeof parsed.ok, 'boolean');
    assert.ok([1, 2, 3].includes(parsed.n));
    assert.equal(res.choices[0]?.finish_reason, 'stop');
  });

  it('refuses what it cannot do with 400 and the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ n: 2 }, 'n'],
      [{ top_k: -1 }, 'top_k'],
      [{ logit_bias: { 99999: 1 } }, 'logit_bias.99999'],
      [{ logit_bias: { [IM_END]: -100 } }, `logit_bias.${IM_END}`],
      [{ response_format: { type: 'xml' } }, 'response_format.type'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content[0].type'],
      [{ messages: [{ role: 'function', name: 'f', content: 'x' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id'],
    ];
    for (const [extra, param] of cases) {
      const res = await post(`${server.url}/v1/chat/completions`, {
        model: 'tiny-chat',
        messages: [{ role: 'user', content: 'x' }],
        ...extra,
      });
      assert.equal(res.status, 400, JSON.stringify(extra));
      assert.equal(res.body.error.param, param, JSON.stringify(res.body));
      assert.equal(res.body.error.type, 'invalid_request_error');
    }
  });

  it('answers 400 context_length_exceeded naming the limit when the prompt or budget does not fit', async () => {
    const long = await post(`${server.url}/v1/chat/completions`, {
      model: 'tiny-chat-short',
      messages: [{ role: 'user', content: 'x'.repeat(300) }],
    });
    assert.equal(long.status, 400);
    assert.equal(long.body.error.code, 'context_length_exceeded');
    assert.match(long.body.error.message, /context is 256 tokens/);
    const budget = await post(`${server.url}/v1/completions`, { model: 'tiny-chat-short', prompt: 'hi', max_tokens: 300 });
    assert.equal(budget.status, 400);
    assert.equal(budget.body.error.param, 'max_tokens');
  });

  it('runs requests beyond the free sequences from the queue, and refuses with 503 and Retry-After when it is full', async () => {
    // tiny-chat-single: one sequence and a queue of one; three long generations arrive at once.
    const body = { model: 'tiny-chat-single', messages: [{ role: 'user', content: 'x' }], max_tokens: 300, temperature: 0 };
    const results = await Promise.all([1, 2, 3].map(() => post(`${server.url}/v1/chat/completions`, body)));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 503]);
    const refused = results.find((r) => r.status === 503);
    assert.equal(refused?.body.error.code, 'overloaded');
    assert.equal(refused?.headers.get('retry-after'), '1');
    const queued = results.filter((r) => r.status === 200).map((r) => r.body.timings.queued_ms as number);
    assert.ok(Math.max(...queued) > 50, `one request waited for the other: ${queued}`);
  });

  it('stops generating when a streaming client disconnects, and frees its sequence', async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'tiny-chat-single', messages: [{ role: 'user', content: 'x' }], max_tokens: 2000, temperature: 0, stream: true },
      { signal: controller.signal },
    );
    let chunks = 0;
    // The SDK ends the iteration quietly on abort.
    for await (const _ of stream) if (++chunks === 3) controller.abort();
    assert.ok(chunks >= 3 && chunks < 100, `stopped reading after ${chunks} chunks`);
    await sleep(100); // for the server to see the disconnect
    // 2000 tokens take seconds; the only sequence must be free again at once. The queue (1) would
    // admit one waiter, so ask for two at once: both get through only if the sequence was freed.
    const started = performance.now();
    const after = await Promise.all(
      [1, 2].map(() =>
        post(`${server.url}/v1/chat/completions`, { model: 'tiny-chat-single', messages: [{ role: 'user', content: 'y' }], max_tokens: 2 }),
      ),
    );
    assert.deepEqual(
      after.map((r) => r.status),
      [200, 200],
      JSON.stringify(after.map((r) => r.body)),
    );
    assert.ok(performance.now() - started < 1000, 'the abandoned generation did not keep running');
    const cancelled = await generationLog(server, (g) => g.finishReason === 'cancelled');
    assert.ok(cancelled !== undefined && cancelled.completionTokens < 2000, JSON.stringify(cancelled));
  });
});
