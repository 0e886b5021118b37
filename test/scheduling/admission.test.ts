/** Admission: a bulkhead with a bounded queue served by priority, with aging. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Admission, QueueFull, type Priority } from '../../src/scheduling/admission.js';

const never = (): void => undefined;
const gone = (): Error => new Error('gone');

function admission(now: () => number, maxConcurrent = 1, queueSize = 10): Admission {
  return new Admission({ maxConcurrent, queueSize, slaMs: { high: 100, normal: 1000, low: 5000 }, now });
}

describe('Admission', () => {
  it('runs up to max_concurrent at once and queues the rest', async () => {
    const a = admission(() => 0, 2);
    await a.acquire('normal', never, gone);
    await a.acquire('normal', never, gone);
    let third = false;
    void a.acquire('normal', never, gone).then(() => (third = true));
    await Promise.resolve();
    assert.equal(third, false);
    assert.equal(a.queued, 1);
    a.release();
    await Promise.resolve();
    assert.equal(third, true);
    assert.equal(a.active, 2);
  });

  it('serves high before normal before low, first come first served within a class', async () => {
    const a = admission(() => 0);
    await a.acquire('normal', never, gone);
    const order: string[] = [];
    const queue = (p: Priority, name: string) => a.acquire(p, never, gone).then(() => order.push(name));
    const all = [
      queue('low', 'low1'),
      queue('normal', 'normal1'),
      queue('high', 'high1'),
      queue('normal', 'normal2'),
      queue('high', 'high2'),
    ];
    for (let i = 0; i < 5; i++) {
      a.release();
      await Promise.resolve();
    }
    await Promise.all(all);
    assert.deepEqual(order, ['high1', 'high2', 'normal1', 'normal2', 'low1']);
  });

  it('promotes a request that waited past its class SLA, so low priority is not starved', async () => {
    let now = 0;
    const a = admission(() => now);
    await a.acquire('normal', never, gone);
    const order: string[] = [];
    const low = a.acquire('low', never, gone).then(() => order.push('low'));
    now = 10_001; // two low SLA periods: low counts as high
    const high = a.acquire('high', never, gone).then(() => order.push('high'));
    a.release();
    await Promise.resolve();
    a.release();
    await Promise.all([low, high]);
    assert.deepEqual(order, ['low', 'high'], 'after two low SLA periods the low request counts as high, and it waited longer');
  });

  it('refuses at once when the queue is full', async () => {
    const a = admission(() => 0, 1, 1);
    await a.acquire('normal', never, gone);
    void a.acquire('normal', never, gone);
    await assert.rejects(a.acquire('high', never, gone), (e: unknown) => e instanceof QueueFull);
  });

  it('drops a waiter whose call was cancelled and serves the next', async () => {
    const a = admission(() => 0);
    await a.acquire('normal', never, gone);
    let cancel: () => void = never;
    const cancelled = a.acquire('high', (l) => (cancel = l), gone);
    const next = a.acquire('low', never, gone);
    cancel();
    await assert.rejects(cancelled, /gone/);
    assert.equal(a.queued, 1);
    a.release();
    await next;
    assert.equal(a.active, 1);
  });
});
