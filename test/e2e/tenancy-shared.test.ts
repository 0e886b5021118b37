/**
 * Many processes, one set of limits and one ledger: two server processes against one Redis admit no
 * more than a tenant's limit together, and against one PostgreSQL write every usage record, the
 * last ones on graceful shutdown. Skipped with a message where no Redis or PostgreSQL answers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { post, startServer, startServers, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY, postgresAnswers, redisAnswers, tenantWithKey } from '../helpers/tenancy.js';

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

const hi = [{ role: 'user', content: 'hello there' }];
const MODELS_YAML = `
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]`;

describe('limits shared through Redis', async () => {
  const up = await redisAnswers(REDIS_URL);
  if (!up) {
    it('needs Redis', (t) => t.skip(`no Redis answers at ${REDIS_URL}; set REDIS_URL to run these tests`));
    return;
  }
  let a: RunningServer;
  let b: RunningServer;
  const prefix = `infergate-test-${randomBytes(4).toString('hex')}:`;

  before(async () => {
    // One SQLite file holds the tenants for both; Redis holds the counters and carries change notices.
    const data = mkdtempSync(join(tmpdir(), 'infergate-shared-'));
    const config = writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}', refresh_interval_ms: 60000 }
state: { redis_url: '${REDIS_URL}', key_prefix: '${prefix}' }
${MODELS_YAML}`);
    const env = { DATABASE_URL: `sqlite:${join(data, 'shared.db')}` };
    [a, b] = await startServers([
      { config, env },
      { config, env },
    ]);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('admits no more than the limit across two server processes together', async () => {
    const t = await tenantWithKey(a.url, { id: 'shared', models: ['chat'], limits: { requests_per_minute: 20 } });
    const headers = { authorization: `Bearer ${t.key}` };
    // The key was made through a; b hears of it through Redis at once (its own reload is a minute away).
    for (let i = 0; (await post(`${b.url}/v1/chat/completions`, { model: 'chat', messages: hi }, headers)).status === 401; i++) {
      assert.ok(i < 100, 'b never learnt of the key made through a');
      await sleep(20);
    }
    const statuses = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        post(`${(i % 2 === 0 ? a : b).url}/v1/chat/completions`, { model: 'chat', messages: hi }, headers),
      ),
    );
    const admitted = statuses.filter((s) => s.status === 200).length + 1; // + the call that found the key on b
    const refused = statuses.filter((s) => s.status === 429);
    assert.equal(admitted + refused.length, 41);
    // Exactly the limit, or one less when the calls straddle a minute's edge (the previous window still weighs).
    assert.ok(admitted >= 19 && admitted <= 20, `admitted ${admitted} of 41 with a limit of 20`);
    assert.ok(refused.every((r) => Number(r.headers.get('retry-after')) >= 1));
  });
});

describe('the usage ledger on PostgreSQL, written by two processes', async () => {
  const up = await postgresAnswers(DATABASE_URL);
  if (!up) {
    it('needs PostgreSQL', (t) => t.skip(`no PostgreSQL answers at ${DATABASE_URL}; set DATABASE_URL to run these tests`));
    return;
  }

  it('records every call of both processes, the last ones on graceful shutdown', async () => {
    const config = writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}', refresh_interval_ms: 100 }
usage: { flush_interval_ms: 60000 }
${MODELS_YAML}`);
    const env = { DATABASE_URL };
    // Started together: the migrations run once, under Kysely's lock.
    const [a, b] = await startServers([
      { config, env },
      { config, env },
    ]);
    const tenant = `pg-${randomBytes(4).toString('hex')}`;
    try {
      const t = await tenantWithKey(a.url, { id: tenant, models: ['chat'] });
      const headers = { authorization: `Bearer ${t.key}` };
      for (let i = 0; (await post(`${b.url}/v1/chat/completions`, { model: 'chat', messages: hi }, headers)).status === 401; i++) {
        assert.ok(i < 100, 'b never loaded the key made through a');
        await sleep(20);
      }
      let tokens = 0;
      for (let i = 0; i < 10; i++) {
        const res = await post(`${(i % 2 === 0 ? a : b).url}/v1/chat/completions`, { model: 'chat', messages: hi }, headers);
        assert.equal(res.status, 200);
        tokens += res.body.usage.total_tokens;
      }
      // The flush interval is a minute: these records are only in memory until shutdown writes them.
      assert.equal(await a.stop(), 0);
      assert.equal(await b.stop(), 0);
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      try {
        const { rows } = await client.query(
          'select count(*)::int as n, sum(prompt_tokens + completion_tokens)::int as tokens, count(distinct key_id)::int as keys from usage where tenant_id = $1 and status = 200',
          [tenant],
        );
        // 10 calls plus the one that found the key on b.
        assert.equal(rows[0].n, 11);
        assert.equal(rows[0].tokens, (tokens / 10) * 11);
        assert.equal(rows[0].keys, 1);
      } finally {
        await client.query('delete from tenants where id = $1', [tenant]);
        await client.query('delete from usage where tenant_id = $1', [tenant]);
        await client.end();
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('the usage ledger on SQLite (the embedded default)', () => {
  it('writes buffered records on graceful shutdown, for calls without authentication too', async () => {
    const data = mkdtempSync(join(tmpdir(), 'infergate-ledger-'));
    const file = join(data, 'ledger.db');
    const config = writeConfig(`
usage: { flush_interval_ms: 60000 }
${MODELS_YAML}`);
    const server = await startServer({ config, env: { DATABASE_URL: `sqlite:${file}` } });
    for (let i = 0; i < 4; i++)
      assert.equal((await post(`${server.url}/v1/chat/completions`, { model: 'chat', messages: hi })).status, 200);
    assert.equal((await post(`${server.url}/v1/chat/completions`, { model: 'nope', messages: hi })).status, 404);
    assert.equal(await server.stop(), 0);
    const db = new SQLite(file, { readonly: true });
    try {
      const rows = db.prepare('select tenant_id, key_id, model, version, status from usage').all();
      assert.equal(rows.length, 4, 'one record per finished call; none for the refused one');
      assert.deepEqual(rows[0], { tenant_id: 'anonymous', key_id: null, model: 'chat', version: '1', status: 200 });
    } finally {
      db.close();
    }
  });
});
