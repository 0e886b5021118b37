/** Profiles on demand through the admin API: a CPU profile and a heap snapshot, guarded by the admin key. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { get, startServer, type RunningServer } from '../helpers/server.js';
import { ADMIN, keysConfig, tenantWithKey } from '../helpers/tenancy.js';

describe('profiling endpoints', () => {
  let server: RunningServer;

  before(async () => {
    const config = keysConfig();
    server = await startServer({ config });
  });

  after(async () => {
    await server.stop();
  });

  it('returns a CPU profile in the Chrome DevTools format, and refuses a bad duration', async () => {
    const res = await fetch(`${server.url}/admin/debug/cpu-profile?seconds=0.3`, { headers: ADMIN });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-disposition') ?? '', /\.cpuprofile"$/);
    const profile = (await res.json()) as {
      nodes: Array<{ callFrame: { functionName: string } }>;
      samples: number[];
      startTime: number;
      endTime: number;
    };
    assert.ok(profile.nodes.length > 0 && profile.samples.length > 0);
    const ms = (profile.endTime - profile.startTime) / 1000;
    assert.ok(ms >= 250 && ms < 2000, `profiled for ${ms} ms`);
    for (const bad of ['0', '61', 'ten', '-1']) {
      const r = await get(`${server.url}/admin/debug/cpu-profile?seconds=${bad}`, ADMIN);
      assert.equal(r.status, 400, bad);
      assert.equal(r.body.error.param, 'seconds');
    }
  });

  it('streams a heap snapshot V8 can read back', async () => {
    const res = await fetch(`${server.url}/admin/debug/heap-snapshot`, { headers: ADMIN });
    assert.equal(res.status, 200);
    const snapshot = (await res.json()) as { snapshot: { meta: { node_fields: string[] }; node_count: number }; nodes: number[] };
    assert.ok(snapshot.snapshot.meta.node_fields.includes('name'));
    assert.equal(snapshot.nodes.length, snapshot.snapshot.node_count * snapshot.snapshot.meta.node_fields.length);
  });

  it('is for the admin key only', async () => {
    const tenant = await tenantWithKey(server.url, { id: 'p', models: ['*'] });
    assert.equal((await get(`${server.url}/admin/debug/cpu-profile?seconds=1`, { authorization: `Bearer ${tenant.key}` })).status, 403);
    assert.equal((await get(`${server.url}/admin/debug/heap-snapshot`)).status, 401);
  });
});
