/** What the protocol tests share: an answer's events as a backend streams them, and the check of a refused request. */
import assert from 'node:assert/strict';
import { ApiError, fastError } from '../../src/core/errors.js';
import type { TextEvent, TextStream } from '../../src/core/text.js';

/** The id and creation time of every test answer. */
export const ANSWER_ID = 'chatcmpl-test1';
export const ANSWER_CREATED = 1_700_000_000;

/** `events` as a backend's streamed answer; with `failAfter`, the stream fails (upstream_error) instead of giving that event. */
export function answer(events: readonly TextEvent[], failAfter: number | null = null): TextStream {
  return {
    type: 'events',
    id: ANSWER_ID,
    created: ANSWER_CREATED,
    events: (async function* () {
      for (const [i, e] of events.entries()) {
        if (i === failAfter) throw fastError('upstream_error', 'the upstream went away');
        yield e;
      }
    })(),
  };
}

/** Asserts that `parse` throws invalid_request naming `param`, its message matching `message`. */
export function refused(parse: () => unknown, param: string, message: RegExp): void {
  assert.throws(parse, (err: unknown) => {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.code, 'invalid_request');
    assert.equal(err.param, param, err.message);
    assert.match(err.message, message);
    return true;
  });
}
