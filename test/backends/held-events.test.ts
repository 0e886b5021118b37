/** HeldEvents: a llama answer's sequence is released exactly once, however its events end. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeldEvents } from '../../src/backends/llama/answer.js';
import { ClientGoneError } from '../../src/core/call.js';
import type { TextEvent } from '../../src/core/text.js';

const TEXT: TextEvent = { type: 'text', text: 'a', logprobs: null };
const FINISH: TextEvent = { type: 'finish', reason: 'stop' };

/** Events that release early (as a finished generation does), with the count of releases and whether the generator's `finally` ran. */
function held(early = false): { events: HeldEvents; releases: () => number; cleaned: () => boolean } {
  let releases = 0;
  let cleaned = false;
  const events = new HeldEvents(
    async function* (release) {
      try {
        yield TEXT;
        if (early) release();
        yield FINISH;
      } finally {
        cleaned = true;
      }
    },
    () => void releases++,
  );
  return { events, releases: () => releases, cleaned: () => cleaned };
}

describe('HeldEvents', () => {
  it('releases once when read to the end, even if the generator released first', async () => {
    for (const early of [false, true]) {
      const h = held(early);
      const read: TextEvent[] = [];
      for await (const event of h.events) read.push(event);
      assert.deepEqual(read, [TEXT, FINISH]);
      assert.equal(h.releases(), 1);
    }
  });

  it('releases after the generator cleans up when the reader stops early', async () => {
    const h = held();
    for await (const _ of h.events) break;
    assert.equal(h.cleaned(), true);
    assert.equal(h.releases(), 1);
  });

  it('releases when abandoned before the first read, which runs no generator code', async () => {
    const h = held();
    await h.events[Symbol.asyncIterator]().return?.();
    assert.equal(h.releases(), 1);
    assert.equal(h.cleaned(), false);
  });

  it('releases when the client leaves before anything read it; a later read fails as a client gone', async () => {
    const h = held();
    h.events.abandon();
    assert.equal(h.releases(), 1);
    await assert.rejects(h.events[Symbol.asyncIterator]().next(), ClientGoneError);
    assert.equal(h.releases(), 1);
  });

  it('leaves a stream being read to its reader when the client leaves', async () => {
    const h = held();
    const iterator = h.events[Symbol.asyncIterator]();
    assert.deepEqual(await iterator.next(), { done: false, value: TEXT });
    h.events.abandon();
    assert.equal(h.releases(), 0);
    await iterator.return?.();
    assert.equal(h.releases(), 1);
  });

  it('releases when the generator throws', async () => {
    let releases = 0;
    const events = new HeldEvents(
      // eslint-disable-next-line require-yield
      async function* () {
        throw new ClientGoneError();
      },
      () => void releases++,
    );
    await assert.rejects(events[Symbol.asyncIterator]().next(), ClientGoneError);
    assert.equal(releases, 1);
  });
});
