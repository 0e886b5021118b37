/**
 * Generation is not idempotent: a call is retried only when the upstream provably did not run it
 * (the connection was refused, or the upstream answered 429 or 503), never once the request may
 * have reached it (a connection cut after the request was written, a 502 or 504), unless the
 * version's policy opts in with `retry.on_sent`. Against fault-injecting upstreams on loopback.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { closedPort, startUpstream, type Upstream } from '../helpers/upstream.js';

describe('retries only what never reached the upstream', () => {
  let server: RunningServer;
  let upstream: Upstream;

  before(async () => {
    upstream = await startUpstream();
    const dead = await closedPort();
    const config = writeConfig(`
server: { retry_budget: { ratio: 0, min_per_second: 1000 } }
models:
  - name: careful
    versions:
      - version: '1'
        backend: { kind: openai, base_url: '${upstream.url}' }
        policies: { retry: { attempts: 3, base_delay_ms: 1 }, breaker: { consecutive_failures: 0 } }
  - name: bold
    versions:
      - version: '1'
        backend: { kind: openai, base_url: '${upstream.url}' }
        policies: { retry: { attempts: 3, base_delay_ms: 1, on_sent: true }, breaker: { consecutive_failures: 0 } }
  - name: pair
    versions:
      - version: '1'
        backend:
          kind: openai
          balance: round-robin
          endpoints: [{ base_url: 'http://127.0.0.1:${dead}/v1' }, { base_url: '${upstream.url}' }]
        policies: { retry: { attempts: 2, base_delay_ms: 1 }, breaker: { consecutive_failures: 0 } }
`);
    server = await startServer({ config });
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });
  beforeEach(() => {
    upstream.faults = [];
    upstream.received.length = 0;
  });

  const chat = (model: string) => post(`${server.url}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'hi' }] });

  it('does not retry a call whose connection was cut after the upstream read the whole request', async () => {
    upstream.faults = [{ reset: true }, { reset: true }, { reset: true }];
    const res = await chat('careful');
    assert.equal(res.status, 502);
    assert.equal(res.body.error.code, 'upstream_unavailable');
    assert.equal(upstream.received.length, 1, 'the upstream saw the request once');
  });

  it('does not retry an upstream 502 or 504, after which the upstream may still be running the call', async () => {
    for (const status of [502, 504]) {
      upstream.received.length = 0;
      upstream.faults = [{ status }, { status }];
      const res = await chat('careful');
      assert.equal(res.status, 502);
      assert.equal(res.body.error.code, 'upstream_error');
      assert.equal(upstream.received.length, 1, `${status}: not retried`);
    }
  });

  it('retries those too where the policy opts in with retry.on_sent', async () => {
    upstream.faults = [{ reset: true }, { status: 502 }];
    const res = await chat('bold');
    assert.equal(res.status, 200);
    assert.equal(upstream.received.length, 3);
  });

  it('retries an upstream 503 with Retry-After: 0, and a 429, which say the call was not run', async () => {
    upstream.faults = [
      { status: 503, retryAfter: '0' },
      { status: 429, retryAfter: '0' },
    ];
    const res = await chat('careful');
    assert.equal(res.status, 200);
    assert.equal(res.body.choices[0].message.content, 'upstream says hi');
    assert.equal(upstream.received.length, 3);
  });

  it('retries a refused connection on the next endpoint, and succeeds', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await chat('pair');
      assert.equal(res.status, 200, 'a refused endpoint costs a retry, never an error');
    }
    assert.equal(upstream.received.length, 2, 'each call reached the healthy endpoint once');
  });
});
