/**
 * Tenancy for every text API: the usage ledger counts what chat completions, the Responses API and
 * the Anthropic Messages API each reported, whole and streamed, and a tenant's token limit refuses
 * the next call with 429 in each API's own error shape. On the bundled tiny-chat, with the official SDKs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { TINY_CHAT, get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY, tenantWithKey } from '../helpers/tenancy.js';

const PROMPT = 'Say something.';

describe('tenancy across the text APIs', () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer({
      config: writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
usage: { flush_interval_ms: 50 }
models:${TINY_CHAT}`),
    });
  });
  after(async () => {
    await server?.stop();
  });

  it('the ledger counts the tokens each API reported, whole and streamed', async () => {
    const { key } = await tenantWithKey(server.url, { id: 'ledger', models: ['tiny-chat'] });
    const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0 });
    const anthropic = new Anthropic({ baseURL: server.url, apiKey: key, maxRetries: 0 });
    let prompt = 0;
    let completion = 0;

    const chat = await openai.chat.completions.create({ model: 'tiny-chat', messages: [{ role: 'user', content: PROMPT }], max_tokens: 6 });
    prompt += chat.usage?.prompt_tokens ?? NaN;
    completion += chat.usage?.completion_tokens ?? NaN;
    const chatStream = await openai.chat.completions.create({
      model: 'tiny-chat',
      messages: [{ role: 'user', content: PROMPT }],
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of chatStream) {
      prompt += chunk.usage?.prompt_tokens ?? 0;
      completion += chunk.usage?.completion_tokens ?? 0;
    }

    const response = await openai.responses.create({ model: 'tiny-chat', input: PROMPT, max_output_tokens: 6, store: false });
    prompt += response.usage?.input_tokens ?? NaN;
    completion += response.usage?.output_tokens ?? NaN;
    const responseStream = await openai.responses.create({
      model: 'tiny-chat',
      input: PROMPT,
      max_output_tokens: 6,
      store: false,
      stream: true,
    });
    for await (const event of responseStream) {
      // `incomplete` when max_output_tokens ran out, as here; `completed` otherwise.
      if (event.type === 'response.completed' || event.type === 'response.incomplete') {
        prompt += event.response.usage?.input_tokens ?? NaN;
        completion += event.response.usage?.output_tokens ?? NaN;
      }
    }

    const message = await anthropic.messages.create({ model: 'tiny-chat', max_tokens: 6, messages: [{ role: 'user', content: PROMPT }] });
    prompt += message.usage.input_tokens;
    completion += message.usage.output_tokens;
    const streamed = await anthropic.messages
      .stream({ model: 'tiny-chat', max_tokens: 6, messages: [{ role: 'user', content: PROMPT }] })
      .finalMessage();
    prompt += streamed.usage.input_tokens;
    completion += streamed.usage.output_tokens;

    assert.ok(prompt > 0 && completion > 0 && Number.isFinite(prompt + completion));
    const own = await get(`${server.url}/v1/usage`, { authorization: `Bearer ${key}` });
    assert.equal(own.status, 200);
    assert.deepEqual(own.body.data, [
      {
        tenant: 'ledger',
        group: null,
        requests: 6,
        errors: 0,
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
      },
    ]);
  });

  // One call spends a 10-token allowance (the prompt alone is more); the next is refused.
  const spend = { max_tokens: 4 };
  const cases = [
    {
      api: 'chat completions',
      path: '/v1/chat/completions',
      body: { model: 'tiny-chat', messages: [{ role: 'user', content: PROMPT }], ...spend },
      refused: (body: any) => assert.equal(body.error.code, 'rate_limited'),
    },
    {
      api: 'responses',
      path: '/v1/responses',
      body: { model: 'tiny-chat', input: PROMPT, max_output_tokens: 4, store: false },
      refused: (body: any) => assert.equal(body.error.code, 'rate_limited'),
    },
    {
      api: 'anthropic messages',
      path: '/v1/messages',
      body: { model: 'tiny-chat', messages: [{ role: 'user', content: PROMPT }], ...spend },
      refused: (body: any) => {
        assert.equal(body.type, 'error');
        assert.equal(body.error.type, 'rate_limit_error');
      },
    },
  ];
  for (const [i, c] of cases.entries()) {
    it(`a token limit refuses the next ${c.api} call with 429 and Retry-After, in its own error shape`, async () => {
      const { key } = await tenantWithKey(server.url, { id: `limited-${i}`, models: ['tiny-chat'], limits: { tokens_per_minute: 10 } });
      const headers = { authorization: `Bearer ${key}` };
      const first = await post(`${server.url}${c.path}`, c.body, headers);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const next = await post(`${server.url}${c.path}`, c.body, headers);
      assert.equal(next.status, 429, JSON.stringify(next.body));
      assert.ok(Number(next.headers.get('retry-after')) >= 1);
      c.refused(next.body);
    });
  }
});
