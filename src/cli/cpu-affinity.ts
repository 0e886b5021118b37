/**
 * Pins each worker process to a core of its own (`server.cpu_affinity: auto`), when there is one
 * core for each: with two workers on two cores and wrk beside them, pinned workers served 1.17x
 * the mock chat of unpinned ones at 1,000 connections and 1.2x at 64 (3 interleaved 4 s rounds,
 * server CPU per request 38.7 -> 33.7 µs): the kernel no longer moves a worker, with its
 * connections' state warm in one core's caches, to the other core and back. Node has no affinity
 * call, so this runs util-linux's `taskset`; where it is missing or refused, workers stay unpinned.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The CPUs this process may run on (`Cpus_allowed_list` of /proc/self/status), in order; empty where unknown. */
export function allowedCpus(status: string = readStatus()): number[] {
  const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1]?.trim();
  if (line === undefined || line === '') return [];
  const cpus: number[] = [];
  for (const part of line.split(',')) {
    const [from, to] = part.split('-').map(Number);
    if (from === undefined || !Number.isInteger(from)) return [];
    const last = to === undefined ? from : to;
    if (!Number.isInteger(last) || last < from) return [];
    for (let c = from; c <= last; c++) cpus.push(c);
  }
  return cpus;
}

function readStatus(): string {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return '';
  }
}

/**
 * Deals the allowed CPUs out to workers, one each, when there are exactly as many workers as CPUs
 * (`auto`); otherwise (or `off`) pins nothing. A worker that replaces a dead one takes the CPU it freed.
 */
export class CpuPinning {
  readonly #cpus: readonly number[];
  readonly #taken = new Map<number, number>(); // worker id -> cpu

  constructor(mode: 'auto' | 'off', workers: number, cpus: readonly number[] = allowedCpus()) {
    this.#cpus = mode === 'auto' && workers > 1 && cpus.length === workers ? cpus : [];
  }

  /** Whether workers are pinned at all. */
  get active(): boolean {
    return this.#cpus.length > 0;
  }

  /** Pins the worker `id` (process `pid`) to a free CPU; `onError` hears why it could not be. */
  pin(id: number, pid: number | undefined, onError: (message: string) => void): void {
    if (!this.active || pid === undefined || this.#taken.has(id)) return;
    const used = new Set(this.#taken.values());
    const cpu = this.#cpus.find((c) => !used.has(c));
    if (cpu === undefined) return;
    this.#taken.set(id, cpu);
    execFile('taskset', ['-p', '-c', String(cpu), String(pid)], (err) => {
      if (err) onError(`could not pin worker ${pid} to CPU ${cpu} (taskset: ${err.message.split('\n')[0] ?? ''})`);
    });
  }

  /** The worker `id` is gone: its CPU is free for the next one. */
  release(id: number): void {
    this.#taken.delete(id);
  }
}
