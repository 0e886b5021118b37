/** The rolling-minute counters: estimates, waits, and the memory state's windows, with an injected clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryState, WINDOW_MS, estimate, monthOf, untilNextMonth, waitFor } from '../../src/cluster/state.js';

const T0 = 1_800_000_000_000 - (1_800_000_000_000 % WINDOW_MS); // the start of a window

describe('rolling-minute counters', () => {
  it('weighs the previous window by the part of it still inside the last minute', () => {
    assert.equal(estimate({ allowed: true, current: 4, previous: 10 }, T0), 14);
    assert.equal(estimate({ allowed: true, current: 4, previous: 10 }, T0 + WINDOW_MS / 2), 9);
    assert.equal(estimate({ allowed: true, current: 4, previous: 10 }, T0 + WINDOW_MS - 1), 4 + 10 / WINDOW_MS);
  });

  it('waits until enough of the previous window has slid out, or into the next window', () => {
    // 10 in the previous window, none now, half a minute in: 5 remain; dropping 1 takes 6 s.
    assert.equal(waitFor({ allowed: false, current: 0, previous: 10 }, 1, T0 + 30_000), 6000);
    // All in the current window: the rest of this window, then a share of the next.
    assert.equal(waitFor({ allowed: false, current: 3, previous: 0 }, 1, T0 + 10_000), 50_000 + 20_000);
    assert.equal(waitFor({ allowed: true, current: 3, previous: 0 }, 0, T0), 0);
  });

  it('admits up to the limit in a minute, then refuses until the window rolls', async () => {
    const state = new MemoryState();
    const results = [];
    for (let i = 0; i < 5; i++) results.push((await state.take('t:a:req', 3, 1, 1, T0 + i)).allowed);
    assert.deepEqual(results, [true, true, true, false, false]);
    // Just after the minute: the 3 still weigh almost fully.
    assert.equal((await state.take('t:a:req', 3, 1, 1, T0 + WINDOW_MS + 10)).allowed, false);
    // Two thirds into the next minute, one of the three has slid out.
    assert.equal((await state.take('t:a:req', 3, 1, 1, T0 + WINDOW_MS + 40_001)).allowed, true);
    // After a gap of more than a minute, nothing weighs.
    assert.equal((await state.take('t:a:req', 3, 3, 3, T0 + 5 * WINDOW_MS)).allowed, true);
  });

  it('checks tokens without counting them, and counts spent ones without a check', async () => {
    const state = new MemoryState();
    assert.equal((await state.take('k:tok', 10, 0, 1, T0)).allowed, true);
    await state.add('k:tok', 12, T0 + 1);
    assert.equal((await state.take('k:tok', 10, 0, 1, T0 + 2)).allowed, false);
  });

  it('holds concurrency slots until released', async () => {
    const state = new MemoryState();
    assert.equal(await state.acquire('t:c', 2), true);
    assert.equal(await state.acquire('t:c', 2), true);
    assert.equal(await state.acquire('t:c', 2), false);
    state.release('t:c');
    assert.equal(await state.acquire('t:c', 2), true);
  });

  it('counts months in UTC and seeds a month only once', async () => {
    assert.equal(monthOf(Date.UTC(2026, 10, 30, 23, 59)), '2026-11');
    assert.equal(untilNextMonth(Date.UTC(2026, 11, 31, 23, 0)), 3_600_000);
    const state = new MemoryState();
    await state.seedMonthly('t:m', '2026-11', 100);
    await state.seedMonthly('t:m', '2026-11', 5);
    assert.equal(await state.addMonthly('t:m', '2026-11', 1), 101);
  });
});
