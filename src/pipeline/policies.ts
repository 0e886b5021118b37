/**
 * The policies of each model version, composed once when the config loads (and on reload): the
 * governor (retries with back-off inside the worker's retry budget, and a circuit breaker) built
 * from the version's `policies`. The registry calls this for every version it makes.
 */
import type { Logger } from 'pino';
import type { PolicyFactory } from '../routing/registry.js';
import { Governor } from '../policies/governor.js';
import type { RetryBudget } from '../policies/retry-budget.js';

/** The factory the registry takes: every version's governor shares the worker's retry budget and logs breaker changes to `log`. */
export function versionPolicies(budget: RetryBudget, log: Logger): PolicyFactory {
  return function governorOf(policies, kind, name, observer) {
    return Governor.create(policies, kind, budget, log, name, observer);
  };
}
