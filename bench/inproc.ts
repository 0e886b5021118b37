/**
 * The batcher without HTTP: `concurrency` loops call one ONNX backend in this process for a fixed
 * time, batching on and off. This is the model-level effect of dynamic batching; the HTTP
 * scenario shows what is left of it once each request also pays for HTTP and JSON.
 *
 * Both backends stay loaded for the whole scenario and are measured in interleaved rounds (on, off;
 * then off, on; ...), so that a slow second on a shared machine lands on both; each round's ratio
 * is printed and the lowest is what the goal (at least 5x) is judged by.
 */
import { OnnxBackend } from '../src/backends/onnx/onnx-backend.js';
import { parseConfig } from '../src/config/load.js';
import type { OnnxBackendConfig } from '../src/backends/onnx/config.js';
import { NO_OBSERVER } from '../src/core/observer.js';
import { closedLoop, type LoadResult } from './load.js';
import { renderTable } from './table.js';

/** The bench's batching settings, as the `batching` scenario's HTTP config has them. */
export const MAX_BATCH_SIZE = 64;
export const MAX_QUEUE_DELAY_MS = 1;

function backendConfig(model: string, batching: boolean): OnnxBackendConfig {
  const config = parseConfig(
    `models: [{ name: m, versions: [{ version: '1', backend: { kind: onnx, path: '${model}', batching: { enabled: ${batching}, max_batch_size: ${MAX_BATCH_SIZE}, max_queue_delay_ms: ${MAX_QUEUE_DELAY_MS} } } }] }]`,
    'bench.yaml',
  );
  return config.models[0]?.versions[0]?.backend as OnnxBackendConfig;
}

/** A loaded backend and the model executions it made (rows and requests), for the mean batch size. */
interface Counted {
  readonly backend: OnnxBackend;
  readonly executions: { runs: number; rows: number };
}

async function loadCounted(model: string, batching: boolean): Promise<Counted> {
  const executions = { runs: 0, rows: 0 };
  const observer = {
    ...NO_OBSERVER,
    executed(rows: number) {
      executions.runs++;
      executions.rows += rows;
    },
  };
  const backend = new OnnxBackend(backendConfig(model, batching), observer);
  await backend.load();
  return { backend, executions };
}

const data = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i));
const request = { inputs: [{ name: 'input', datatype: 'FP32' as const, shape: [1, 32], data }], outputs: null };

async function drive(c: Counted, concurrency: number, seconds: number): Promise<{ load: LoadResult; meanBatch: number }> {
  c.executions.runs = 0;
  c.executions.rows = 0;
  const load = await closedLoop(concurrency, seconds, async () => {
    await c.backend.infer(request);
  });
  return { load, meanBatch: c.executions.runs === 0 ? 0 : c.executions.rows / c.executions.runs };
}

/** One level, measured once (the old single-round form, kept for callers that want one number each). */
export async function inprocLoad(model: string, batching: boolean, concurrency: number, seconds: number): Promise<LoadResult> {
  const c = await loadCounted(model, batching);
  try {
    return (await drive(c, concurrency, seconds)).load;
  } finally {
    await c.backend.unload();
  }
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * The `batching-model` scenario: at each level, `rounds` interleaved rounds of batching on and off
 * (after `warmup` seconds of each, unrecorded); prints each round's ratio and the lowest.
 */
export async function batchingModelScenario(
  model: string,
  levels: readonly number[],
  seconds: number,
  rounds: number,
  warmup: number,
): Promise<object[]> {
  const rows: object[] = [];
  const on = await loadCounted(model, true);
  const off = await loadCounted(model, false);
  try {
    for (const connections of levels) {
      if (warmup > 0) {
        await drive(on, connections, warmup);
        await drive(off, connections, warmup);
      }
      const table: string[][] = [];
      let lowest = Number.POSITIVE_INFINITY;
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? ([true, false] as const) : ([false, true] as const);
        const got = new Map<boolean, { load: LoadResult; meanBatch: number }>();
        for (const batching of order) got.set(batching, await drive(batching ? on : off, connections, seconds));
        const a = got.get(true) as { load: LoadResult; meanBatch: number };
        const b = got.get(false) as { load: LoadResult; meanBatch: number };
        const ratio = a.load.qps / b.load.qps;
        lowest = Math.min(lowest, ratio);
        console.log(
          `  round ${round + 1}/${rounds} @ ${connections} concurrent: on ${fmt(a.load.qps)} req/s (mean batch ${fmt(a.meanBatch, 1)} rows), off ${fmt(b.load.qps)} req/s: ${ratio.toFixed(2)}x`,
        );
        table.push([
          String(round + 1),
          String(connections),
          fmt(a.load.qps),
          fmt(a.meanBatch, 1),
          fmt(a.load.latencyMs.p99, 2),
          fmt(b.load.qps),
          fmt(b.load.latencyMs.p99, 2),
          `${ratio.toFixed(2)}x`,
        ]);
        for (const [batching, r] of got)
          rows.push({
            scenario: 'batching-model',
            target: batching ? 'batching on' : 'batching off',
            connections,
            round: round + 1,
            qps: r.load.qps,
            mean_ms: r.load.latencyMs.mean,
            p50_ms: r.load.latencyMs.p50,
            p99_ms: r.load.latencyMs.p99,
            errors: r.load.errors,
            requests: r.load.requests,
            mean_batch_rows: r.meanBatch,
            ratio_on_over_off: ratio,
          });
      }
      console.log(`\n${renderTable(['round', 'conc', 'on req/s', 'on batch', 'on p99 ms', 'off req/s', 'off p99 ms', 'on/off'], table)}`);
      console.log(
        `lowest on/off at ${connections}: ${lowest.toFixed(2)}x (goal: at least 5x in every round; ${lowest >= 5 ? 'met' : 'not met'}); max_batch_size ${MAX_BATCH_SIZE}, max_queue_delay_ms ${MAX_QUEUE_DELAY_MS}`,
      );
    }
  } finally {
    await on.backend.unload();
    await off.backend.unload();
  }
  return rows;
}
