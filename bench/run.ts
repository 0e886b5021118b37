/**
 * `npm run bench`: load scenarios against infergate and, side by side, the peers of
 * ../shared/peers (`peers.sh start`). Prints a table per scenario and writes JSON results.
 *
 *   npm run bench                               every scenario, default levels
 *   npm run bench -- --scenario chat --connections 64 --duration 5 --rounds 3
 *   npm run bench -- --url http://127.0.0.1:9102/v1/chat/completions --connections 64
 *   npm run bench -- --scenario chat --baseline ../old-checkout   this build against another, same rounds
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadGenerator, runLoad, type LoadResult } from './load.js';
import { generateScenario } from './generate.js';
import { batchingModelScenario } from './inproc.js';
import { memoryScenario } from './idle.js';
import { designTable } from './design.js';
import { overloadScenario } from './overload.js';
import { tenancyTargets } from './tenancy.js';
import { observabilityTargets } from './observability.js';
import { grpcScenario } from './grpc.js';
import { dashboardScenario } from './dashboard.js';
import { registryTargets, STATIC_TARGET } from './registry.js';
import { measure } from './proc.js';
import { ROOT, external, peer, startInfergate, type Target } from './targets.js';
import { renderTable } from './table.js';

interface Scenario {
  readonly name: string;
  /** Runs its own measurement and table (the `generate` scenario, whose unit is tokens, not requests). */
  readonly own?: (levels: readonly number[], seconds: number, rounds: number) => Promise<object[]>;
  readonly description: string;
  readonly body: string;
  readonly levels: readonly number[];
  /** Targets in table order; the last one named in `reference` is what ratios compare against. */
  readonly targets: () => Promise<Target[]>;
  readonly reference: string;
  /** Printed after the scenario's table, from its rows (the chat scenario's table in the design's shape). */
  readonly summary?: (rows: readonly Row[]) => string;
}

interface Row {
  scenario: string;
  target: string;
  connections: number;
  qps: number;
  mean_ms: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  requests: number;
  cpu_percent: number | null;
  rss_mib: number | null;
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    connections: { type: 'string' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '1' },
    workers: { type: 'string' },
    url: { type: 'string', multiple: true },
    body: { type: 'string' },
    header: { type: 'string', multiple: true },
    pid: { type: 'string' },
    json: { type: 'string' },
    baseline: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

const HELP = `npm run bench -- [options]
  --scenario NAME     chat | tenancy | observability | grpc | proxy | proxy-latency | registry | batching | batching-model | generate | overload
                      | dashboard | memory (repeatable; default: all)
  --connections LIST  concurrency levels, e.g. 64,1000,5000 (default per scenario; generate: streams, 1,4)
  --duration S        seconds per measurement (default 10)
  --warmup S          seconds of unrecorded load per target first, for the JIT (default 5)
  --rounds N          measure each cell N times, report the median by QPS (default 1)
  --workers N         infergate worker processes (default: the config's, auto = one per core)
  --url URL           load any server instead (repeatable); --body FILE, --header 'k: v', --pid N
  --baseline DIR      also run the infergate checkout at DIR (built: npm ci && npx tsc -p .) as a target in the
                      chat, proxy, grpc and generate scenarios, interleaved round by round with this build;
                      the tables add 'vs baseline' (this build over the baseline) and a summary ends the run
  --json FILE         where to write results (default bench/results/<time>.json)`;

const OPEN_FILES = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()) || 1024;
const bodies = join(ROOT, 'bench/bodies');
const configs = join(ROOT, 'bench/configs');
const workers = values.workers === undefined ? undefined : Number(values.workers);
/** Another checkout to measure side by side with this one (`--baseline`), or null. */
const baseline = values.baseline === undefined ? null : resolve(values.baseline);

/** The baseline's target for a scenario: the same config and path on the other build; none without --baseline. */
async function baselineTarget(name: string, config: string, path: string): Promise<Target[]> {
  return baseline === null ? [] : [await startInfergate(name, config, path, workers, {}, baseline)];
}

const SCENARIOS: Scenario[] = [
  {
    name: 'chat',
    description: 'POST /v1/chat/completions on a mock model that answers at once (the gateway alone)',
    body: join(bodies, 'chat.json'),
    // 1,000, 3,000 and 5,000 are the levels of the design's own table (printed in its shape after the usual one).
    levels: [64, 1000, 3000, 5000],
    reference: 'go-handler :9102',
    summary: (rows) => designTable(rows, 'infergate mock', 'go-handler :9102', cpus().length),
    targets: async () =>
      [
        await startInfergate('infergate mock', join(configs, 'mock.yaml'), '/v1/chat/completions', workers),
        ...(await baselineTarget('baseline mock', join(configs, 'mock.yaml'), '/v1/chat/completions')),
        await peer('go-handler :9102', 9102, '/v1/chat/completions', 'goref.pid'),
      ].filter((t): t is Target => t !== null),
  },
  {
    name: 'tenancy',
    description: 'the chat scenario behind each tenancy setting: what keys, limits and the usage ledger cost',
    body: join(bodies, 'chat.json'),
    levels: [64],
    reference: 'no ledger, no auth',
    targets: () => tenancyTargets(workers),
  },
  {
    name: 'observability',
    description: 'the chat scenario with metrics, tracing (1 % and 100 % sampled) and the access log on and off: what each costs',
    body: join(bodies, 'chat.json'),
    levels: [64],
    reference: 'metrics off',
    targets: () => observabilityTargets(workers),
  },
  {
    name: 'proxy',
    description: 'POST /v1/chat/completions proxied to the nginx upstream on :9100',
    body: join(bodies, 'chat.json'),
    levels: [64, 1000, 5000],
    reference: 'go-proxy :9103',
    targets: () => proxyTargets(false),
  },
  {
    name: 'proxy-latency',
    description:
      'the proxy scenario at one connection, with the upstream called directly: what each proxy adds to a call (p50 and p99 over direct)',
    body: join(bodies, 'chat.json'),
    levels: [1],
    reference: 'go-proxy :9103',
    targets: () => proxyTargets(true),
    summary: (rows) => addedLatency(rows, DIRECT_TARGET),
  },
  {
    name: 'registry',
    description:
      'the proxy path to two infergate replicas (mock model, Redis fleet): endpoints found in the registry vs listed in the config',
    body: join(bodies, 'chat.json'),
    levels: [64],
    reference: STATIC_TARGET,
    targets: () => registryTargets(workers, join(bodies, 'chat.json')),
  },
  {
    name: 'batching',
    description:
      'POST /v2/models/tiny-mlp/infer (KServe v2, ONNX Runtime), dynamic batching on vs off, and the same path on a mock tensor model that answers at no cost (the ceiling)',
    body: join(bodies, 'mlp.json'),
    levels: [64],
    reference: 'batching off',
    targets: async () => [
      await startInfergate('batching on', mlpConfig(true), '/v2/models/tiny-mlp/infer', workers),
      await startInfergate('batching off', mlpConfig(false), '/v2/models/tiny-mlp/infer', workers),
      await startInfergate(CEILING, mockTensorConfig(), '/v2/models/tiny-mlp/infer', workers),
    ],
    summary: ceilingSummary,
  },
  {
    name: 'batching-model',
    description: 'tiny-mlp through the ONNX backend in this process (no HTTP), dynamic batching on vs off',
    body: '',
    levels: [64],
    reference: 'batching off',
    targets: async () => [],
    own: (levels, seconds, rounds) =>
      batchingModelScenario(join(ROOT, 'models/tiny-mlp/1/model.onnx'), levels, seconds, rounds, Number(values.warmup)),
  },
  {
    name: 'grpc',
    description: 'tiny-mlp over KServe v2 gRPC ModelInfer (raw contents) vs KServe v2 HTTP/JSON, 1 and 64 rows a call (h2load and wrk)',
    body: '',
    levels: [64],
    reference: 'HTTP/JSON 1x32',
    targets: async () => [],
    own: async (levels, seconds, rounds) => {
      const rows = [];
      for (const connections of levels)
        rows.push(...(await grpcScenario(ROOT, mlpConfig(true), workers, connections, seconds, rounds, baseline)));
      return rows;
    },
  },
];

SCENARIOS.push({
  name: 'generate',
  description: 'text generation on tiny-chat (llama.cpp): streamed through infergate vs node-llama-cpp driven directly',
  body: '',
  levels: [1, 4],
  reference: 'node-llama-cpp direct',
  targets: async () => [],
  own: (levels, seconds, rounds) => generateScenario(levels, seconds, rounds, ROOT, baseline),
});

SCENARIOS.push({
  name: 'overload',
  description: 'an upstream that serves 8 calls at once, 10x as many clients: admission on vs off',
  body: '',
  levels: [80],
  reference: '',
  targets: async () => [],
  own: (_levels, seconds) => overloadScenario(seconds),
});

SCENARIOS.push({
  name: 'dashboard',
  description: 'the chat scenario with and without 3 clients reading /admin/ui/stream (the dashboard), interleaved rounds on one server',
  body: '',
  levels: [64],
  reference: 'no dashboard',
  targets: async () => [],
  own: (levels, seconds, rounds) => dashboardScenario(ROOT, workers, levels, seconds, rounds, Number(values.warmup)),
});

SCENARIOS.push({
  name: 'memory',
  description:
    'memory of the whole server (primary and workers) on bench/configs/mock.yaml: idle, holding N idle keep-alive connections, and under wrk load at N',
  body: '',
  levels: [5000],
  reference: '',
  targets: async () => [],
  own: (levels, seconds) =>
    memoryScenario(join(configs, 'mock.yaml'), join(bodies, 'chat.json'), levels, seconds, Number(values.warmup), workers, loadGenerator()),
});

/** The batching scenario's mock tensor target: the same name, path and bodies as tiny-mlp, answered at no cost. */
const CEILING = 'ceiling (mock)';

/** The batching scenario's figure: batched tiny-mlp as a fraction of the same path on the mock (goal: at least 80 % at 64 connections). */
function ceilingSummary(rows: readonly Row[]): string {
  const lines: string[] = [];
  for (const r of rows.filter((x) => x.target === 'batching on')) {
    const ceiling = rows.find((x) => x.target === CEILING && x.connections === r.connections);
    if (ceiling === undefined) continue;
    const share = (r.qps / ceiling.qps) * 100;
    const goal = r.connections === 64 ? ` (goal: at least 80 % at 64 connections; ${share >= 80 ? 'met' : 'not met'})` : '';
    lines.push(
      `batching on at ${r.connections} connections: ${share.toFixed(1)} % of the ceiling (${fmt(r.qps)} of ${fmt(ceiling.qps)} req/s)${goal}`,
    );
  }
  return lines.join('\n');
}

/** tiny-mlp's signature on a mock tensor model (`kind: mock` with `tensor`): the ceiling of the KServe HTTP path. */
function mockTensorConfig(): string {
  return tinyMlpConfig(
    'mlp-mock-tensor.yaml',
    `backend:
          kind: mock
          tensor:
            inputs: [{ name: input, datatype: FP32, shape: [-1, 32] }]
            outputs: [{ name: output, datatype: FP32, shape: [-1, 8] }]`,
  );
}

/** A config file (in the bench's temp folder) serving `tiny-mlp` version 1 with `backend`, the YAML of its backend key. */
function tinyMlpConfig(name: string, backend: string): string {
  const dir = join(tmpdir(), 'infergate-bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(
    file,
    `server: { workers: auto, log_level: warn }
models:
  - name: tiny-mlp
    versions:
      - version: '1'
        ${backend}
`,
  );
  return file;
}

/** The nginx upstream itself, as a target of `proxy-latency`: what each proxy's figures are compared with. */
const DIRECT_TARGET = 'upstream :9100 (direct)';

/** The proxies in table order (infergate, its baseline, nginx, Go, Portkey); with `direct`, the upstream itself first. */
async function proxyTargets(direct: boolean): Promise<Target[]> {
  const upstream = await peer(DIRECT_TARGET, 9100, '/v1/chat/completions', 'nginx.pid');
  if (upstream === null) {
    console.log('  skipped: nothing answers on :9100; run ../shared/peers/peers.sh start');
    return [];
  }
  const portkeyHeaders = {
    'x-portkey-provider': 'openai',
    'x-portkey-custom-host': 'http://127.0.0.1:9100/v1',
    authorization: 'Bearer sk-lab',
  };
  return [
    ...(direct ? [upstream] : []),
    await startInfergate('infergate proxy', join(configs, 'proxy.yaml'), '/v1/chat/completions', workers),
    ...(await baselineTarget('baseline proxy', join(configs, 'proxy.yaml'), '/v1/chat/completions')),
    await peer('nginx-proxy :9101', 9101, '/v1/chat/completions', 'nginx.pid'),
    await peer('go-proxy :9103', 9103, '/v1/chat/completions', 'goref.pid'),
    await peer('portkey :8787', 8787, '/v1/chat/completions', 'portkey.pid', portkeyHeaders),
  ].filter((t): t is Target => t !== null);
}

/** What each proxy adds to a call at one connection: its p50 and p99 less the direct upstream's, in microseconds. */
function addedLatency(rows: readonly Row[], direct: string): string {
  const base = rows.find((r) => r.target === direct);
  if (base === undefined) return '';
  const us = (ms: number): string => fmt(ms * 1000);
  const added = (ms: number): string => (ms >= 0 ? `+${us(ms)}` : `-${us(-ms)}`);
  const body = rows
    .filter((r) => r.target !== direct && r.connections === base.connections)
    .map((r) => [r.target, us(r.p50_ms), us(r.p99_ms), added(r.p50_ms - base.p50_ms), added(r.p99_ms - base.p99_ms)]);
  return [
    `added latency at ${base.connections} connection (direct: p50 ${us(base.p50_ms)} µs, p99 ${us(base.p99_ms)} µs)`,
    renderTable(['proxy', 'p50 µs', 'p99 µs', 'added p50 µs', 'added p99 µs'], body),
  ].join('\n');
}

function mlpConfig(batching: boolean): string {
  const model = join(ROOT, 'models/tiny-mlp/1/model.onnx');
  return tinyMlpConfig(
    `mlp-batching-${batching ? 'on' : 'off'}.yaml`,
    `backend: { kind: onnx, path: '${model}', batching: { enabled: ${batching}, max_batch_size: 64, max_queue_delay_ms: 1 } }`,
  );
}

function customScenario(): Scenario {
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i > 0) headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  const pid = values.pid === undefined ? null : Number(values.pid);
  const urls = values.url ?? [];
  return {
    name: 'url',
    description: `POST ${values.body ?? 'bench/bodies/chat.json'} to ${urls.join(', ')}`,
    body: values.body ?? join(bodies, 'chat.json'),
    levels: [64, 1000, 5000],
    reference: urls[urls.length - 1] ?? '',
    targets: async () => urls.map((u) => external(u, headers, pid)),
  };
}

function fmt(n: number | null, digits = 0): string {
  if (n === null || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The scenarios that run the baseline build (--baseline) as a target. */
const BASELINE_SCENARIOS: readonly string[] = ['chat', 'proxy', 'proxy-latency', 'grpc', 'generate'];

/** The baseline build's name for a target of this build: 'infergate mock' -> 'baseline mock', 'HTTP/JSON 1x32' -> 'baseline HTTP/JSON 1x32'. */
function baselineName(target: string): string {
  return `baseline ${target.replace(/^infergate /, '')}`;
}

function table(rows: readonly Row[], reference: string): string {
  const head = ['target', 'conns', 'QPS', 'vs ref', 'mean ms', 'p50 ms', 'p99 ms', 'errors', 'CPU %', 'RSS MiB'];
  const ref = new Map(rows.filter((r) => r.target === reference).map((r) => [r.connections, r.qps]));
  const qps = new Map(rows.map((r) => [`${r.target}\t${r.connections}`, r.qps]));
  // Only with --baseline: this build's target over the same target on the baseline build, same connections.
  const paired = rows.some((r) => r.target.startsWith('baseline '));
  if (paired) head.splice(4, 0, 'vs baseline');
  const body = rows.map((r) => {
    const base = ref.get(r.connections);
    const cells = [
      r.target,
      String(r.connections),
      fmt(r.qps),
      base === undefined ? '-' : `${(r.qps / base).toFixed(2)}x`,
      fmt(r.mean_ms, 2),
      fmt(r.p50_ms, 2),
      fmt(r.p99_ms, 2),
      fmt(r.errors),
      fmt(r.cpu_percent),
      fmt(r.rss_mib),
    ];
    if (paired) {
      const old = r.target.startsWith('baseline ') ? undefined : qps.get(`${baselineName(r.target)}\t${r.connections}`);
      cells.splice(4, 0, old === undefined ? '-' : `${(r.qps / old).toFixed(2)}x`);
    }
    return cells;
  });
  return renderTable(head, body);
}

/**
 * With --baseline, every pair the run measured, this build over the baseline, in one list: the
 * scenario, the target, the level (connections, streams or calls in flight) and the ratio of
 * throughput (requests/s; tokens/s for generate), then the lowest.
 */
function baselineSummary(rows: readonly object[], scenarios: readonly string[]): string {
  interface Cell {
    readonly scenario: string;
    readonly target: string;
    readonly level: number;
    readonly rate: number;
  }
  const cells: Cell[] = [];
  for (const row of rows as ReadonlyArray<Record<string, unknown>>) {
    const level = row.connections ?? row.streams ?? row.concurrency;
    const rate = row.qps ?? row.tokens_per_s;
    if (typeof row.target !== 'string' || typeof level !== 'number' || typeof rate !== 'number') continue;
    cells.push({ scenario: typeof row.scenario === 'string' ? row.scenario : 'grpc', target: row.target, level, rate });
  }
  const key = (c: Cell, target: string): string => `${c.scenario}\t${target}\t${c.level}`;
  const byKey = new Map(cells.map((c) => [key(c, c.target), c]));
  const lines: string[][] = [];
  let lowest = Number.POSITIVE_INFINITY;
  for (const c of cells) {
    if (c.target.startsWith('baseline ')) continue;
    const old = byKey.get(key(c, baselineName(c.target)));
    if (old === undefined) continue;
    const ratio = c.rate / old.rate;
    lowest = Math.min(lowest, ratio);
    lines.push([c.scenario, c.target, String(c.level), fmt(c.rate), fmt(old.rate), `${ratio.toFixed(3)}x`]);
  }
  // A scenario that measured no pair (proxy without its upstream, say) must not pass unnoticed.
  const missing = scenarios.filter((s) => BASELINE_SCENARIOS.includes(s) && !lines.some((l) => l[0] === s));
  const head = ['scenario', 'target', 'level', 'this build', 'baseline', 'ratio'];
  return [
    ...(lines.length > 0 ? [renderTable(head, lines), `lowest ratio: ${lowest.toFixed(3)}x`] : []),
    ...(missing.length > 0 ? [`not measured against the baseline: ${missing.join(', ')}`] : []),
  ].join('\n');
}

function toRow(scenario: string, target: string, connections: number, load: LoadResult, cpu: number | null, rss: number | null): Row {
  return {
    scenario,
    target,
    connections,
    qps: load.qps,
    mean_ms: load.latencyMs.mean,
    p50_ms: load.latencyMs.p50,
    p99_ms: load.latencyMs.p99,
    errors: load.errors,
    requests: load.requests,
    cpu_percent: cpu,
    rss_mib: rss,
  };
}

/** `list` starting at item `by` (modulo its length), wrapping around. */
function rotate<T>(list: readonly T[], by: number): T[] {
  const k = list.length === 0 ? 0 : by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function median(results: Array<{ load: LoadResult; cpu: number | null; rss: number | null }>) {
  return [...results].sort((a, b) => a.load.qps - b.load.qps)[Math.floor(results.length / 2)] as (typeof results)[number];
}

async function runScenario(scenario: Scenario, tool: 'wrk' | 'autocannon'): Promise<object[]> {
  const seconds = Number(values.duration);
  const warmup = Number(values.warmup);
  const rounds = Math.max(1, Number(values.rounds));
  const wanted = values.connections === undefined ? scenario.levels : values.connections.split(',').map(Number);
  // Each connection is a file descriptor on both ends; leave room for everything else the processes hold.
  const levels = wanted.filter((c) => c + 256 <= OPEN_FILES);
  for (const c of wanted)
    if (!levels.includes(c)) console.log(`  ${c} connections skipped: the open-file limit is ${OPEN_FILES} (ulimit -n)`);
  console.log(`\n## ${scenario.name}: ${scenario.description}`);
  if (scenario.own !== undefined) return scenario.own(levels, seconds, rounds);
  const rows: Row[] = [];
  const targets = await scenario.targets();
  try {
    for (const t of targets) {
      if (warmup > 0)
        await runLoad({ url: t.url, bodyFile: scenario.body, headers: t.headers, connections: 64, seconds: warmup }, tool).catch(
          () => undefined,
        );
    }
    for (const connections of levels) {
      const cells = new Map<string, Array<{ load: LoadResult; cpu: number | null; rss: number | null }>>();
      for (let round = 0; round < rounds; round++) {
        // Each round starts one target later, so that no target is always measured first (or right after another).
        for (const t of rotate(targets, round)) {
          process.stdout.write(`  ${t.name} @ ${connections} connections${rounds > 1 ? ` (round ${round + 1}/${rounds})` : ''} ... `);
          const spec = { url: t.url, bodyFile: scenario.body, headers: t.headers, connections, seconds };
          const m = await measure(t.pid(), () => runLoad(spec, tool));
          console.log(`${fmt(m.result.qps)} req/s, p99 ${fmt(m.result.latencyMs.p99, 2)} ms, ${m.result.errors} errors`);
          const list = cells.get(t.name) ?? [];
          list.push({ load: m.result, cpu: m.cpuPercent, rss: m.rssMiB });
          cells.set(t.name, list);
        }
      }
      for (const t of targets) {
        const { load, cpu, rss } = median(cells.get(t.name) ?? []);
        rows.push(toRow(scenario.name, t.name, connections, load, cpu, rss));
      }
    }
  } finally {
    for (const t of targets) await t.stop();
  }
  if (rows.length > 0) console.log(`\n${table(rows, scenario.reference)}`);
  const summary = scenario.summary?.(rows) ?? '';
  if (summary !== '') console.log(`\n${summary}`);
  return rows;
}

async function main(): Promise<void> {
  if (values.help) return console.log(HELP);
  const tool = loadGenerator();
  const names = values.scenario ?? SCENARIOS.map((s) => s.name);
  const scenarios = values.url !== undefined ? [customScenario()] : SCENARIOS.filter((s) => names.includes(s.name));
  if (scenarios.length === 0) throw new Error(`unknown scenario; choose from ${SCENARIOS.map((s) => s.name).join(', ')}`);
  console.log(
    `load generator: ${tool}${tool === 'autocannon' ? ' (install wrk for numbers less disturbed by the load generator)' : ''}; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); node ${process.version}`,
  );
  const rows: object[] = [];
  for (const s of scenarios) rows.push(...(await runScenario(s, tool)));
  const ran = scenarios.map((s) => s.name);
  const summary = baseline === null ? '' : baselineSummary(rows, ran);
  if (summary !== '') console.log(`\n## this build against the baseline (${baseline})\n${summary}`);
  const file = values.json ?? join(ROOT, 'bench/results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(
    file,
    JSON.stringify({ date: new Date().toISOString(), tool, cpus: cpus().length, node: process.version, rows }, null, 2) + '\n',
  );
  console.log(`\nresults: ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
