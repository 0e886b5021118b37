/** Slots: a fixed set handed out one per request, with a bounded FIFO queue in front. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueFullError, Slots } from '../../src/scheduling/slots.js';

/** An abort hook the test fires by hand. */
function hook(): { onAbort(l: () => void): void; fire(): void } {
  const listeners: Array<() => void> = [];
  return { onAbort: (l) => listeners.push(l), fire: () => listeners.forEach((l) => l()) };
}
const gone = (): Error => new Error('gone');

describe('Slots', () => {
  it('hands out free slots at once and counts them', async () => {
    const slots = new Slots(['a', 'b'], 4);
    const x = await slots.acquire(hook(), gone);
    const y = await slots.acquire(hook(), gone);
    assert.deepEqual([x, y].sort(), ['a', 'b']);
    assert.equal(slots.busy, 2);
    assert.equal(slots.free, 0);
  });

  it('serves waiters first in, first out when slots are released', async () => {
    const slots = new Slots(['only'], 4);
    const first = await slots.acquire(hook(), gone);
    const order: number[] = [];
    const waiting = [1, 2, 3].map((n) => slots.acquire(hook(), gone).then((s) => (order.push(n), s)));
    assert.equal(slots.queued, 3);
    slots.release(first);
    const s1 = await waiting[0];
    slots.release(s1 as string);
    const s2 = await waiting[1];
    slots.release(s2 as string);
    await waiting[2];
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(slots.queued, 0);
  });

  it('refuses at once with QueueFullError when the queue is full', async () => {
    const slots = new Slots(['only'], 1);
    await slots.acquire(hook(), gone);
    const queued = slots.acquire(hook(), gone);
    await assert.rejects(slots.acquire(hook(), gone), (e: unknown) => e instanceof QueueFullError && e.queueSize === 1);
    assert.equal(slots.queued, 1);
    void queued;
  });

  it('drops a waiter whose client left, and gives the slot to the next one', async () => {
    const slots = new Slots(['only'], 4);
    const held = await slots.acquire(hook(), gone);
    const leaving = hook();
    const left = slots.acquire(leaving, gone);
    const staying = slots.acquire(hook(), gone);
    leaving.fire();
    await assert.rejects(left, /gone/);
    assert.equal(slots.queued, 1);
    slots.release(held);
    assert.equal(await staying, 'only');
  });

  it('returns a slot to the free list when nobody waits', async () => {
    const slots = new Slots(['only'], 0);
    const s = await slots.acquire(hook(), gone);
    slots.release(s);
    assert.equal(slots.free, 1);
    assert.equal(await slots.acquire(hook(), gone), 'only');
  });

  it('keeps its queue bounded over many waits', async () => {
    const slots = new Slots(['only'], 2);
    let slot = await slots.acquire(hook(), gone);
    for (let i = 0; i < 1000; i++) {
      const next = slots.acquire(hook(), gone);
      slots.release(slot);
      slot = await next;
    }
    assert.equal(slots.queued, 0);
    assert.equal(slots.busy, 1);
  });
});
