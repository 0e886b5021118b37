/** Waiting for confirmations of a change: all of them, the time-out, and processes that leave. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Confirmations } from '../../src/cluster/change-feed.js';

describe('change confirmations', () => {
  it('resolves with none missing once every expected process confirmed, ignoring others and repeats', async () => {
    const c = new Confirmations();
    const started = performance.now();
    const done = c.wait('c1', ['a', 'b'], 10_000);
    c.confirm('c1', 'a');
    c.confirm('c1', 'a');
    c.confirm('c1', 'stranger');
    c.confirm('other-change', 'b');
    c.confirm('c1', 'b');
    assert.deepEqual(await done, []);
    assert.ok(performance.now() - started < 1000, 'did not wait for the time-out');
  });

  it('resolves at once when nobody is expected', async () => {
    assert.deepEqual(await new Confirmations().wait('c1', [], 10_000), []);
  });

  it('names those that did not confirm when the time-out passes', async () => {
    const c = new Confirmations();
    const done = c.wait('c1', ['a', 'b', 'c'], 50);
    c.confirm('c1', 'b');
    assert.deepEqual(await done, ['a', 'c']);
    c.confirm('c1', 'a'); // too late: ignored
  });

  it('stops waiting for a process that left', async () => {
    const c = new Confirmations();
    const one = c.wait('c1', ['a', 'gone'], 10_000);
    const two = c.wait('c2', ['gone'], 10_000);
    c.confirm('c1', 'a');
    c.forget('gone');
    assert.deepEqual(await one, []);
    assert.deepEqual(await two, []);
  });
});
