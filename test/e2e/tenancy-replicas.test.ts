/**
 * Replicas on one Redis: a server whose change-feed subscription is answered late comes up, stays
 * up and hears the changes made through another. Skipped with a message where no Redis answers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY, redisAnswers, tenantWithKey } from '../helpers/tenancy.js';

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

/** The status of one chat call with `key`. */
async function call(server: RunningServer, key: string): Promise<number> {
  return (await post(`${server.url}/v1/chat/completions`, { model: 'chat', messages: hi }, { authorization: `Bearer ${key}` })).status;
}

/** Polls until `server` answers `status` to `key` (at most 2 s). */
async function until(server: RunningServer, key: string, status: number): Promise<void> {
  for (let i = 0; (await call(server, key)) !== status; i++) {
    assert.ok(i < 100, `${server.url} never answered ${status}`);
    await sleep(20);
  }
}

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
      [a, b] = await Promise.all([
        startServer({ config: sharedConfig(prefix), env }),
        startServer({ config: sharedConfig(prefix, proxy.url), env }),
      ]);
      await sleep(1000); // past the time-out the subscription once had
      assert.equal(b.process.exitCode, null, `B exited:\n${b.output()}`);
      const t = await tenantWithKey(a.url, { id: 'slow', models: ['chat'] });
      await until(b, t.key, 200);
    } finally {
      await Promise.all([a?.stop(), b?.stop()]);
      proxy.server.close();
    }
  });
});
