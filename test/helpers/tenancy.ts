/** Admin calls for tests: tenants and keys created through the real admin API. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import pg from 'pg';
import { BIN, writeConfig } from './server.js';

export const ADMIN_KEY = 'test-admin-key-0123456789';
export const ADMIN = { authorization: `Bearer ${ADMIN_KEY}` };

export async function adminCall(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(base + path, {
    method,
    headers: { ...ADMIN, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : JSON.parse(text) };
}

/** One deployment's row of GET /admin/breakers: its breaker state and, for remote backends, its endpoints. */
export interface BreakerRow {
  readonly model: string;
  readonly version: string;
  readonly state: string;
  readonly endpoints?: ReadonlyArray<{ readonly url: string; readonly ejected: boolean }>;
}

/** Every deployment's breaker and endpoints, read with the admin key. */
export async function breakers(base: string): Promise<BreakerRow[]> {
  return (await adminCall(base, 'GET', '/admin/breakers')).body.breakers as BreakerRow[];
}

/** Creates a tenant and one key; returns the key's id and secret. */
export async function tenantWithKey(
  base: string,
  tenant: { id: string; models: string[]; priority?: string; limits?: Record<string, number> },
  keyLimits: Record<string, number> = {},
): Promise<{ id: string; key: string }> {
  const t = await adminCall(base, 'POST', '/admin/tenants', tenant);
  assert.equal(t.status, 201, JSON.stringify(t.body));
  const k = await adminCall(base, 'POST', `/admin/tenants/${tenant.id}/keys`, { name: 'test', limits: keyLimits });
  assert.equal(k.status, 201, JSON.stringify(k.body));
  return { id: k.body.id, key: k.body.key };
}

/** Runs `infergate ARGS` to the end; returns its exit code and output. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** Whether a Redis server answers PING at `url` within a second. */
export async function redisAnswers(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/** Whether a PostgreSQL server answers a query at `url` within a second. */
export async function postgresAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A config in `keys` mode with the test admin key and a mock chat model named `chat`; `extra` is more YAML, `models` more model entries. */
export function keysConfig(extra = '', models = ''): string {
  return writeConfig(`
${extra}
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
${models}`);
}
