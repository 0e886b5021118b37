/** The dynamic batcher's logic, with a fake model call. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batcher, QUIET_MS } from '../../src/scheduling/batcher.js';

function recorder(delayMs = 0) {
  const batches: number[][] = [];
  const batcher = new Batcher<number, number>({
    maxBatchSize: 4,
    maxQueueDelayMs: 5,
    rows: () => 1,
    execute: async (items) => {
      batches.push(items);
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      return items.map((x) => x * 10);
    },
  });
  return { batcher, batches };
}

describe('dynamic batcher', () => {
  it('merges concurrent requests up to max_batch_size and returns each its own result', async () => {
    const { batcher, batches } = recorder();
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map((x) => batcher.submit(x)));
    assert.deepEqual(results, [10, 20, 30, 40, 50, 60]);
    assert.deepEqual(batches, [
      [1, 2, 3, 4],
      [5, 6],
    ]);
  });

  it('runs a lone request after max_queue_delay_ms', async () => {
    const { batcher, batches } = recorder();
    const t = performance.now();
    assert.equal(await batcher.submit(7), 70);
    assert.ok(performance.now() - t >= 4, 'waited for company');
    assert.deepEqual(batches, [[7]]);
  });

  it('queues requests that arrive while a batch runs and sends them together next', async () => {
    const { batcher, batches } = recorder(20);
    const first = batcher.submit(1);
    await new Promise((r) => setTimeout(r, 10)); // the first batch is now running
    const rest = [2, 3, 4].map((x) => batcher.submit(x));
    await Promise.all([first, ...rest]);
    assert.deepEqual(batches, [[1], [2, 3, 4]]);
  });

  it('under load, does not hold a request that finds the model idle for max_queue_delay_ms', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>({
      maxBatchSize: 4,
      maxQueueDelayMs: 200,
      rows: () => 1,
      execute: async (items) => (batches.push(items), items),
    });
    await batcher.submit(1); // a lone request after idle: waits for company (200 ms)
    const t = performance.now();
    // A batch has just returned: the next requests run at the end of this event-loop turn, together.
    assert.deepEqual(await Promise.all([2, 3].map((x) => batcher.submit(x))), [2, 3]);
    assert.ok(performance.now() - t < 100, `not held for max_queue_delay_ms (${(performance.now() - t).toFixed(1)} ms)`);
    assert.deepEqual(batches, [[1], [2, 3]]);
  });

  it('waits for company again after a quiet spell', async () => {
    const { batcher, batches } = recorder();
    await batcher.submit(1);
    await new Promise((r) => setTimeout(r, QUIET_MS + 10)); // no batch for longer than the quiet spell
    const t = performance.now();
    const first = batcher.submit(2);
    await new Promise((r) => setTimeout(r, 1));
    const second = batcher.submit(3); // joins the first's batch while it waits
    assert.deepEqual(await Promise.all([first, second]), [20, 30]);
    assert.ok(performance.now() - t >= 4, 'waited for company');
    assert.deepEqual(batches, [[1], [2, 3]]);
  });

  it('counts rows, not requests, and never splits a request', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>({
      maxBatchSize: 4,
      maxQueueDelayMs: 1,
      rows: (n) => n,
      execute: async (items) => (batches.push(items), items),
    });
    await Promise.all([1, 2, 1, 3, 5].map((n) => batcher.submit(n)));
    // 1+2+1 fills the batch; 3 waits for the next; 5 is larger than a batch and runs alone.
    assert.deepEqual(batches, [[1, 2, 1], [3], [5]]);
  });

  it('fails every request of a failed batch, and keeps serving', async () => {
    let fail = true;
    const batcher = new Batcher<number, number>({
      maxBatchSize: 8,
      maxQueueDelayMs: 1,
      rows: () => 1,
      execute: async (items) => {
        if (fail) throw new Error('model crashed');
        return items;
      },
    });
    const results = await Promise.allSettled([1, 2].map((x) => batcher.submit(x)));
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    fail = false;
    assert.equal(await batcher.submit(3), 3);
  });
});
