/** The circuit breaker: closed, open after consecutive failures, half-open with one probe, closed again. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Breaker, type BreakerState } from '../../src/policies/governor.js';

function breaker(now: () => number, rate = 0) {
  const changes: BreakerState[] = [];
  const options = {
    consecutiveFailures: rate > 0 ? 0 : 3,
    failureRate: rate,
    windowMs: 1000,
    minimumCalls: 10,
    halfOpenAfterMs: 1000,
    now,
  };
  return { b: new Breaker(options, (s) => changes.push(s)), changes };
}

describe('Breaker', () => {
  it('opens after the threshold of failures in a row, and a success in between resets the count', () => {
    const { b, changes } = breaker(() => 0);
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    assert.equal(b.state, 'closed');
    b.failure();
    assert.equal(b.state, 'open');
    assert.equal(b.allow(), false);
    assert.deepEqual(changes, ['open']);
  });

  it('half-opens after the time-out with exactly one probe, which closes it on success', () => {
    let now = 0;
    const { b, changes } = breaker(() => now);
    for (let i = 0; i < 3; i++) b.failure();
    now = 999;
    assert.equal(b.allow(), false);
    assert.equal(b.retryAfterS(), 1);
    now = 1000;
    assert.equal(b.allow(), true, 'the probe');
    assert.equal(b.allow(), false, 'only one probe at a time');
    b.success();
    assert.equal(b.state, 'closed');
    assert.deepEqual(changes, ['open', 'half-open', 'closed']);
  });

  it('opens again when the probe fails, and frees the probe slot on a neutral outcome', () => {
    let now = 0;
    const { b } = breaker(() => now);
    for (let i = 0; i < 3; i++) b.failure();
    now = 1000;
    assert.equal(b.allow(), true);
    b.neutral();
    assert.equal(b.allow(), true, 'a client error does not use up the probe');
    b.failure();
    assert.equal(b.state, 'open');
    assert.equal(b.allow(), false);
  });

  it('opens when the failure rate in the rolling window passes its limit, once there were enough calls', () => {
    const now = 0;
    const { b } = breaker(() => now, 0.5);
    for (let i = 0; i < 4; i++) b.failure();
    assert.equal(b.state, 'closed', 'too few calls yet');
    for (let i = 0; i < 5; i++) b.success();
    assert.equal(b.state, 'closed', '4 of 9');
    b.failure();
    assert.equal(b.state, 'open', '5 of 10');
  });

  it('forgets calls that aged out of the window', () => {
    let now = 0;
    const { b } = breaker(() => now, 0.5);
    for (let i = 0; i < 9; i++) b.failure();
    now = 1500; // the window is 1000 ms
    for (let i = 0; i < 9; i++) b.success();
    b.failure();
    assert.equal(b.state, 'closed', '1 failure in the last 10 calls');
  });
});
