/**
 * The rules of a rollout plan its schema cannot say: the canary is a version of the model, and its
 * steps rise. Checked where a plan comes from: the config file (`rollout:` of a model) and
 * POST /admin/models/{name}/rollouts, with the same messages.
 */
import type { RolloutPlan } from './schema.js';

/** A broken rule: the path below the plan, and why. */
export interface PlanProblem {
  readonly path: ReadonlyArray<string | number>;
  readonly message: string;
}

/** What is wrong with `plan` for a model whose versions are `versions` (empty: nothing). */
export function rolloutPlanProblems(plan: RolloutPlan, versions: readonly string[]): PlanProblem[] {
  const problems: PlanProblem[] = [];
  if (!versions.includes(plan.version)) {
    problems.push({ path: ['version'], message: `"${plan.version.slice(0, 80)}" is not one of the versions (${versions.join(', ')})` });
  } else if (versions.length < 2) {
    problems.push({ path: ['version'], message: 'a rollout needs another version to compare the canary with; the model has one' });
  }
  plan.steps.forEach((step, i) => {
    const before = plan.steps[i - 1];
    if (before !== undefined && step <= before) {
      problems.push({ path: ['steps', i], message: `steps must rise: ${step} follows ${before}` });
    }
  });
  return problems;
}
