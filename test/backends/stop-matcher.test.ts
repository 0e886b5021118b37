/** StopMatcher: stop sequences found across token boundaries, their text never sent. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StopMatcher } from '../../src/backends/llama/generation.js';

/** Feeds pieces one by one; returns everything sent and whether it stopped. */
function run(stops: string[], pieces: string[]): { sent: string; stopped: boolean } {
  const m = new StopMatcher(stops);
  let sent = '';
  for (const p of pieces) {
    const { emit, stopped } = m.push(p);
    sent += emit;
    if (stopped) return { sent, stopped };
  }
  return { sent: sent + m.flush(), stopped: false };
}

describe('StopMatcher', () => {
  it('passes text through when there are no stop sequences', () => {
    assert.deepEqual(run([], ['ab', 'c']), { sent: 'abc', stopped: false });
  });

  it('stops at a sequence inside one piece, without its text or what follows', () => {
    assert.deepEqual(run(['END'], ['abcENDxyz']), { sent: 'abc', stopped: true });
  });

  it('finds a sequence split across pieces, holding back only what could start it', () => {
    const m = new StopMatcher(['END']);
    assert.deepEqual(m.push('abE'), { emit: 'ab', stopped: false });
    assert.deepEqual(m.push('N'), { emit: '', stopped: false });
    assert.deepEqual(m.push('Dz'), { emit: '', stopped: true });
  });

  it('releases held text once it cannot be a stop sequence', () => {
    const m = new StopMatcher(['END']);
    assert.deepEqual(m.push('xE'), { emit: 'x', stopped: false });
    assert.deepEqual(m.push('Nx'), { emit: 'ENx', stopped: false });
  });

  it('stops at the earliest of several sequences', () => {
    assert.deepEqual(run(['zz', 'b'], ['a', 'bzz']), { sent: 'a', stopped: true });
  });

  it('flushes held text when generation ends for another reason', () => {
    assert.deepEqual(run(['END'], ['abEN']), { sent: 'abEN', stopped: false });
  });
});
