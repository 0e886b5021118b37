/**
 * One contract for the three fleet stores (cluster/fleet-store.ts, redis-fleet-store.ts,
 * etcd-fleet-store.ts), each against the real thing: this process's memory, the Redis at REDIS_URL
 * (skips when none answers) and an etcd started for this file (skips without etcd installed). Two
 * instances of a store stand for two replicas: what one writes, the other reads and hears of.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { EtcdFleetStore } from '../../src/cluster/etcd-fleet-store.js';
import { MemoryFleetStore, type FleetStore } from '../../src/cluster/fleet-store.js';
import { RedisFleetStore } from '../../src/cluster/redis-fleet-store.js';
import { startEtcd } from '../helpers/etcd.js';
import { freePort } from '../helpers/server.js';
import { redisAnswers } from '../helpers/tenancy.js';

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const silent = pino({ level: 'silent' });

/** What the contract runs against: two replicas' instances of one store, and its timings. */
interface Subject {
  /** Two instances sharing one store (for memory, the same one twice: one process shares nothing). */
  readonly a: FleetStore;
  readonly b: FleetStore;
  /** The TTL the expiry tests write with. */
  readonly ttlMs: number;
  /** After this long, an entry written with `ttlMs` and not renewed is surely gone. */
  readonly lapsedMs: number;
  /** Whether watchers hear of expiries (etcd's do; Redis and memory do not announce them). */
  readonly expiriesHeard: boolean;
  /** The same kind of store, pointed where nothing answers; null for memory. */
  readonly unreachable: (() => Promise<FleetStore>) | null;
  /** Breaks the connection `b`'s watchers are fed by (the store recovers from it); null for memory. */
  readonly breakFeed: (() => Promise<void>) | null;
  /** Registers the tests of what only this kind of store promises. */
  readonly more?: () => void;
  /** Closes both instances and removes what the tests left. */
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check` holds, polling; fails with `what` after `ms`. */
async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** The fleet store contract, for the store `open` makes (or the reason it cannot, to skip with). */
function contract(name: string, open: () => Promise<Subject | string>): void {
  describe(`the ${name} fleet store`, async () => {
    const subject = await open();
    if (typeof subject === 'string') {
      it(`needs ${name}`, (t) => t.skip(subject));
      return;
    }
    const { a, b } = subject;
    after(() => subject.close());

    it('reads back what another replica put, lists a prefix in key order, and deletes', async () => {
      await a.put('kv/b', '2');
      await a.put('kv/a', '1');
      await a.put('kv/c/d', '3');
      await a.put('kv0/a', 'a sibling prefix');
      await a.put('other/a', 'another prefix');
      assert.equal(await b.get('kv/a'), '1');
      assert.equal(await b.get('kv/missing'), null);
      assert.deepEqual(await b.list('kv/'), [
        { key: 'kv/a', value: '1' },
        { key: 'kv/b', value: '2' },
        { key: 'kv/c/d', value: '3' },
      ]);
      await a.put('kv/a', 'again');
      assert.equal(await b.get('kv/a'), 'again', 'a second put replaces the value');
      await b.delete('kv/a');
      await b.delete('kv/never-written');
      assert.equal(await a.get('kv/a'), null);
      assert.deepEqual(
        (await a.list('kv/')).map((e) => e.key),
        ['kv/b', 'kv/c/d'],
      );
      assert.deepEqual(await a.list('nothing-here/'), []);
    });

    it('takes a prefix literally, even with glob characters in it', async () => {
      await a.put('g*/a', 'star');
      await a.put('gx/a', 'x');
      await a.put('g?/a', 'question');
      await a.put('g[x]/a', 'brackets');
      await a.put('g\\/a', 'backslash');
      assert.deepEqual(await b.list('g*/'), [{ key: 'g*/a', value: 'star' }]);
      assert.deepEqual(await b.list('g?/'), [{ key: 'g?/a', value: 'question' }]);
      assert.deepEqual(await b.list('g[x]/'), [{ key: 'g[x]/a', value: 'brackets' }]);
      assert.deepEqual(await b.list('g\\/'), [{ key: 'g\\/a', value: 'backslash' }]);
    });

    it('gives a lease to one holder at a time, renews it for that holder, and frees it only for that holder', async () => {
      assert.equal(await a.acquire('lease/one', 'h1', 30_000), true, 'a free lease is taken');
      assert.equal(await b.acquire('lease/one', 'h2', 30_000), false, 'a held lease is refused to another');
      assert.equal(await a.acquire('lease/one', 'h1', 30_000), true, 'the holder renews it');
      assert.equal(await b.acquire('lease/one', 'h1', 30_000), true, 'the holder is a name, whichever replica asks');
      await b.release('lease/one', 'h2');
      assert.equal(await b.acquire('lease/one', 'h2', 30_000), false, 'a release by another holder frees nothing');
      await a.release('lease/one', 'h1');
      assert.equal(await b.acquire('lease/one', 'h2', 30_000), true, 'released by its holder, the lease is free');
      assert.equal(await a.acquire('lease/one', 'h1', 30_000), false);
      await b.release('lease/one', 'h2');
    });

    it('hands a lease to only one of many holders asking at once', async () => {
      const holders = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
      const won = await Promise.all(holders.map((h, i) => (i % 2 === 0 ? a : b).acquire('lease/race', h, 30_000)));
      assert.equal(won.filter(Boolean).length, 1, `exactly one holder won: ${JSON.stringify(won)}`);
      await a.release('lease/race', holders[won.indexOf(true)] as string);
    });

    it('lets entries and leases with a TTL lapse unless renewed, and a lapsed lease be taken over', async () => {
      const { ttlMs, lapsedMs } = subject;
      const heard: string[] = [];
      const unwatch = await b.watch('ttl/', (key) => heard.push(key));
      await a.put('ttl/lapses', 'v', ttlMs);
      await a.put('ttl/renewed', 'v', ttlMs);
      await a.put('ttl/made-lasting', 'v', ttlMs);
      await a.put('ttl/made-lasting', 'v2');
      assert.equal(await a.acquire('lease/lapses', 'h1', ttlMs), true);
      assert.equal(await a.acquire('lease/renewed', 'h1', ttlMs), true);
      // Renewed several times per TTL: the entry and the lease must outlive their first TTL.
      const started = Date.now();
      while (Date.now() - started < lapsedMs) {
        await sleep(Math.min(ttlMs / 4, 500));
        await a.put('ttl/renewed', 'v', ttlMs);
        assert.equal(await a.acquire('lease/renewed', 'h1', ttlMs), true, 'the holder renews its own lease');
      }
      assert.equal(await b.get('ttl/lapses'), null, 'an entry not written again lapsed');
      assert.equal(await b.get('ttl/renewed'), 'v', 'an entry written again did not');
      assert.equal(await b.get('ttl/made-lasting'), 'v2', 'an entry written again without a TTL stays');
      assert.deepEqual(
        (await b.list('ttl/')).map((e) => e.key),
        ['ttl/made-lasting', 'ttl/renewed'],
      );
      assert.equal(await b.acquire('lease/lapses', 'h2', ttlMs), true, 'a lapsed lease is taken over');
      assert.equal(await a.acquire('lease/lapses', 'h1', ttlMs), false, 'and is no longer the old holder’s');
      assert.equal(await b.acquire('lease/renewed', 'h2', ttlMs), false, 'a renewed lease is still held');
      if (subject.expiriesHeard) await until(() => heard.includes('ttl/lapses'), 'the expiry to be heard');
      unwatch();
      await a.delete('ttl/renewed');
      await a.delete('ttl/made-lasting');
    });

    it('tells a watcher of every put and delete under its prefix by any replica, and of nothing else', async () => {
      const heard: string[] = [];
      const stillWatching: string[] = [];
      const unwatch = await b.watch('w/', (key) => heard.push(key));
      await b.watch('w/', (key) => stillWatching.push(key));
      // Written right after watch() resolved: none of it may be missed.
      await a.put('w/a', '1');
      await a.put('other/w/a', 'outside the prefix');
      await a.put('wx/a', 'a sibling prefix');
      await a.delete('w/a');
      await a.delete('w/never-written');
      await a.put('w/last', 'x');
      // Changes arrive in order: once the last write is heard, everything before it was.
      await until(() => heard.includes('w/last'), 'w/last to be heard');
      const deleteOfMissing = heard.filter((k) => k === 'w/never-written').length;
      assert.ok(deleteOfMissing <= 1, 'a delete of a missing key is heard at most once');
      assert.deepEqual(
        heard.filter((k) => k !== 'w/never-written'),
        ['w/a', 'w/a', 'w/last'],
        'the put and the delete of w/a, then w/last',
      );
      unwatch();
      await a.put('w/after', 'x');
      await until(() => stillWatching.includes('w/after'), 'the other watcher to hear w/after');
      assert.equal(heard.includes('w/after'), false, 'a watcher stopped hears nothing more');
    });

    if (subject.breakFeed !== null) {
      const breakFeed = subject.breakFeed;
      it('tells a watcher to read its whole prefix again once a broken feed is back, and goes on', async () => {
        const heard: string[] = [];
        const unwatch = await b.watch('rc/', (key) => heard.push(key));
        await breakFeed();
        await until(() => heard.includes('rc/'), 'the prefix itself to be heard', 15_000);
        await a.put('rc/after', 'x');
        await until(() => heard.includes('rc/after'), 'a put after the break to be heard', 5000);
        unwatch();
      });
    }

    if (subject.unreachable !== null) {
      const unreachable = subject.unreachable;
      it('rejects, within seconds, every call when the store cannot be reached', async () => {
        const store = await unreachable();
        const started = Date.now();
        try {
          await assert.rejects(store.put('k', 'v'));
          await assert.rejects(store.get('k'));
          await assert.rejects(store.acquire('lease/k', 'h1', 5000));
        } finally {
          await store.close();
        }
        assert.ok(Date.now() - started < 10_000, `rejected after ${Date.now() - started} ms`);
      });
    }
    subject.more?.();
  });
}

contract('memory', async () => {
  const store = new MemoryFleetStore();
  return {
    a: store,
    b: store,
    ttlMs: 150,
    lapsedMs: 300,
    expiriesHeard: false,
    unreachable: null,
    breakFeed: null,
    close: () => store.close(),
  };
});

contract('Redis', async () => {
  if (!(await redisAnswers(REDIS_URL))) return `no Redis answers at ${REDIS_URL}; set REDIS_URL to run these tests`;
  const prefix = `infergate-test-${randomBytes(4).toString('hex')}:fleet:`;
  const a = new RedisFleetStore(REDIS_URL, prefix, silent);
  const b = new RedisFleetStore(REDIS_URL, prefix, silent);
  return {
    a,
    b,
    ttlMs: 300,
    lapsedMs: 600,
    expiriesHeard: false,
    unreachable: async () => new RedisFleetStore(`redis://127.0.0.1:${await freePort()}`, prefix, silent),
    async breakFeed() {
      // Only this run's subscribers (named after its prefix): other tests share this Redis.
      const redis = new Redis(REDIS_URL);
      try {
        const list = (await redis.client('LIST', 'TYPE', 'PUBSUB')) as string;
        const ids = list
          .split('\n')
          .filter((line) => line.includes(` name=${prefix}watch `))
          .map((line) => /\bid=(\d+)/.exec(line)?.[1] as string);
        assert.ok(ids.length > 0, "found the store's subscriber");
        for (const id of ids) await redis.client('KILL', 'ID', id);
      } finally {
        await redis.quit();
      }
    },
    async close() {
      await Promise.all([a.close(), b.close()]);
      const redis = new Redis(REDIS_URL);
      try {
        const keys: string[] = [];
        let cursor = '0';
        do {
          const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\\\]]/g, '\\$&')}*`, 'COUNT', 500);
          keys.push(...found);
          cursor = next;
        } while (cursor !== '0');
        if (keys.length > 0) await redis.del(...keys);
      } finally {
        await redis.quit();
      }
    },
  };
});

contract('etcd', async () => {
  const etcd = await startEtcd();
  if (etcd === null) return 'no etcd binary (/usr/bin/etcd or etcd on PATH; Debian package etcd-server)';
  const prefix = '/infergate-test/fleet/';
  const a = new EtcdFleetStore([etcd.url], prefix, silent);
  const b = new EtcdFleetStore([etcd.url], prefix, silent);
  return {
    a,
    b,
    // etcd's lease TTLs are whole seconds, at least its minimum (2 s with the default election
    // timeout); an expired lease's keys go at its next check, half a second apart.
    ttlMs: 2000,
    lapsedMs: 3200,
    expiriesHeard: true,
    unreachable: async () => new EtcdFleetStore([`http://127.0.0.1:${await freePort()}`], prefix, silent),
    breakFeed: () => etcd.restart(),
    more() {
      /** The leases etcd holds now, through its JSON gateway. */
      const leases = async (): Promise<number> => {
        const res = await fetch(`${etcd.url}/v3/lease/leases`, { method: 'POST', body: '{}' });
        return (((await res.json()) as { leases?: unknown[] }).leases ?? []).length;
      };
      it('keeps one etcd lease per entry and per fleet lease, however often they are renewed', async () => {
        const before = await leases();
        for (let i = 0; i < 5; i++) {
          await a.put('beat/one', `v${i}`, 10_000);
          assert.equal(await a.acquire('lease/beat', 'h1', 10_000), true);
        }
        let now = before;
        const deadline = Date.now() + 3000;
        // The replaced leases are revoked in the background.
        while ((now = await leases()) !== before + 2 && Date.now() < deadline) await sleep(50);
        assert.equal(now, before + 2, 'one lease for the entry, one for the fleet lease');
        await a.delete('beat/one');
        await a.release('lease/beat', 'h1');
        while ((now = await leases()) !== before && Date.now() < deadline + 3000) await sleep(50);
        assert.equal(now, before, 'deleting and releasing revoked their leases');
      });
    },
    async close() {
      await Promise.all([a.close(), b.close()]);
      await etcd.stop();
    },
  };
});
