/** Starts the real `infergate serve` process on a free port, as users run it, and stops it after the test. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(ROOT, 'bin/infergate.js');
export const MODELS = join(ROOT, 'models');

export interface RunningServer {
  readonly url: string;
  /** host:port of the gRPC server; null when gRPC is off. */
  readonly grpc: string | null;
  readonly process: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  stop(): Promise<number | null>;
}

/** Writes YAML to a fresh temporary file; `${MODELS}` in the text becomes the bundled models folder. */
export function writeConfig(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-test-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, yaml.replaceAll('${MODELS}', MODELS));
  return file;
}

/** Writes a config made for the container image (models under /app/models) to a temporary file that names this checkout's models. */
export function writeImageConfig(yaml: string): string {
  return writeConfig(yaml.replaceAll('/app/models', MODELS));
}

/** A port nothing listens on right now (for PORT and the like, where port 0 cannot be used). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The bundled tiny-chat (llama.cpp: one thread, two sequences) as an entry of a config's `models:`, for tests of the text APIs on a real model. */
export const TINY_CHAT =
  "\n  - name: tiny-chat\n    versions:\n      - version: '1'\n" +
  '        backend: { kind: llama, path: ${MODELS}/tiny-chat/1/model.gguf, threads: 1, sequences: 2 }\n';

/** How a test server is started: its config file, extra arguments and environment. */
export interface ServerOptions {
  readonly config: string;
  readonly args?: string[];
  readonly env?: NodeJS.ProcessEnv;
}

/** Starts `infergate serve` with `options` and resolves once it listens; rejects, with its output, if it exits first. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const args = [BIN, 'serve', '--config', options.config, '--port', '0', '--grpc-port', '0', '--workers', '1', ...(options.args ?? [])];
  // Each server has its own SQLite file and in-memory limits unless the test names a database or Redis.
  const data = mkdtempSync(join(tmpdir(), 'infergate-data-'));
  const env = { ...process.env, DATABASE_URL: `sqlite:${join(data, 'infergate.db')}`, REDIS_URL: '', ...options.env };
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${out}`)), 30_000);
    child.stdout.on('data', (d: string) => {
      out += d;
      const m = /"url":"(https?:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with code ${code}:\n${out}`));
    });
  });
  const grpc = /"grpc":"([^"]+)"/.exec(out)?.[1] ?? null;
  return {
    url,
    grpc,
    process: child,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * Starts servers together (as replicas start); if any fails to start, the others are stopped before
 * the error is thrown, so no server outlives a failed setup and keeps the test file from ending.
 */
export async function startServers<const T extends ReadonlyArray<ServerOptions>>(
  options: T,
): Promise<{ -readonly [K in keyof T]: RunningServer }> {
  const settled = await Promise.allSettled(options.map((o) => startServer(o)));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed === undefined) {
    return settled.map((r) => (r as PromiseFulfilledResult<RunningServer>).value) as { -readonly [K in keyof T]: RunningServer };
  }
  await Promise.all(settled.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
  throw failed.reason;
}

/** POSTs JSON (or a raw string) and returns status, headers and parsed body. */
export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? null : JSON.parse(text) };
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? null : JSON.parse(text) };
}

/**
 * tiny-chat served in process, and served again under the same name by a second server whose
 * `openai` backend points at the first: the same client tests run against both.
 */
export async function startTinyChatAndProxy(): Promise<{ local: RunningServer; proxy: RunningServer }> {
  const local = await startServer({ config: writeConfig(`models:${TINY_CHAT}`) });
  try {
    const proxy = await startServer({
      config: writeConfig(
        `models:\n  - name: tiny-chat\n    versions:\n      - version: '1'\n        backend: { kind: openai, base_url: '${local.url}/v1' }\n`,
      ),
    });
    return { local, proxy };
  } catch (err) {
    await local.stop();
    throw err;
  }
}
