/**
 * The `grpc` scenario: the same tiny-mlp deployment called over KServe v2 gRPC (`ModelInfer` with
 * raw contents) and over KServe v2 HTTP/JSON, with one row of 32 floats per call and with 64 rows.
 * Loaded by C load generators when installed, h2load (Debian `nghttp2-client`) for gRPC and wrk for
 * HTTP, so the table measures the server; else by closed loops of Node clients in this process
 * (@grpc/grpc-js and undici), which measure the clients as much (grpc-js's client tops out near 6k
 * calls/s on one core). Rounds are interleaved; each target's median round is reported, with the
 * server's CPU time per call (all its processes), which the load generator sharing the cores
 * disturbs less than throughput: h2load spends more per call than wrk.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, Metadata, type Client, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { Pool } from 'undici';
import { closedLoop, runLoad, type LoadResult } from './load.js';
import { cpuSeconds } from './proc.js';
import { renderTable } from './table.js';
import { startInfergate, type Target } from './targets.js';

type Unary = (request: object, metadata: Metadata, callback: (err: Error | null) => void) => void;

/** One h2load run against a gRPC method: `concurrency` calls in flight over concurrency/4 connections. */
function runH2load(url: string, bodyFile: string, concurrency: number, seconds: number): Promise<LoadResult> {
  const connections = Math.max(1, Math.floor(concurrency / 4));
  const args = ['-D', String(seconds), '-c', String(connections), '-m', String(Math.ceil(concurrency / connections)), '-t', '1'];
  args.push('-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', url);
  return new Promise((resolve, reject) => {
    execFile('h2load', args, { maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) return reject(new Error(`h2load failed: ${err.message}`));
      const qps = /finished in [\d.]+s, ([\d.]+) req\/s/.exec(stdout);
      const counts = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
        stdout,
      );
      const time = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(stdout);
      if (qps === null || counts === null || time === null) return reject(new Error(`h2load printed no report:\n${stdout}`));
      const ms = (v: string, unit: string): number => Number(v) * (unit === 'us' ? 1e-3 : unit === 's' ? 1e3 : 1);
      resolve({
        requests: Number(counts[2]),
        qps: Number(qps[1]),
        errors: Number(counts[3]) + Number(counts[4]) + Number(counts[5]),
        // h2load reports min, max, mean and deviation, no percentiles.
        latencyMs: {
          mean: ms(time[5] as string, time[6] as string),
          p50: Number.NaN,
          p99: Number.NaN,
          max: ms(time[3] as string, time[4] as string),
        },
      });
    });
  });
}

const installed = (tool: string, flag: string): boolean => spawnSync(tool, [flag]).error === undefined;

export interface GrpcRow {
  target: string;
  concurrency: number;
  qps: number;
  mean_ms: number;
  /** The server's CPU time per call, all its processes, in µs. */
  cpu_us_per_call: number;
  requests: number;
  errors: number;
}

/** A target of the scenario: one kind of call on one server, measured against that server's CPU. */
interface GrpcTarget {
  readonly name: string;
  readonly pid: number | null;
  run(): Promise<LoadResult>;
}

/** The four targets of one server (HTTP/JSON and gRPC raw, 1 and 64 rows a call), names prefixed; `close` frees their clients. */
async function serverTargets(
  root: string,
  prefix: string,
  server: Target,
  dir: string,
  concurrency: number,
  seconds: number,
  native: boolean,
): Promise<{ targets: GrpcTarget[]; close(): Promise<void> }> {
  const grpcAddress = server.grpc;
  if (grpcAddress === null || grpcAddress === undefined) throw new Error(`${server.name}: the server has no gRPC address`);
  const definition = loadSync(['kserve/grpc_predict_v2.proto'], {
    keepCase: true,
    longs: String,
    defaults: false,
    includeDirs: [join(root, 'proto')],
  });
  const Inference = (loadPackageDefinition(definition).inference as GrpcObject).GRPCInferenceService as ServiceClientConstructor;
  const channels: Client[] = Array.from(
    { length: Math.max(1, Math.ceil(concurrency / 16)) },
    (_, i) => new Inference(grpcAddress, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.channel_id': i }),
  );
  const http = new Pool(new URL(server.url).origin, { connections: concurrency, pipelining: 1 });
  const pid = server.pid();
  let next = 0;
  const targets: GrpcTarget[] = [];
  for (const rows of [1, 64]) {
    const data = Array.from({ length: rows * 32 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);
    const json = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, 32], data }] });
    const jsonFile = join(dir, `infer-${rows}.json`);
    writeFileSync(jsonFile, json);
    const request = {
      model_name: 'tiny-mlp',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, 32] }],
      raw_input_contents: [Buffer.from(Float32Array.from(data).buffer)],
    };
    // The call as h2load sends it: a gRPC frame (no compression, 4-byte length) around the serialised message.
    const message = Inference.service.ModelInfer?.requestSerialize(request) as Buffer;
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    const frameFile = join(dir, `infer-${rows}.grpc`);
    writeFileSync(frameFile, frame);
    const grpcOnce = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const channel = channels[next++ % channels.length] as Client;
        ((channel as unknown as Record<string, Unary>).ModelInfer as Unary).call(channel, request, new Metadata(), (err) =>
          err === null ? resolve() : reject(err),
        );
      });
    // h2load sees HTTP statuses, not gRPC's: one call through a real client first shows the body is right.
    await grpcOnce();
    const httpOnce = async (): Promise<void> => {
      const res = await http.request({
        method: 'POST',
        path: '/v2/models/tiny-mlp/infer',
        headers: { 'content-type': 'application/json' },
        body: json,
      });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    };
    targets.push(
      {
        name: `${prefix}HTTP/JSON ${rows}x32`,
        pid,
        run: () =>
          native
            ? runLoad({ url: server.url, bodyFile: jsonFile, headers: {}, connections: concurrency, seconds }, 'wrk')
            : closedLoop(concurrency, seconds, httpOnce),
      },
      {
        name: `${prefix}gRPC raw ${rows}x32`,
        pid,
        run: () =>
          native
            ? runH2load(`http://${grpcAddress}/inference.GRPCInferenceService/ModelInfer`, frameFile, concurrency, seconds)
            : closedLoop(concurrency, seconds, grpcOnce),
      },
    );
  }
  return {
    targets,
    async close() {
      for (const c of channels) c.close();
      await http.close();
    },
  };
}

/**
 * Runs the scenario at one concurrency; with `baseline` (another checkout), that build's server is
 * measured too, its targets interleaved with this build's in every round.
 */
export async function grpcScenario(
  root: string,
  configFile: string,
  workers: number | undefined,
  concurrency: number,
  seconds: number,
  rounds: number,
  baseline: string | null = null,
): Promise<GrpcRow[]> {
  const native = installed('h2load', '--version') && installed('wrk', '--version');
  if (!native) console.log('  (h2load or wrk missing: Node clients in this process load both sides; apt-get install nghttp2-client wrk)');
  const servers = [await startInfergate('infergate', configFile, '/v2/models/tiny-mlp/infer', workers)];
  if (baseline !== null) servers.push(await startInfergate('baseline', configFile, '/v2/models/tiny-mlp/infer', workers, {}, baseline));
  const sets: Array<{ targets: GrpcTarget[]; close(): Promise<void> }> = [];
  try {
    for (const [i, server] of servers.entries()) {
      const dir = mkdtempSync(join(tmpdir(), 'infergate-bench-grpc-'));
      sets.push(await serverTargets(root, i === 0 ? '' : 'baseline ', server, dir, concurrency, seconds, native));
    }
    const targets = sets.flatMap((s) => s.targets);
    for (const t of targets) await t.run(); // warm-up: connections, JIT
    const results = new Map<string, GrpcRow[]>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < rounds; round++) {
      for (const t of targets) {
        const cpuBefore = t.pid === null ? 0 : cpuSeconds(t.pid);
        const load = await t.run();
        const cpu = t.pid === null ? Number.NaN : ((cpuSeconds(t.pid) - cpuBefore) * 1e6) / Math.max(1, load.requests);
        console.log(
          `  ${t.name} @ ${concurrency} in flight (round ${round + 1}/${rounds}) ... ${Math.round(load.qps).toLocaleString('en-US')} req/s, ${cpu.toFixed(1)} µs CPU a call, ${load.errors} errors`,
        );
        results.get(t.name)?.push({
          target: t.name,
          concurrency,
          qps: load.qps,
          mean_ms: load.latencyMs.mean,
          cpu_us_per_call: cpu,
          requests: load.requests,
          errors: load.errors,
        });
      }
    }
    const rows = targets.map((t) => {
      const samples = [...(results.get(t.name) ?? [])].sort((a, b) => a.qps - b.qps);
      return samples[Math.floor(samples.length / 2)] as GrpcRow;
    });
    console.log(`\n${grpcTable(rows)}`);
    return rows;
  } finally {
    for (const s of sets) await s.close();
    for (const server of servers) await server.stop();
  }
}

/** Each gRPC row against the HTTP/JSON row with as many rows a call: throughput, and the server's CPU a call. */
function grpcTable(rows: readonly GrpcRow[]): string {
  // The key of a row's reference: its server (the prefix before the kind) and its size.
  const key = (target: string): string => target.replace(/(HTTP\/JSON|gRPC raw) /, '');
  const http = new Map(rows.filter((r) => r.target.includes('HTTP/JSON')).map((r) => [key(r.target), r]));
  const body = rows.map((r) => {
    const ref = http.get(key(r.target));
    return [
      r.target,
      String(r.concurrency),
      r.qps.toFixed(0),
      ref === undefined ? '-' : `${(r.qps / ref.qps).toFixed(2)}x`,
      r.mean_ms.toFixed(2),
      Number.isFinite(r.cpu_us_per_call) ? r.cpu_us_per_call.toFixed(1) : '-',
      ref === undefined || !Number.isFinite(r.cpu_us_per_call) ? '-' : `${(r.cpu_us_per_call / ref.cpu_us_per_call).toFixed(2)}x`,
      String(r.errors),
    ];
  });
  return renderTable(['target', 'in flight', 'calls/s', 'vs HTTP', 'mean ms', 'CPU µs/call', 'CPU vs HTTP', 'errors'], body);
}
