/**
 * Tenants end to end, through the real server, the official `openai` SDK and the admin API: keys,
 * model permissions, limits with OpenAI's headers, revocation, usage totals, and the CLI.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { MODELS, get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { ADMIN, ADMIN_KEY, adminCall, cli, redisAnswers, tenantWithKey } from '../helpers/tenancy.js';
import { randomBytes } from 'node:crypto';

const LONG_TEXT = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');

function sdk(url: string, key: string): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
}

const hi = [{ role: 'user' as const, content: 'hello there' }];

/** Milliseconds of an OpenAI reset duration: `20ms`, `1.5s`, `1m24.9s`. */
function durationMs(text: string): number {
  const m = /^(?:(\d+)ms|(?:(\d+)m)?(?:([\d.]+)s)?)$/.exec(text);
  assert.ok(m !== null && text !== '', `a duration, got ${JSON.stringify(text)}`);
  return m[1] !== undefined ? Number(m[1]) : Number(m[2] ?? 0) * 60_000 + Number(m[3] ?? 0) * 1000;
}

/** A 429's reset header for the refused limit names the instant its Retry-After does (rounded up to whole seconds there). */
function agreesWithRetryAfter(headers: Headers, reset: string): void {
  const ms = durationMs(headers.get(reset) ?? '');
  const retryAfter = Number(headers.get('retry-after'));
  assert.equal(Math.max(1, Math.ceil(ms / 1000)), retryAfter, `${reset}: ${headers.get(reset)} against retry-after: ${retryAfter}`);
}

// Limits counted in memory, and in Redis where one answers (each run under its own key prefix).
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const states = [{ name: 'in memory', yaml: '' }];
if (await redisAnswers(redisUrl)) {
  states.push({
    name: 'in Redis',
    yaml: `state: { redis_url: '${redisUrl}', key_prefix: 'infergate-test-${randomBytes(4).toString('hex')}:' }`,
  });
} else {
  describe('tenants, keys and limits in Redis', () => it('needs Redis', (t) => t.skip(`no Redis answers at ${redisUrl}; set REDIS_URL`)));
}

for (const state of states)
  describe(`tenants, keys and limits, counted ${state.name}`, () => {
    let server: RunningServer;
    let upstream: Upstream;
    let url: string;
    let alpha: { id: string; key: string };
    let beta: { id: string; key: string };

    before(async () => {
      upstream = await startUpstream();
      const config = writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
usage: { flush_interval_ms: 50 }
${state.yaml}
models:
  - name: chat-a
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0, stream_chunks: 4 } }]
  - name: chat-b
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
  - name: chat-long
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0, text: '${LONG_TEXT}', stream_chunks: 40 } }]
  - name: chat-slow
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 300 } }]
  - name: capped
    versions:
      - version: '1'
        backend: { kind: mock, latency_ms: 150 }
        policies: { admission: { max_concurrent: 1 } }
  - name: remote
    versions: [{ version: '1', backend: { kind: openai, base_url: '${upstream.url}' } }]
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: '${MODELS}/tiny-mlp/1/model.onnx' } }]
`);
      server = await startServer({ config });
      url = server.url;
      alpha = await tenantWithKey(url, { id: 'alpha', models: ['chat-a', 'remote', 'tiny-*'], limits: { requests_per_minute: 1000 } });
      beta = await tenantWithKey(url, { id: 'beta', models: ['chat-b'], priority: 'low' });
    });

    after(async () => {
      await server.stop();
      await upstream.close();
    });

    it('shows each tenant only its own models, in the OpenAI and KServe APIs', async () => {
      const a = (await sdk(url, alpha.key).models.list()).data.map((m) => m.id).sort();
      assert.deepEqual(a, ['chat-a', 'remote', 'tiny-mlp']);
      const b = (await sdk(url, beta.key).models.list()).data.map((m) => m.id);
      assert.deepEqual(b, ['chat-b']);
      await assert.rejects(sdk(url, beta.key).models.retrieve('chat-a'), (e: unknown) => e instanceof OpenAI.NotFoundError);
      assert.equal((await get(`${url}/v2/models/tiny-mlp`, { authorization: `Bearer ${alpha.key}` })).status, 200);
      const hidden = await get(`${url}/v2/models/tiny-mlp`, { authorization: `Bearer ${beta.key}` });
      assert.equal(hidden.status, 404);
      assert.equal(hidden.body.code, 'model_not_found');
    });

    it("answers 404 model_not_found, worded as for an unknown model, when a tenant calls another's model", async () => {
      const other = await post(`${url}/v1/chat/completions`, { model: 'chat-a', messages: hi }, { authorization: `Bearer ${beta.key}` });
      const unknown = await post(`${url}/v1/chat/completions`, { model: 'no-such', messages: hi }, { authorization: `Bearer ${beta.key}` });
      assert.equal(other.status, 404);
      assert.equal(other.body.error.code, 'model_not_found');
      assert.equal(other.body.error.message, unknown.body.error.message.replace('no-such', 'chat-a'));
      const infer = await post(
        `${url}/v2/models/tiny-mlp/infer`,
        { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] },
        { authorization: `Bearer ${beta.key}` },
      );
      assert.equal(infer.status, 404);
      assert.equal(infer.body.code, 'model_not_found');
      const ok = await sdk(url, beta.key).chat.completions.create({ model: 'chat-b', messages: hi });
      assert.equal(ok.choices[0]?.message.role, 'assistant');
    });

    it('answers 401 in each protocol shape without a key or with a wrong one, and names no tenant', async () => {
      await assert.rejects(
        sdk(url, 'ig-wrong').chat.completions.create({ model: 'chat-a', messages: hi }),
        (e: unknown) => e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key',
      );
      const none = await get(`${url}/v1/models`);
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      assert.equal(none.body.error.type, 'authentication_error');
      const kserve = await post(`${url}/v2/models/tiny-mlp/infer`, { inputs: [] }, { 'x-api-key': 'nope' });
      assert.equal(kserve.status, 401);
      assert.equal(kserve.body.code, 'invalid_api_key');
      assert.equal(typeof kserve.body.error, 'string');
      const malformed = await get(`${url}/v1/models`, { authorization: 'Basic abc' });
      assert.equal(malformed.status, 401);
      for (const body of [none.body, kserve.body, malformed.body]) assert.doesNotMatch(JSON.stringify(body), /alpha|beta/);
      // x-api-key works as well as Authorization.
      assert.equal((await get(`${url}/v1/models`, { 'x-api-key': alpha.key })).status, 200);
      // Health probes need no key.
      assert.equal((await get(`${url}/health/ready`)).status, 200);
      assert.equal((await get(`${url}/v2/health/live`)).status, 200);
    });

    it("answers 429 with Retry-After and x-ratelimit headers once a tenant's requests per minute are spent", async () => {
      const gamma = await tenantWithKey(url, { id: 'gamma', models: ['chat-b'], limits: { requests_per_minute: 3 } });
      const headers = { authorization: `Bearer ${gamma.key}` };
      const remaining: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await post(`${url}/v1/chat/completions`, { model: 'chat-b', messages: hi }, headers);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('x-ratelimit-limit-requests'), '3');
        assert.match(res.headers.get('x-ratelimit-reset-requests') ?? '', /^(\d+m)?[\d.]+m?s$/);
        remaining.push(res.headers.get('x-ratelimit-remaining-requests') ?? '');
      }
      assert.deepEqual(remaining, ['2', '1', '0']);
      const refused = await post(`${url}/v1/chat/completions`, { model: 'chat-b', messages: hi }, headers);
      assert.equal(refused.status, 429);
      assert.equal(refused.body.error.code, 'rate_limited');
      assert.match(refused.body.error.message, /3 requests per minute/);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      assert.equal(refused.headers.get('x-ratelimit-remaining-requests'), '0');
      agreesWithRetryAfter(refused.headers, 'x-ratelimit-reset-requests');
      await assert.rejects(
        sdk(url, gamma.key).chat.completions.create({ model: 'chat-b', messages: hi }),
        (e: unknown) => e instanceof OpenAI.RateLimitError,
      );
      // Another tenant is not affected.
      assert.equal(
        (await post(`${url}/v1/chat/completions`, { model: 'chat-b', messages: hi }, { authorization: `Bearer ${beta.key}` })).status,
        200,
      );
    });

    it('applies a key’s own limits under its tenant’s', async () => {
      const k = await tenantWithKey(url, { id: 'keyed', models: ['chat-b'] }, { requests_per_minute: 1 });
      const headers = { authorization: `Bearer ${k.key}` };
      assert.equal((await post(`${url}/v1/chat/completions`, { model: 'chat-b', messages: hi }, headers)).status, 200);
      const refused = await post(`${url}/v1/chat/completions`, { model: 'chat-b', messages: hi }, headers);
      assert.equal(refused.status, 429);
      assert.match(refused.body.error.message, /key key_/);
    });

    it('refuses a call over the concurrent-request limit while another is in flight', async () => {
      const c = await tenantWithKey(url, { id: 'conc', models: ['chat-slow'], limits: { concurrent_requests: 1 } });
      const headers = { authorization: `Bearer ${c.key}` };
      const call = (): ReturnType<typeof post> => post(`${url}/v1/chat/completions`, { model: 'chat-slow', messages: hi }, headers);
      const [first, second] = await Promise.all([call(), new Promise((r) => setTimeout(r, 50)).then(call)]);
      assert.equal(first.status, 200);
      assert.equal(second.status, 429);
      assert.match(second.body.error.message, /1 requests in flight/);
      assert.equal((await call()).status, 200, 'the slot is free again once the first call ended');
    });

    it('cuts a stream cleanly when the tokens per minute run out, then refuses the next call', async () => {
      const t = await tenantWithKey(url, { id: 'tokens', models: ['chat-long'], limits: { tokens_per_minute: 12 } });
      const stream = await sdk(url, t.key).chat.completions.create({ model: 'chat-long', messages: hi, stream: true });
      let pieces = 0;
      await assert.rejects(
        (async () => {
          for await (const chunk of stream) if (chunk.choices[0]?.delta.content) pieces++;
        })(),
        (e: unknown) => e instanceof OpenAI.APIError && /stream was cut/.test(e.message),
      );
      assert.ok(pieces > 0 && pieces < 40, `cut mid-stream after ${pieces} of 40 pieces`);
      const next = await post(`${url}/v1/chat/completions`, { model: 'chat-long', messages: hi }, { authorization: `Bearer ${t.key}` });
      assert.equal(next.status, 429);
      assert.match(next.body.error.message, /12 tokens per minute/);
      assert.ok(next.headers.get('x-ratelimit-remaining-tokens') === '0');
      agreesWithRetryAfter(next.headers, 'x-ratelimit-reset-tokens');
    });

    it('answers 429 insufficient_quota once the monthly token quota is used', async () => {
      const q = await tenantWithKey(url, { id: 'quota', models: ['chat-b'], limits: { monthly_tokens: 5 } });
      const headers = { authorization: `Bearer ${q.key}` };
      assert.equal((await post(`${url}/v1/chat/completions`, { model: 'chat-b', messages: hi }, headers)).status, 200);
      const refused = await post(`${url}/v1/chat/completions`, { model: 'chat-b', messages: hi }, headers);
      assert.equal(refused.status, 429);
      assert.equal(refused.body.error.code, 'insufficient_quota');
      assert.ok(Number(refused.headers.get('retry-after')) > 0);
    });

    it("queues a tenant's calls by its priority class, which x-priority can lower but not raise", async () => {
      const vip = await tenantWithKey(url, { id: 'vip', models: ['capped'], priority: 'high' });
      const bulk = await tenantWithKey(url, { id: 'bulk', models: ['capped'], priority: 'low' });
      const done: string[] = [];
      const send = (name: string, key: string, headers: Record<string, string> = {}) =>
        post(`${url}/v1/chat/completions`, { model: 'capped', messages: hi }, { authorization: `Bearer ${key}`, ...headers }).then((r) => {
          assert.equal(r.status, 200);
          done.push(name);
        });
      const first = send('first', bulk.key);
      await new Promise((r) => setTimeout(r, 40));
      const pushy = send('bulk asking for high', bulk.key, { 'x-priority': 'high' });
      await new Promise((r) => setTimeout(r, 20));
      const high = send('vip', vip.key);
      await Promise.all([first, pushy, high]);
      assert.deepEqual(done, ['first', 'vip', 'bulk asking for high']);
    });

    it('stops a revoked key at once, and a rotated key replaces the old one', async () => {
      const r = await tenantWithKey(url, { id: 'revoke', models: ['chat-b'] });
      const call = (key: string): ReturnType<typeof post> =>
        post(`${url}/v1/chat/completions`, { model: 'chat-b', messages: hi }, { authorization: `Bearer ${key}` });
      assert.equal((await call(r.key)).status, 200);
      const rotated = await adminCall(url, 'POST', `/admin/keys/${r.id}/rotate`);
      assert.equal(rotated.status, 201);
      assert.notEqual(rotated.body.key, r.key);
      assert.equal((await call(r.key)).status, 401);
      assert.equal((await call(rotated.body.key)).status, 200);
      const revoked = await adminCall(url, 'DELETE', `/admin/keys/${rotated.body.id}`);
      assert.equal(revoked.status, 200);
      assert.equal(typeof revoked.body.revoked_at, 'number');
      assert.equal((await call(rotated.body.key)).status, 401);
      const keys = await adminCall(url, 'GET', '/admin/tenants/revoke/keys');
      assert.equal(keys.body.data.length, 2);
      assert.ok(
        keys.body.data.every((k: Record<string, unknown>) => k.key === undefined && k.hash === undefined),
        'lists never show a key or its hash',
      );
    });

    it('keeps tenant keys out of the admin API (403) and answers 401 without the admin key', async () => {
      const tenantKey = await get(`${url}/admin/tenants`, { authorization: `Bearer ${alpha.key}` });
      assert.equal(tenantKey.status, 403);
      assert.equal(tenantKey.body.error.code, 'permission_denied');
      assert.equal((await get(`${url}/admin/breakers`, { authorization: `Bearer ${alpha.key}` })).status, 403);
      assert.equal((await get(`${url}/admin/tenants`)).status, 401);
      assert.equal((await get(`${url}/admin/tenants`, { authorization: 'Bearer not-the-admin-key' })).status, 401);
      assert.equal((await get(`${url}/admin/tenants`, ADMIN)).status, 200);
    });

    it('checks admin bodies: unknown fields and bad values are 400s naming the field', async () => {
      const unknown = await adminCall(url, 'POST', '/admin/tenants', { id: 'x1', models: ['*'], limit: { rpm: 1 } });
      assert.equal(unknown.status, 400);
      assert.match(unknown.body.error.message, /additional properties|limit/);
      const badLimit = await adminCall(url, 'POST', '/admin/tenants', { id: 'x2', models: ['*'], limits: { requests_per_minute: -1 } });
      assert.equal(badLimit.status, 400);
      assert.match(badLimit.body.error.message, /requests_per_minute/);
      const badId = await adminCall(url, 'POST', '/admin/tenants', { id: 'Not Valid', models: ['*'] });
      assert.equal(badId.status, 400);
      const dup = await adminCall(url, 'POST', '/admin/tenants', { id: 'alpha', models: ['*'] });
      assert.equal(dup.status, 400);
      assert.match(dup.body.error.message, /already exists/);
      assert.equal((await adminCall(url, 'GET', '/admin/tenants/nobody')).status, 404);
      assert.equal((await adminCall(url, 'DELETE', '/admin/keys/key_nothing')).status, 404);
    });

    it('records every finished call: usage totals equal what was sent, for local and proxied, whole and streamed', async () => {
      const u = await tenantWithKey(url, { id: 'usage', models: ['chat-a', 'remote'] });
      const client = sdk(url, u.key);
      let prompt = 0;
      let completion = 0;
      for (let i = 0; i < 3; i++) {
        const r = await client.chat.completions.create({ model: 'chat-a', messages: hi });
        prompt += r.usage?.prompt_tokens ?? NaN;
        completion += r.usage?.completion_tokens ?? NaN;
      }
      const whole = await client.chat.completions.create({ model: 'remote', messages: hi });
      prompt += whole.usage?.prompt_tokens ?? NaN;
      completion += whole.usage?.completion_tokens ?? NaN;
      // Streams: one that asks for usage (and gets it), one that does not (and gets no usage chunk).
      for (const model of ['chat-a', 'remote']) {
        const asked = await client.chat.completions.create({ model, messages: hi, stream: true, stream_options: { include_usage: true } });
        let usage: OpenAI.CompletionUsage | null | undefined;
        for await (const chunk of asked) if (chunk.usage) usage = chunk.usage;
        assert.ok(usage, `${model}: the usage chunk reaches a client that asked`);
        prompt += 2 * usage.prompt_tokens;
        completion += 2 * usage.completion_tokens;
        const plain = await client.chat.completions.create({ model, messages: hi, stream: true });
        for await (const chunk of plain) assert.ok(chunk.choices.length > 0 && !chunk.usage, `${model}: no usage chunk unless asked`);
      }
      const own = await get(`${url}/v1/usage`, { authorization: `Bearer ${u.key}` });
      assert.equal(own.status, 200);
      assert.deepEqual(own.body.data, [
        {
          tenant: 'usage',
          group: null,
          requests: 8,
          errors: 0,
          prompt_tokens: prompt,
          completion_tokens: completion,
          total_tokens: prompt + completion,
        },
      ]);
      const byModel = await adminCall(url, 'GET', '/admin/usage?tenant=usage&group_by=model');
      assert.deepEqual(
        byModel.body.data.map((r: { group: string; requests: number }) => [r.group, r.requests]),
        [
          ['chat-a', 5],
          ['remote', 3],
        ],
      );
      const byDay = await adminCall(
        url,
        'GET',
        `/admin/usage?tenant=usage&group_by=day&from=${new Date(Date.now() - 86_400_000).toISOString()}`,
      );
      assert.equal(byDay.body.data[0].group, new Date().toISOString().slice(0, 10));
      // A tenant sees only its own usage, whatever it asks for.
      const other = await get(`${url}/v1/usage?tenant=usage`, { authorization: `Bearer ${beta.key}` });
      assert.ok(other.body.data.every((r: { tenant: string }) => r.tenant === 'beta'));
      const bad = await adminCall(url, 'GET', '/admin/usage?group_by=hour');
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.param, 'group_by');
    });

    it('records a call the deployment failed, with its status, and none for a request refused as invalid', async () => {
      const f = await tenantWithKey(url, { id: 'failing', models: ['remote', 'chat-a'] });
      const headers = { authorization: `Bearer ${f.key}` };
      assert.equal(
        (await post(`${url}/v1/chat/completions`, { model: 'chat-a', messages: hi }, { ...headers, 'x-model-version': '9' })).status,
        404,
      );
      assert.equal((await post(`${url}/v1/chat/completions`, { model: 'chat-a', messages: 'hi' }, headers)).status, 400);
      upstream.failWith = { status: 500, message: 'boom' };
      try {
        assert.equal((await post(`${url}/v1/chat/completions`, { model: 'remote', messages: hi }, headers)).status, 502);
      } finally {
        upstream.failWith = null;
      }
      const usage = await get(`${url}/v1/usage`, headers);
      assert.deepEqual(usage.body.data, [
        { tenant: 'failing', group: null, requests: 1, errors: 1, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      ]);
    });

    it('manages tenants and keys from the CLI', async () => {
      const env = { INFERGATE_URL: url, INFERGATE_ADMIN_KEY: ADMIN_KEY };
      const created = await cli(['tenants', 'create', 'cli-team', '--models', 'chat-a,chat-b', '--priority', 'high', '--rpm', '100'], env);
      assert.equal(created.code, 0, created.stderr);
      assert.equal(JSON.parse(created.stdout).limits.requests_per_minute, 100);
      const key = await cli(['keys', 'create', 'cli-team', '--name', 'laptop'], env);
      assert.equal(key.code, 0, key.stderr);
      const secret = JSON.parse(key.stdout).key as string;
      assert.equal((await sdk(url, secret).chat.completions.create({ model: 'chat-a', messages: hi })).object, 'chat.completion');
      const updated = await cli(['tenants', 'update', 'cli-team', '--tpm', '5000', '--rpm', 'none'], env);
      assert.equal(updated.code, 0, updated.stderr);
      assert.deepEqual(JSON.parse(updated.stdout).limits, { tokens_per_minute: 5000 });
      const list = await cli(['tenants', 'list'], env);
      assert.match(list.stdout, /^id\s+priority\s+models/m);
      assert.match(list.stdout, /cli-team\s+high\s+\["chat-a","chat-b"\]/);
      const usage = await cli(['usage', '--tenant', 'cli-team'], env);
      assert.match(usage.stdout, /cli-team\s+-\s+1\s+0/);
      const revoke = await cli(['keys', 'revoke', JSON.parse(key.stdout).id], env);
      assert.equal(revoke.code, 0, revoke.stderr);
      assert.equal((await get(`${url}/v1/models`, { authorization: `Bearer ${secret}` })).status, 401);
      const refused = await cli(['tenants', 'list'], { ...env, INFERGATE_ADMIN_KEY: secret });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /401/);
      const deleted = await cli(['tenants', 'delete', 'cli-team'], env);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal((await adminCall(url, 'GET', '/admin/tenants/cli-team')).status, 404);
    });
  });
