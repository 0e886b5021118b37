/**
 * The `dashboard` scenario: what an open dashboard costs the serving path. The chat scenario's
 * mock model, one server, measured alternately with no client on /admin/ui/stream and with
 * `DASHBOARDS` clients reading it (the stream scrapes every worker's metrics once a second and
 * sends each client the same event), in interleaved rounds so that drift in the machine's speed
 * falls on both sides alike. The cost (goal: within 2 %) is the median of the rounds' ratios (the
 * two sides of a round run back to back); the server's CPU time per request, which a shared
 * machine's speed disturbs less than throughput, is compared the same way.
 */
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { loadGenerator, runLoad, type LoadResult } from './load.js';
import { measure } from './proc.js';
import { renderTable } from './table.js';
import { startInfergate, type Target } from './targets.js';

/** Dashboards open during the `with` measurements. */
const DASHBOARDS = 3;

export interface DashboardRow {
  scenario: 'dashboard';
  target: string;
  connections: number;
  qps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  cpu_percent: number | null;
  /** Stats events the dashboards received per second of measurement (0 without them). */
  events_per_s: number;
  /** This target's QPS over the one without dashboards (the medians'). */
  ratio: number;
  /** The server's CPU time per request, in microseconds (the median round's). */
  cpu_us_per_request: number | null;
  /** The median over rounds of each round's with/without QPS ratio: the two sides of a round run back to back, so slow drift cancels. */
  paired_ratio: number;
  /** The same of the CPU time per request. */
  paired_cpu_ratio: number | null;
}

/** Clients reading the stream as the dashboard does (fetch and a reader), counting the events; `close` ends them. */
async function openDashboards(base: string, n: number): Promise<{ events: () => number; close: () => Promise<void> }> {
  let events = 0;
  // Their own pool, closed with them: undici opens a fresh connection after an abort mid-body, which would outlive the run.
  const agent = new Agent();
  const aborts: AbortController[] = [];
  const reading: Array<Promise<void>> = [];
  for (let i = 0; i < n; i++) {
    const abort = new AbortController();
    aborts.push(abort);
    const res = await fetch(`${base}/admin/ui/stream`, { signal: abort.signal, dispatcher: agent });
    if (res.status !== 200 || res.body === null) throw new Error(`/admin/ui/stream answered ${res.status}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    reading.push(
      (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            events += decoder.decode(value, { stream: true }).split('event: stats').length - 1;
          }
        } catch {
          // aborted
        }
      })(),
    );
  }
  return {
    events: () => events,
    close: async () => {
      for (const a of aborts) a.abort();
      await Promise.all(reading);
      await agent.close();
    },
  };
}

function median<T>(list: readonly T[], by: (t: T) => number): T {
  return [...list].sort((a, b) => by(a) - by(b))[Math.floor(list.length / 2)] as T;
}

/** Runs the scenario at each level; `root` is the checkout whose bench/ configs and server run. */
export async function dashboardScenario(
  root: string,
  workers: number | undefined,
  levels: readonly number[],
  seconds: number,
  rounds: number,
  warmup: number,
): Promise<DashboardRow[]> {
  const tool = loadGenerator();
  const body = join(root, 'bench/bodies/chat.json');
  const target: Target = await startInfergate('infergate mock', join(root, 'bench/configs/mock.yaml'), '/v1/chat/completions', workers);
  const base = new URL(target.url).origin;
  const rows: DashboardRow[] = [];
  try {
    if (warmup > 0) await runLoad({ url: target.url, bodyFile: body, headers: {}, connections: 64, seconds: warmup }, tool);
    for (const connections of levels) {
      const cells: Record<'off' | 'on', Array<{ load: LoadResult; cpu: number | null; events: number }>> = { off: [], on: [] };
      for (let round = 0; round < rounds; round++) {
        // Alternate which side goes first, so neither always follows the other.
        for (const side of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
          const dashboards = side === 'on' ? await openDashboards(base, DASHBOARDS) : null;
          // Let the stream's timer take its baseline and send a first event before measuring.
          if (dashboards !== null) await new Promise((r) => setTimeout(r, 1500));
          const before = dashboards?.events() ?? 0;
          process.stdout.write(
            `  ${side === 'on' ? `${DASHBOARDS} dashboards open` : 'no dashboard'} @ ${connections} connections (round ${round + 1}/${rounds}) ... `,
          );
          const spec = { url: target.url, bodyFile: body, headers: {}, connections, seconds };
          const m = await measure(target.pid(), () => runLoad(spec, tool));
          const events = (dashboards?.events() ?? 0) - before;
          await dashboards?.close();
          console.log(
            `${Math.round(m.result.qps)} req/s, p99 ${m.result.latencyMs.p99.toFixed(2)} ms, CPU ${Math.round(m.cpuPercent ?? 0)} %` +
              (dashboards ? `, ${events} events` : ''),
          );
          cells[side].push({ load: m.result, cpu: m.cpuPercent, events });
        }
      }
      const off = median(cells.off, (c) => c.load.qps);
      const on = median(cells.on, (c) => c.load.qps);
      const perRequest = (c: (typeof cells.off)[number]): number | null =>
        c.cpu === null || c.load.requests === 0 ? null : ((c.cpu / 100) * seconds * 1e6) / c.load.requests;
      const pairs = cells.on.map((c, i) => ({ on: c, off: cells.off[i] as (typeof cells.off)[number] }));
      const paired = median(
        pairs.map((p) => p.on.load.qps / p.off.load.qps),
        (x) => x,
      );
      const cpuRatios = pairs.flatMap((p) => {
        const a = perRequest(p.on);
        const b = perRequest(p.off);
        return a === null || b === null ? [] : [a / b];
      });
      const pairedCpu = cpuRatios.length === 0 ? null : median(cpuRatios, (x) => x);
      for (const [name, cell] of [
        ['no dashboard', off],
        [`${DASHBOARDS} dashboards streaming`, on],
      ] as const) {
        rows.push({
          scenario: 'dashboard',
          target: name,
          connections,
          qps: cell.load.qps,
          p50_ms: cell.load.latencyMs.p50,
          p99_ms: cell.load.latencyMs.p99,
          errors: cell.load.errors,
          cpu_percent: cell.cpu,
          events_per_s: cell.events / seconds,
          ratio: cell.load.qps / off.load.qps,
          cpu_us_per_request: perRequest(cell),
          paired_ratio: cell === off ? 1 : paired,
          paired_cpu_ratio: cell === off ? 1 : pairedCpu,
        });
      }
    }
  } finally {
    await target.stop();
  }
  console.log(`\n${table(rows)}`);
  for (const r of rows.filter((x) => x.target !== 'no dashboard')) {
    const cost = (1 - r.paired_ratio) * 100;
    console.log(
      `dashboard @ ${r.connections} connections: ${r.paired_ratio.toFixed(3)}x the throughput without, median of ${rounds} paired rounds ` +
        `(${cost >= 0 ? `${cost.toFixed(1)} % slower` : `${(-cost).toFixed(1)} % faster`}; goal: within 2 %); ` +
        `medians ${r.ratio.toFixed(3)}x; server CPU per request ${r.paired_cpu_ratio === null ? '-' : `${r.paired_cpu_ratio.toFixed(3)}x`}`,
    );
  }
  return rows;
}

function table(rows: readonly DashboardRow[]): string {
  const head = ['target', 'conns', 'QPS', 'vs none', 'paired', 'p50 ms', 'p99 ms', 'errors', 'CPU %', 'CPU µs/req', 'events/s'];
  const f = (n: number | null, d = 0): string => (n === null || !Number.isFinite(n) ? '-' : n.toFixed(d));
  return renderTable(
    head,
    rows.map((r) => [
      r.target,
      String(r.connections),
      f(r.qps),
      `${r.ratio.toFixed(3)}x`,
      `${r.paired_ratio.toFixed(3)}x`,
      f(r.p50_ms, 2),
      f(r.p99_ms, 2),
      String(r.errors),
      f(r.cpu_percent),
      f(r.cpu_us_per_request, 1),
      f(r.events_per_s, 1),
    ]),
  );
}
