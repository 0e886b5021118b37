/**
 * A real etcd server for a test: Debian's `etcd` (package etcd-server) on free loopback ports with
 * a data directory of its own, stopped and removed after the test. Each test starts its own, so no
 * two tests share keys or leases and none needs an ETCD_URL.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './server.js';

/** A running etcd: its client URL, and how to restart and stop it. */
export interface RunningEtcd {
  readonly url: string;
  /** Stops it and starts it again on the same ports and data (a broken connection for every client). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** How long start-up waits for etcd to answer /health (a first start writes its WAL and elects itself). */
const START_TIMEOUT_MS = 15_000;

/** The etcd binary: Debian's path first, then PATH; null when there is none. */
export function etcdBinary(): string | null {
  const dirs = ['/usr/bin', ...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== '')];
  for (const dir of dirs) {
    const file = join(dir, 'etcd');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** One etcd process: resolves once it reports healthy, with a function that stops it. */
async function launch(bin: string, args: string[], url: string): Promise<() => Promise<void>> {
  const child = spawn(bin, args, {
    // etcd 3.4 refuses to start on arm64 unless told that it may.
    env: { ...process.env, ...(process.arch === 'arm64' ? { ETCD_UNSUPPORTED_ARCH: 'arm64' } : {}) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  let alive = true;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      alive = false;
      resolve();
    }),
  );
  const stop = async (): Promise<void> => {
    if (alive && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    await exited;
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline && alive) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: unknown };
      if (res.ok && body.health === 'true') return stop;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  throw new Error(`etcd did not become healthy within ${START_TIMEOUT_MS} ms:\n${output}`);
}

/** Starts a one-member etcd and resolves once it reports healthy; null when etcd is not installed. */
export async function startEtcd(): Promise<RunningEtcd | null> {
  const bin = etcdBinary();
  if (bin === null) return null;
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'infergate-etcd-'));
  const args = [
    ['--name', 'test'],
    ['--data-dir', dataDir],
    ['--listen-client-urls', url],
    ['--advertise-client-urls', url],
    ['--listen-peer-urls', peer],
    ['--initial-advertise-peer-urls', peer],
    ['--initial-cluster', `test=${peer}`],
    ['--initial-cluster-state', 'new'],
    ['--logger', 'zap'],
    ['--log-level', 'error'],
  ].flat();
  let stopProcess: () => Promise<void>;
  try {
    stopProcess = await launch(bin, args, url);
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    async restart() {
      await stopProcess();
      stopProcess = await launch(bin, args, url);
    },
    async stop() {
      await stopProcess();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
