/** The rollout's judgement of a step and the weights a step means, and the figures they read (histograms that add up across replicas). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { RolloutPlanSchema, type RolloutPlan } from '../../src/config/schema.js';
import { FIGURE_BOUNDS_MS, addFigures, bucketOf, noFigures, quantileMs, type Figures } from '../../src/core/figures.js';
import { judge, stepWeights, summarise, type StepFigures } from '../../src/routing/rollout.js';

function plan(overrides: Partial<RolloutPlan> = {}): RolloutPlan {
  return { ...(Value.Default(RolloutPlanSchema, { version: '2' }) as RolloutPlan), ...overrides };
}

/** Counters of `calls` calls, `faults` of them failed, each taking `ms` (and, for streams, `ttftMs` to its first token). */
function figures(calls: number, faults: number, ms: number, ttftMs?: number): Figures {
  const f = noFigures();
  f.calls = calls;
  f.faults = faults;
  f.latency[bucketOf(ms)] = calls;
  if (ttftMs !== undefined) f.ttft[bucketOf(ttftMs)] = calls;
  return f;
}

function step(canary: Figures, stable: Figures, elapsed: number): StepFigures {
  return { canary: summarise(canary), stable: summarise(stable), elapsed_s: elapsed };
}

describe('figures', () => {
  it('puts a duration in the bucket whose bound is the first at or above it', () => {
    for (const ms of [0.1, 0.25, 0.3, 1, 7.5, 100, 1234, 60_000]) {
      const i = bucketOf(ms);
      assert.ok((FIGURE_BOUNDS_MS[i] as number) >= ms || i === FIGURE_BOUNDS_MS.length - 1, `${ms} ms in bucket ${i}`);
      if (i > 0) assert.ok((FIGURE_BOUNDS_MS[i - 1] as number) < ms, `${ms} ms belongs in an earlier bucket than ${i}`);
    }
    assert.equal(bucketOf(1e9), FIGURE_BOUNDS_MS.length - 1);
  });

  it('reads p99 to within a bucket (9 %), and sums and subtracts across replicas', () => {
    const f = noFigures();
    f.latency[bucketOf(10)] = 990;
    f.latency[bucketOf(200)] = 10;
    const p99 = quantileMs(f.latency, 0.99) as number;
    assert.ok(p99 >= 10 && p99 < 10 * 1.1, `p99 ${p99}`);
    const both = addFigures(figures(100, 1, 5), figures(50, 2, 5));
    assert.equal(both.calls, 150);
    assert.equal(both.faults, 3);
    assert.equal(addFigures(both, figures(50, 2, 5), -1).calls, 100);
    assert.equal(quantileMs(noFigures().latency, 0.99), null);
  });
});

describe('judging a step', () => {
  it('waits for the dwell time and the calls, then passes', () => {
    const p = plan({ step_seconds: 30, min_calls: 100 });
    assert.equal(judge(p, step(figures(150, 0, 5), figures(1000, 0, 5), 10)).kind, 'wait');
    assert.equal(judge(p, step(figures(50, 0, 5), figures(1000, 0, 5), 40)).kind, 'wait');
    assert.equal(judge(p, step(figures(150, 1, 5), figures(1000, 0, 5), 31)).kind, 'next');
  });

  it('rolls back on errors as soon as the step could not pass, before min_calls', () => {
    const p = plan({ min_calls: 100, gates: { max_error_rate: 0.01, max_p99_ratio: 1.5, max_ttft_p99_ratio: 1.5 } });
    // One fault in 10 calls: with 90 calls to go it could still end at 1 %.
    assert.equal(judge(p, step(figures(10, 1, 5), figures(1000, 0, 5), 1)).kind, 'wait');
    const v = judge(p, step(figures(10, 2, 5), figures(1000, 0, 5), 1));
    assert.equal(v.kind, 'fail');
    assert.match(v.kind === 'fail' ? v.reason : '', /error rate 20\.0 % over 10 canary calls \(2 failed\) exceeds max_error_rate 0.01/);
  });

  it('rolls back a canary slower than stable at p99, or in its first token, once both have min_calls', () => {
    const p = plan({ min_calls: 50 });
    assert.equal(judge(p, step(figures(40, 0, 100), figures(500, 0, 10), 1)).kind, 'wait', 'too few canary calls to judge latency');
    const slow = judge(p, step(figures(60, 0, 100), figures(500, 0, 10), 1));
    assert.equal(slow.kind, 'fail');
    assert.match(slow.kind === 'fail' ? slow.reason : '', /^p99 latency .* over max_p99_ratio 1.5$/);
    const ttft = judge(p, step(figures(60, 0, 10, 400), figures(500, 0, 10, 20), 1));
    assert.equal(ttft.kind, 'fail');
    assert.match(ttft.kind === 'fail' ? ttft.reason : '', /time to first token/);
    // Sub-millisecond noise is no regression: both count as the floor.
    assert.notEqual(judge(p, step(figures(60, 0, 1.5), figures(500, 0, 0.3), 1)).kind, 'fail');
  });
});

describe('step weights', () => {
  it('gives the canary its percent and the others the rest in their configured proportions', () => {
    const w = stepWeights(
      '3',
      10,
      new Map([
        ['1', 3],
        ['2', 1],
        ['3', 0],
      ]),
      '1',
    );
    assert.deepEqual(Object.fromEntries(w), { '1': 67.5, '2': 22.5, '3': 10 });
    // No other version has a weight: the default version takes the rest.
    assert.deepEqual(
      Object.fromEntries(
        stepWeights(
          '2',
          25,
          new Map([
            ['1', 0],
            ['2', 0],
          ]),
          '1',
        ),
      ),
      { '1': 75, '2': 25 },
    );
    assert.deepEqual(
      Object.fromEntries(
        stepWeights(
          '2',
          100,
          new Map([
            ['1', 5],
            ['2', 0],
          ]),
          '1',
        ),
      ),
      { '1': 0, '2': 100 },
    );
  });
});
