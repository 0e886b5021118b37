/**
 * The `overload` scenario: infergate in front of an upstream that can serve `CAPACITY` calls at
 * once (each takes `SERVICE_MS`; the rest wait in its own queue), loaded by 10x as many
 * concurrent clients. Without admission infergate passes everything on and every call waits in
 * the upstream's queue; with `policies.admission` it admits what the upstream can take, sheds the
 * rest at once with 503, and the admitted calls keep a short p99. Reports admitted and shed
 * requests per second, p99 of each, and the server's peak RSS.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measure } from './proc.js';
import { startInfergate } from './targets.js';
import { renderTable } from './table.js';

const CAPACITY = 8;
const SERVICE_MS = 20;
const BODY = JSON.stringify({ model: 'capped', messages: [{ role: 'user', content: 'hi' }] });

export interface OverloadRow {
  scenario: 'overload';
  target: string;
  clients: number;
  admitted_per_s: number;
  shed_per_s: number;
  errors: number;
  admitted_p99_ms: number;
  shed_p99_ms: number;
  rss_mib: number | null;
}

/** An OpenAI-style upstream that serves CAPACITY calls at once, queueing the rest (as a GPU server would). */
async function limitedUpstream(): Promise<{ url: string; close: () => Promise<void> }> {
  let running = 0;
  const waiting: Array<() => void> = [];
  const answer = JSON.stringify({
    id: 'x',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const serve = (): void => {
        running++;
        setTimeout(() => {
          running--;
          if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
          waiting.shift()?.();
        }, SERVICE_MS);
      };
      if (running < CAPACITY) serve();
      else waiting.push(serve);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function config(upstream: string, admission: boolean): string {
  const dir = join(tmpdir(), 'infergate-bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `overload-${admission ? 'admission' : 'none'}.yaml`);
  const policies = admission
    ? `policies: { timeout_ms: 10000, retry: { attempts: 1 }, admission: { max_concurrent: ${CAPACITY}, queue_size: ${CAPACITY} } }`
    : `policies: { timeout_ms: 10000, retry: { attempts: 1 } }`;
  writeFileSync(
    file,
    `server: { workers: 1, log_level: error }
models:
  - name: capped
    versions:
      - version: '1'
        backend: { kind: openai, base_url: '${upstream}', connections: 1024 }
        ${policies}
`,
  );
  return file;
}

function p99(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  values.sort((a, b) => a - b);
  return values[Math.min(values.length - 1, Math.floor(values.length * 0.99))] as number;
}

/**
 * `clients` closed loops for `seconds`; latencies split by admitted (200) and shed (503). A shed
 * client waits the `Retry-After` it was given, as the openai SDK does, rather than hammering.
 */
async function load(url: URL, clients: number, seconds: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const admitted: number[] = [];
  const shed: number[] = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const one = (): Promise<number> =>
    new Promise((resolve) => {
      const started = performance.now();
      const req = request(url, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => {
          const ms = performance.now() - started;
          if (res.statusCode === 200) admitted.push(ms);
          else if (res.statusCode === 503) shed.push(ms);
          else errors++;
          resolve(res.statusCode === 503 ? Number(res.headers['retry-after'] ?? 1) * 1000 : 0);
        });
      });
      req.on('error', () => {
        errors++;
        resolve(0);
      });
      req.end(BODY);
    });
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        const wait = await one();
        if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, deadline - performance.now())));
      }
    }),
  );
  agent.destroy();
  return { admitted, shed, errors };
}

export async function overloadScenario(seconds: number): Promise<OverloadRow[]> {
  const clients = CAPACITY * 10;
  const upstream = await limitedUpstream();
  const rows: OverloadRow[] = [];
  try {
    for (const admission of [false, true]) {
      const name = admission ? 'infergate, admission on' : 'infergate, admission off';
      const target = await startInfergate(name, config(upstream.url, admission), '/v1/chat/completions', 1);
      try {
        const url = new URL(target.url);
        const m = await measure(target.pid(), () => load(url, clients, seconds));
        const { admitted, shed, errors } = m.result;
        rows.push({
          scenario: 'overload',
          target: name,
          clients,
          admitted_per_s: admitted.length / seconds,
          shed_per_s: shed.length / seconds,
          errors,
          admitted_p99_ms: p99(admitted),
          shed_p99_ms: p99(shed),
          rss_mib: m.rssMiB,
        });
        console.log(`  ${name}: ${admitted.length} admitted, ${shed.length} shed, ${errors} errors`);
      } finally {
        await target.stop();
      }
    }
  } finally {
    await upstream.close();
  }
  console.log(
    `\nupstream capacity ${CAPACITY} calls at once x ${SERVICE_MS} ms = ${(CAPACITY * 1000) / SERVICE_MS} calls/s; ` +
      `${clients} clients (10x), each waiting Retry-After when shed\n`,
  );
  console.log(overloadTable(rows));
  return rows;
}

function overloadTable(rows: readonly OverloadRow[]): string {
  const head = ['target', 'clients', 'admitted/s', 'shed/s', 'errors', 'admitted p99 ms', 'shed p99 ms', 'RSS MiB'];
  const fmt = (n: number | null, d = 0): string => (n === null || !Number.isFinite(n) ? '-' : n.toFixed(d));
  const body = rows.map((r) => [
    r.target,
    String(r.clients),
    fmt(r.admitted_per_s),
    fmt(r.shed_per_s),
    String(r.errors),
    fmt(r.admitted_p99_ms, 1),
    fmt(r.shed_p99_ms, 1),
    fmt(r.rss_mib),
  ]);
  return renderTable(head, body);
}
