/**
 * GET /metrics through the real server with two worker processes: one scrape counts the calls of
 * both, labels never carry what a client sent, process health is there, and promtool (where
 * installed) accepts the text.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { get, post, startServer, type RunningServer } from '../helpers/server.js';
import { ADMIN, keysConfig, tenantWithKey } from '../helpers/tenancy.js';

/** Prometheus text as `name{labels}` → value (labels as written). */
function parse(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

const hi = [{ role: 'user', content: 'hi' }];

describe('Prometheus metrics', () => {
  let server: RunningServer;
  let key: string;

  before(async () => {
    const config = keysConfig(
      '',
      `  - name: guarded
    versions:
      - version: '2'
        backend: { kind: mock, latency_ms: 0 }
        policies: { breaker: { consecutive_failures: 3 }, admission: { max_concurrent: 4 } }`,
    );
    server = await startServer({ config, args: ['--workers', '2'] });
    key = (await tenantWithKey(server.url, { id: 'acme', models: ['chat', 'guarded'] })).key;
  });

  after(async () => {
    await server.stop();
  });

  it('counts every worker’s calls by model, version, tenant, status and code, in one scrape', async () => {
    const auth = { authorization: `Bearer ${key}` };
    let prompt = 0;
    let completion = 0;
    // New connections each time, so both workers serve some.
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...auth, connection: 'close' },
        body: JSON.stringify({ model: 'chat', messages: hi }),
      });
      assert.equal(res.status, 200);
      const usage = ((await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
      prompt += usage.prompt_tokens;
      completion += usage.completion_tokens;
    }
    assert.equal((await post(`${server.url}/v1/chat/completions`, { model: 'secret-name', messages: hi }, auth)).status, 404);
    assert.equal((await post(`${server.url}/v1/chat/completions`, { model: 'chat', messages: hi })).status, 401);
    const res = await fetch(`${server.url}/metrics`, { headers: ADMIN });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const m = parse(text);
    assert.equal(m.get('infergate_requests_total{model="chat",version="1",tenant="acme",status="200",code=""}'), 12);
    assert.equal(m.get('infergate_request_duration_seconds_count{model="chat",version="1",tenant="acme",status="200"}'), 12);
    assert.equal(m.get('infergate_request_duration_seconds_bucket{le="60",model="chat",version="1",tenant="acme",status="200"}'), 12);
    assert.equal(m.get('infergate_requests_total{model="",version="",tenant="acme",status="404",code="model_not_found"}'), 1);
    assert.equal(m.get('infergate_requests_total{model="",version="",tenant="",status="401",code="invalid_api_key"}'), 1);
    assert.doesNotMatch(text, /secret-name/, 'a name a client sent never becomes a label');
    assert.equal(m.get('infergate_prompt_tokens_total{model="chat",version="1",tenant="acme",status="200"}'), prompt);
    assert.equal(m.get('infergate_completion_tokens_total{model="chat",version="1",tenant="acme",status="200"}'), completion);
    assert.equal(m.get('infergate_circuit_breaker_state{model="guarded",version="2"}'), 0);
    assert.equal(m.get('infergate_admission_active_calls{model="guarded",version="2"}'), 0);
    assert.equal(m.get('infergate_admission_queued_calls{model="guarded",version="2"}'), 0);
    assert.ok(!m.has('infergate_circuit_breaker_state{model="chat",version="1"}'), 'no series for a version without a breaker');
    for (const name of [
      'infergate_process_resident_memory_bytes',
      'infergate_nodejs_heap_size_used_bytes',
      'infergate_nodejs_eventloop_lag_p99_seconds',
      'infergate_nodejs_eventloop_utilization_ratio',
    ]) {
      assert.ok(m.has(name), `${name} is exported`);
    }
    assert.ok([...m.keys()].some((k) => k.startsWith('infergate_nodejs_gc_duration_seconds_count{kind=')));
  });

  it('passes promtool check metrics', async (t) => {
    if (spawnSync('promtool', ['--version']).error !== undefined)
      return t.skip('promtool is not installed (Debian package prometheus; .ci/run installs it)');
    const text = await (await fetch(`${server.url}/metrics`, { headers: ADMIN })).text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
  });

  it('is for the admin key only when one is set', async () => {
    assert.equal((await get(`${server.url}/metrics`)).status, 401);
    assert.equal((await get(`${server.url}/metrics`, { authorization: `Bearer ${key}` })).status, 403);
  });
});

describe('Prometheus metrics without tenant labels', () => {
  it('labels no tenant when tenant_label is off', async () => {
    const config = keysConfig('metrics: { tenant_label: false }');
    const server = await startServer({ config });
    try {
      const key = (await tenantWithKey(server.url, { id: 'acme', models: ['chat', 'guarded'] })).key;
      assert.equal(
        (await post(`${server.url}/v1/chat/completions`, { model: 'chat', messages: hi }, { authorization: `Bearer ${key}` })).status,
        200,
      );
      const m = parse(await (await fetch(`${server.url}/metrics`, { headers: ADMIN })).text());
      assert.equal(m.get('infergate_requests_total{model="chat",version="1",tenant="",status="200",code=""}'), 1);
    } finally {
      await server.stop();
    }
  });
});
