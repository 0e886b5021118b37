/**
 * The `tenancy` scenario's targets: the same mock chat model behind each tenancy setting, so the
 * table shows what authentication, limits and the usage ledger cost per request.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startInfergate, type Target } from './targets.js';

const ADMIN_KEY = 'bench-admin-key-0123456789';

function config(extra: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-bench-tenancy-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    `server: { host: 127.0.0.1, workers: auto, log_level: warn }
${extra}
models:
  - name: mock-chat
    aliases: [lab]
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
`,
  );
  return file;
}

/** Makes a tenant with limits far above what the load reaches (every check runs, none refuses) and returns its key. */
async function tenantKey(target: Target): Promise<string> {
  const base = new URL(target.url).origin;
  const headers = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
  const limits = { requests_per_minute: 1e12, tokens_per_minute: 1e12, concurrent_requests: 1e9 };
  const t = await fetch(`${base}/admin/tenants`, { method: 'POST', headers, body: JSON.stringify({ id: 'bench', models: ['*'], limits }) });
  if (t.status !== 201) throw new Error(`creating the bench tenant: ${t.status} ${await t.text()}`);
  const k = await fetch(`${base}/admin/tenants/bench/keys`, { method: 'POST', headers, body: '{}' });
  return ((await k.json()) as { key: string }).key;
}

export async function tenancyTargets(workers: number | undefined): Promise<Target[]> {
  const path = '/v1/chat/completions';
  const keys = `auth: { mode: keys, admin_key: '${ADMIN_KEY}' }`;
  const targets: Target[] = [
    await startInfergate('no ledger, no auth', config('usage: { enabled: false }'), path, workers),
    await startInfergate('ledger (default)', config(''), path, workers),
  ];
  const memory = await startInfergate('keys + limits + ledger', config(keys), path, workers);
  targets.push({ ...memory, headers: { authorization: `Bearer ${await tenantKey(memory)}` } });
  const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  try {
    const redis = await startInfergate('keys + limits in Redis + ledger', config(keys), path, workers, { REDIS_URL: redisUrl });
    targets.push({ ...redis, headers: { authorization: `Bearer ${await tenantKey(redis)}` } });
  } catch (err) {
    console.log(`(skipping the Redis target: ${(err as Error).message})`);
  }
  return targets;
}
