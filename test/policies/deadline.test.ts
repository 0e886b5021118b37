/** A request's deadline: the call's Cancellation and the context its version's policies read. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeadlineCall } from '../../src/policies/deadline.js';

function parent(): { leave(): void; priority: 'low'; trace: null; signal: AbortSignal; onAbort(listener: () => void): void } {
  const listeners: Array<() => void> = [];
  return {
    priority: 'low',
    trace: null,
    signal: new AbortController().signal,
    onAbort: (listener) => void listeners.push(listener),
    leave: () => listeners.splice(0).forEach((l) => l()),
  };
}

describe('DeadlineCall', () => {
  it('aborts at its deadline, says it expired, and gives the 504 naming the time-out', async () => {
    const call = new DeadlineCall<string>(parent(), 5, 'chat', null);
    let aborted = 0;
    call.onAbort(() => aborted++);
    assert.equal(call.expired, false);
    await sleep(20);
    assert.equal(call.expired, true);
    assert.equal(aborted, 1);
    const error = call.timeoutError();
    assert.equal(error.code, 'upstream_timeout');
    assert.equal(error.status, 504);
    assert.equal(error.message, 'the call did not finish within its deadline of 5 ms');
    let late = 0;
    call.onAbort(() => late++);
    assert.equal(late, 1, 'a listener added after the deadline is called at once');
  });

  it('aborts once when the client leaves, without expiring, and not again at the deadline', async () => {
    const client = parent();
    const call = new DeadlineCall<string>(client, 5, 'chat', null);
    let aborted = 0;
    call.onAbort(() => aborted++);
    client.leave();
    assert.equal(call.expired, false);
    await sleep(20);
    assert.equal(aborted, 1);
  });

  it('stops counting once cleared', async () => {
    const call = new DeadlineCall<string>(parent(), 5, 'chat', null);
    call.clear();
    await sleep(20);
    assert.equal(call.expired, false);
  });

  it("carries the request's priority and trace, and the call's task and hold, for the policies", () => {
    const hold = (result: string): string => result;
    const call = new DeadlineCall<string>(parent(), 60_000, 'embedding', hold);
    call.clear();
    assert.equal(call.priority, 'low');
    assert.equal(call.trace, null);
    assert.equal(call.task, 'embedding');
    assert.equal(call.hold, hold);
  });
});
