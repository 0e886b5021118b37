/** CPU time and resident memory of a process and all its descendants, read from /proc (Linux). */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
      if (tid !== '') out.push(Number(tid), ...children(Number(tid)));
    }
  } catch {
    // gone, or no such file
  }
  return out;
}

function tree(pid: number): number[] {
  return [pid, ...children(pid)];
}

/** CPU seconds (user + system) used so far by the process tree. */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of tree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited
    }
  }
  return ticks / TICKS_PER_SECOND;
}

/** Resident set size of the process tree, in MiB. */
export function rssMiB(pid: number): number {
  let kb = 0;
  for (const p of tree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // exited
    }
  }
  return kb / 1024;
}

/** Samples a process tree while `work` runs: CPU% over the run (100 = one core) and peak RSS. */
export async function measure<T>(
  pid: number | null,
  work: () => Promise<T>,
): Promise<{ result: T; cpuPercent: number | null; rssMiB: number | null }> {
  if (pid === null) return { result: await work(), cpuPercent: null, rssMiB: null };
  const start = cpuSeconds(pid);
  const t0 = performance.now();
  let peak = rssMiB(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 250);
  try {
    const result = await work();
    const seconds = (performance.now() - t0) / 1000;
    return { result, cpuPercent: ((cpuSeconds(pid) - start) / seconds) * 100, rssMiB: peak };
  } finally {
    clearInterval(timer);
  }
}

/** One process's resident memory: RSS (shared pages counted in full) and PSS (shared pages divided among their sharers), MiB. */
export interface ProcessMemory {
  readonly pid: number;
  readonly rssMiB: number;
  readonly pssMiB: number | null;
}

/**
 * RSS and PSS of each process of the tree (the primary first, then its workers). RSS counts a page
 * shared by the primary and its workers (the node binary, forked-off heap) once per process; PSS,
 * from /proc/PID/smaps_rollup, divides it among them, so the PSS sum is the tree's real footprint.
 * PSS is null where smaps_rollup cannot be read (kernels before 4.14, another user's process).
 */
export function memoryTree(pid: number): ProcessMemory[] {
  const out: ProcessMemory[] = [];
  for (const p of tree(pid)) {
    let rss: number | null = null;
    let pss: number | null = null;
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) rss = Number(m[1]) / 1024;
    } catch {
      continue; // exited
    }
    try {
      const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'));
      if (m) pss = Number(m[1]) / 1024;
    } catch {
      // not readable
    }
    if (rss !== null) out.push({ pid: p, rssMiB: rss, pssMiB: pss });
  }
  return out;
}

/** The sums of a {@link memoryTree}: RSS and PSS (null if any process's PSS is unknown), MiB. */
export function memoryTotals(list: readonly ProcessMemory[]): { rssMiB: number; pssMiB: number | null } {
  let rss = 0;
  let pss: number | null = 0;
  for (const m of list) {
    rss += m.rssMiB;
    pss = pss === null || m.pssMiB === null ? null : pss + m.pssMiB;
  }
  return { rssMiB: rss, pssMiB: pss };
}
