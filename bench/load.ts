/**
 * Load generators: wrk (a C program, as a child process) when it is on the PATH, since it leaves
 * more of a 2-core machine to the server under test; autocannon (in-process) otherwise.
 */
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

export interface LoadSpec {
  readonly url: string;
  readonly bodyFile: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly seconds: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly qps: number;
  readonly errors: number;
  readonly latencyMs: { readonly mean: number; readonly p50: number; readonly p99: number; readonly max: number };
}

const WRK_SCRIPT = fileURLToPath(new URL('../../bench/wrk-report.lua', import.meta.url));

export function loadGenerator(): 'wrk' | 'autocannon' {
  return spawnSync('wrk', ['--version']).error === undefined ? 'wrk' : 'autocannon';
}

export function runLoad(spec: LoadSpec, tool: 'wrk' | 'autocannon'): Promise<LoadResult> {
  return tool === 'wrk' ? runWrk(spec) : runAutocannon(spec);
}

function runWrk(spec: LoadSpec): Promise<LoadResult> {
  const hdrs = Object.entries(spec.headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('|');
  const args = ['-t1', `-c${spec.connections}`, `-d${spec.seconds}s`, '--timeout', '10s', '-s', WRK_SCRIPT, spec.url];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { env: { ...process.env, BODY: spec.bodyFile, HDRS: hdrs }, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk failed: ${stderr || err.message}`));
      const line = stdout.split('\n').find((l) => l.startsWith('{"requests"'));
      if (line === undefined) return reject(new Error(`wrk printed no report:\n${stdout}`));
      const r = JSON.parse(line) as {
        requests: number;
        duration_us: number;
        errors: Record<string, number>;
        latency_us: { mean: number; p50: number; p99: number; max: number };
      };
      const errors = Object.values(r.errors).reduce((a, b) => a + b, 0);
      const ms = (us: number): number => us / 1000;
      resolve({
        requests: r.requests,
        qps: r.requests / (r.duration_us / 1e6),
        errors,
        latencyMs: { mean: ms(r.latency_us.mean), p50: ms(r.latency_us.p50), p99: ms(r.latency_us.p99), max: ms(r.latency_us.max) },
      });
    });
  });
}

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const { readFileSync } = await import('node:fs');
  const result = await autocannon({
    url: spec.url,
    method: 'POST',
    connections: spec.connections,
    duration: spec.seconds,
    body: readFileSync(spec.bodyFile, 'utf8'),
    headers: { 'content-type': 'application/json', ...spec.headers },
  });
  return {
    requests: result.requests.total,
    qps: result.requests.total / spec.seconds,
    errors: result.errors + result.timeouts + result.non2xx,
    latencyMs: { mean: result.latency.mean, p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
  };
}

/** Calls `once` in `concurrency` loops for `seconds`; the latency of each call, and the errors. */
export async function closedLoop(concurrency: number, seconds: number, once: () => Promise<void>): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        await once();
        latencies.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? 0;
  return {
    requests: latencies.length,
    qps: latencies.length / elapsed,
    errors,
    latencyMs: {
      mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
      p50: pct(50),
      p99: pct(99),
      max: latencies.at(-1) ?? 0,
    },
  };
}
