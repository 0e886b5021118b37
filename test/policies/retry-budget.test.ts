/** The global retry budget: retries limited to a share of calls plus a floor per second. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetryBudget } from '../../src/policies/retry-budget.js';

describe('RetryBudget', () => {
  it('allows the floor per second however few the calls', () => {
    let now = 0;
    const budget = new RetryBudget(0, 3, () => now);
    assert.deepEqual(
      [1, 2, 3, 4].map(() => budget.tryRetry()),
      [true, true, true, false],
    );
    now = 1000;
    assert.equal(budget.tryRetry(), true, 'a new second, a new allowance');
  });

  it('allows retries in proportion to calls', () => {
    const now = 0;
    const budget = new RetryBudget(0.2, 0, () => now);
    for (let i = 0; i < 100; i++) budget.call();
    let allowed = 0;
    while (budget.tryRetry()) allowed++;
    assert.equal(allowed, 20);
  });

  it('stops retries multiplying load in an outage: 1000 failing calls get at most ratio x 1000 + floor retries', () => {
    const now = 0;
    const budget = new RetryBudget(0.1, 5, () => now);
    let retries = 0;
    for (let i = 0; i < 1000; i++) {
      budget.call();
      for (let attempt = 0; attempt < 3; attempt++) if (budget.tryRetry()) retries++;
    }
    assert.ok(retries <= 105, `${retries} retries`);
  });
});
