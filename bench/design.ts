/**
 * The chat scenario's second table, in the shape of the design's own load table (the essay in
 * ../shared/seed, chapter 2.1: "并发数 QPS 平均延迟(ms) CPU使用率" at 1,000, 3,000 and 5,000
 * concurrent connections): QPS, mean and p99 latency and CPU % for infergate beside the Go handler,
 * and the essay's own figures as a third set.
 */
import { renderTable } from './table.js';

/** The figures of a table row this module reads (a subset of run.ts's Row). */
export interface DesignRow {
  readonly target: string;
  readonly connections: number;
  readonly qps: number;
  readonly mean_ms: number;
  readonly p99_ms: number;
  readonly cpu_percent: number | null;
}

/**
 * The essay's table, quoted exactly (并发数 / QPS / 平均延迟(ms) / CPU使用率). It gives no p99 per row;
 * its only p99 is in the sentence above the table, set here against the 5,000 row (see ESSAY_P99_NOTE).
 * Measured on the essay's own machine, which it does not describe, with a handler that calls a model.
 */
export const ESSAY_TABLE: ReadonlyArray<{ connections: number; qps: number; mean_ms: number; p99: string; cpu: string }> = [
  { connections: 1000, qps: 4120, mean_ms: 24, p99: '-', cpu: '67%' },
  { connections: 3000, qps: 4680, mean_ms: 32, p99: '-', cpu: '82%' },
  { connections: 5000, qps: 4820, mean_ms: 38, p99: '<120*', cpu: '91%' },
];

const ESSAY_P99_NOTE =
  '* the essay gives p99 only in its text: "在5000 QPS压测下,平均延迟保持在38ms,P99延迟低于120ms" ' +
  '(under a 5,000 QPS load, mean 38 ms, p99 below 120 ms)';

export const DESIGN_LEVELS: readonly number[] = [1000, 3000, 5000];

function num(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * The table: one row per design level, the column sets infergate (`ours`), the Go handler (`go`)
 * and the essay. CPU % here is of the whole machine (`cpus` cores: 100 % is all of them), as a CPU
 * usage figure like the essay's reads; the scenario's own table counts 100 per core.
 */
export function designTable(rows: readonly DesignRow[], ours: string, go: string, cpus: number): string {
  const find = (target: string, c: number): DesignRow | undefined => rows.find((r) => r.target === target && r.connections === c);
  const cells = (r: DesignRow | undefined): string[] =>
    r === undefined
      ? ['not run', '-', '-', '-']
      : [num(r.qps), num(r.mean_ms, 1), num(r.p99_ms, 1), r.cpu_percent === null ? '-' : `${num(r.cpu_percent / cpus)}%`];
  const head = [
    'conns',
    'infergate QPS',
    'mean ms',
    'p99 ms',
    'CPU %',
    'Go QPS',
    'mean ms',
    'p99 ms',
    'CPU %',
    'essay QPS',
    'mean ms',
    'p99 ms',
    'CPU %',
  ];
  const body = DESIGN_LEVELS.map((c) => {
    const essay = ESSAY_TABLE.find((e) => e.connections === c);
    return [
      num(c),
      ...cells(find(ours, c)),
      ...cells(find(go, c)),
      ...(essay === undefined ? ['-', '-', '-', '-'] : [num(essay.qps), String(essay.mean_ms), essay.p99, essay.cpu]),
    ];
  });
  const ratios = DESIGN_LEVELS.map((c) => {
    const a = find(ours, c);
    const b = find(go, c);
    return a === undefined || b === undefined
      ? null
      : `${num(c)}: ${(a.qps / b.qps).toFixed(2)}x QPS, p99 ${num(a.p99_ms, 1)} vs ${num(b.p99_ms, 1)} ms`;
  }).filter((s): s is string => s !== null);
  return [
    `in the design's shape (its table at 1,000, 3,000 and 5,000 connections; CPU % of all ${cpus} cores of this machine):`,
    renderTable(head, body),
    ...(ratios.length > 0 ? [`infergate vs Go handler: ${ratios.join('; ')}`] : []),
    `essay figures: quoted from its own table, measured on the essay's machine (not described there) with a handler that runs a model;`,
    `  here both servers answer a mock at once, and wrk shares this machine's ${cpus} cores with the server under test.`,
    ESSAY_P99_NOTE,
  ].join('\n');
}
