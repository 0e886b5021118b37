/**
 * The `memory` scenario: what the whole server (primary and workers) holds in memory on the bench
 * config, idle, with N idle keep-alive connections (each has made one request, then waits), and
 * under wrk load at N connections. RSS counts pages the processes share once per process; PSS
 * (/proc/PID/smaps_rollup) divides them, so both are printed. Goal (issue 21): under 300 MiB RSS at
 * 5,000 connections. This measures only; it changes nothing in the server.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { runLoad } from './load.js';
import { memoryTotals, memoryTree, type ProcessMemory } from './proc.js';
import { renderTable } from './table.js';
import { startInfergate } from './targets.js';

/** How many connections are being opened at once (under the listen backlog, so none waits for a SYN retry). */
const OPENING_AT_ONCE = 200;

/** Opens a keep-alive connection, makes one request on it and waits for the whole answer; the socket stays open. */
function openIdle(port: number, request: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let got = '';
    let need = -1;
    socket.setEncoding('latin1');
    socket.once('error', reject);
    socket.on('data', (chunk: string) => {
      got += chunk;
      if (need < 0) {
        const end = got.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = /^HTTP\/1\.1 (\d+)/.exec(got);
        if (status?.[1] !== '200') return reject(new Error(`status ${status?.[1] ?? '?'}: ${got.slice(0, 200)}`));
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(got.slice(0, end));
        if (length === null) return reject(new Error('an answer without content-length'));
        need = end + 4 + Number(length[1]);
      }
      if (got.length >= need) {
        socket.removeAllListeners('data');
        socket.removeListener('error', reject);
        socket.on('error', () => undefined); // the server may close it later; that is counted when measured
        resolve(socket);
      }
    });
    socket.write(request);
  });
}

async function openMany(port: number, n: number, request: Buffer): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i += OPENING_AT_ONCE) {
    const batch = await Promise.all(Array.from({ length: Math.min(OPENING_AT_ONCE, n - i) }, () => openIdle(port, request)));
    sockets.push(...batch);
  }
  return sockets;
}

interface Snapshot {
  readonly label: string;
  readonly processes: readonly ProcessMemory[];
}

function mib(n: number | null): string {
  return n === null ? '-' : n.toFixed(1);
}

/** Peak RSS and PSS of the tree (sampled every 250 ms) while `work` runs. */
async function peakDuring<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peak: ProcessMemory[] }> {
  let peak = memoryTree(pid);
  let peakRss = memoryTotals(peak).rssMiB;
  const timer = setInterval(() => {
    const now = memoryTree(pid);
    const rss = memoryTotals(now).rssMiB;
    if (rss > peakRss) [peak, peakRss] = [now, rss];
  }, 250);
  try {
    return { result: await work(), peak };
  } finally {
    clearInterval(timer);
  }
}

export async function memoryScenario(
  config: string,
  bodyFile: string,
  levels: readonly number[],
  seconds: number,
  warmup: number,
  workers: number | undefined,
  tool: 'wrk' | 'autocannon',
): Promise<object[]> {
  const rows: object[] = [];
  const body = readFileSync(bodyFile);
  for (const n of levels) {
    const target = await startInfergate('infergate mock', config, '/v1/chat/completions', workers);
    const pid = target.pid() as number;
    const port = Number(new URL(target.url).port);
    const request = Buffer.concat([
      Buffer.from(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
      ),
      body,
    ]);
    const spec = { url: target.url, bodyFile, headers: {}, connections: 64, seconds: warmup };
    let sockets: Socket[] = [];
    try {
      const started: Snapshot = { label: 'just started, no traffic yet', processes: memoryTree(pid) };
      // Warm first (the JIT, pools, the heap's working size), then let it settle: the baseline is a server that has served.
      if (warmup > 0) await runLoad(spec, tool);
      await sleep(1000);
      const snapshots: Snapshot[] = [{ label: 'warmed up, idle, no connections', processes: memoryTree(pid) }];
      const t0 = performance.now();
      sockets = await openMany(port, n, request);
      const opened = (performance.now() - t0) / 1000;
      await sleep(2000);
      const open = sockets.filter((s) => !s.destroyed).length;
      snapshots.push({ label: `${n} idle keep-alive connections`, processes: memoryTree(pid) });
      console.log(`  opened ${n} connections (one request each) in ${opened.toFixed(1)} s; ${open} still open after 2 s idle`);
      for (const s of sockets) s.destroy();
      sockets = [];
      await sleep(1000);
      process.stdout.write(`  wrk at ${n} connections for ${seconds} s ... `);
      const { result, peak } = await peakDuring(pid, () => runLoad({ ...spec, connections: n, seconds }, tool));
      console.log(`${Math.round(result.qps)} req/s, ${result.errors} errors`);
      snapshots.push({ label: `under load at ${n} connections (peak)`, processes: peak });
      snapshots.push({ label: 'after the load, idle', processes: memoryTree(pid) });

      const base = memoryTotals(snapshots[0]?.processes ?? []);
      const idle = memoryTotals(snapshots[1]?.processes ?? []);
      snapshots.unshift(started);
      const table = snapshots.map((s) => {
        const t = memoryTotals(s.processes);
        const each = s.processes.map((p) => mib(p.rssMiB)).join(' + ');
        return [s.label, String(s.processes.length), mib(t.rssMiB), mib(t.pssMiB), each, t.rssMiB < 300 ? 'yes' : 'no'];
      });
      console.log(`\n${renderTable(['state', 'procs', 'RSS MiB', 'PSS MiB', 'RSS by process (primary first)', '< 300 MiB'], table)}`);
      const perRss = ((idle.rssMiB - base.rssMiB) * 1024) / n;
      const perPss = idle.pssMiB === null || base.pssMiB === null ? null : ((idle.pssMiB - base.pssMiB) * 1024) / n;
      console.log(
        `per idle connection: ${perRss.toFixed(1)} KiB RSS, ${perPss === null ? '-' : perPss.toFixed(1)} KiB PSS (the difference over the ${n} connections, ` +
          'garbage not yet collected included)',
      );
      for (const s of snapshots) {
        const t = memoryTotals(s.processes);
        rows.push({
          scenario: 'memory',
          target: 'infergate mock',
          connections: n,
          state: s.label,
          rss_mib: t.rssMiB,
          pss_mib: t.pssMiB,
          processes: s.processes,
        });
      }
      rows.push({
        scenario: 'memory',
        target: 'infergate mock',
        connections: n,
        state: 'per idle connection',
        rss_kib: perRss,
        pss_kib: perPss,
      });
    } finally {
      for (const s of sockets) s.destroy();
      await target.stop();
    }
  }
  return rows;
}
