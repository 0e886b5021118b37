/** The gateway looks a model up once per call: a reload while the tenant's limits are checked does not change what serves it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import { Gateway } from '../../src/pipeline/gateway.js';
import { Registry, type Model } from '../../src/routing/registry.js';
import { Session, Tenancy, type SessionContext } from '../../src/tenancy/tenancy.js';

async function loaded(version: string): Promise<Registry> {
  const registry = new Registry(
    parseConfig(`models:\n  - name: m\n    versions:\n      - { version: '${version}', backend: { kind: mock } }\n`, 'x.yaml'),
  );
  await registry.load((_v, error) => assert.fail(error));
  return registry;
}

function context(): RequestContext {
  return {
    id: 'r1',
    pinnedVersion: undefined,
    timeoutMs: undefined,
    priority: 'normal',
    principal: null,
    trace: null,
    signal: new AbortController().signal,
    onAbort: () => undefined,
    routed: () => undefined,
    counted: () => undefined,
  };
}

describe('gateway', () => {
  it('serves the model it checked the limits for when a reload swaps the registry meanwhile', async () => {
    const before = await loaded('1');
    const after = await loaded('2');
    let reloads = 0;
    let gateway: Gateway | null = null;
    /** Limits that take long enough for a reload to land while they are checked. */
    class Reloading extends Tenancy {
      override async open(model: Model, ctx: SessionContext): Promise<Session> {
        if (reloads++ === 0) gateway?.swap(after);
        return super.open(model, ctx);
      }
    }
    gateway = new Gateway(before, new Reloading(null, null));
    const first = await gateway.embed('m', { input: ['hello'], dimensions: null }, context());
    assert.equal(first.version, before.get('m').defaultVersion);
    const second = await gateway.embed('m', { input: ['hello'], dimensions: null }, context());
    assert.equal(second.version, after.get('m').defaultVersion, 'calls after the reload are served by the new registry');
  });
});
