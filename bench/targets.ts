/** The servers a benchmark loads: infergate processes it starts itself, and the peers of ../shared/peers. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Target {
  readonly name: string;
  readonly url: string;
  /** host:port of infergate's gRPC server; null for peers. */
  readonly grpc?: string | null;
  readonly headers: Readonly<Record<string, string>>;
  /** The process to measure CPU and memory of, where known. */
  pid(): number | null;
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PEERS_RUN = join(process.env.TMPDIR ?? tmpdir(), 'infergate-peers');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts `infergate serve` (of the checkout at `root`, this one by default) on a free port and waits until /health/ready answers 200. */
export async function startInfergate(
  name: string,
  configFile: string,
  path: string,
  workers?: number,
  env: NodeJS.ProcessEnv = {},
  root: string = ROOT,
): Promise<Target> {
  const port = await freePort();
  const grpcPort = await freePort();
  const args = [join(root, 'bin/infergate.js'), 'serve', '--config', configFile, '--port', String(port), '--grpc-port', String(grpcPort)];
  if (workers !== undefined) args.push('--workers', String(workers));
  // A fresh usage database per run (unless the caller names one), so benchmarks leave nothing in ./data.
  const data = mkdtempSync(join(tmpdir(), 'infergate-bench-'));
  const childEnv = { ...process.env, DATABASE_URL: `sqlite:${join(data, 'infergate.db')}`, REDIS_URL: '', ...env };
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env: childEnv });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name}: infergate exited with code ${child.exitCode}`);
    const ok = await fetch(`${base}/health/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`${name}: not ready after 60 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    name,
    url: base + path,
    grpc: `127.0.0.1:${grpcPort}`,
    headers: {},
    pid: () => child.pid ?? null,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A peer from ../shared/peers/peers.sh, or null when nothing answers on its port. */
export async function peer(
  name: string,
  port: number,
  path: string,
  pidFile: string,
  headers: Record<string, string> = {},
): Promise<Target | null> {
  const url = `http://127.0.0.1:${port}${path}`;
  const up = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) }).then(
    () => true,
    () => false,
  );
  if (!up) return null;
  const file = join(PEERS_RUN, pidFile);
  return {
    name,
    url,
    headers,
    pid: () => (existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : null),
    async stop() {},
  };
}

/** Any URL given on the command line. */
export function external(url: string, headers: Record<string, string>, pid: number | null): Target {
  return { name: url, url, headers, pid: () => pid, async stop() {} };
}

export { ROOT };
