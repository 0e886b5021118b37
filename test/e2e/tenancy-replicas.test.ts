/**
 * A tenant or key change made through one replica is in force on every live replica (and every
 * worker process) once the admin call that made it has returned: the admin call waits until each
 * has reloaded it, and names those that did not answer within `state.change_ack_timeout_ms`.
 * Two real server processes on one Redis and one SQLite file; skipped with a message where no
 * Redis answers. The workers case needs no Redis.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createConnection, createServer, type Server } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { get, startServer, startServers, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY, adminCall, redisAnswers, tenantWithKey } from '../helpers/tenancy.js';

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const hi = [{ role: 'user', content: 'hi' }];

function sharedConfig(prefix: string, redisUrl = REDIS_URL): string {
  // A reload a minute away: whatever reaches the other replica sooner came through the change feed.
  return writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}', refresh_interval_ms: 60000 }
state: { redis_url: '${redisUrl}', key_prefix: '${prefix}' }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]`);
}

function sqliteEnv(): NodeJS.ProcessEnv {
  return { DATABASE_URL: `sqlite:${join(mkdtempSync(join(tmpdir(), 'infergate-replicas-')), 'shared.db')}` };
}

/**
 * One request through `agent` (false: on a new connection, so the kernel may hand it to either
 * worker); its status and parsed body.
 */
function send(
  agent: Agent | false,
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      url,
      { method, agent, headers: text === undefined ? headers : { ...headers, 'content-type': 'application/json' }, timeout: 10_000 },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data === '' ? null : JSON.parse(data) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} in 10 s`)));
    req.on('error', reject);
    req.end(text);
  });
}

/** Kept-alive connections per server: a call made right after an admin answer reaches the server at once. */
const agents = new Map<string, Agent>();
after(() => {
  for (const agent of agents.values()) agent.destroy();
});

/** The status of one chat call with `key`. */
async function call(server: RunningServer, key: string): Promise<number> {
  let agent = agents.get(server.url);
  if (agent === undefined) agents.set(server.url, (agent = new Agent({ keepAlive: true, maxSockets: 1 })));
  const body = { model: 'chat', messages: hi };
  return (await send(agent, `${server.url}/v1/chat/completions`, 'POST', { authorization: `Bearer ${key}` }, body)).status;
}

/** Polls until `server` answers `status` to `key` (at most 2 s): for set-up steps that are not under test. */
async function until(server: RunningServer, key: string, status: number): Promise<void> {
  for (let i = 0; (await call(server, key)) !== status; i++) {
    assert.ok(i < 100, `${server.url} never answered ${status}`);
    await sleep(20);
  }
}

describe('changes through one replica are in force on the other when the admin call returns', async () => {
  if (!(await redisAnswers(REDIS_URL))) {
    it('needs Redis', (t) => t.skip(`no Redis answers at ${REDIS_URL}; set REDIS_URL to run these tests`));
    return;
  }
  let a: RunningServer;
  let b: RunningServer;

  before(async () => {
    const config = sharedConfig(`infergate-test-${randomBytes(4).toString('hex')}:`);
    // Started at the same moment on one fresh SQLite file: both must come up (they race to migrate it).
    const env = sqliteEnv();
    [a, b] = await startServers([
      { config, env },
      { config, env },
    ]);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('both servers, started at once on one fresh SQLite file, serve', async () => {
    assert.equal((await get(`${a.url}/health/ready`)).status, 200);
    assert.equal((await get(`${b.url}/health/ready`)).status, 200);
  });

  it('a key created through A works on B at once, every time', async () => {
    assert.equal((await adminCall(a.url, 'POST', '/admin/tenants', { id: 'created', models: ['chat'] })).status, 201);
    for (let i = 0; i < 20; i++) {
      const k = await adminCall(a.url, 'POST', '/admin/tenants/created/keys', { name: `k${i}` });
      assert.equal(k.status, 201);
      assert.equal(await call(b, k.body.key), 200, `iteration ${i}: B refused a key whose creation had returned`);
      assert.deepEqual(k.body.unconfirmed_replicas, []);
    }
  });

  it('a key revoked through A is refused on B at once, every time', async () => {
    assert.equal((await adminCall(a.url, 'POST', '/admin/tenants', { id: 'revoked', models: ['chat'] })).status, 201);
    for (let i = 0; i < 20; i++) {
      const k = await adminCall(a.url, 'POST', '/admin/tenants/revoked/keys', { name: `k${i}` });
      await until(b, k.body.key, 200);
      const revoked = await adminCall(a.url, 'DELETE', `/admin/keys/${k.body.id}`);
      assert.equal(revoked.status, 200);
      assert.equal(await call(b, k.body.key), 401, `iteration ${i}: B accepted a key whose revocation had returned`);
      assert.deepEqual(revoked.body.unconfirmed_replicas, []);
      assert.ok(revoked.body.revoked_at > 0);
    }
  });

  it('a key rotated through A stops on B at once, and its successor works there', async () => {
    const t = await tenantWithKey(a.url, { id: 'rotated', models: ['chat'] });
    let current = t;
    for (let i = 0; i < 10; i++) {
      await until(b, current.key, 200);
      const rotated = await adminCall(a.url, 'POST', `/admin/keys/${current.id}/rotate`);
      assert.equal(rotated.status, 201);
      assert.equal(await call(b, current.key), 401, `iteration ${i}: B accepted the key that was rotated away`);
      assert.equal(await call(b, rotated.body.key), 200, `iteration ${i}: B refused the rotated key's successor`);
      current = { id: rotated.body.id, key: rotated.body.key };
    }
  });

  it('a tenant deleted through A has its keys refused on B at once, and updates apply there at once', async () => {
    for (let i = 0; i < 10; i++) {
      const t = await tenantWithKey(a.url, { id: `deleted-${i}`, models: ['chat'] });
      await until(b, t.key, 200);
      // Taking the model away is in force on B when the PATCH returns.
      const patched = await adminCall(a.url, 'PATCH', `/admin/tenants/deleted-${i}`, { models: ['other'] });
      assert.equal(patched.status, 200);
      assert.equal(await call(b, t.key), 404, `iteration ${i}: B still let the tenant use a model taken away`);
      assert.deepEqual(patched.body.unconfirmed_replicas, []);
      const deleted = await adminCall(a.url, 'DELETE', `/admin/tenants/deleted-${i}`);
      assert.equal(deleted.status, 204);
      assert.equal(await call(b, t.key), 401, `iteration ${i}: B accepted a key of a deleted tenant`);
    }
  });

  it('names a replica that does not answer, within the time-out, and the change still holds', async () => {
    const t = await tenantWithKey(a.url, { id: 'stopped', models: ['chat'] });
    const other = await tenantWithKey(a.url, { id: 'stopped-too', models: ['chat'] });
    await until(b, t.key, 200);
    await until(b, other.key, 200);
    const pid = b.process.pid as number;
    process.kill(pid, 'SIGSTOP');
    const admin = { authorization: `Bearer ${ADMIN_KEY}` };
    let revoked: { status: number; body: any };
    let deleted: { status: number; body: any };
    let elapsed: number;
    try {
      const started = performance.now();
      revoked = await send(false, `${a.url}/admin/keys/${t.id}`, 'DELETE', admin);
      elapsed = performance.now() - started;
      deleted = await send(false, `${a.url}/admin/tenants/stopped-too`, 'DELETE', admin);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // A deleted tenant answers 204 when all confirmed; else 200 with the ones that did not.
    assert.equal(deleted.status, 200);
    assert.equal(deleted.body.deleted, true);
    assert.deepEqual(deleted.body.unconfirmed_replicas, revoked.body.unconfirmed_replicas);
    assert.equal(revoked.status, 200, 'the change is made even when a replica does not confirm it');
    assert.ok(revoked.body.revoked_at > 0);
    assert.equal(revoked.body.unconfirmed_replicas.length, 1, JSON.stringify(revoked.body));
    assert.match(revoked.body.unconfirmed_replicas[0], new RegExp(`:${pid}:`), 'named by host, pid and instance');
    // The default time-out is 2 s: the answer waits for it, and comes with it (the slack is for a loaded machine).
    assert.ok(elapsed >= 1900 && elapsed < 5000, `answered after ${Math.round(elapsed)} ms`);
    assert.match(a.output(), /not confirmed/);
    // Resumed, B applies the change it was sent.
    await until(b, t.key, 401);
    await until(b, other.key, 401);
    assert.equal(await call(a, t.key), 401);
  });
});

/**
 * A TCP proxy in front of Redis that delays what a connection sends from its SUBSCRIBE on by
 * `delayMs`: a subscription that is slow to be answered, as when start-up work (or a busy machine)
 * keeps the event loop from reading the reply.
 */
async function slowSubscriptionProxy(target: URL, delayMs: number): Promise<{ url: string; server: Server }> {
  const server = createServer((client) => {
    const upstream = createConnection({ host: target.hostname, port: Number(target.port || 6379) });
    let held = false;
    client.on('data', (chunk: Buffer) => {
      held ||= /subscribe/i.test(chunk.toString('latin1'));
      if (held) setTimeout(() => upstream.write(chunk), delayMs);
      else upstream.write(chunk);
    });
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `redis://127.0.0.1:${port}`, server };
}

describe('start-up with a slow change-feed subscription', async () => {
  if (!(await redisAnswers(REDIS_URL))) {
    it('needs Redis', (t) => t.skip(`no Redis answers at ${REDIS_URL}; set REDIS_URL to run these tests`));
    return;
  }

  it('a server whose subscription is answered after 800 ms comes up, stays up and takes part in the feed', async () => {
    const prefix = `infergate-test-${randomBytes(4).toString('hex')}:`;
    const proxy = await slowSubscriptionProxy(new URL(REDIS_URL), 800);
    const env = sqliteEnv();
    let a: RunningServer | undefined;
    let b: RunningServer | undefined;
    try {
      [a, b] = await startServers([
        { config: sharedConfig(prefix), env },
        { config: sharedConfig(prefix, proxy.url), env },
      ]);
      await sleep(1000); // past the time-out the subscription once had
      assert.equal(b.process.exitCode, null, `B exited:\n${b.output()}`);
      const t = await tenantWithKey(a.url, { id: 'slow', models: ['chat'] });
      assert.equal(await call(b, t.key), 200);
      const revoked = await adminCall(a.url, 'DELETE', `/admin/keys/${t.id}`);
      assert.deepEqual(revoked.body.unconfirmed_replicas, []);
      assert.equal(await call(b, t.key), 401);
    } finally {
      await Promise.all([a?.stop(), b?.stop()]);
      proxy.server.close();
    }
  });
});

/** The pids of the processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('changes through one worker are in force on its siblings when the admin call returns (no Redis)', () => {
  let server: RunningServer;
  // Connections opened before the changes, so a call after an admin answer reaches a worker at once.
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const admin = (method: string, path: string, body?: unknown) =>
    send(false, server.url + path, method, { authorization: `Bearer ${ADMIN_KEY}` }, body);
  const calls = (key: string) =>
    Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await send(
          agent,
          `${server.url}/v1/chat/completions`,
          'POST',
          { authorization: `Bearer ${key}` },
          { model: 'chat', messages: hi },
        );
        return res.status;
      }),
    );

  before(async () => {
    const config = writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}', refresh_interval_ms: 60000 }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]`);
    server = await startServer({ config, args: ['--workers', '2'] });
    assert.equal((await admin('POST', '/admin/tenants', { id: 'workers', models: ['chat'] })).status, 201);
  });

  after(async () => {
    agent.destroy();
    await server?.stop();
  });

  it('a created key works, and a revoked one is refused, in every worker at once', async () => {
    await calls('warm-up'); // opens the 8 connections
    for (let i = 0; i < 20; i++) {
      const k = await admin('POST', '/admin/tenants/workers/keys', { name: `k${i}` });
      const created = await calls(k.body.key);
      assert.deepEqual(created, Array(8).fill(200), `iteration ${i}: a worker refused a key whose creation had returned`);
      const revoked = await admin('DELETE', `/admin/keys/${k.body.id}`);
      const refused = await calls(k.body.key);
      assert.deepEqual(refused, Array(8).fill(401), `iteration ${i}: a worker accepted a key whose revocation had returned`);
      assert.deepEqual(k.body.unconfirmed_replicas, []);
      assert.deepEqual(revoked.body.unconfirmed_replicas, []);
    }
  });

  it('names a worker that does not answer, within the time-out', { skip: !existsSync('/proc/self/stat') && 'needs /proc' }, async () => {
    const k = await admin('POST', '/admin/tenants/workers/keys', { name: 'stopped' });
    const workers = childrenOf(server.process.pid as number);
    assert.equal(workers.length, 2, `worker pids: ${workers}`);
    const stopped = workers[0] as number;
    process.kill(stopped, 'SIGSTOP');
    let revoked: { status: number; body: any };
    let elapsed: number;
    try {
      // On a new connection: the running worker accepts it (a stopped one accepts nothing).
      const started = performance.now();
      revoked = await admin('DELETE', `/admin/keys/${k.body.id}`);
      elapsed = performance.now() - started;
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    assert.equal(revoked.status, 200);
    assert.deepEqual(revoked.body.unconfirmed_replicas, [`${hostname()}:${stopped}`]);
    assert.ok(elapsed >= 1900 && elapsed < 5000, `answered after ${Math.round(elapsed)} ms`);
    // Resumed, the worker applies the change it was sent.
    for (let i = 0; (await calls(k.body.key)).some((s) => s !== 401); i++) {
      assert.ok(i < 100, 'the resumed worker never applied the revocation');
      await sleep(20);
    }
  });
});
