/**
 * The `registry` scenario's targets: one router in front of two infergate replicas of a mock chat
 * model, as two processes up at the same time: one with the replicas listed in `endpoints`, one
 * that finds them in the fleet registry (`discovery.registry`, Redis). Everything else is the same,
 * the fleet included (both routers register and renew in the same store), so the table's ratio is
 * what registry-driven balancing costs over a static list.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startInfergate, type Target } from './targets.js';

/** The model the replicas serve and register; the routers serve theirs under another name, so that neither discovers itself. */
const UPSTREAM_MODEL = 'mock-chat';

/** The target the table's ratio compares against. */
export const STATIC_TARGET = 'static endpoints';

function writeConfig(name: string, yaml: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'infergate-bench-registry-')), `${name}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

/** A replica: the mock model, answering at once, registered under `prefix`. */
function replicaConfig(prefix: string): string {
  return writeConfig(
    'replica',
    `server: { host: 127.0.0.1, workers: 1, log_level: warn }
usage: { enabled: false }
state: { key_prefix: '${prefix}' }
models:
  - name: ${UPSTREAM_MODEL}
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
`,
  );
}

/** A router whose one remote version reaches the replicas through `upstream` (`endpoints: …` or `discovery: …`). */
function routerConfig(name: string, prefix: string, upstream: string): string {
  return writeConfig(
    name,
    `server: { host: 127.0.0.1, workers: 1, log_level: warn }
usage: { enabled: false }
state: { key_prefix: '${prefix}' }
models:
  - name: gateway-chat
    aliases: [lab]
    versions:
      - version: '1'
        backend:
          kind: openai
          model: ${UPSTREAM_MODEL}
          connections: 64
          ${upstream}
`,
  );
}

/** Null when Redis answers PING at `url`, else why not. */
async function redisProblem(url: string): Promise<string | null> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 });
  // The connection's own error (ECONNREFUSED, say) says more than the rejection ("Connection is
  // closed"); and an error event nobody listens to is printed as unhandled.
  let cause: Error | null = null;
  redis.on('error', (err: Error) => (cause ??= err));
  try {
    await redis.connect();
    await redis.ping();
    return null;
  } catch (err) {
    return `nothing answers at ${url} (${(cause ?? (err as Error)).message})`;
  } finally {
    redis.disconnect();
  }
}

/** The endpoint URLs a router's remote version balances over now, sorted, from GET /admin/breakers. */
async function endpointsOf(target: Target): Promise<string[]> {
  const res = await fetch(`${new URL(target.url).origin}/admin/breakers`);
  if (res.status !== 200) throw new Error(`${target.name}: GET /admin/breakers answered ${res.status} ${await res.text()}`);
  const { breakers } = (await res.json()) as { breakers: Array<{ endpoints?: Array<{ url: string }> }> };
  return breakers.flatMap((b) => (b.endpoints ?? []).map((e) => e.url)).sort((a, b) => a.localeCompare(b));
}

/**
 * Waits until the registry router balances over the same replicas as the static one (it serves
 * once the registry's first answer is in, which may not list both yet) and both answer a call.
 * Throws after 15 s.
 */
async function sameEndpoints(staticRouter: Target, registryRouter: Target, body: string): Promise<void> {
  const want = (await endpointsOf(staticRouter)).join(' ');
  const deadline = Date.now() + 15_000;
  for (;;) {
    const have = (await endpointsOf(registryRouter)).join(' ');
    if (have === want) break;
    if (Date.now() > deadline) throw new Error(`${registryRouter.name}: found [${have}] after 15 s, not the replicas [${want}]`);
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const t of [staticRouter, registryRouter]) {
    const res = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (res.status !== 200) throw new Error(`${t.name}: a chat call answered ${res.status} ${await res.text()}`);
  }
}

/**
 * Starts two replicas and the two routers (on a fresh key prefix, so no earlier run's records
 * are found), and returns the routers, static first. The second router's `stop` also stops the
 * replicas; if anything fails on the way, whatever was started is stopped before the error goes
 * on. An empty list, with the reason printed, when Redis does not answer.
 */
export async function registryTargets(workers: number | undefined, bodyFile: string): Promise<Target[]> {
  const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  const problem = await redisProblem(url);
  if (problem !== null) {
    console.log(`  skipped: the registry needs Redis: ${problem}; start redis-server or set REDIS_URL`);
    return [];
  }
  const body = readFileSync(bodyFile, 'utf8');
  const prefix = `bench-registry-${randomBytes(4).toString('hex')}:`;
  const env = { REDIS_URL: url, ETCD_URL: '' };
  const path = '/v1/chat/completions';
  const started: Target[] = [];
  try {
    const replicas = replicaConfig(prefix);
    for (const name of ['replica 1', 'replica 2']) started.push(await startInfergate(name, replicas, path, 1, env));
    // In the order the registry lists them (by URL), so that ties between equally busy replicas break alike.
    const bases = started.map((t) => `${new URL(t.url).origin}/v1`).sort((a, b) => a.localeCompare(b));
    const listed = `endpoints: [${bases.map((b) => `{ base_url: '${b}' }`).join(', ')}]`;
    const found = `discovery: { registry: { model: ${UPSTREAM_MODEL}, path: /v1 } }`;
    const staticRouter = await startInfergate(STATIC_TARGET, routerConfig('static', prefix, listed), path, workers ?? 1, env);
    started.push(staticRouter);
    const registryRouter = await startInfergate('registry discovery', routerConfig('registry', prefix, found), path, workers ?? 1, env);
    started.push(registryRouter);
    await sameEndpoints(staticRouter, registryRouter, body);
    const replicaTargets = started.slice(0, 2);
    return [
      staticRouter,
      {
        ...registryRouter,
        async stop() {
          await registryRouter.stop();
          for (const r of replicaTargets) await r.stop();
        },
      },
    ];
  } catch (err) {
    for (const t of started.reverse()) await t.stop();
    throw err;
  }
}
