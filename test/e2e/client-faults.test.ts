/**
 * No request can make a backend look unwell: a body too deep to serialise, or one the upstream
 * refuses with a 4xx, is the client's answer alone. It is not retried, and it neither opens the
 * version's breaker nor ejects its endpoint, so other tenants' calls go on being served.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY, breakers, tenantWithKey } from '../helpers/tenancy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** Deeper than JSON.stringify can go on Node's default stack (it overflows near 5,000 levels). */
const DEPTH = 9000;

describe('requests that are the client’s fault never count against the backend', () => {
  let server: RunningServer;
  let upstream: Upstream;
  let alpha: { key: string };
  let beta: { key: string };

  before(async () => {
    upstream = await startUpstream();
    // max_json_depth high enough that the body reaches the backend, even once parsing bounds depth.
    const config = writeConfig(`
server: { max_json_depth: 10000, retry_budget: { ratio: 0, min_per_second: 1000 } }
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: proxy-embed
    versions:
      - version: '1'
        backend: { kind: openai, base_url: '${upstream.url}' }
  - name: proxy-chat
    versions:
      - version: '1'
        backend:
          kind: openai
          endpoints: [{ base_url: '${upstream.url}' }]
          passive_health: { consecutive_failures: 2, ejection_ms: 60000 }
        policies:
          retry: { attempts: 3, base_delay_ms: 1 }
          breaker: { consecutive_failures: 5, half_open_after_ms: 60000 }
`);
    server = await startServer({ config });
    alpha = await tenantWithKey(server.url, { id: 'alpha', models: ['proxy-chat', 'proxy-embed'] });
    beta = await tenantWithKey(server.url, { id: 'beta', models: ['proxy-chat', 'proxy-embed'] });
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });
  beforeEach(() => {
    upstream.faults = [];
    upstream.received.length = 0;
  });

  const chat = (key: string, body: unknown) => post(`${server.url}/v1/chat/completions`, body, { authorization: `Bearer ${key}` });

  /** The version's breaker state and whether its one endpoint is ejected, from GET /admin/breakers. */
  async function health(): Promise<{ state: string; ejected: boolean }> {
    const b = (await breakers(server.url)).find((x) => x.model === 'proxy-chat');
    assert.ok(b !== undefined);
    return { state: b.state, ejected: b.endpoints?.[0]?.ejected ?? true };
  }

  it('answers a body too deep to serialise with 400 naming the field, sends nothing upstream, and serves other tenants', async () => {
    const text = JSON.stringify({ model: 'proxy-chat', messages: [{ role: 'user', content: 'hi' }] }).replace(
      /}$/,
      `,"metadata":${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}}`,
    );
    for (let i = 0; i < 10; i++) {
      const res = await chat(alpha.key, text);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'invalid_request');
      assert.equal(res.body.error.param, 'metadata');
      assert.match(res.body.error.message, /`metadata` is nested too deeply/);
    }
    assert.equal(upstream.received.length, 0, 'no bad request reached the upstream');
    const ok = await chat(beta.key, { model: 'proxy-chat', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(await health(), { state: 'closed', ejected: false });
  });

  it('passes upstream 400, 413 and 422 on as client errors, untried again, with the breaker closed and the endpoint in', async () => {
    // More in a row than the breaker's 5 and the endpoint's 2.
    const faults = [413, 400, 413, 422, 413, 413, 413];
    upstream.faults = faults.map((status) => ({ status }));
    const statuses = [];
    for (let i = 0; i < faults.length; i++) {
      statuses.push((await chat(alpha.key, { model: 'proxy-chat', messages: [{ role: 'user', content: 'hi' }] })).status);
    }
    assert.deepEqual(statuses, [413, 400, 413, 400, 413, 413, 413]);
    assert.equal(upstream.received.length, faults.length, 'none was retried');
    assert.deepEqual(await health(), { state: 'closed', ejected: false });
    const ok = await chat(beta.key, { model: 'proxy-chat', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });

  it("answers 502 upstream_error, not the client's 400, when the upstream's embeddings are not JSON or of the wrong shape", async () => {
    const embed = (input: string[]) =>
      post(`${server.url}/v1/embeddings`, { model: 'proxy-embed', input }, { authorization: `Bearer ${alpha.key}` });
    for (const garbage of [
      '<html>oops</html>',
      '{"data": [{"index": "__proto__", "embedding": [1]}]}',
      '{"data": [{"index": 5, "embedding": [1]}]}',
      'null',
    ]) {
      upstream.faults = [{ garbage }];
      const res = await embed(['hi']);
      assert.equal(res.status, 502, `${garbage}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'upstream_error');
    }
    assert.equal((await embed(['hi'])).status, 200);
  });
});
