/**
 * A fleet of real `infergate serve` processes on loopback sharing a real Redis or a real etcd (each
 * test file starts its own etcd): they register and see each other, a replica killed with SIGKILL
 * drops out when its lease expires while traffic discovered through the registry moves to the
 * others, a weight set through one replica is in force on all three when the call returns, and
 * rollouts over real upstreams promote a healthy canary, roll back a failing one on every replica,
 * and survive the death of the replica driving them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { startEtcd, type RunningEtcd } from '../helpers/etcd.js';
import { startServers, writeConfig, type RunningServer } from '../helpers/server.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const ADMIN = { authorization: 'Bearer fleet-admin-key-0123456789' };

/** A store the servers share: the environment that points them at it, and how to end it. */
interface Store {
  readonly name: 'redis' | 'etcd';
  readonly env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

async function redisStore(): Promise<Store | string> {
  const url = process.env.REDIS_URL ?? '';
  if (url === '') return 'REDIS_URL is not set';
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch {
    redis.disconnect();
    return `nothing answers at ${url}`;
  }
  redis.disconnect();
  return { name: 'redis', env: { REDIS_URL: url, ETCD_URL: '' }, close: async () => undefined };
}

/** Opens a store with `open`, or says why the suite skips. */
async function storeOrSkip(open: () => Promise<Store | string>): Promise<{ store: Store | null; skip: string | false }> {
  const s = await open();
  return typeof s === 'string' ? { store: null, skip: s } : { store: s, skip: false };
}

async function etcdStore(): Promise<Store | string> {
  const etcd: RunningEtcd | null = await startEtcd();
  if (etcd === null) return 'etcd is not installed (Debian: etcd-server)';
  return { name: 'etcd', env: { ETCD_URL: etcd.url, REDIS_URL: '' }, close: () => etcd.stop() };
}

/** The config of one replica: two versions of a mock model, and a remote model whose endpoints are the other replicas. */
function replicaConfig(prefix: string, pool: string, extra = ''): string {
  return writeConfig(`
auth: { admin_key: ${ADMIN.authorization.slice(7)} }
state: { key_prefix: '${prefix}', change_ack_timeout_ms: 3000 }
fleet: { heartbeat_ms: 200, lease_ms: 2000, labels: { pool: ${pool} } }
models:
  - name: echo
    versions:
      - { version: '1', weight: 1, backend: { kind: mock, text: one, stream_chunks: 1 } }
      - { version: '2', weight: 1, backend: { kind: mock, text: two, stream_chunks: 1 } }
  - name: echo-fleet
    versions:
      - version: '1'
        backend:
          kind: openai
          model: echo
          discovery: { registry: { model: echo, path: /v1 } }
          passive_health: { consecutive_failures: 1, ejection_ms: 30000 }
${extra}`);
}

/** One chat call; the version that answered (null: it failed) and the status. */
async function chat(
  server: RunningServer,
  model: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; version: string | null }> {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });
  await res.arrayBuffer();
  return { status: res.status, version: res.status === 200 ? res.headers.get('x-model-version') : null };
}

async function admin(server: RunningServer, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(server.url + path, {
    method,
    headers: { ...ADMIN, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : JSON.parse(text) };
}

/** Polls `check` every 50 ms until it returns a value that is not undefined, or fails after `ms` with `what`. */
async function until<T>(ms: number, what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms${last === undefined ? '' : `: ${String(last)}`}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The ids of the infergate instances `server` lists. */
async function replicaIds(server: RunningServer): Promise<string[]> {
  const { body } = await admin(server, 'GET', '/admin/instances');
  return (body.data as Array<{ id: string; kind: string }>).filter((i) => i.kind === 'infergate').map((i) => i.id);
}

/** Calls `model` on the servers in turn, `concurrency` at a time, for `ms` or `count` calls; counts answers by version and failures. */
async function load(
  servers: readonly RunningServer[],
  model: string,
  opts: { ms: number; count: number; concurrency: number; headers?: Record<string, string> },
): Promise<{ versions: Map<string, number>; failed: number; statuses: number[] }> {
  const versions = new Map<string, number>();
  const statuses: number[] = [];
  let failed = 0;
  let sent = 0;
  const end = Date.now() + opts.ms;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async (_, lane) => {
      while (Date.now() < end && sent < opts.count) {
        const server = servers[(sent++ + lane) % servers.length] as RunningServer;
        const r = await chat(server, model, opts.headers);
        if (r.version === null) {
          failed++;
          statuses.push(r.status);
        } else versions.set(r.version, (versions.get(r.version) ?? 0) + 1);
      }
    }),
  );
  return { versions, failed, statuses };
}

for (const open of [redisStore, etcdStore]) {
  describe(`a fleet on ${open === redisStore ? 'Redis' : 'etcd'}`, { timeout: 180_000 }, () => {
    let store: Store | null = null;
    let skip: string | false = false;
    let servers: RunningServer[] = [];
    let prefix = '';

    before(async () => {
      ({ store, skip } = await storeOrSkip(open));
      if (store === null) return;
      const s = store;
      prefix = `fleet-${randomBytes(4).toString('hex')}:`;
      // Only the third replica serves `solo`: a change to it waits for that one alone.
      const solo = `
  - name: solo
    versions:
      - { version: '1', weight: 1, backend: { kind: mock } }
      - { version: '2', weight: 0, backend: { kind: mock } }`;
      servers = await startServers(
        ['a', 'b', 'c'].map((p) => ({ config: replicaConfig(prefix, p, p === 'c' ? solo : ''), env: { ...s.env } })),
      );
    });

    after(async () => {
      await Promise.all(servers.map((s) => s.stop()));
      await store?.close();
    });

    test('three replicas register and see each other, with their models, pools and leases', async (t) => {
      if (skip) return t.skip(skip);
      const lists = await until(5000, 'every replica listing all three', async () => {
        const all = await Promise.all(servers.map(replicaIds));
        return all.every((ids) => ids.length === 3) ? all : undefined;
      });
      assert.deepEqual(lists[0], lists[1]);
      assert.deepEqual(lists[1], lists[2]);
      // Readiness travels with each renewal: within a heartbeat, the remote model has found its endpoints.
      const { status, body } = await until(3000, 'every version ready in the registry', async () => {
        const r = await admin(servers[0] as RunningServer, 'GET', '/admin/instances');
        return r.body.data.every((i: { models: Array<{ ready: boolean }> }) => i.models.every((m) => m.ready)) ? r : undefined;
      });
      assert.equal(status, 200);
      assert.equal(body.store, store?.name);
      const mine = body.data.find((i: { id: string }) => i.id === body.self);
      assert.equal(mine.url, (servers[0] as RunningServer).url.replace('localhost', '127.0.0.1'));
      assert.deepEqual(
        mine.models.map((m: { name: string; version: string; ready: boolean }) => `${m.name}@${m.version}:${m.ready}`).sort(),
        ['echo-fleet@1:true', 'echo@1:true', 'echo@2:true'],
      );
      assert.deepEqual(body.data.map((i: { labels: { pool: string } }) => i.labels.pool).sort(), ['a', 'b', 'c']);
      for (const i of body.data) assert.ok(i.lease_age_ms >= 0 && i.lease_age_ms < 2000, `lease age ${i.lease_age_ms}`);
      // Discovered through the registry: the remote model answers, from the other replicas.
      assert.equal((await chat(servers[0] as RunningServer, 'echo-fleet')).status, 200);
    });

    test('an external server registered through the admin API is listed until it is removed or its lease ends', async (t) => {
      if (skip) return t.skip(skip);
      const a = servers[0] as RunningServer;
      const created = await admin(a, 'POST', '/admin/instances', {
        id: 'ext-1',
        url: 'http://127.0.0.1:9/v1',
        models: [{ name: 'vllm-model', version: '3' }],
        labels: { pool: 'gpu' },
        ttl_seconds: 2,
      });
      assert.equal(created.status, 201);
      const seen = await until(3000, 'the external server listed by another replica', async () => {
        const { body } = await admin(servers[1] as RunningServer, 'GET', '/admin/instances');
        return body.data.find((i: { id: string }) => i.id === 'ext-1');
      });
      assert.equal(seen.kind, 'external');
      assert.deepEqual(
        seen.models.map((m: { name: string; version: string }) => `${m.name}@${m.version}`),
        ['vllm-model@3'],
      );
      // Bad input is the caller's: 400 naming the field.
      const bad = await admin(a, 'POST', '/admin/instances', { url: 'ftp://x', models: [] });
      assert.equal(bad.status, 400);
      assert.match(bad.body.error.param ?? '', /url|models/);
      // Not renewed: gone after its two seconds.
      await until(6000, 'the external server dropping out', async () => {
        const { body } = await admin(a, 'GET', '/admin/instances');
        return body.data.some((i: { id: string }) => i.id === 'ext-1') ? undefined : true;
      });
      assert.equal((await admin(a, 'DELETE', '/admin/instances/ext-1')).status, 404);
    });

    test('a weight set through one replica is in force on all three when the call returns', async (t) => {
      if (skip) return t.skip(skip);
      const [a, b, c] = servers as [RunningServer, RunningServer, RunningServer];
      const off = await admin(b, 'PATCH', '/admin/models/echo/versions/2', { weight: 0, by: 'fleet-test' });
      assert.equal(off.status, 200, JSON.stringify(off.body));
      assert.deepEqual(off.body.unconfirmed_replicas, []);
      // At once, on every replica: no unpinned call reaches version 2.
      const none = await load([a, b, c], 'echo', { ms: 20_000, count: 300, concurrency: 6 });
      assert.equal(none.failed, 0);
      assert.deepEqual([...none.versions.keys()], ['1']);
      // Pinned calls still reach it, by either header.
      assert.equal((await chat(c, 'echo', { 'model-version': '2' })).version, '2');
      assert.equal((await chat(a, 'echo', { 'x-model-version': '2' })).version, '2');

      const three = await admin(a, 'PATCH', '/admin/models/echo/versions/2', { weight: 3 });
      assert.deepEqual(three.body.unconfirmed_replicas, []);
      const split = await load([a, b, c], 'echo', { ms: 30_000, count: 3000, concurrency: 8 });
      assert.equal(split.failed, 0);
      const share = (split.versions.get('2') ?? 0) / 3000;
      assert.ok(Math.abs(share - 0.75) < 0.035, `version 2 served ${(share * 100).toFixed(1)} % of unpinned calls; weight 3:1 means 75 %`);

      const models = await admin(c, 'GET', '/admin/models');
      const echo = models.body.data.find((m: { name: string }) => m.name === 'echo');
      const v2 = echo.versions.find((v: { version: string }) => v.version === '2');
      assert.equal(v2.weight, 3);
      assert.equal(v2.config_weight, 1);
      assert.equal(v2.weight_source.from, 'override');
      assert.match(v2.weight_source.by, /^admin@/);
      assert.equal(v2.replicas.length, 3);
      assert.ok(v2.replicas.every((r: { ready: boolean; weight: number }) => r.ready && r.weight === 3));
      assert.equal(echo.versions.find((v: { version: string }) => v.version === '1').weight_source.from, 'config');

      // A version only one replica serves is confirmed by that one, at once: the others have nothing to apply.
      const started = Date.now();
      const solo = await admin(c, 'PATCH', '/admin/models/solo/versions/2', { weight: 1 });
      assert.equal(solo.status, 200, JSON.stringify(solo.body));
      assert.deepEqual(solo.body.unconfirmed_replicas, []);
      assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms: it waited for replicas without the model`);

      // Cleared: the config's weights again, everywhere.
      const cleared = await admin(a, 'DELETE', '/admin/models/echo/versions/2/weight');
      assert.equal(cleared.status, 200);
      assert.deepEqual(cleared.body.unconfirmed_replicas, []);
      assert.equal(cleared.body.weight, 1);
      // Mistakes are 400 and 404 in the API's error shape.
      assert.equal((await admin(a, 'PATCH', '/admin/models/echo/versions/2', { weight: -1 })).body.error.param, 'weight');
      assert.equal((await admin(a, 'PATCH', '/admin/models/echo/versions/9', { weight: 1 })).body.error.code, 'version_not_found');
      assert.equal((await admin(a, 'PATCH', '/admin/models/nope/versions/1', { weight: 1 })).body.error.code, 'model_not_found');
    });

    test('a replica killed with SIGKILL drops out when its lease expires; registry-discovered traffic moves on', async (t) => {
      if (skip) return t.skip(skip);
      const [a, b, c] = servers as [RunningServer, RunningServer, RunningServer];
      const before = await replicaIds(a);
      assert.equal(before.length, 3);
      const { body } = await admin(c, 'GET', '/admin/instances');
      const victim = body.self as string;
      // Calls through the registry while the third replica dies.
      const traffic = load([a, b], 'echo-fleet', { ms: 4000, count: 4000, concurrency: 4 });
      await new Promise((r) => setTimeout(r, 500));
      c.process.kill('SIGKILL');
      const killedAt = Date.now();
      const result = await traffic;
      // A call in flight on the dead process may fail (it may have run there); none other.
      assert.ok(result.failed <= 4, `${result.failed} calls failed (${result.statuses.join(', ')})`);
      assert.ok((result.versions.get('1') ?? 0) > 100, 'calls kept being answered');
      const gone = await until(6000, 'the killed replica dropping out of the registry', async () => {
        const ids = await replicaIds(a);
        return ids.includes(victim) ? undefined : Date.now() - killedAt;
      });
      assert.ok(gone >= 1000, `it dropped out after ${gone} ms, before its 2 s lease could expire`);
      assert.deepEqual((await replicaIds(b)).sort(), before.filter((id) => id !== victim).sort());
      servers = [a, b];
    });
  });
}

for (const open of [redisStore, etcdStore])
  describe(`rollouts across replicas on ${open === redisStore ? 'Redis' : 'etcd'}`, { timeout: 240_000 }, () => {
    let store: Store | null = null;
    let skip: string | false = false;
    let servers: RunningServer[] = [];
    let stable: Upstream;
    let canary: Upstream;
    let prefix = '';

    /** The model under rollout: version 1 on the stable upstream, version 2 (the canary) on the other. */
    const rolloutModel = (): string => `
  - name: rm
    versions:
      - { version: '1', weight: 1, backend: { kind: openai, base_url: '${stable.url}/v1' } }
      - { version: '2', weight: 0, backend: { kind: openai, base_url: '${canary.url}/v1' }, policies: { breaker: { consecutive_failures: 0, failure_rate: 0 } } }`;

    before(async () => {
      ({ store, skip } = await storeOrSkip(open));
      if (store === null) return;
      [stable, canary] = await Promise.all([startUpstream(), startUpstream()]);
    });

    after(async () => {
      await Promise.all(servers.map((s) => s.stop()));
      await Promise.all([stable?.close(), canary?.close()]);
      await store?.close();
    });

    /** Starts three fresh replicas on a fresh prefix. */
    async function fleet(): Promise<RunningServer[]> {
      await Promise.all(servers.map((s) => s.stop()));
      prefix = `rollout-${randomBytes(4).toString('hex')}:`;
      servers = await startServers(
        ['a', 'b', 'c'].map((p) => ({ config: replicaConfig(prefix, p, rolloutModel()), env: { ...(store as Store).env } })),
      );
      await until(5000, 'three replicas registered', async () =>
        (await replicaIds(servers[0] as RunningServer)).length === 3 ? true : undefined,
      );
      return servers;
    }

    async function rollout(server: RunningServer): Promise<any> {
      const { body } = await admin(server, 'GET', '/admin/models/rm');
      return body.rollout;
    }

    // Loose latency gates: on a shared 2-core machine a p99 over 30 loopback calls is mostly noise; the error gate is what trips here.
    const PLAN = {
      version: '2',
      steps: [10, 50, 100],
      step_seconds: 0.5,
      min_calls: 30,
      interval_seconds: 0.2,
      gates: { max_error_rate: 0.05, max_p99_ratio: 50, max_ttft_p99_ratio: 50 },
    };

    test('a healthy canary is promoted through every step to 100 %', async (t) => {
      if (skip) return t.skip(skip);
      const replicas = await fleet();
      canary.failWith = null;
      const started = await admin(replicas[1] as RunningServer, 'POST', '/admin/models/rm/rollouts', PLAN);
      assert.equal(started.status, 201, JSON.stringify(started.body));
      assert.equal(started.body.state, 'running');
      assert.equal(started.body.weight, 10);
      // A second rollout while one runs is refused.
      assert.equal((await admin(replicas[0] as RunningServer, 'POST', '/admin/models/rm/rollouts', PLAN)).status, 400);
      const steps = new Set<number>();
      const deadline = Date.now() + 60_000;
      let r: any;
      while (Date.now() < deadline) {
        const res = await load(replicas, 'rm', { ms: 300, count: 400, concurrency: 6 });
        assert.equal(res.failed, 0);
        r = await rollout(replicas[2] as RunningServer);
        steps.add(r.step);
        if (r.state !== 'running') break;
      }
      assert.equal(r.state, 'promoted', JSON.stringify(r));
      assert.deepEqual([...steps].sort(), [1, 2, 3]);
      assert.equal(r.weight, 100);
      assert.ok(r.figures.canary.calls >= 30);
      // Every replica now sends unpinned calls to the canary alone.
      const after = await load(replicas, 'rm', { ms: 10_000, count: 150, concurrency: 6 });
      assert.deepEqual([...after.versions.keys()], ['2']);
      const metrics = await fetch(`${(replicas[0] as RunningServer).url}/metrics`, { headers: ADMIN }).then((res) => res.text());
      assert.match(metrics, /infergate_rollout_state\{model="rm",version="2",rollout="[^"]+",state="promoted"\} 1/);
      assert.match(metrics, /infergate_rollout_step\{model="rm",version="2",rollout="[^"]+"\} 3/);
    });

    test('a canary that starts failing is rolled back on every replica within an interval, and gets no more calls', async (t) => {
      if (skip) return t.skip(skip);
      const replicas = await fleet();
      canary.failWith = null;
      const started = await admin(replicas[0] as RunningServer, 'POST', '/admin/models/rm/rollouts', {
        ...PLAN,
        steps: [20, 50, 100],
        step_seconds: 30,
      });
      assert.equal(started.status, 201, JSON.stringify(started.body));
      await load(replicas, 'rm', { ms: 1000, count: 200, concurrency: 6 });
      canary.failWith = { status: 500, message: 'canary is broken' };
      const failedAt = Date.now();
      let r: any;
      while (Date.now() - failedAt < 20_000) {
        await load(replicas, 'rm', { ms: 200, count: 100, concurrency: 6 });
        r = await rollout(replicas[1] as RunningServer);
        if (r.state !== 'running') break;
      }
      assert.equal(r.state, 'rolled_back', JSON.stringify(r));
      assert.match(r.reason, /error rate .* exceeds max_error_rate 0.05/);
      assert.ok(r.figures.canary.faults > 0);
      assert.equal(r.weight, 0);
      // On every replica: the canary's weight is 0 and not one more unpinned call reaches it.
      for (const s of replicas) {
        const m = (await admin(s, 'GET', '/admin/models/rm')).body;
        assert.equal(m.versions.find((v: { version: string }) => v.version === '2').weight, 0);
        assert.equal(m.rollout.state, 'rolled_back');
      }
      const reached = canary.received.length;
      const after = await load(replicas, 'rm', { ms: 10_000, count: 300, concurrency: 6 });
      assert.equal(after.failed, 0);
      assert.equal(canary.received.length, reached, 'calls reached the canary after the rollback');
    });

    test('the replica driving a rollout is killed; another takes over and finishes it', async (t) => {
      if (skip) return t.skip(skip);
      const replicas = await fleet();
      canary.failWith = null;
      const started = await admin(replicas[0] as RunningServer, 'POST', '/admin/models/rm/rollouts', { ...PLAN, step_seconds: 1.5 });
      assert.equal(started.status, 201);
      // Wait for a driver to be named, then kill the replica it runs on.
      const driver = await until(10_000, 'a driver', async () => {
        await load(replicas, 'rm', { ms: 200, count: 100, concurrency: 6 });
        return (await rollout(replicas[0] as RunningServer)).driver ?? undefined;
      });
      const pid = Number(String(driver).split('-')[0]);
      const victim = replicas.find((s) => s.process.pid === pid) as RunningServer;
      assert.ok(victim !== undefined, `driver ${driver} is one of the replicas`);
      victim.process.kill('SIGKILL');
      const rest = replicas.filter((s) => s !== victim);
      servers = rest;
      let r: any;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        await load(rest, 'rm', { ms: 300, count: 300, concurrency: 6 });
        r = await rollout(rest[0] as RunningServer);
        if (r.state !== 'running') break;
      }
      assert.equal(r.state, 'promoted', JSON.stringify(r));
      assert.ok(r.history.some((h: { step: number }) => h.step === 3));
    });

    test('a plan in the config starts once across the fleet, and not again when a replica restarts', async (t) => {
      if (skip) return t.skip(skip);
      await Promise.all(servers.map((s) => s.stop()));
      prefix = `configured-${randomBytes(4).toString('hex')}:`;
      const model = `
  - name: cr
    versions:
      - { version: '1', weight: 1, backend: { kind: mock, text: one } }
      - { version: '2', weight: 0, backend: { kind: mock, text: two } }
    rollout: { version: '2', steps: [50, 100], step_seconds: 0.3, min_calls: 10, interval_seconds: 0.2, gates: { max_p99_ratio: 50, max_ttft_p99_ratio: 50 } }`;
      const options = (p: string) => ({ config: replicaConfig(prefix, p, model), env: { ...(store as Store).env } });
      servers = await startServers([options('a'), options('b')]);
      const [a, b] = servers as [RunningServer, RunningServer];
      let r: any;
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        await load(servers, 'cr', { ms: 300, count: 200, concurrency: 4 });
        r = (await admin(b, 'GET', '/admin/models/cr')).body.rollout;
        if (r !== null && r.state !== 'running') break;
      }
      assert.equal(r?.state, 'promoted', JSON.stringify(r));
      assert.equal(r.by, 'config');
      assert.match(r.id, /^cfg-/);
      // Both replicas started with the plan; one rollout ran: its history begins once.
      assert.equal(r.history.filter((h: { step: number; state: string }) => h.step === 1 && h.state === 'running').length, 1);
      // A replica started again with the same config does not start the plan again.
      await a.stop();
      const again = await startServers([options('a')]);
      servers = [b, ...again];
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const after = (await admin(again[0] as RunningServer, 'GET', '/admin/models/cr')).body;
      assert.equal(after.rollout.id, r.id);
      assert.equal(after.rollout.state, 'promoted');
      assert.equal(after.versions.find((v: { version: string }) => v.version === '2').weight, 100);
    });

    test('people pause, resume, abort and promote', async (t) => {
      if (skip) return t.skip(skip);
      const replicas = await fleet();
      const [a, b] = replicas as [RunningServer, RunningServer];
      const { body: r } = await admin(a, 'POST', '/admin/models/rm/rollouts', { ...PLAN, step_seconds: 3600 });
      const paused = await admin(b, 'POST', `/admin/models/rm/rollouts/${r.id}/pause`);
      assert.equal(paused.body.state, 'paused');
      assert.equal((await admin(b, 'POST', `/admin/models/rm/rollouts/${r.id}/pause`)).status, 400);
      assert.equal((await admin(a, 'POST', `/admin/models/rm/rollouts/${r.id}/resume`)).body.state, 'running');
      assert.equal((await admin(a, 'POST', `/admin/models/rm/rollouts/nope/abort`)).status, 404);
      const aborted = await admin(a, 'POST', `/admin/models/rm/rollouts/${r.id}/abort`);
      assert.equal(aborted.body.state, 'aborted');
      assert.equal(aborted.body.weight, 0);
      const again = await admin(b, 'POST', '/admin/models/rm/rollouts', { ...PLAN, step_seconds: 3600 });
      assert.equal(again.status, 201);
      const promoted = await admin(a, 'POST', `/admin/models/rm/rollouts/${again.body.id}/promote`);
      assert.equal(promoted.body.state, 'promoted');
      const after = await load(replicas, 'rm', { ms: 10_000, count: 60, concurrency: 3 });
      assert.deepEqual([...after.versions.keys()], ['2']);
      // A plan for a version the model lacks, or steps that fall, is 400 naming the field.
      const bad = await admin(a, 'POST', '/admin/models/rm/rollouts', { version: '7' });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.param, 'version');
      const falling = await admin(a, 'POST', '/admin/models/rm/rollouts', { version: '2', steps: [50, 10] });
      assert.equal(falling.body.error.param, 'steps.1');
    });
  });

describe('without a shared store, the workers of one replica share weights through the primary', { timeout: 120_000 }, () => {
  let server: RunningServer;

  before(async () => {
    [server] = await startServers([{ config: replicaConfig(`solo-${randomBytes(4).toString('hex')}:`, 'a'), args: ['--workers', '2'] }]);
  });

  after(async () => {
    await server.stop();
  });

  test('a weight set through one worker is in force in both when the call returns', async () => {
    const listed = await until(5000, 'both workers registered', async () => {
      const { body } = await admin(server, 'GET', '/admin/instances');
      return body.data.length === 1 && body.data[0].workers === 2 ? body : undefined;
    });
    assert.equal(listed.store, 'memory');
    const off = await admin(server, 'PATCH', '/admin/models/echo/versions/2', { weight: 0 });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.deepEqual(off.body.unconfirmed_replicas, []);
    // Each call on a connection of its own, so both workers answer some.
    const versions = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', connection: 'close' },
        body: JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] }),
      });
      await res.arrayBuffer();
      const v = res.headers.get('x-model-version') ?? `status ${res.status}`;
      versions.set(v, (versions.get(v) ?? 0) + 1);
    }
    assert.deepEqual([...versions], [['1', 200]]);
    assert.equal((await admin(server, 'DELETE', '/admin/models/echo/versions/2/weight')).status, 200);
  });
});
