/**
 * Traffic governance end to end: the real server in front of a fault-injecting upstream on
 * loopback. Retries before the first byte only (and only of what never ran upstream), Retry-After
 * honoured, circuit breakers that open, fail fast, half-open and close, fallbacks and a degraded
 * answer, and deadlines that cancel.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { closedPort, startUpstream, type Upstream } from '../helpers/upstream.js';

const chatBody = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});

describe('traffic governance', () => {
  let server: RunningServer;
  let upstream: Upstream;
  let backup: Upstream;

  before(async () => {
    upstream = await startUpstream();
    backup = await startUpstream();
    const dead = await closedPort();
    const config = writeConfig(`
server: { retry_budget: { ratio: 0, min_per_second: 1000 } }
models:
  - name: remote
    versions:
      - version: '1'
        backend: { kind: openai, base_url: '${upstream.url}' }
        policies:
          retry: { attempts: 3, base_delay_ms: 1, max_delay_ms: 2000 }
          breaker: { consecutive_failures: 0 }
  - name: fragile
    versions:
      - version: '1'
        backend: { kind: openai, base_url: '${upstream.url}' }
        policies:
          retry: { attempts: 1 }
          breaker: { consecutive_failures: 3, half_open_after_ms: 500 }
  - name: refused
    versions:
      - version: '1'
        backend: { kind: openai, base_url: 'http://127.0.0.1:${dead}/v1' }
        policies: { retry: { attempts: 2, base_delay_ms: 1 }, breaker: { consecutive_failures: 0 } }
  - name: with-fallback
    versions:
      - version: a
        backend: { kind: openai, base_url: 'http://127.0.0.1:${dead}/v1' }
        policies: { retry: { attempts: 1 } }
    fallbacks: [{ model: backup }]
  - name: backup
    versions:
      - version: b
        backend: { kind: openai, base_url: '${backup.url}' }
  - name: degraded
    versions:
      - version: '1'
        backend: { kind: openai, base_url: 'http://127.0.0.1:${dead}/v1' }
        policies: { retry: { attempts: 1 } }
    fallbacks: [{ model: refused }]
    degraded_response: { text: 'The assistant is unavailable right now.' }
  - name: slow
    versions:
      - version: '1'
        backend: { kind: openai, base_url: '${upstream.url}' }
        policies: { timeout_ms: 300, max_timeout_ms: 1000, retry: { attempts: 1 } }
  - name: stalling
    versions:
      - version: '1'
        backend: { kind: openai, base_url: '${upstream.url}', timeout_ms: 300 }
        policies: { retry: { attempts: 1 } }
  - name: local
    versions:
      - version: '1'
        backend: { kind: mock }
  - name: replicated
    versions:
      - version: '1'
        backend:
          kind: openai
          endpoints: [{ base_url: '${upstream.url}' }, { base_url: 'http://127.0.0.1:${dead}/v1' }]
          passive_health: { consecutive_failures: 2, ejection_ms: 60000 }
        policies: { retry: { attempts: 2, base_delay_ms: 1 }, breaker: { consecutive_failures: 0 } }
  - name: checked
    versions:
      - version: '1'
        backend:
          kind: openai
          endpoints: [{ base_url: '${backup.url}' }, { base_url: 'http://127.0.0.1:${dead}/v1' }]
          health_check: { interval_ms: 100 }
  - name: capped
    versions:
      - version: '1'
        backend: { kind: mock, latency_ms: 300 }
        policies: { admission: { max_concurrent: 1, queue_size: 2 } }
`);
    server = await startServer({ config });
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
    await backup?.close();
  });
  beforeEach(() => {
    upstream.faults = [];
    upstream.received.length = 0;
    upstream.cancelled = 0;
  });

  const chat = (model: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
    post(`${server.url}/v1/chat/completions`, chatBody(model, extra), headers);

  it('retries 503 before the first byte, and answers from the try that worked', async () => {
    upstream.faults = [{ status: 503 }, { status: 503 }];
    const res = await chat('remote');
    assert.equal(res.status, 200);
    assert.equal(res.body.choices[0].message.content, 'upstream says hi');
    assert.equal(upstream.received.length, 3);
  });

  it('gives up after its attempts with the upstream error', async () => {
    upstream.faults = [{ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 }];
    const res = await chat('remote');
    assert.equal(res.status, 502);
    assert.equal(res.body.error.code, 'upstream_error');
    assert.equal(upstream.received.length, 3, 'attempts: 3');
  });

  it("does not retry what is the client's mistake (400)", async () => {
    upstream.faults = [{ status: 400 }];
    const res = await chat('remote');
    assert.equal(res.status, 400);
    assert.equal(upstream.received.length, 1);
  });

  it('retries a refused connection, not one reset after the request was written', async () => {
    upstream.faults = [{ reset: true }];
    const res = await chat('remote');
    assert.equal(res.status, 502);
    assert.equal(res.body.error.code, 'upstream_unavailable');
    assert.equal(upstream.received.length, 1, 'the upstream may have run it: not sent again');
    const refused = await chat('refused');
    assert.equal(refused.status, 502);
    assert.equal(refused.body.error.code, 'upstream_unavailable');
  });

  it("waits the upstream's Retry-After on 429 before retrying", async () => {
    upstream.faults = [{ status: 429, retryAfter: '1' }];
    const started = performance.now();
    const res = await chat('remote');
    assert.equal(res.status, 200);
    assert.ok(performance.now() - started >= 950, 'waited about a second');
  });

  it('passes an upstream 429 on as 429 with Retry-After when retries run out', async () => {
    upstream.faults = [{ status: 429, retryAfter: '30' }];
    const res = await chat('remote');
    assert.equal(res.status, 429, 'Retry-After beyond max_delay_ms: no retry');
    assert.equal(res.body.error.code, 'upstream_rate_limited');
    assert.equal(res.body.error.type, 'rate_limit_error');
    assert.equal(res.headers.get('retry-after'), '30');
    assert.equal(upstream.received.length, 1);
  });

  it('never retries once the stream has started: a cut stream ends, and the upstream saw one request', async () => {
    upstream.faults = [{ cutAfterChunks: 1 }];
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chatBody('remote', { stream: true })),
    });
    assert.equal(res.status, 200);
    await res.text().catch(() => '');
    assert.equal(upstream.received.length, 1);
  });

  it('ends a stream whose upstream stalls mid-way after timeout_ms, instead of hanging', async () => {
    upstream.faults = [{ stallAfterChunks: 1 }];
    const started = performance.now();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chatBody('stalling', { stream: true })),
    });
    assert.equal(res.status, 200);
    const text = await res.text().catch(() => 'cut');
    const took = performance.now() - started;
    assert.ok(took >= 250 && took < 2000, `ended after ${took} ms`);
    assert.ok(!text.endsWith('data: [DONE]\n\n'), 'the stream did not pretend to finish');
    assert.equal((await chat('local')).status, 200, 'the server is fine');
  });

  it('does not count clients that leave against the breaker', async () => {
    upstream.faults = Array.from({ length: 5 }, () => ({ delayMs: 1000 }));
    const leaving = Array.from({ length: 5 }, async () => {
      const controller = new AbortController();
      const res = fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(chatBody('fragile')),
        signal: controller.signal,
      }).catch(() => null);
      await sleep(100);
      controller.abort();
      return res;
    });
    await Promise.all(leaving);
    await sleep(100);
    upstream.faults = [];
    const breakers = (await get(`${server.url}/admin/breakers`)).body.breakers;
    assert.equal(breakers.find((b: { model: string }) => b.model === 'fragile').state, 'closed');
    assert.equal((await chat('fragile')).status, 200);
  });

  it('opens the breaker after consecutive failures, fails fast without calling, half-opens, then closes on success', async () => {
    upstream.faults = [{ status: 500 }, { status: 500 }, { status: 500 }];
    for (let i = 0; i < 3; i++) assert.equal((await chat('fragile')).status, 502);
    const before = upstream.received.length;
    const open = await chat('fragile');
    assert.equal(open.status, 503);
    assert.equal(open.body.error.code, 'circuit_open');
    assert.ok(Number(open.headers.get('retry-after')) >= 1);
    // Failing fast is failing without calling: no timed assertion (speed is for benchmarks).
    assert.equal(upstream.received.length, before, 'no upstream call while open');
    let breakers = (await get(`${server.url}/admin/breakers`)).body.breakers;
    assert.equal(breakers.find((b: { model: string }) => b.model === 'fragile').state, 'open');
    assert.equal(breakers.find((b: { model: string }) => b.model === 'local').state, 'disabled');

    await sleep(600); // half_open_after_ms: 500
    const probe = await chat('fragile');
    assert.equal(probe.status, 200, 'the probe went through and succeeded');
    breakers = (await get(`${server.url}/admin/breakers`)).body.breakers;
    assert.equal(breakers.find((b: { model: string }) => b.model === 'fragile').state, 'closed');
    assert.match(server.output(), /circuit breaker opened/);
  });

  it('falls back to another model when its own fails, and says so', async () => {
    const res = await chat('with-fallback');
    assert.equal(res.status, 200);
    assert.equal(res.body.choices[0].message.content, 'upstream says hi');
    assert.equal(res.headers.get('x-model-version'), 'b');
    assert.equal(res.headers.get('x-fallback-from'), 'with-fallback@a');
  });

  it('answers the degraded response when every fallback failed, streamed or not', async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const res = await client.chat.completions.create({ model: 'degraded', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(res.choices[0]?.message.content, 'The assistant is unavailable right now.');
    const stream = await client.chat.completions.create({ model: 'degraded', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.equal(text, 'The assistant is unavailable right now.');
    const raw = await chat('degraded');
    assert.equal(raw.headers.get('x-fallback-from'), 'degraded@1');
  });

  it('answers 504 at the deadline and cancels the upstream call', async () => {
    upstream.faults = [{ delayMs: 2000 }];
    const started = performance.now();
    const res = await chat('slow');
    const took = performance.now() - started;
    assert.equal(res.status, 504);
    assert.equal(res.body.error.code, 'upstream_timeout');
    assert.ok(took >= 280 && took < 1000, `took ${took} ms against a 300 ms deadline`);
    await sleep(100);
    assert.equal(upstream.cancelled, 1, 'the upstream saw the request cancelled');
  });

  it("takes the client's x-request-timeout-ms, capped by max_timeout_ms, and refuses a malformed one", async () => {
    upstream.faults = [{ delayMs: 1500 }];
    const started = performance.now();
    const res = await chat('slow', {}, { 'x-request-timeout-ms': '60000' });
    const took = performance.now() - started;
    assert.equal(res.status, 504);
    assert.ok(took >= 950 && took < 1400, `capped at 1000 ms, took ${took}`);
    upstream.faults = [{ delayMs: 200 }];
    assert.equal((await chat('slow', {}, { 'x-request-timeout-ms': '100' })).status, 504);
    const bad = await chat('slow', {}, { 'x-request-timeout-ms': 'soon' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.param, 'x-request-timeout-ms');
  });

  it('admits one call at a time to a capped version, queues by x-priority, and refuses a full queue with 503 and Retry-After', async () => {
    const done: string[] = [];
    const send = (name: string, priority?: string) =>
      chat('capped', {}, priority === undefined ? {} : { 'x-priority': priority }).then((r) => {
        done.push(name);
        return r;
      });
    const first = send('first');
    await sleep(50);
    const low = send('low', 'low');
    await sleep(20);
    const high = send('high', 'high');
    await sleep(20);
    const refused = await chat('capped');
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'overloaded');
    assert.equal(refused.headers.get('retry-after'), '1');
    const results = await Promise.all([first, low, high]);
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200],
    );
    assert.deepEqual(done, ['first', 'high', 'low'], 'high priority went ahead of the low one that came first');
  });

  it('answers 503 overloaded, not 504, when the deadline passes while still queued', async () => {
    const running = chat('capped');
    await sleep(20);
    const queued = await chat('capped', {}, { 'x-request-timeout-ms': '100' });
    assert.equal(queued.status, 503);
    assert.equal(queued.body.error.code, 'overloaded');
    assert.equal((await running).status, 200);
    const bad = await chat('capped', {}, { 'x-priority': 'urgent' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.param, 'x-priority');
  });

  it('spreads calls over replicas, retries on another when one is down, and ejects the failing one', async () => {
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await chat('replicated'));
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200, 200, 200, 200],
      'a refused replica costs a retry, never an error',
    );
    const breakers = (await get(`${server.url}/admin/breakers`)).body.breakers;
    const endpoints = breakers.find((b: { model: string }) => b.model === 'replicated').endpoints as Array<{
      url: string;
      ejected: boolean;
    }>;
    assert.deepEqual(
      endpoints.map((e) => e.ejected),
      [false, true],
    );
  });

  it('ejects a replica that fails its active health check before any call reaches it', async () => {
    await sleep(350);
    const breakers = (await get(`${server.url}/admin/breakers`)).body.breakers;
    const endpoints = breakers.find((b: { model: string }) => b.model === 'checked').endpoints as Array<{ ejected: boolean }>;
    assert.deepEqual(
      endpoints.map((e) => e.ejected),
      [false, true],
    );
    const res = await chat('checked');
    assert.equal(res.status, 200);
  });
});
