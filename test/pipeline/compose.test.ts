/** compose(): the policy wrappers of a version made into one call, once, in the order a call meets them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VersionCall, Wrapper } from '../../src/core/policy.js';
import { DeadlineCall } from '../../src/policies/deadline.js';
import { compose } from '../../src/pipeline/compose.js';

/** A wrapper that logs when a call enters and leaves it. */
function logging(name: string, log: string[]): Wrapper<string> {
  return (next) =>
    async function logged(work, ctx) {
      log.push(`${name} in`);
      try {
        return await next(work, ctx);
      } finally {
        log.push(`${name} out`);
      }
    };
}

const backend: VersionCall<string> = function backend(work, ctx) {
  return work('1', ctx);
};

function context<T>(): DeadlineCall<T> {
  return new DeadlineCall<T>(
    { priority: 'normal', trace: null, signal: new AbortController().signal, onAbort: () => undefined },
    60_000,
    'chat',
    null,
  );
}

describe('compose', () => {
  it('runs the wrappers in the order given, the first outermost, around the base call', async () => {
    const log: string[] = [];
    const call = compose(logging('admission', log), logging('governor', log))(backend);
    const ctx = context();
    const result = await call(async (version) => {
      log.push(`backend ${version}`);
      return 'ok';
    }, ctx);
    ctx.clear();
    assert.equal(result, 'ok');
    assert.deepEqual(log, ['admission in', 'governor in', 'backend 1', 'governor out', 'admission out']);
  });

  it('leaves a disabled (null) policy out, and with none gives the base call itself', async () => {
    assert.equal(compose<string>()(backend), backend);
    assert.equal(compose<string>(null, null)(backend), backend);
    const log: string[] = [];
    const call = compose(null, logging('observation', log), null)(backend);
    const ctx = context();
    await call(() => Promise.resolve('ok'), ctx);
    ctx.clear();
    assert.deepEqual(log, ['observation in', 'observation out']);
  });

  it('makes the chain once: calls go through it without calling the wrappers again', async () => {
    let made = 0;
    const counted: Wrapper<string> = (next) => {
      made++;
      return function passed(work, ctx) {
        return next(work, ctx);
      };
    };
    const call = compose(counted, counted)(backend);
    assert.equal(made, 2);
    const ctx = context<number>();
    for (let i = 0; i < 3; i++) await call(() => Promise.resolve(i), ctx);
    ctx.clear();
    assert.equal(made, 2);
  });

  it('names the functions of the chain, so stack traces say which policy a call was in', () => {
    assert.equal(compose(logging('a', []))(backend).name, 'logged');
  });
});
