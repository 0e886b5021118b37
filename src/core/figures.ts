/**
 * A version's counters as a rollout compares them: calls, calls that failed by the version's own
 * fault, and latency and time-to-first-token histograms over fixed bounds, so that the counters
 * of many processes add up (the sum of histograms is the histogram of the sum) and a step's
 * figures are the difference of two readings.
 */

/** Histogram bucket upper bounds in milliseconds: 8 per doubling from 0.25 ms to about 4.6 minutes (p99 to within 9 %). */
export const FIGURE_BOUNDS_MS: readonly number[] = Object.freeze(Array.from({ length: 161 }, (_, i) => 0.25 * 2 ** (i / 8)));

/** Cumulative counters of one version in one process (or summed over many). */
export interface Figures {
  calls: number;
  /** Calls that failed by the version's own fault (upstream errors and time-outs, an open breaker, not ready, a bug) or fell back. */
  faults: number;
  /** Per bucket of FIGURE_BOUNDS_MS (the last also holds anything longer): latency of every call that ran. */
  latency: number[];
  /** The same for time to the first token of streamed text calls. */
  ttft: number[];
}

/** An empty set of counters. */
export function noFigures(): Figures {
  return {
    calls: 0,
    faults: 0,
    latency: new Array<number>(FIGURE_BOUNDS_MS.length).fill(0),
    ttft: new Array<number>(FIGURE_BOUNDS_MS.length).fill(0),
  };
}

/** The bucket of a duration in ms. */
export function bucketOf(ms: number): number {
  // log2(ms / 0.25) * 8, clamped: a binary search would do too, this is one expression.
  if (!(ms > 0.25)) return 0;
  return Math.min(FIGURE_BOUNDS_MS.length - 1, Math.ceil(Math.log2(ms / 0.25) * 8 - 1e-9));
}

/** `a` plus `b` times `sign` (1 to add, -1 to subtract), into `a`. Histograms of other lengths are ignored. */
export function addFigures(a: Figures, b: Figures, sign = 1): Figures {
  a.calls += sign * b.calls;
  a.faults += sign * b.faults;
  if (b.latency.length === a.latency.length)
    for (let i = 0; i < a.latency.length; i++) a.latency[i] = (a.latency[i] as number) + sign * (b.latency[i] as number);
  if (b.ttft.length === a.ttft.length)
    for (let i = 0; i < a.ttft.length; i++) a.ttft[i] = (a.ttft[i] as number) + sign * (b.ttft[i] as number);
  return a;
}

/** The `q` quantile (0..1) of a histogram, as its bucket's upper bound in ms; null when it is empty. */
export function quantileMs(counts: readonly number[], q: number): number | null {
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] as number;
    if (seen >= rank) return FIGURE_BOUNDS_MS[i] as number;
  }
  return FIGURE_BOUNDS_MS[FIGURE_BOUNDS_MS.length - 1] as number;
}

/** How many values a histogram holds. */
export function countOf(counts: readonly number[]): number {
  let total = 0;
  for (const c of counts) total += c;
  return total;
}
