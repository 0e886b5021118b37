/**
 * The error catalogue: an ApiError's status comes from its code, and everything else it says
 * (retry advice, whether it may have run upstream, the limit that refused it) is fixed when it is
 * made, so no layer can change what another layer already decided.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError, ERROR_CATALOGUE, fastError, overloadedError } from '../../src/core/errors.js';

describe('ApiError', () => {
  it('takes its status from the catalogue and says nothing more unless told', () => {
    const e = new ApiError('invalid_request', 'bad', 'messages[0].role');
    assert.equal(e.status, ERROR_CATALOGUE.invalid_request.status);
    assert.equal(e.param, 'messages[0].role');
    assert.deepEqual([e.retryAfterS, e.retryable, e.mayHaveRun, e.rateLimit, e.limit], [null, false, false, null, null]);
  });

  it('keeps the details it was made with, fast or not, and its cause', () => {
    const cause = new Error('socket hang up');
    const e = new ApiError('upstream_unavailable', 'gone', null, { cause, retryable: true, mayHaveRun: true });
    assert.equal(e.cause, cause);
    assert.deepEqual([e.retryable, e.mayHaveRun, e.retryAfterS], [true, true, null]);
    const limited = fastError('rate_limited', 'slow down', null, { retryAfterS: 7, limit: 'requests_per_minute' });
    assert.deepEqual([limited.status, limited.retryAfterS, limited.limit], [429, 7, 'requests_per_minute']);
    assert.equal(overloadedError('full').retryAfterS, 1);
  });

  it('cannot be changed after it is made (the compiler refuses it)', () => {
    const e = fastError('circuit_open', 'open', null, { retryAfterS: 3 });
    // @ts-expect-error retryAfterS is readonly: the answer's Retry-After is decided where the error is made
    const change = (): void => void (e.retryAfterS = 9);
    assert.equal(typeof change, 'function');
    assert.equal(e.retryAfterS, 3);
  });
});
