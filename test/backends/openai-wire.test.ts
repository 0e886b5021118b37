/** An OpenAI upstream's answer decoded into typed events, and the body a text request is sent upstream as. */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { upstreamBody } from '../../src/backends/openai/request-body.js';
import { openaiText } from '../../src/backends/openai/wire.js';
import { ApiError } from '../../src/core/errors.js';
import type { ChatRequest, CompletionRequest, Sampling, TextEvent, TextStream } from '../../src/core/text.js';
import { DEFAULT_SAMPLING } from './text-requests.js';

const SSE = 'text/event-stream; charset=utf-8';

/** A body that arrives in these pieces, one per read, as a socket would deliver them. */
function pieces(...parts: string[]): Readable {
  return Readable.from(
    parts.map((p) => Buffer.from(p)),
    { objectMode: false },
  );
}

async function collect(stream: TextStream): Promise<TextEvent[]> {
  const out: TextEvent[] = [];
  for await (const event of stream.events) out.push(event);
  return out;
}

const chunk = (delta: object, finish: string | null = null, extra: object = {}): string =>
  JSON.stringify({
    id: 'up-1',
    object: 'chat.completion.chunk',
    created: 7,
    model: 'm',
    choices: [{ index: 0, delta, finish_reason: finish }],
    ...extra,
  });

const usageChunk = JSON.stringify({
  id: 'up-1',
  created: 7,
  choices: [],
  usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
});

describe('OpenAI answers as typed events', () => {
  for (const [name, eol] of [
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ] as const) {
    it(`reads an ${name} stream: text, finish and usage, split anywhere, with the answer's id and time`, async () => {
      const text = [
        `: warm${eol}${eol}`,
        `data: ${chunk({ role: 'assistant', content: 'Hel' })}${eol}${eol}`,
        `data: ${chunk({ content: 'lo' })}${eol}${eol}`,
        `data: ${chunk({}, 'stop')}${eol}${eol}`,
        `data: ${usageChunk}${eol}${eol}`,
        `data: [DONE]${eol}${eol}`,
      ].join('');
      // Cut into 7-byte pieces, so events and line ends (a CRLF too) straddle reads.
      const parts: string[] = [];
      for (let i = 0; i < text.length; i += 7) parts.push(text.slice(i, i + 7));
      const raw = openaiText('chat', SSE, pieces(...parts));
      assert.equal(raw.sse, true);
      const stream = await raw.events();
      assert.equal(stream.id, 'up-1');
      assert.equal(stream.created, 7);
      assert.deepEqual(await collect(stream), [
        { type: 'text', text: 'Hel', logprobs: null },
        { type: 'text', text: 'lo', logprobs: null },
        { type: 'finish', reason: 'stop' },
        { type: 'usage', promptTokens: 5, completionTokens: 2, timings: null },
      ]);
    });
  }

  it('joins an event whose data spans several lines', async () => {
    const json = chunk({ content: ' world' });
    const cut = json.indexOf(',') + 1;
    const body = pieces(`event: message\ndata: ${json.slice(0, cut)}\ndata: ${json.slice(cut)}\n\ndata: [DONE]\n\n`);
    assert.deepEqual(await collect(await openaiText('chat', SSE, body).events()), [{ type: 'text', text: ' world', logprobs: null }]);
  });

  it('decodes tool-call deltas, the first with id and name, the rest with argument fragments', async () => {
    const first = { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'weather', arguments: '' } }] };
    const rest = { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] };
    const second = { tool_calls: [{ index: 1, id: 'call_2', type: 'function', function: { name: 'time', arguments: '{}' } }] };
    const body = pieces(
      `data: ${chunk(first)}\n\ndata: ${chunk(rest)}\n\ndata: ${chunk(second)}\n\ndata: ${chunk({}, 'tool_calls')}\n\ndata: [DONE]\n\n`,
    );
    assert.deepEqual(await collect(await openaiText('chat', SSE, body).events()), [
      { type: 'tool_call', index: 0, id: 'call_1', name: 'weather', arguments: '' },
      { type: 'tool_call', index: 0, id: null, name: null, arguments: '{"city":' },
      { type: 'tool_call', index: 1, id: 'call_2', name: 'time', arguments: '{}' },
      { type: 'finish', reason: 'tool_calls' },
    ]);
  });

  it("carries a chat delta's log probabilities and llama.cpp's timings", () => {
    const raw = openaiText('chat', SSE, Buffer.alloc(0));
    const logprobs = {
      content: [
        {
          token: 'Hi',
          logprob: -0.5,
          bytes: [72, 105],
          top_logprobs: [
            { token: 'Hi', logprob: -0.5, bytes: [] },
            { token: 'Yo', logprob: -1.5 },
          ],
        },
      ],
    };
    assert.deepEqual(raw.decode(JSON.stringify({ choices: [{ index: 0, delta: { content: 'Hi' }, logprobs }] })), [
      {
        type: 'text',
        text: 'Hi',
        logprobs: {
          token: 'Hi',
          logprob: -0.5,
          top: [
            { token: 'Hi', logprob: -0.5 },
            { token: 'Yo', logprob: -1.5 },
          ],
        },
      },
    ]);
    const timings = { prompt_n: 5, prompt_ms: 12.5, predicted_n: 2, predicted_ms: 30, predicted_per_second: 66.7, cache_n: 0 };
    assert.deepEqual(raw.decode(JSON.stringify({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 2 }, timings })), [
      {
        type: 'usage',
        promptTokens: 5,
        completionTokens: 2,
        timings: { queued_ms: 0, prompt_n: 5, prompt_ms: 12.5, predicted_n: 2, predicted_ms: 30, predicted_per_second: 66.7 },
      },
    ]);
  });

  it('decodes completions chunks by their text, and [DONE] as nothing', () => {
    const raw = openaiText('completion', SSE, Buffer.alloc(0));
    assert.deepEqual(raw.decode(JSON.stringify({ id: 'cmpl-1', choices: [{ index: 0, text: 'abc', finish_reason: null }] })), [
      { type: 'text', text: 'abc', logprobs: null },
    ]);
    assert.deepEqual(raw.decode(JSON.stringify({ choices: [{ index: 0, text: '', finish_reason: 'length' }] })), [
      { type: 'finish', reason: 'length' },
    ]);
    assert.deepEqual(raw.decode('[DONE]'), []);
  });

  it('follows choice 0 only when the upstream streams several choices', () => {
    const raw = openaiText('chat', SSE, Buffer.alloc(0));
    assert.deepEqual(raw.decode(JSON.stringify({ choices: [{ index: 1, delta: { content: 'other' } }] })), []);
  });

  it("throws an error event as the ApiError it names, or upstream_error, with the upstream's message", async () => {
    const raw = openaiText('chat', SSE, Buffer.alloc(0));
    assert.throws(
      () =>
        raw.decode(
          JSON.stringify({ error: { message: 'the stream was cut after 3 tokens', type: 'rate_limit_error', code: 'rate_limited' } }),
        ),
      (err: unknown) => err instanceof ApiError && err.code === 'rate_limited' && err.message === 'the stream was cut after 3 tokens',
    );
    assert.throws(
      () => raw.decode(JSON.stringify({ error: { message: 'CUDA out of memory', code: 500 } })),
      (err: unknown) =>
        err instanceof ApiError && err.code === 'upstream_error' && err.status === 502 && err.message === 'CUDA out of memory',
    );
    // Through events(): the text before it, then the stream fails.
    const body = pieces(`data: ${chunk({ content: 'a' })}\n\ndata: {"error":{"message":"boom","code":"overloaded"}}\n\n`);
    const stream = await openaiText('chat', SSE, body).events();
    const seen: TextEvent[] = [];
    await assert.rejects(
      async () => {
        for await (const e of stream.events) seen.push(e);
      },
      (err: unknown) => err instanceof ApiError && err.code === 'overloaded' && err.message === 'boom',
    );
    assert.deepEqual(seen, [{ type: 'text', text: 'a', logprobs: null }]);
    assert.equal(body.destroyed, true, 'the upstream body was let go');
  });

  it('fails an answer whose first event is an error before it has an id', async () => {
    const body = pieces('data: {"error":{"message":"model is loading","code":"model_not_ready"}}\n\n');
    await assert.rejects(
      openaiText('chat', SSE, body).events(),
      (err: unknown) => err instanceof ApiError && err.code === 'model_not_ready',
    );
    assert.equal(body.destroyed, true);
  });

  it('throws upstream_error for an event that is not JSON, quoting its start', async () => {
    const raw = openaiText('chat', SSE, Buffer.alloc(0));
    assert.throws(
      () => raw.decode('{"choices": [{"delta": '),
      (err: unknown) =>
        err instanceof ApiError &&
        err.code === 'upstream_error' &&
        err.message === `the upstream's stream sent an event that is not JSON: {"choices": [{"delta":`,
    );
    const body = pieces(`data: ${chunk({ content: 'tok0 ' })}\n\n`, 'data: {"choices": [{"delta": \n\n');
    const stream = await openaiText('chat', SSE, body).events();
    await assert.rejects(collect(stream), /not JSON/);
  });

  it('reads a whole JSON answer, buffered or streamed: content, tool calls, finish and usage', async () => {
    const answer = JSON.stringify({
      id: 'chatcmpl-9',
      object: 'chat.completion',
      created: 11,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'upstream says hi',
            tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
          },
          finish_reason: 'tool_calls',
        },
      ],
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
    });
    const expected: TextEvent[] = [
      { type: 'text', text: 'upstream says hi', logprobs: null },
      { type: 'tool_call', index: 0, id: 'call_1', name: 'f', arguments: '{"a":1}' },
      { type: 'finish', reason: 'tool_calls' },
      { type: 'usage', promptTokens: 2, completionTokens: 3, timings: null },
    ];
    const buffered = openaiText('chat', 'application/json', Buffer.from(answer));
    assert.equal(buffered.sse, false);
    assert.deepEqual(buffered.decode(answer), expected);
    const stream = await buffered.events();
    assert.equal(stream.id, 'chatcmpl-9');
    assert.equal(stream.created, 11);
    assert.deepEqual(await collect(stream), expected);
    const streamed = await openaiText('chat', 'application/json', pieces(answer.slice(0, 20), answer.slice(20))).events();
    assert.deepEqual(await collect(streamed), expected);
    assert.throws(
      () => buffered.decode('<html>Bad Gateway</html>'),
      (err: unknown) => err instanceof ApiError && err.code === 'upstream_error' && /not JSON: <html>Bad Gateway/.test(err.message),
    );
  });

  it('gives a whole completions answer with log probabilities one event per token', () => {
    const answer = {
      choices: [
        {
          index: 0,
          text: 'a b',
          logprobs: { tokens: ['a', ' b'], token_logprobs: [-0.1, -0.2], top_logprobs: [{ a: -0.1 }, { ' b': -0.2, ' c': -3 }] },
          finish_reason: 'stop',
        },
      ],
    };
    assert.deepEqual(openaiText('completion', 'application/json', Buffer.alloc(0)).decode(JSON.stringify(answer)), [
      { type: 'text', text: 'a', logprobs: { token: 'a', logprob: -0.1, top: [{ token: 'a', logprob: -0.1 }] } },
      {
        type: 'text',
        text: ' b',
        logprobs: {
          token: ' b',
          logprob: -0.2,
          top: [
            { token: ' b', logprob: -0.2 },
            { token: ' c', logprob: -3 },
          ],
        },
      },
      { type: 'finish', reason: 'stop' },
    ]);
  });

  it('names an answer that came without an id after the kind of request', async () => {
    const body = pieces(`data: ${JSON.stringify({ choices: [{ index: 0, text: 'x' }] })}\n\ndata: [DONE]\n\n`);
    const stream = await openaiText('completion', SSE, body).events();
    assert.match(stream.id, /^cmpl-/);
    assert.ok(Math.abs(stream.created - Date.now() / 1000) < 5);
    assert.deepEqual(await collect(stream), [{ type: 'text', text: 'x', logprobs: null }]);
  });

  it('lets go of the upstream body when the reader leaves early', async () => {
    const body = new Readable({ read() {} });
    body.push(`data: ${chunk({ content: 'a' })}\n\ndata: ${chunk({ content: 'b' })}\n\n`);
    const stream = await openaiText('chat', SSE, body).events();
    for await (const event of stream.events) {
      assert.deepEqual(event, { type: 'text', text: 'a', logprobs: null });
      break;
    }
    assert.equal(body.destroyed, true, 'destroying it cancels the upstream request');
  });

  it('fails with upstream_unavailable when the upstream cuts the body short', async () => {
    const body = new Readable({ read() {} });
    body.push(`data: ${chunk({ content: 'a' })}\n\n`);
    const stream = await openaiText('chat', SSE, body).events();
    const reading = collect(stream);
    body.destroy(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }));
    await assert.rejects(
      reading,
      (err: unknown) => err instanceof ApiError && err.code === 'upstream_unavailable' && /UND_ERR_SOCKET/.test(err.message),
    );
  });

  it('ends a stream with an error as OpenAI does: the error body as an event, then [DONE]', () => {
    const raw = openaiText('chat', SSE, Buffer.alloc(0));
    const end = raw.encodeError(new ApiError('rate_limited', 'spent'));
    assert.match(end, /^data: \{.*\}\n\ndata: \[DONE\]\n\n$/);
    assert.deepEqual(JSON.parse(end.slice('data: '.length, end.indexOf('\n'))), {
      error: { message: 'spent', type: 'rate_limit_error', param: null, code: 'rate_limited' },
    });
  });
});

function chat(over: Partial<ChatRequest> = {}): ChatRequest {
  return {
    kind: 'chat',
    model: 'alias',
    stream: false,
    sampling: DEFAULT_SAMPLING,
    includeUsage: false,
    reportUsage: false,
    tools: [],
    toolChoice: { type: 'none' },
    parallelToolCalls: true,
    openai: null,
    anthropic: null,
    messages: [{ role: 'user', content: 'hi' }],
    ...over,
  };
}

describe('the body sent upstream', () => {
  it("sends the client's OpenAI body as it came, with the upstream's model name", () => {
    const openai = { model: 'alias', messages: [{ role: 'user', content: 'hi' }], temperature: 0.5, vendor_field: { x: 1 } };
    assert.deepEqual(upstreamBody(chat({ openai }), 'upstream-model'), { ...openai, model: 'upstream-model' });
  });

  it('asks a metered stream for its usage, keeping the other stream options', () => {
    const openai = { model: 'alias', messages: [], stream: true, stream_options: { continuous_usage_stats: true } };
    assert.deepEqual(upstreamBody(chat({ openai, stream: true, reportUsage: true }), 'up').stream_options, {
      continuous_usage_stats: true,
      include_usage: true,
    });
    const asked = { ...openai, stream_options: { include_usage: true } };
    assert.equal(upstreamBody(chat({ openai: asked, stream: true, reportUsage: true }), 'up').stream_options, asked.stream_options);
    assert.equal(
      upstreamBody(chat({ openai, stream: true, reportUsage: false }), 'up').stream_options,
      openai.stream_options,
      'not metered: untouched',
    );
  });

  it('writes a request without an OpenAI body from its typed fields, only those that differ from the defaults', () => {
    assert.deepEqual(upstreamBody(chat({ stream: true, reportUsage: true }), 'up'), {
      model: 'up',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const sampling: Sampling = {
      ...DEFAULT_SAMPLING,
      maxTokens: 16,
      temperature: 0.2,
      topP: 0.9,
      seed: 42,
      presencePenalty: 0.5,
      frequencyPenalty: -0.5,
      stop: ['\n'],
      logitBias: { '50256': -100 },
      n: 2,
      logprobs: 3,
      responseFormat: { type: 'json_schema', schema: { type: 'object' } },
    };
    const tools = [{ name: 'weather', description: 'the weather', parameters: { type: 'object' }, strict: false }];
    assert.deepEqual(upstreamBody(chat({ sampling, tools, toolChoice: { type: 'auto' } }), 'up'), {
      model: 'up',
      messages: [{ role: 'user', content: 'hi' }],
      stream: false,
      max_tokens: 16,
      temperature: 0.2,
      top_p: 0.9,
      seed: 42,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      stop: ['\n'],
      logit_bias: { '50256': -100 },
      n: 2,
      logprobs: true,
      top_logprobs: 3,
      response_format: { type: 'json_schema', json_schema: { name: 'response', schema: { type: 'object' } } },
      tools: [{ type: 'function', function: { name: 'weather', description: 'the weather', parameters: { type: 'object' } } }],
    });
  });

  it('writes a completion request with its prompt and completions-only fields', () => {
    const { messages: _, ...base } = chat();
    const request: CompletionRequest = {
      ...base,
      kind: 'completion',
      prompt: [1, 2, 3],
      sampling: { ...DEFAULT_SAMPLING, logprobs: 2, echo: true, bestOf: 3, suffix: '!' },
    };
    assert.deepEqual(upstreamBody(request, 'up'), {
      model: 'up',
      prompt: [1, 2, 3],
      stream: false,
      logprobs: 2,
      best_of: 3,
      echo: true,
      suffix: '!',
    });
  });
});
