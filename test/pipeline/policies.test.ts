/** Each version's policy chain, composed by the registry when the config loads: only the policies it has, in the order a call meets them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { parseConfig } from '../../src/config/load.js';
import type { Cancellation } from '../../src/core/call.js';
import { fastError } from '../../src/core/errors.js';
import type { DeploymentObserver } from '../../src/core/observer.js';
import { DeadlineCall } from '../../src/policies/deadline.js';
import { RetryBudget } from '../../src/policies/retry-budget.js';
import { versionPolicies } from '../../src/pipeline/policies.js';
import { Registry, type ModelVersion, type RegistryContext } from '../../src/routing/registry.js';

/** What every version reports, in order, as `model@version event`. */
class Log {
  readonly events: string[] = [];
  observer(model: string, version: string): DeploymentObserver {
    const push = (event: string) => (): void => void this.events.push(`${model}@${version} ${event}`);
    return {
      queued: push('queued'),
      shed: push('shed'),
      attempt: push('attempt'),
      retried: push('retried'),
      fellBack: push('fellBack'),
      executed: push('executed'),
    };
  }
}

function registry(versions: string, log = new Log(), previous?: Registry): Registry {
  const context: RegistryContext = {
    policies: versionPolicies(new RetryBudget(0.2, 100, () => 0), pino({ level: 'silent' })),
    observe: (model, version) => log.observer(model, version),
    ...(previous === undefined ? {} : { previous }),
  };
  return new Registry(parseConfig(`models:\n  - name: m\n    versions:\n${versions}`, 'x.yaml'), context);
}

function call<T>(): DeadlineCall<T> {
  return new DeadlineCall<T>(
    { priority: 'normal', trace: null, signal: new AbortController().signal, onAbort: () => undefined },
    60_000,
    'chat',
    null,
  );
}

const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('version policies', () => {
  it('gives an in-process version without policies neither admission nor a governor, and its calls reach the backend', async () => {
    const log = new Log();
    const version = registry(`      - { version: '1', backend: { kind: mock } }\n`, log).get('m').defaultVersion;
    assert.equal(version.governor, null);
    assert.equal(version.admission, null);
    let served: ModelVersion | null = null;
    assert.equal(await version.call((v) => ((served = v), Promise.resolve('ok')), call()), 'ok');
    assert.equal(served, version, 'the work is given the version that serves it');
    await settled();
    assert.deepEqual(log.events, ['m@1 attempt']);
  });

  it('gives a remote version retries and a breaker by default, and a capped one its bulkhead', () => {
    const remote = registry(`      - { version: '1', backend: { kind: openai, base_url: 'http://127.0.0.1:1' } }\n`).get(
      'm',
    ).defaultVersion;
    assert.deepEqual(remote.governor?.status(), { state: 'closed', consecutive_failures: 5, opened_at: null });
    assert.equal(remote.admission, null);
    const capped = registry(`      - { version: '1', backend: { kind: mock }, policies: { admission: { max_concurrent: 2 } } }\n`).get(
      'm',
    ).defaultVersion;
    assert.equal(capped.governor, null);
    assert.equal(capped.admission?.active, 0);
  });

  it('runs admission outside the retries, and times each try: a retried call waits once and is tried twice', async () => {
    const log = new Log();
    const version = registry(
      `      - { version: '1', backend: { kind: mock }, policies: { retry: { attempts: 2, base_delay_ms: 1 }, admission: { max_concurrent: 1 } } }\n`,
      log,
    ).get('m').defaultVersion;
    let tries = 0;
    const work = (_v: ModelVersion, _c: Cancellation): Promise<string> =>
      tries++ === 0 ? Promise.reject(fastError('upstream_unavailable', 'refused', null, { retryable: true })) : Promise.resolve('ok');
    assert.equal(await version.call(work, call()), 'ok');
    await settled();
    assert.deepEqual(log.events, ['m@1 queued', 'm@1 attempt', 'm@1 retried', 'm@1 attempt']);
    assert.equal(version.admission?.active, 0, 'the slot was held across the retry and released once');
  });

  it('composes fresh chains on reload: a breaker the old config opened starts closed in the new one', async () => {
    const versions = `      - { version: '1', backend: { kind: mock }, policies: { retry: { attempts: 1 }, breaker: { consecutive_failures: 1 } } }\n`;
    const before = registry(versions);
    const old = before.get('m').defaultVersion;
    await assert.rejects(old.call<string>(() => Promise.reject(fastError('upstream_error', 'down')), call()));
    assert.equal(old.governor?.status()?.state, 'open');
    const after = registry(versions, new Log(), before).get('m').defaultVersion;
    assert.notEqual(after, old);
    assert.equal(after.governor?.status()?.state, 'closed');
  });
});
