/**
 * GET /metrics through the real server with two worker processes: one scrape counts the calls of
 * both, labels never carry what a client sent, process health is there, and promtool (where
 * installed) accepts the text.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { get, post, ROOT, startServer, type RunningServer } from '../helpers/server.js';
import { parseMetrics } from '../helpers/prometheus.js';
import { ADMIN, adminCall, keysConfig, tenantWithKey } from '../helpers/tenancy.js';
import { closedPort } from '../helpers/upstream.js';

const hi = [{ role: 'user', content: 'hi' }];

/** Runs `promtool check metrics` on a scrape; skips where promtool is not installed. */
async function promtool(t: TestContext, url: string): Promise<void> {
  if (spawnSync('promtool', ['--version']).error !== undefined)
    return t.skip('promtool is not installed (Debian package prometheus; .ci/run installs it)');
  const text = await (await fetch(`${url}/metrics`, { headers: ADMIN })).text();
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
}

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
    const m = parseMetrics(text);
    assert.equal(m.get('infergate_requests_total{model="chat",version="1",tenant="acme",status="200",code=""}'), 12);
    assert.equal(m.get('infergate_request_duration_seconds_count{model="chat",version="1",tenant="acme",status="200",code=""}'), 12);
    assert.equal(
      m.get('infergate_request_duration_seconds_bucket{le="60",model="chat",version="1",tenant="acme",status="200",code=""}'),
      12,
    );
    assert.equal(m.get('infergate_requests_total{model="",version="",tenant="acme",status="404",code="model_not_found"}'), 1);
    assert.equal(m.get('infergate_requests_total{model="",version="",tenant="",status="401",code="invalid_api_key"}'), 1);
    assert.doesNotMatch(text, /secret-name/, 'a name a client sent never becomes a label');
    assert.equal(m.get('infergate_prompt_tokens_total{model="chat",version="1",tenant="acme",status="200",code=""}'), prompt);
    assert.equal(m.get('infergate_completion_tokens_total{model="chat",version="1",tenant="acme",status="200",code=""}'), completion);
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

  it('passes promtool check metrics', (t) => promtool(t, server.url));

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
      const m = parseMetrics(await (await fetch(`${server.url}/metrics`, { headers: ADMIN })).text());
      assert.equal(m.get('infergate_requests_total{model="chat",version="1",tenant="",status="200",code=""}'), 1);
    } finally {
      await server.stop();
    }
  });
});

/** Sums the series of `name` whose labels contain every `label="value"` pair given. */
function sum(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const [series, value] of m) {
    const brace = series.indexOf('{');
    if ((brace === -1 ? series : series.slice(0, brace)) !== name) continue;
    if (want.every((pair) => series.includes(pair))) total += value;
  }
  return total;
}

describe('Prometheus metrics of each stage', () => {
  let server: RunningServer;
  let auth: Record<string, string>;
  const scrape = async (): Promise<Map<string, number>> =>
    parseMetrics(await (await fetch(`${server.url}/metrics`, { headers: ADMIN })).text());

  before(async () => {
    const dead = await closedPort();
    const config = keysConfig(
      'server: { retry_budget: { ratio: 0, min_per_second: 1000 } }',
      `  - name: streamer
    versions: [{ version: s, backend: { kind: mock, latency_ms: 5, stream_chunks: 4 } }]
  - name: tiny-mlp
    versions:
      - version: '1'
        backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx, batching: { enabled: true, max_batch_size: 64, max_queue_delay_ms: 20 } }
  - name: narrow
    versions:
      - version: n
        backend: { kind: mock, latency_ms: 300 }
        policies: { admission: { max_concurrent: 1, queue_size: 1 } }
  - name: flaky
    versions:
      - version: f
        backend: { kind: openai, base_url: 'http://127.0.0.1:${dead}/v1' }
        policies: { retry: { attempts: 3, base_delay_ms: 1 }, breaker: { consecutive_failures: 0 } }
    fallbacks: [{ model: chat }]`,
    );
    server = await startServer({ config });
    const { key } = await tenantWithKey(server.url, { id: 'acme', models: ['*'] });
    auth = { authorization: `Bearer ${key}` };
  });

  after(async () => {
    await server.stop();
  });

  it('times streams to their first token and per output token', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ model: 'streamer', messages: hi, stream: true }),
      });
      assert.equal(res.status, 200);
      assert.match(await res.text(), /\[DONE\]/);
    }
    await post(`${server.url}/v1/chat/completions`, { model: 'streamer', messages: hi }, auth); // not streamed: no TTFT
    const m = await scrape();
    const labels = { model: 'streamer', version: 's' };
    assert.equal(sum(m, 'infergate_time_to_first_token_seconds_count', labels), 3);
    assert.equal(sum(m, 'infergate_time_per_output_token_seconds_count', labels), 3);
    // Each stream's first token comes after the mock's 5 ms and before its end: the sums over the
    // streams are ordered the same way (the durations also hold the one unstreamed call).
    const ttft = sum(m, 'infergate_time_to_first_token_seconds_sum', labels);
    const total = sum(m, 'infergate_request_duration_seconds_sum', { ...labels, status: '200' });
    assert.ok(ttft >= 3 * 0.005 && ttft <= total, `first tokens after ${ttft} s in all, of ${total} s of calls`);
    assert.equal(sum(m, 'infergate_backend_duration_seconds_count', labels), 4);
  });

  it('counts executions against inferences as dynamic batching merges requests (Triton exec vs inference count)', async () => {
    const body = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 32], data: Array.from({ length: 32 }, (_, i) => i / 32) }] };
    const answers = await Promise.all(Array.from({ length: 24 }, () => post(`${server.url}/v2/models/tiny-mlp/infer`, body, auth)));
    for (const a of answers) assert.equal(a.status, 200);
    const m = await scrape();
    const labels = { model: 'tiny-mlp', version: '1' };
    const executions = sum(m, 'infergate_inference_exec_count_total', labels);
    assert.equal(sum(m, 'infergate_inference_count_total', labels), 24);
    assert.ok(executions >= 1 && executions < 24, `24 requests ran as ${executions} executions`);
    assert.equal(sum(m, 'infergate_batch_size_count', labels), executions);
    assert.equal(sum(m, 'infergate_batch_size_sum', labels), 24, 'rows over all executions');
  });

  it('times the admission queue and counts what it sheds', async () => {
    const answers = await Promise.all(
      Array.from({ length: 3 }, () => post(`${server.url}/v1/chat/completions`, { model: 'narrow', messages: hi }, auth)),
    );
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 503]);
    const m = await scrape();
    const labels = { model: 'narrow', version: 'n' };
    assert.equal(sum(m, 'infergate_shed_requests_total', { ...labels, reason: 'queue_full' }), 1);
    assert.equal(sum(m, 'infergate_shed_requests_total', { ...labels, reason: 'queue_timeout' }), 0);
    assert.equal(sum(m, 'infergate_queue_duration_seconds_count', labels), 2);
    const waited = sum(m, 'infergate_queue_duration_seconds_sum', labels);
    assert.ok(waited > 0.2, `the second call waited for the first (${waited} s in all)`);
    assert.equal(m.get('infergate_admission_active_calls{model="narrow",version="n"}'), 0);
  });

  it('counts retries, fallbacks and every attempt at the backend', async () => {
    const res = await post(`${server.url}/v1/chat/completions`, { model: 'flaky', messages: hi }, auth);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-fallback-from'), 'flaky@f');
    const m = await scrape();
    const labels = { model: 'flaky', version: 'f' };
    assert.equal(sum(m, 'infergate_retries_total', labels), 2);
    assert.equal(sum(m, 'infergate_fallbacks_total', labels), 1);
    assert.equal(sum(m, 'infergate_backend_duration_seconds_count', labels), 3);
    assert.equal(m.get('infergate_backend_running_requests{model="flaky",version="f"}'), 0);
    assert.equal(
      m.get('infergate_requests_total{model="chat",version="1",tenant="acme",status="200",code=""}'),
      1,
      'counted where it was served',
    );
  });

  it('counts 429s by the limit that refused them', async () => {
    const { key } = await tenantWithKey(server.url, { id: 'metered', models: ['chat'], limits: { requests_per_minute: 2 } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push(
        (await post(`${server.url}/v1/chat/completions`, { model: 'chat', messages: hi }, { authorization: `Bearer ${key}` })).status,
      );
    }
    assert.deepEqual(statuses, [200, 200, 429]);
    const m = await scrape();
    assert.equal(m.get('infergate_rate_limited_requests_total{tenant="metered",limit="requests_per_minute"}'), 1);
    assert.equal(sum(m, 'infergate_rate_limited_requests_total', { tenant: 'acme' }), 0);
  });

  it('passes promtool check metrics with every family populated', (t) => promtool(t, server.url));

  it('backs every query of the Grafana dashboard and the alert rules with a metric it exports', async () => {
    const text = await (await fetch(`${server.url}/metrics`, { headers: ADMIN })).text();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/infergate.json'), 'utf8')) as {
      panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }>;
    };
    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));
    assert.ok(queries.length >= 20, `${queries.length} queries`);
    const rules = readFileSync(join(ROOT, 'deploy/prometheus/alerts.yml'), 'utf8');
    queries.push(...[...rules.matchAll(/expr: \|?\n?([^]*?)\n\s+for:/g)].map((m) => ({ where: 'alerts.yml', expr: m[1] as string })));
    for (const { where, expr } of queries) {
      const names = [...expr.matchAll(/infergate_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''));
      assert.ok(names.length > 0, `${where}: ${expr}`);
      for (const name of names) assert.ok(exported.has(name), `${where} queries ${name}, which /metrics does not export`);
    }
  });

  it('has alert rules that promtool accepts and that fire as their unit tests expect', (t) => {
    if (spawnSync('promtool', ['--version']).error !== undefined)
      return t.skip('promtool is not installed (Debian package prometheus; .ci/run installs it)');
    const check = spawnSync('promtool', ['check', 'rules', join(ROOT, 'deploy/prometheus/alerts.yml')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const unit = spawnSync('promtool', ['test', 'rules', join(ROOT, 'deploy/prometheus/alerts.test.yml')], { encoding: 'utf8' });
    assert.equal(unit.status, 0, unit.stdout + unit.stderr);
  });
});

/** Each sample of a scrape as its metric name and its label set (sorted, values unescaped), for finding duplicates. */
function samples(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    const name = brace !== -1 && brace < space ? line.slice(0, brace) : line.slice(0, space);
    const labels = brace !== -1 && brace < space ? line.slice(brace + 1, line.lastIndexOf('}')) : '';
    const pairs = [...labels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => `${m[1]}=${JSON.stringify(m[2])}`);
    out.push(`${name}{${pairs.sort().join(',')}}`);
  }
  return out;
}

describe('Prometheus metrics after a varied workload', () => {
  it('has one series per metric name and label set: 429 rate_limited and insufficient_quota, 499 and the rest apart', async (t) => {
    const config = keysConfig(
      '',
      `  - name: slow
    versions:
      - version: '1'
        backend: { kind: mock, latency_ms: 30000 }
        policies: { admission: { max_concurrent: 2 } }`,
    );
    const server = await startServer({ config });
    try {
      const chat = (headers: Record<string, string>, body: unknown = { model: 'chat', messages: hi }) =>
        post(`${server.url}/v1/chat/completions`, body, headers);
      // One tenant, two keys: one refused by its requests per minute, the other by its monthly quota.
      const perMinute = await tenantWithKey(server.url, { id: 'acme', models: ['chat', 'slow'] }, { requests_per_minute: 1 });
      const monthly = await adminCall(server.url, 'POST', '/admin/tenants/acme/keys', { name: 'quota', limits: { monthly_tokens: 1 } });
      assert.equal(monthly.status, 201);
      const a = { authorization: `Bearer ${perMinute.key}` };
      const q = { authorization: `Bearer ${monthly.body.key as string}` };
      const statuses = [
        (await chat(a)).status,
        (await chat(a)).body.error?.code,
        (await chat(q)).status,
        (await chat(q)).body.error?.code,
        (await chat(q, { model: 'chat', messages: hi, temperature: 7 })).body.error?.code,
        (await chat(q, '{')).body.error?.code,
        (await chat(q, { model: 'nope', messages: hi })).body.error?.code,
        (await chat({})).body.error?.code,
      ];
      assert.deepEqual(statuses, [
        200,
        'rate_limited',
        200,
        'insufficient_quota',
        'invalid_request',
        'invalid_json',
        'model_not_found',
        'invalid_api_key',
      ]);
      // A call the client abandons while the model works on it (499).
      const other = await tenantWithKey(server.url, { id: 'beta', models: ['slow'] });
      const abandon = new AbortController();
      const pending = fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${other.key}` },
        body: JSON.stringify({ model: 'slow', messages: hi }),
        signal: abandon.signal,
      }).catch(() => undefined);
      const scrape = async (): Promise<string> => (await fetch(`${server.url}/metrics`, { headers: ADMIN })).text();
      const until = async (what: string, check: (m: Map<string, number>) => boolean): Promise<void> => {
        for (let i = 0; i < 200; i++) {
          if (check(parseMetrics(await scrape()))) return;
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.fail(`waited 10 s for ${what}`);
      };
      await until('the call to reach the model', (m) => m.get('infergate_admission_active_calls{model="slow",version="1"}') === 1);
      abandon.abort();
      await pending;
      await until('the abandoned call to be counted', (m) => sum(m, 'infergate_requests_total', { model: 'slow', tenant: 'beta' }) === 1);

      const text = await scrape();
      const seen = new Map<string, number>();
      for (const sample of samples(text)) seen.set(sample, (seen.get(sample) ?? 0) + 1);
      const duplicates = [...seen].filter(([, n]) => n > 1).map(([sample, n]) => `${sample} x${n}`);
      assert.deepEqual(duplicates, [], 'no two samples share a metric name and label set');
      const m = parseMetrics(text);
      assert.equal(m.get('infergate_requests_total{model="slow",version="1",tenant="beta",status="499",code="client_closed_request"}'), 1);
      for (const code of ['rate_limited', 'insufficient_quota']) {
        const labels = `model="",version="",tenant="acme",status="429",code="${code}"`;
        assert.equal(m.get(`infergate_requests_total{${labels}}`), 1, code);
        assert.equal(m.get(`infergate_request_duration_seconds_count{${labels}}`), 1, code);
      }
      if (spawnSync('promtool', ['--version']).error === undefined) {
        const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
        assert.equal(check.status, 0, check.stdout + check.stderr);
      } else t.diagnostic('promtool is not installed: checked for duplicates only');
    } finally {
      await server.stop();
    }
  });
});
