/**
 * Rollouts: a canary version's share of traffic raised step by step while its figures, summed over
 * every replica, stay within the plan's gates against the stable versions; a gate that fails sends
 * it back to 0. Pure logic: what a step's figures say (judge) and what weights a step means
 * (stepWeights). Who reads the figures, drives the steps and stores the state is the fleet's
 * (cluster/fleet.ts).
 */
import type { RolloutPlan } from '../config/schema.js';
import { countOf, quantileMs, type Figures } from '../core/figures.js';

/** Where a rollout is: going (`running`), held by a person (`paused`), or ended one of three ways. */
export type RolloutState = 'running' | 'paused' | 'promoted' | 'rolled_back' | 'aborted';

/** Every state, in the order the `infergate_rollout_state` metric's documentation lists them. */
export const ROLLOUT_STATES: readonly RolloutState[] = ['running', 'paused', 'promoted', 'rolled_back', 'aborted'];

/** Whether a rollout in this state is over (its weights stay as it left them). */
export function isFinished(state: RolloutState): boolean {
  return state === 'promoted' || state === 'rolled_back' || state === 'aborted';
}

/** One side of a comparison over the current step: the canary's calls, or the stable versions' together. */
export interface SideFigures {
  readonly calls: number;
  readonly faults: number;
  readonly error_rate: number;
  /** null: no call ran to the end yet. */
  readonly p99_ms: number | null;
  readonly ttft_calls: number;
  readonly ttft_p99_ms: number | null;
}

/** What a step's analysis read: both sides since the step began, and how long ago that was. */
export interface StepFigures {
  readonly canary: SideFigures;
  readonly stable: SideFigures;
  readonly elapsed_s: number;
}

/** A side's counters since the step began, as the gates read them. */
export function summarise(f: Figures): SideFigures {
  const calls = Math.max(0, f.calls);
  const faults = Math.max(0, Math.min(calls, f.faults));
  return {
    calls,
    faults,
    error_rate: calls === 0 ? 0 : faults / calls,
    p99_ms: quantileMs(f.latency, 0.99),
    ttft_calls: countOf(f.ttft),
    ttft_p99_ms: quantileMs(f.ttft, 0.99),
  };
}

/** What the figures say: keep watching, go on to the next step, or roll back (and why). */
export type Verdict = { readonly kind: 'wait' } | { readonly kind: 'next' } | { readonly kind: 'fail'; readonly reason: string };

/**
 * Latencies under this many ms are compared as if they were this long: at sub-millisecond times a
 * ratio says more about the histogram's buckets and the machine's noise than about the canary.
 */
const LATENCY_FLOOR_MS = 2;

/**
 * Judges one step. The error gate trips as soon as the canary has more faults than the plan could
 * allow even if every remaining call of the step succeeded (so a canary answering 500s goes back
 * before `min_calls`); the latency gates once both sides have `min_calls` calls (at least one).
 * The step passes when it has lasted `step_seconds` and the canary made `min_calls` calls with every gate
 * within bounds.
 */
export function judge(plan: RolloutPlan, figures: StepFigures): Verdict {
  const { canary, stable } = figures;
  const gates = plan.gates;
  const enough = Math.max(1, plan.min_calls);
  if (canary.faults > 0 && canary.faults > gates.max_error_rate * Math.max(enough, canary.calls)) {
    return {
      kind: 'fail',
      reason:
        `error rate ${ratio(canary.error_rate)} over ${canary.calls} canary calls (${canary.faults} failed) exceeds ` +
        `max_error_rate ${gates.max_error_rate}`,
    };
  }
  if (canary.calls >= enough && stable.calls >= enough && canary.p99_ms !== null && stable.p99_ms !== null) {
    const r = Math.max(canary.p99_ms, LATENCY_FLOOR_MS) / Math.max(stable.p99_ms, LATENCY_FLOOR_MS);
    if (r > gates.max_p99_ratio) {
      return {
        kind: 'fail',
        reason: `p99 latency ${ms(canary.p99_ms)} is ${r.toFixed(2)}x stable's ${ms(stable.p99_ms)}, over max_p99_ratio ${gates.max_p99_ratio}`,
      };
    }
  }
  if (canary.ttft_calls >= enough && stable.ttft_calls >= enough && canary.ttft_p99_ms !== null && stable.ttft_p99_ms !== null) {
    const r = Math.max(canary.ttft_p99_ms, LATENCY_FLOOR_MS) / Math.max(stable.ttft_p99_ms, LATENCY_FLOOR_MS);
    if (r > gates.max_ttft_p99_ratio) {
      return {
        kind: 'fail',
        reason:
          `p99 time to first token ${ms(canary.ttft_p99_ms)} is ${r.toFixed(2)}x stable's ${ms(stable.ttft_p99_ms)}, ` +
          `over max_ttft_p99_ratio ${gates.max_ttft_p99_ratio}`,
      };
    }
  }
  if (figures.elapsed_s >= plan.step_seconds && canary.calls >= plan.min_calls) return { kind: 'next' };
  return { kind: 'wait' };
}

/**
 * The weights of every version while the canary has `percent` of unpinned traffic: the others share
 * the rest in proportion to `configured` (their weights in the config file); if none of them has a
 * weight there, `fallback` (the model's default version, unless it is the canary) takes it all.
 */
export function stepWeights(
  canary: string,
  percent: number,
  configured: ReadonlyMap<string, number>,
  fallback: string,
): Map<string, number> {
  const out = new Map<string, number>();
  let others = 0;
  for (const [version, weight] of configured) if (version !== canary) others += weight;
  for (const [version, weight] of configured) {
    if (version === canary) out.set(version, percent);
    else if (others > 0) out.set(version, round(((100 - percent) * weight) / others));
    else out.set(version, version === fallback ? 100 - percent : 0);
  }
  return out;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function ratio(r: number): string {
  return `${(r * 100).toFixed(1)} %`;
}

function ms(n: number): string {
  return `${n < 10 ? n.toFixed(2) : Math.round(n)} ms`;
}
