/**
 * The dashboard's server side through the real server: / and /ui redirect to /ui/, the files of
 * ui/ come with every security header and nothing outside ui/ is ever served, uPlot is served
 * from node_modules, /admin/ui/info says what runs, /admin/ui/* is guarded by the admin key, and
 * /admin/ui/stream sends live figures each second to every client, counts the calls of every
 * worker (and, with a shared Redis fleet store, of every replica), and lets clients go.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Agent, fetch as undiciFetch } from 'undici';
import { get, ROOT, startServer, startServers, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN, keysConfig, redisAnswers } from '../helpers/tenancy.js';
import { closedPort } from '../helpers/upstream.js';

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";
const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};
const UPLOT = join(ROOT, 'node_modules/uplot/dist/uPlot.iife.min.js');

const MOCK = `models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
`;

/** A `stats` event of the stream. */
interface Figures {
  rps: number;
  error_rate: number;
  p50_ms: number | null;
  p99_ms: number | null;
  tokens_per_s: number | null;
  in_flight: number;
  queued: number;
}
interface Stats {
  at: number;
  window_s: number;
  metrics: boolean;
  total: Figures;
  models: Array<Figures & { model: string; version: string }>;
  fleet: { replicas: number; total: Figures } | null;
}

/** GET with the path sent exactly as written (fetch would resolve `..` before sending it). */
function rawGet(base: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * An open /admin/ui/stream, read with fetch as the dashboard reads it, and aborted to close it. Each
 * client has its own connection pool, closed with it: after an abort mid-body undici opens a fresh
 * connection that never sends a request, which would hold the server's shutdown until its time-out.
 */
class StreamClient {
  readonly #abort: AbortController;
  readonly #agent: Agent;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = '';
  readonly comments: string[] = [];

  private constructor(reader: ReadableStreamDefaultReader<Uint8Array>, abort: AbortController, agent: Agent) {
    this.#reader = reader;
    this.#abort = abort;
    this.#agent = agent;
  }

  static async open(base: string, headers: Record<string, string> = {}): Promise<{ client: StreamClient }> {
    const abort = new AbortController();
    const agent = new Agent();
    const response = await undiciFetch(`${base}/admin/ui/stream`, { headers, signal: abort.signal, dispatcher: agent });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(response.headers.get('cache-control'), 'no-cache, no-transform');
    return { client: new StreamClient((response.body as ReadableStream<Uint8Array>).getReader(), abort, agent) };
  }

  /** The next `stats` event (comments are kept aside). */
  async next(timeoutMs = 5000): Promise<Stats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.#buffer.indexOf('\n\n');
      if (end !== -1) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        if (block.startsWith(':')) {
          this.comments.push(block);
          continue;
        }
        const lines = block.split('\n');
        assert.equal(lines[0], 'event: stats');
        return JSON.parse((lines[1] as string).slice('data: '.length)) as Stats;
      }
      if (Date.now() > deadline) throw new Error('no stats event in time');
      const { value, done } = await this.#reader.read();
      if (done) throw new Error('the stream ended');
      this.#buffer += this.#decoder.decode(value, { stream: true });
    }
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#agent.close();
  }
}

async function chat(base: string, headers: Record<string, string> = {}, model = 'chat'): Promise<number> {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Reads events until the calls they count add up to `want` (or `ms` pass); returns that count. */
async function countCalls(client: StreamClient, want: number, ms: number, pick: (s: Stats) => number): Promise<number> {
  const deadline = Date.now() + ms;
  let seen = 0;
  while (seen < want && Date.now() < deadline) {
    const s = await client.next();
    seen += Math.round(pick(s) * s.window_s);
  }
  return seen;
}

function assertSecurityHeaders(headers: Headers | Record<string, unknown>, what: string): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    const got = headers instanceof Headers ? headers.get(name) : headers[name];
    assert.equal(got, value, `${what}: ${name}`);
  }
}

describe('dashboard: static files and the live stream (one worker, no authentication)', () => {
  let server: RunningServer;

  before(async () => {
    const dead = await closedPort();
    // `slow` holds one call at a time and queues two; `down`'s upstream is not there (502).
    const config = writeConfig(`${MOCK}  - name: slow
    versions:
      - version: '1'
        backend: { kind: mock, latency_ms: 1500 }
        policies: { timeout_ms: 20000, admission: { max_concurrent: 1, queue_size: 2 } }
  - name: down
    versions:
      - version: '1'
        backend: { kind: openai, base_url: 'http://127.0.0.1:${dead}/v1' }
        policies: { retry: { attempts: 1 }, breaker: { consecutive_failures: 0 } }
`);
    server = await startServer({ config });
  });

  after(async () => {
    await server.stop();
  });

  it('says where the dashboard is in the start-up line', () => {
    assert.match(server.output(), new RegExp(`"ui":"${server.url}/ui/"`));
    assert.match(server.output(), new RegExp(`listening on ${server.url} \\(gRPC [^)]+\\), dashboard ${server.url}/ui/`));
  });

  it('redirects / and /ui to /ui/', async () => {
    for (const path of ['/', '/ui']) {
      const res = await fetch(server.url + path, { redirect: 'manual' });
      assert.equal(res.status, 302, path);
      assert.equal(res.headers.get('location'), '/ui/', path);
      await res.arrayBuffer();
    }
  });

  it('serves ui/index.html at /ui/ with every security header and no caching', async (t: TestContext) => {
    if (!existsSync(join(ROOT, 'ui/index.html'))) return t.skip('ui/index.html does not exist yet');
    const res = await fetch(`${server.url}/ui/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assertSecurityHeaders(res.headers, '/ui/');
    assert.equal(await res.text(), readFileSync(join(ROOT, 'ui/index.html'), 'utf8'));
    const missing = await fetch(`${server.url}/ui/no-such-file.js`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'not_found');
    assertSecurityHeaders(missing.headers, 'a 404 under /ui');
  });

  it('never serves a file outside ui/, however the path is spelled', async () => {
    const secret = readFileSync(join(ROOT, 'package.json'), 'utf8');
    const attempts = [
      '/ui/../package.json',
      '/ui/%2e%2e/package.json',
      '/ui/.%2e/package.json',
      '/ui/%2e%2e%2fpackage.json',
      '/ui/..%2fpackage.json',
      '/ui/..%5cpackage.json',
      '/ui/..\\package.json',
      '/ui/%5c..%5cpackage.json',
      '/ui/vendor/../../package.json',
      '/ui/js/%2e%2e/%2e%2e/package.json',
      '/ui//etc/passwd',
      '/ui/%2fetc%2fpasswd',
      '/ui/index.html%00.js',
      '/ui/../src/cli/serve.ts',
      '/ui/../dist/src/main.js',
    ];
    for (const path of attempts) {
      const res = await rawGet(server.url, path);
      assert.equal(res.status, 404, path);
      assert.ok(!res.body.includes('"dependencies"') && !res.body.includes(secret.slice(0, 40)), `${path} leaked a file`);
      assert.ok(!res.body.includes('root:'), `${path} leaked /etc/passwd`);
      assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'not_found', path);
    }
    // An escape that does not decode is refused before routing, as on every path.
    const malformed = await rawGet(server.url, '/ui/%E0%A4%A');
    assert.equal(malformed.status, 400);
    assert.equal((JSON.parse(malformed.body) as { error: { code: string } }).error.code, 'invalid_request');
  });

  it('serves uPlot from node_modules with a JavaScript content type (404 while it is not installed)', async () => {
    const res = await fetch(`${server.url}/ui/vendor/uplot.js`);
    if (!existsSync(UPLOT)) {
      assert.equal(res.status, 404);
      return;
    }
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assertSecurityHeaders(res.headers, 'uplot.js');
    assert.equal(await res.text(), readFileSync(UPLOT, 'utf8'));
    const css = await fetch(`${server.url}/ui/vendor/uplot.css`);
    assert.equal(css.status, 200);
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
    await css.arrayBuffer();
  });

  it('says what runs at /admin/ui/info', async () => {
    const { status, body } = await get(`${server.url}/admin/ui/info`);
    assert.equal(status, 200);
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(body.version, version);
    assert.ok(!Number.isNaN(Date.parse(body.started_at)) && Date.parse(body.started_at) <= Date.now());
    assert.equal(typeof body.startup_ms, 'number');
    assert.equal(body.workers, 1);
    assert.equal(body.auth_mode, 'none');
    assert.equal(body.metrics, true);
    assert.match(body.storage.database, /^sqlite:/);
    assert.equal(body.storage.state, 'memory');
    assert.equal(body.storage.fleet, 'memory');
    assert.ok(
      body.warnings.some((w: string) => /WITHOUT authentication/.test(w)),
      JSON.stringify(body.warnings),
    );
    assert.equal(body.ui, '/ui/');
  });

  it('keeps the open admin API (no admin key, loopback) from other web pages: a cross-site fetch, a foreign Origin or Host', async () => {
    const info = `${server.url}/admin/ui/info`;
    const foreign: Array<Record<string, string>> = [
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { origin: 'http://evil.example' },
      { origin: 'null' },
    ];
    for (const headers of foreign) {
      const { status, body } = await get(info, headers);
      assert.equal(status, 403, JSON.stringify(headers));
      assert.equal(body.error.code, 'permission_denied');
    }
    // A name that resolves to loopback only by DNS rebinding: refused by its Host.
    const rebound = await new Promise<number>((resolve, reject) => {
      const { port } = new URL(server.url);
      request({ host: '127.0.0.1', port, path: '/admin/ui/info', headers: { host: `evil.example:${port}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(rebound, 403);
    // The dashboard's own calls (same origin) and command-line clients (neither header) pass.
    assert.equal((await get(info, { 'sec-fetch-site': 'same-origin', origin: new URL(server.url).origin })).status, 200);
    assert.equal((await get(info)).status, 200);
    // Dot-files under ui/ are never served.
    assert.equal((await fetch(`${server.url}/ui/.eslintrc.json`)).status, 404);
  });

  it('streams each second the calls per model and in total, to every client, and lets a client go', async () => {
    const { client: first } = await StreamClient.open(server.url);
    const { client: second } = await StreamClient.open(server.url);
    try {
      const a = await first.next();
      assert.equal(a.metrics, true);
      assert.ok(a.window_s > 0.5 && a.window_s < 3, `window ${a.window_s}`);
      assert.equal(a.fleet, null, 'no shared fleet store');
      assert.ok(
        a.models.some((m) => m.model === 'chat' && m.version === '1'),
        'every deployment has a row, traffic or not',
      );
      const calls = 25;
      for (let i = 0; i < calls; i++) assert.equal(await chat(server.url), 200);
      // Both clients see the calls: the one reading, and the one that waited.
      const counted = await countCalls(first, calls, 6000, (s) => s.models.find((m) => m.model === 'chat')?.rps ?? 0);
      assert.equal(counted, calls);
      const busy = await (async () => {
        for (let i = 0; i < 6; i++) {
          const s = await second.next();
          if (s.total.rps > 0) return s;
        }
        return null;
      })();
      assert.notEqual(busy, null, 'the second client got the same figures');
      const row = (busy as Stats).models.find((m) => m.model === 'chat') as Figures;
      assert.ok(row.rps > 0);
      assert.ok(row.p50_ms !== null && row.p50_ms > 0 && row.p99_ms !== null && row.p99_ms >= row.p50_ms, JSON.stringify(row));
      assert.equal(row.error_rate, 0);
      assert.ok((row.tokens_per_s ?? 0) > 0, 'the usage ledger counts tokens');
      assert.ok((busy as Stats).total.rps >= row.rps);
      // A quiet second has no latency to show.
      let quiet: Stats | null = null;
      for (let i = 0; i < 4 && quiet === null; i++) {
        const s = await first.next();
        if (s.total.rps === 0) quiet = s;
      }
      assert.ok(quiet !== null && quiet.total.p50_ms === null && quiet.total.p99_ms === null);
    } finally {
      await first.close();
    }
    // The second client keeps receiving after the first went away, and the server keeps serving.
    await second.next();
    assert.equal(await chat(server.url), 200);
    await second.close();
    assert.equal((await get(`${server.url}/health/live`)).status, 200);
    // And a new client, after every other went, starts the stream again.
    const { client: again } = await StreamClient.open(server.url);
    try {
      assert.equal((await again.next()).metrics, true);
    } finally {
      await again.close();
    }
  });

  it('counts 5xx answers in the error rate, and calls that named no model in the total only', async () => {
    const { client } = await StreamClient.open(server.url);
    try {
      await client.next();
      const statuses: number[] = [
        await chat(server.url, {}, 'down'),
        await chat(server.url, {}, 'down'),
        await chat(server.url, {}, 'nope'),
      ];
      assert.ok((statuses[0] ?? 0) >= 500 && (statuses[1] ?? 0) >= 500, String(statuses));
      assert.equal(statuses[2], 404);
      let errors = 0;
      let total = 0;
      for (let i = 0; i < 6 && total < 3; i++) {
        const s = await client.next();
        total += Math.round(s.total.rps * s.window_s);
        const down = s.models.find((m) => m.model === 'down') as Figures;
        if (down.rps > 0) {
          assert.equal(down.error_rate, 1);
          errors += Math.round(down.rps * s.window_s);
        }
        assert.ok(!s.models.some((m) => m.model === 'nope' || m.model === ''), 'no row for a model that is not there');
      }
      assert.equal(errors, 2);
      assert.equal(total, 3);
    } finally {
      await client.close();
    }
  });

  it('shows calls in flight and queued per model while they are', async () => {
    const { client } = await StreamClient.open(server.url);
    const calls = Array.from({ length: 3 }, () => chat(server.url, {}, 'slow'));
    try {
      let row: Figures | undefined;
      for (let i = 0; i < 4; i++) {
        row = (await client.next()).models.find((m) => m.model === 'slow');
        if (row !== undefined && row.in_flight + row.queued === 3) break;
      }
      assert.equal(row?.in_flight, 1, JSON.stringify(row));
      assert.equal(row?.queued, 2, JSON.stringify(row));
    } finally {
      await client.close();
      await Promise.all(calls);
    }
  });
});

describe('dashboard: /admin/ui/* with an admin key', () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer({ config: keysConfig() });
  });

  after(async () => {
    await server.stop();
  });

  it('refuses /admin/ui/info and /admin/ui/stream without the admin key, or with a wrong one (401)', async () => {
    for (const path of ['/admin/ui/info', '/admin/ui/stream']) {
      for (const headers of [{}, { authorization: 'Bearer wrong-key' }] as Array<Record<string, string>>) {
        const res = await fetch(server.url + path, { headers });
        assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}`);
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'invalid_api_key');
      }
    }
  });

  it('answers them with the admin key; the static files need none', async () => {
    const info = await get(`${server.url}/admin/ui/info`, ADMIN);
    assert.equal(info.status, 200);
    assert.equal(info.body.auth_mode, 'keys');
    assert.deepEqual(info.body.warnings, []);
    const { client } = await StreamClient.open(server.url, ADMIN);
    try {
      const s = await client.next();
      assert.ok(s.models.some((m) => m.model === 'chat'));
    } finally {
      await client.close();
    }
    const page = await fetch(`${server.url}/ui/`, { redirect: 'manual' });
    await page.arrayBuffer();
    assert.ok(page.status === 200 || page.status === 404, 'served without a key (404 only while ui/ is not there)');
  });
});

describe('dashboard: the stream with metrics off', () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer({ config: writeConfig(`metrics: { enabled: false }\n${MOCK}`) });
  });

  after(async () => {
    await server.stop();
  });

  it('still streams, every figure 0 or null and flagged metrics: false', async () => {
    assert.equal((await get(`${server.url}/admin/ui/info`)).body.metrics, false);
    const { client } = await StreamClient.open(server.url);
    try {
      assert.equal(await chat(server.url), 200);
      const s = await client.next();
      assert.equal(s.metrics, false);
      assert.equal(s.total.rps, 0);
      assert.equal(s.total.p50_ms, null);
      assert.deepEqual(
        s.models.map((m) => [m.model, m.rps]),
        [['chat', 0]],
      );
    } finally {
      await client.close();
    }
  });
});

describe('dashboard: the stream with two workers', () => {
  let server: RunningServer;

  before(async () => {
    // Round-robin: the primary deals each new connection to the next worker, so the calls split over both.
    const config = writeConfig(`server: { accept_policy: round-robin }\n${MOCK}`);
    server = await startServer({ config, args: ['--workers', '2'] });
  });

  after(async () => {
    await server.stop();
  });

  it('counts the calls of both workers, whichever serves the stream', async () => {
    const info = await get(`${server.url}/admin/ui/info`);
    assert.equal(info.body.workers, 2);
    const { client } = await StreamClient.open(server.url);
    try {
      await client.next();
      const calls = 40;
      // A new connection for each call: half of them go to the worker that does not hold the stream.
      const statuses = await Promise.all(Array.from({ length: calls }, () => chat(server.url, { connection: 'close' })));
      assert.deepEqual(new Set(statuses), new Set([200]));
      const counted = await countCalls(client, calls, 8000, (s) => s.total.rps);
      assert.equal(counted, calls, 'every call counted once, both workers summed');
    } finally {
      await client.close();
    }
  });
});

describe('dashboard: fleet figures with a shared Redis store', () => {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  let servers: RunningServer[] = [];
  let skip = '';

  before(async () => {
    if (!(await redisAnswers(url))) {
      skip = `nothing answers at ${url}`;
      return;
    }
    const prefix = `ui-test-${process.pid}-${Date.now()}:`;
    const config = writeConfig(`state: { key_prefix: '${prefix}' }\nfleet: { heartbeat_ms: 200, lease_ms: 2000 }\n${MOCK}`);
    servers = await startServers([
      { config, env: { REDIS_URL: url, ETCD_URL: '' } },
      { config, env: { REDIS_URL: url, ETCD_URL: '' } },
    ]);
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('sums every replica: calls to the other replica show in `fleet`', async (t: TestContext) => {
    if (skip !== '') return t.skip(skip);
    const [watched, other] = servers as [RunningServer, RunningServer];
    const { client } = await StreamClient.open(watched.url);
    try {
      let s = await client.next();
      for (let i = 0; i < 10 && (s.fleet?.replicas ?? 0) < 2; i++) s = await client.next();
      assert.equal(s.fleet?.replicas, 2, JSON.stringify(s.fleet));
      const calls = 30;
      for (let i = 0; i < calls; i++) assert.equal(await chat(other.url), 200);
      // This replica saw none of them; the fleet's figures (from the members' records) did.
      let fleetRps = 0;
      for (let i = 0; i < 8 && fleetRps === 0; i++) {
        const e = await client.next();
        assert.equal(e.models.find((m) => m.model === 'chat')?.rps, 0, 'the local figures are this replica’s');
        fleetRps = e.fleet?.total.rps ?? 0;
      }
      assert.ok(fleetRps > 0, 'the fleet total counts the other replica’s calls');
    } finally {
      await client.close();
    }
  });
});
