/** The governor as a wrapper: retries what is safe to retry through the next call, and a breaker that opens and fails fast. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { parseConfig } from '../../src/config/load.js';
import type { BackendKind, PoliciesConfig } from '../../src/config/schema.js';
import { ClientGoneError, signalOf, type Cancellation } from '../../src/core/call.js';
import { ApiError, fastError } from '../../src/core/errors.js';
import { NO_OBSERVER, type DeploymentObserver } from '../../src/core/observer.js';
import type { Attempt, VersionCall } from '../../src/core/policy.js';
import { DeadlineCall } from '../../src/policies/deadline.js';
import { Governor, govern } from '../../src/policies/governor.js';
import { RetryBudget } from '../../src/policies/retry-budget.js';

/** A version's `policies`, defaults filled in as the config loader does. */
function policies(yaml: string): PoliciesConfig {
  const config = parseConfig(
    `models:\n  - name: m\n    versions:\n      - { version: '1', backend: { kind: mock }, policies: ${yaml} }\n`,
    'x.yaml',
  );
  return (config.models[0]?.versions[0] as { policies: PoliciesConfig }).policies;
}

/** Counts the retries it is told of. */
class Retries implements DeploymentObserver {
  count = 0;
  retried(): void {
    this.count++;
  }
  queued(): void {}
  shed(): void {}
  attempt(): void {}
  fellBack(): void {}
  executed(): void {}
}

function governorOf(yaml: string, observer: DeploymentObserver = NO_OBSERVER, kind: BackendKind = 'mock'): Governor {
  const governor = Governor.create(policies(yaml), kind, new RetryBudget(0.2, 100, () => 0), pino({ level: 'silent' }), 'm@1', observer);
  assert.ok(governor !== null);
  return governor;
}

const backend: VersionCall<string> = function backend(work, ctx) {
  return work('1', ctx);
};

/** Work whose tries go as scripted (the last entry repeats), counting them. */
function script(tries: Array<() => Promise<string>>): { work: Attempt<string, string>; calls: () => number } {
  let calls = 0;
  return { work: () => (tries[Math.min(calls++, tries.length - 1)] as () => Promise<string>)(), calls: () => calls };
}

const client = (): Cancellation & { leave(): void } => {
  const listeners: Array<() => void> = [];
  return {
    get signal() {
      return signalOf(this);
    },
    onAbort: (l) => void listeners.push(l),
    leave: () => listeners.splice(0).forEach((l) => l()),
  };
};

function call(timeoutMs = 60_000): DeadlineCall<string> {
  const c = client();
  return new DeadlineCall<string>(
    { priority: 'normal', trace: null, signal: c.signal, onAbort: (l) => c.onAbort(l) },
    timeoutMs,
    'chat',
    null,
  );
}

const ok = (): Promise<string> => Promise.resolve('ok');
const unavailable = (): Promise<never> => Promise.reject(fastError('upstream_unavailable', 'refused', null, { retryable: true }));
const sent = (): Promise<never> => Promise.reject(fastError('upstream_error', 'reset', null, { retryable: true, mayHaveRun: true }));

describe('governor wrapper', () => {
  it('retries a retryable failure through the next call, and answers from the try that worked', async () => {
    const retries = new Retries();
    const chain = govern<string>(governorOf('{ retry: { attempts: 3, base_delay_ms: 1 } }', retries))(backend);
    const { work, calls } = script([unavailable, unavailable, ok]);
    assert.equal(await chain(work, call()), 'ok');
    assert.equal(calls(), 3);
    assert.equal(retries.count, 2);
  });

  it('gives up after its attempts with the last error, and never retries a call the upstream may have run', async () => {
    const tired = script([unavailable]);
    const twice = govern<string>(governorOf('{ retry: { attempts: 2, base_delay_ms: 1 } }'))(backend);
    await assert.rejects(twice(tired.work, call()), (e: ApiError) => e.code === 'upstream_unavailable');
    assert.equal(tired.calls(), 2);
    const once = script([sent, ok]);
    const thrice = govern<string>(governorOf('{ retry: { attempts: 3, base_delay_ms: 1 } }'))(backend);
    await assert.rejects(thrice(once.work, call()), (e: ApiError) => e.code === 'upstream_error');
    assert.equal(once.calls(), 1);
    const optedIn = script([sent, ok]);
    const onSent = govern<string>(governorOf('{ retry: { attempts: 3, base_delay_ms: 1, on_sent: true } }'))(backend);
    assert.equal(await onSent(optedIn.work, call()), 'ok');
    assert.equal(optedIn.calls(), 2);
  });

  it('opens after consecutive failures, then fails fast with circuit_open without calling', async () => {
    const governor = governorOf('{ retry: { attempts: 1 }, breaker: { consecutive_failures: 2, half_open_after_ms: 60000 } }');
    const chain = govern<string>(governor)(backend);
    const { work, calls } = script([sent]);
    for (let i = 0; i < 2; i++) await assert.rejects(chain(work, call()), (e: ApiError) => e.code === 'upstream_error');
    assert.equal(governor.status()?.state, 'open');
    await assert.rejects(chain(work, call()), (e: ApiError) => {
      assert.equal(e.code, 'circuit_open');
      assert.equal(e.status, 503);
      assert.equal(e.retryAfterS, 60);
      return true;
    });
    assert.equal(calls(), 2, 'the open breaker did not call the backend');
  });

  it('counts a call its deadline cut against the breaker, and not one whose client left', async () => {
    const gone = (): Promise<never> => Promise.reject(new ClientGoneError());
    const governor = governorOf('{ retry: { attempts: 1 }, breaker: { consecutive_failures: 1 } }');
    const chain = govern<string>(governor)(backend);
    await assert.rejects(chain(gone, call()), ClientGoneError);
    assert.equal(governor.status()?.state, 'closed');
    const late = call(1);
    await sleep(5);
    assert.equal(late.expired, true);
    await assert.rejects(chain(gone, late), ClientGoneError);
    assert.equal(governor.status()?.state, 'open');
  });

  it('is absent from a version with no retries and no breaker, the default of an in-process backend', () => {
    const none = Governor.create(policies('{}'), 'mock', new RetryBudget(0.2, 100), pino({ level: 'silent' }), 'm@1', NO_OBSERVER);
    assert.equal(none, null);
    assert.equal(governorOf('{}', NO_OBSERVER, 'openai').status()?.consecutive_failures, 5);
  });
});
