/**
 * Remote versions whose replicas are found, not listed, through the real server: an `openai`
 * version with `discovery.dns` follows the SRV records of a DNS server on loopback (upstreams that
 * leave stop getting calls, with none failing; new ones start getting them), one whose name has no
 * records is not ready and says why, one with registry discovery and no fleet store fails to load
 * saying so, and calls are placed on `pools` by their priority and counted by pool in /metrics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseMetrics } from '../helpers/prometheus.js';
import { startDnsServer, type DnsServer, type SrvRecord } from '../helpers/dns-server.js';
import { get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const NAME = '_openai._tcp.fleet.test';
const hi = [{ role: 'user', content: 'hi' }];

/** An SRV record for an upstream on loopback: the target is its address, written as a name. */
function srv(upstream: Upstream): SrvRecord {
  return { target: '127.0.0.1', port: Number(new URL(upstream.url).port), weight: 1, ttl: 1 };
}

/** Calls `model` received, of those an upstream has seen. */
function callsOf(upstream: Upstream, model: string): number {
  return upstream.received.filter((r) => r.body.model === model).length;
}

describe('discovered endpoints', () => {
  let dns: DnsServer;
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let server: RunningServer;
  /** Chat calls to `chat` answered 200, for the upstream counter. */
  let served = 0;

  async function chat(model = 'chat', headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const res = await post(`${server.url}/v1/chat/completions`, { model, messages: hi }, headers);
    if (model === 'chat' && res.status === 200) served++;
    return res;
  }

  before(async () => {
    dns = await startDnsServer();
    [a, b, c] = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
    dns.records.set(NAME, { SRV: [srv(a), srv(b)] });
    const config = writeConfig(`
models:
  - name: chat
    versions:
      - version: '1'
        backend:
          kind: openai
          balance: round-robin
          discovery: { dns: { name: ${NAME}, type: SRV, path: /v1, servers: ['${dns.address}'], refresh_ms: 500 } }
        policies: { retry: { attempts: 1 } }
  - name: nowhere
    versions:
      - version: '1'
        backend: { kind: openai, discovery: { dns: { name: nothing.fleet.test, port: 8000, servers: ['${dns.address}'] } } }
  - name: fleet
    versions:
      - version: '1'
        backend: { kind: openai, discovery: { registry: { model: llm, path: /v1 } } }
  - name: placed
    versions:
      - version: '1'
        backend:
          kind: openai
          endpoints: [{ base_url: '${a.url}', pool: reserved }, { base_url: '${b.url}', pool: spot }]
          pools: { prefer: { high: reserved, low: spot } }
`);
    server = await startServer({ config });
    const deadline = Date.now() + 10_000;
    while ((await get(`${server.url}/health/ready`)).body?.models?.chat !== true) {
      if (Date.now() > deadline) throw new Error('the discovered version never became ready');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  after(async () => {
    await server?.stop();
    await Promise.all([a?.close(), b?.close(), c?.close(), dns?.close()]);
  });

  it('sends chat calls to the upstreams the DNS records name', async () => {
    for (let i = 0; i < 10; i++) assert.equal((await chat()).status, 200);
    assert.equal(callsOf(a, 'chat'), 5);
    assert.equal(callsOf(b, 'chat'), 5);
    assert.equal(callsOf(c, 'chat'), 0);
  });

  it('stops sending calls to an upstream within 2 s of its record going, with no call failing', async () => {
    dns.records.set(NAME, { SRV: [srv(a)] });
    const removed = Date.now();
    // Two calls at a time, so that some are in flight at the one leaving when it leaves.
    while (Date.now() - removed < 2_000) {
      const statuses = await Promise.all([chat(), chat()]).then((r) => r.map((x) => x.status));
      assert.deepEqual(statuses, [200, 200]);
    }
    const atB = callsOf(b, 'chat');
    const atA = callsOf(a, 'chat');
    for (let i = 0; i < 10; i++) assert.equal((await chat()).status, 200);
    assert.equal(callsOf(b, 'chat'), atB, 'none reached the removed upstream');
    assert.equal(callsOf(a, 'chat'), atA + 10);
  });

  it('starts sending calls to an upstream within 2 s of its record coming', async () => {
    dns.records.set(NAME, { SRV: [srv(a), srv(c)] });
    const added = Date.now();
    while (callsOf(c, 'chat') === 0) {
      assert.ok(Date.now() - added < 2_000, 'the new upstream got no call within 2 s');
      assert.equal((await chat()).status, 200);
    }
    for (let i = 0; i < 4; i++) assert.equal((await chat()).status, 200);
    assert.ok(callsOf(c, 'chat') >= 2, 'it keeps getting its share');
  });

  it('reports a version whose name has no records as not ready, saying why, and answers its calls 503', async () => {
    const ready = await get(`${server.url}/health/ready`);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.models.nowhere, false);
    assert.deepEqual(
      ready.body.versions.find((v: { model: string }) => v.model === 'nowhere'),
      { model: 'nowhere', version: '1', reason: 'no endpoints discovered for dns A nothing.fleet.test' },
    );
    const res = await chat('nowhere');
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'model_not_ready');
    assert.match(res.body.error.message, /no endpoints discovered for dns A nothing\.fleet\.test/);
  });

  it('fails to load a version with registry discovery where there is no fleet store, saying what it needs', async () => {
    const ready = await get(`${server.url}/health/ready`);
    assert.deepEqual(
      ready.body.versions.find((v: { model: string }) => v.model === 'fleet'),
      { model: 'fleet', version: '1', reason: 'discovery.registry needs a fleet store (state.redis_url or fleet.etcd_url)' },
    );
  });

  it('places calls on the pool their priority prefers, and counts upstream requests by pool', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await chat('placed', { 'x-priority': 'high' })).status, 200);
    assert.equal(callsOf(a, 'placed'), 4);
    assert.equal(callsOf(b, 'placed'), 0);
    for (let i = 0; i < 3; i++) assert.equal((await chat('placed', { 'x-priority': 'low' })).status, 200);
    assert.equal(callsOf(a, 'placed'), 4);
    assert.equal(callsOf(b, 'placed'), 3);
    const m = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
    assert.equal(m.get('infergate_upstream_requests_total{model="placed",version="1",pool="reserved",outcome="ok"}'), 4);
    assert.equal(m.get('infergate_upstream_requests_total{model="placed",version="1",pool="spot",outcome="ok"}'), 3);
    assert.equal(m.get('infergate_upstream_requests_total{model="chat",version="1",pool="none",outcome="ok"}'), served);
    assert.equal(m.get('infergate_upstream_requests_total{model="chat",version="1",pool="none",outcome="error"}') ?? 0, 0);
  });
});
