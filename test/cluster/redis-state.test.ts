/**
 * Concurrency slots in Redis (cluster/redis-state.ts), against a real server: a release never
 * leaves a count below zero, which would raise the tenant's limit for good. Skips without Redis.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { RedisState } from '../../src/cluster/redis-state.js';
import { redisAnswers } from '../helpers/tenancy.js';

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

describe('concurrency slots in Redis', async () => {
  if (!(await redisAnswers(REDIS_URL))) {
    it('needs Redis', (t) => t.skip(`no Redis answers at ${REDIS_URL}; set REDIS_URL to run these tests`));
    return;
  }
  const prefix = `infergate-test-${randomBytes(4).toString('hex')}:`;
  let state: RedisState;
  let redis: Redis;

  before(async () => {
    state = new RedisState(REDIS_URL, prefix, pino({ level: 'silent' }));
    await state.ready();
    redis = new Redis(REDIS_URL);
  });

  after(async () => {
    await state.close();
    await redis.quit();
  });

  /** Whether one more call is admitted under a limit of `limit` concurrent calls. */
  const admitted = async (key: string, limit: number): Promise<boolean> =>
    (await state.admit([{ kind: 'concurrency', key, limit }], Date.now())).failed === -1;

  /** Releases go out without a reply; a round trip after them means Redis has run them. */
  const settle = (): Promise<unknown> => redis.ping();

  it('holds slots up to the limit and frees them on release', async () => {
    assert.equal(await admitted('t:a', 2), true);
    assert.equal(await admitted('t:a', 2), true);
    assert.equal(await admitted('t:a', 2), false);
    state.release('t:a');
    await settle();
    assert.equal(await admitted('t:a', 2), true);
  });

  it('does not go below zero when a slot is released after its counter expired', async () => {
    assert.equal(await admitted('t:b', 1), true);
    // The counter expired while the call ran (a replica idle past the slot TTL): the key is gone.
    await redis.del(`${prefix}cc:t:b`);
    state.release('t:b');
    await settle();
    assert.equal(await redis.exists(`${prefix}cc:t:b`), 0, 'no key left at -1');
    assert.equal(await admitted('t:b', 1), true);
    assert.equal(await admitted('t:b', 1), false, 'the limit of 1 still holds');
  });
});
