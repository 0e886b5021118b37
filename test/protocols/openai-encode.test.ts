/** Typed text events encoded as OpenAI answers: the whole answer and the stream of chunks, with logprobs, tool calls and usage. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANSWER_CREATED, ANSWER_ID, answer } from '../helpers/text.js';
import { ClientGoneError } from '../../src/core/call.js';
import type { TextEvent, TextRequest, TextStream, Timings, TokenLogprob } from '../../src/core/text.js';
import { streamChunks, wholeAnswer, type ChatLogprobs } from '../../src/protocols/openai/encode.js';
import { chatRequest, completionRequest } from '../../src/protocols/openai/request.js';
import type { ChatRequest, CompletionRequest } from '../../src/protocols/openai/schemas.js';

const ID = ANSWER_ID;
const CREATED = ANSWER_CREATED;
const head = { id: ID, object: 'chat.completion.chunk', created: CREATED, model: 'alias' };
const textHead = { id: ID, object: 'text_completion', created: CREATED, model: 'alias' };

const chatReq = (extra: Record<string, unknown> = {}): TextRequest =>
  chatRequest({ model: 'alias', messages: [{ role: 'user', content: 'hi' }], ...extra } as ChatRequest);
const completionReq = (extra: Record<string, unknown> = {}): TextRequest =>
  completionRequest({ model: 'alias', prompt: 'hi', ...extra } as CompletionRequest);

async function chunks(stream: TextStream, request: TextRequest): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const c of streamChunks(stream, request)) out.push(c);
  return out;
}

const text = (t: string, logprobs: TokenLogprob | null = null): TextEvent => ({ type: 'text', text: t, logprobs });
const stop: TextEvent = { type: 'finish', reason: 'stop' };
const usage = (timings: Timings | null = null): TextEvent => ({ type: 'usage', promptTokens: 3, completionTokens: 2, timings });
const TIMINGS: Timings = { queued_ms: 1, prompt_n: 3, prompt_ms: 2, predicted_n: 2, predicted_ms: 4, predicted_per_second: 250 };
const lp = (token: string, logprob: number): TokenLogprob => ({
  token,
  logprob,
  top: [
    { token, logprob },
    { token: 'é', logprob: -3 },
  ],
});

describe('streamChunks (chat)', () => {
  it('sends the role with the first text, each delta, the finish, and usage only when asked', async () => {
    const events = [text('Hel'), text('lo'), stop, usage(TIMINGS)];
    const delta = (d: object, finish: string | null = null) => ({
      ...head,
      choices: [{ index: 0, delta: d, logprobs: null, finish_reason: finish }],
    });
    const expected = [delta({ role: 'assistant', content: '' }), delta({ content: 'Hel' }), delta({ content: 'lo' }), delta({}, 'stop')];
    assert.deepEqual(await chunks(answer(events), chatReq({ stream: true })), expected);
    assert.deepEqual(await chunks(answer(events), chatReq({ stream: true, stream_options: { include_usage: true } })), [
      ...expected,
      { ...head, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }, timings: TIMINGS },
    ]);
  });

  it('leaves timings out of the usage chunk when the backend has none', async () => {
    const all = await chunks(answer([text('x'), stop, usage()]), chatReq({ stream: true, stream_options: { include_usage: true } }));
    assert.deepEqual(all.at(-1), { ...head, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
  });

  it('sends the role right before the finish when no text came', async () => {
    const all = await chunks(answer([{ type: 'finish', reason: 'length' }, usage()]), chatReq({ stream: true }));
    assert.deepEqual(all, [
      { ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] },
      { ...head, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }] },
    ]);
  });

  it('sends each token with its logprobs and their UTF-8 bytes', async () => {
    const all = (await chunks(answer([text('é', lp('é', -0.5)), stop, usage()]), chatReq({ stream: true, logprobs: true }))) as Array<{
      choices: Array<{ logprobs: unknown }>;
    }>;
    assert.deepEqual(all[1]?.choices[0]?.logprobs, {
      content: [
        {
          token: 'é',
          logprob: -0.5,
          bytes: [0xc3, 0xa9],
          top_logprobs: [
            { token: 'é', logprob: -0.5, bytes: [0xc3, 0xa9] },
            { token: 'é', logprob: -3, bytes: [0xc3, 0xa9] },
          ],
        },
      ],
      refusal: null,
    });
  });

  it('sends tool-call deltas with the id, type and name on each call’s first delta only', async () => {
    const events: TextEvent[] = [
      { type: 'tool_call', index: 0, id: 'call_a', name: 'get_weather', arguments: '' },
      { type: 'tool_call', index: 0, id: null, name: null, arguments: '{"city":' },
      { type: 'tool_call', index: 0, id: null, name: null, arguments: '"Paris"}' },
      { type: 'tool_call', index: 1, id: 'call_b', name: 'now', arguments: '{}' },
      { type: 'finish', reason: 'tool_calls' },
      usage(),
    ];
    const all = (await chunks(answer(events), chatReq({ stream: true }))) as Array<{
      choices: Array<{ delta: unknown; finish_reason: unknown }>;
    }>;
    assert.deepEqual(
      all.map((c) => c.choices[0]?.delta),
      [
        { role: 'assistant', content: '' },
        { tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
        { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
        { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] },
        { tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'now', arguments: '{}' } }] },
        {},
      ],
    );
    assert.equal(all.at(-1)?.choices[0]?.finish_reason, 'tool_calls');
  });

  it('lets an error thrown by the events reach the caller after the chunks before it', async () => {
    const seen: unknown[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of streamChunks(answer([text('a'), text('b'), stop], 1), chatReq({ stream: true }))) seen.push(c);
      })(),
      { code: 'upstream_error' },
    );
    assert.equal(seen.length, 2, 'the role and the first delta');
  });
});

describe('streamChunks (completions)', () => {
  it('sends text chunks without a role, text offsets counting on, a finish, and usage when asked', async () => {
    const events = [text('He', lp('He', -1)), text('llo', lp('llo', -2)), stop, usage(TIMINGS)];
    const all = await chunks(answer(events), completionReq({ stream: true, stream_options: { include_usage: true }, logprobs: 1 }));
    const logprobs = (token: string, logprob: number, offset: number) => ({
      tokens: [token],
      token_logprobs: [logprob],
      top_logprobs: [{ [token]: logprob, é: -3 }],
      text_offset: [offset],
    });
    assert.deepEqual(all, [
      { ...textHead, choices: [{ index: 0, text: 'He', logprobs: logprobs('He', -1, 0), finish_reason: null }] },
      { ...textHead, choices: [{ index: 0, text: 'llo', logprobs: logprobs('llo', -2, 2), finish_reason: null }] },
      { ...textHead, choices: [{ index: 0, text: '', logprobs: null, finish_reason: 'stop' }] },
      { ...textHead, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }, timings: TIMINGS },
    ]);
  });

  it('sends no usage chunk unless asked', async () => {
    const all = (await chunks(answer([text('x'), stop, usage()]), completionReq({ stream: true }))) as Array<{ choices: unknown[] }>;
    assert.equal(all.length, 2);
    assert.ok(all.every((c) => c.choices.length === 1));
  });
});

describe('wholeAnswer', () => {
  it('gathers a chat answer with usage and timings', async () => {
    const whole = await wholeAnswer(answer([text('Hel'), text('lo'), { type: 'finish', reason: 'length' }, usage(TIMINGS)]), chatReq());
    assert.deepEqual(whole, {
      id: ID,
      object: 'chat.completion',
      created: CREATED,
      model: 'alias',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello', refusal: null }, logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      timings: TIMINGS,
    });
  });

  it('has no timings when the backend measured none', async () => {
    const whole = await wholeAnswer(answer([text('x'), stop, usage()]), chatReq());
    assert.equal('timings' in whole, false);
    assert.deepEqual(whole.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
  });

  it('gathers chat logprobs, an empty list when asked and none came', async () => {
    const whole = await wholeAnswer(answer([text('a', lp('a', -1)), text('b', lp('b', -2)), stop, usage()]), chatReq({ logprobs: true }));
    const content = (whole.choices[0]?.logprobs as ChatLogprobs).content;
    assert.deepEqual(
      content.map((t) => [t.token, t.bytes]),
      [
        ['a', [97]],
        ['b', [98]],
      ],
    );
    const none = await wholeAnswer(answer([text('a'), stop, usage()]), chatReq({ logprobs: true }));
    assert.deepEqual(none.choices[0]?.logprobs, { content: [], refusal: null });
  });

  it('gathers tool calls by index, with null content when no text came', async () => {
    const events: TextEvent[] = [
      { type: 'tool_call', index: 1, id: 'call_b', name: 'now', arguments: '{}' },
      { type: 'tool_call', index: 0, id: 'call_a', name: 'get_weather', arguments: '{"city":' },
      { type: 'tool_call', index: 0, id: null, name: null, arguments: '"Paris"}' },
      { type: 'finish', reason: 'tool_calls' },
      usage(),
    ];
    const whole = await wholeAnswer(answer(events), chatReq());
    assert.deepEqual(whole.choices[0], {
      index: 0,
      message: {
        role: 'assistant',
        content: null,
        refusal: null,
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_b', type: 'function', function: { name: 'now', arguments: '{}' } },
        ],
      },
      logprobs: null,
      finish_reason: 'tool_calls',
    });
    const withText = await wholeAnswer(answer([text('Let me look.'), ...events]), chatReq());
    assert.equal((withText.choices[0] as { message: { content: unknown } }).message.content, 'Let me look.');
  });

  it('gives a call without an id a random call_ id, different in every answer', async () => {
    const events: TextEvent[] = [
      { type: 'tool_call', index: 0, id: null, name: 'now', arguments: '{}' },
      { type: 'tool_call', index: 1, id: null, name: 'now', arguments: '{}' },
      { type: 'finish', reason: 'tool_calls' },
    ];
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const whole = await wholeAnswer(answer(events), chatReq());
      const choice = whole.choices[0];
      assert.ok(choice !== undefined && 'message' in choice);
      for (const c of choice.message.tool_calls ?? []) ids.push(c.id);
    }
    for (const id of ids) assert.match(id, /^call_[A-Za-z0-9_-]{24}$/);
    assert.equal(new Set(ids).size, 6);
  });

  it('gathers a completion with logprobs and text offsets', async () => {
    const whole = await wholeAnswer(
      answer([text('He', lp('He', -1)), text('llo', lp('llo', -2)), stop, usage()]),
      completionReq({ logprobs: 1 }),
    );
    assert.deepEqual(whole, {
      id: ID,
      object: 'text_completion',
      created: CREATED,
      model: 'alias',
      choices: [
        {
          index: 0,
          text: 'Hello',
          logprobs: {
            tokens: ['He', 'llo'],
            token_logprobs: [-1, -2],
            top_logprobs: [
              { He: -1, é: -3 },
              { llo: -2, é: -3 },
            ],
            text_offset: [0, 2],
          },
          finish_reason: 'stop',
        },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    });
  });

  it('throws the error the events throw', async () => {
    await assert.rejects(async () => wholeAnswer(answer([text('a'), stop, usage()], 1), chatReq()), { code: 'upstream_error' });
  });

  it('encodes an answer given as an array of events at once, the same as one that streams in', async () => {
    const events = [text('a'), text('b'), stop, usage(TIMINGS)];
    const now = wholeAnswer({ type: 'events', id: ID, created: CREATED, events }, chatReq());
    assert.ok(!(now instanceof Promise), 'no promise for an answer that is already complete');
    assert.deepEqual(now, await wholeAnswer(answer(events), chatReq()));
    assert.throws(() => wholeAnswer({ type: 'events', id: ID, created: CREATED, events: [text('a')] }, chatReq()), ClientGoneError);
  });

  it('throws ClientGoneError for events that end before their finish', async () => {
    await assert.rejects(async () => wholeAnswer(answer([text('a')]), chatReq()), ClientGoneError);
  });
});
