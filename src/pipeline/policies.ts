/**
 * The policies of each model version, composed once when the config loads (and on reload, which
 * builds a new registry): the registry calls this factory for every version it makes. A call
 * meets them in this order:
 *
 *   admission (the bulkhead: wait for a slot by priority, or be shed; hold it while a stream flows)
 *   -> governor (circuit breaker, retries with back-off inside the worker's retry budget)
 *   -> observation (each attempt timed for the metrics and, when traced, given a backend span)
 *   -> the backend.
 *
 * A policy the version does not have is left out of its chain. The request's deadline spans the
 * model's fallbacks too, so it is not in a version's chain: the gateway runs the routed call
 * under it (policies/deadline.ts).
 */
import type { Logger } from 'pino';
import type { PoliciesConfig } from '../config/schema.js';
import type { ModelVersion, PolicyFactory } from '../routing/registry.js';
import { admit } from '../policies/admission.js';
import { Governor, govern } from '../policies/governor.js';
import { observe } from '../policies/observation.js';
import type { RetryBudget } from '../policies/retry-budget.js';
import { Admission } from '../scheduling/admission.js';
import { compose } from './compose.js';
import { pluginOf } from '../backends/index.js';

/** The factory the registry takes: every version's governor shares the worker's retry budget and logs breaker changes to `log`. */
export function versionPolicies(budget: RetryBudget, log: Logger): PolicyFactory {
  return function policiesOf(spec) {
    const { model, version, kind, observer } = spec;
    const capabilities = pluginOf(kind)?.capabilities;
    const governor = Governor.create(spec.policies, kind, budget, log, `${model}@${version}`, observer);
    const admission = admissionOf(spec.policies);
    return {
      governor,
      admission,
      wrap: compose<ModelVersion>(
        admission === null ? null : admit(admission, { model, version, observer }),
        governor === null ? null : govern(governor),
        observe({ model, version, kind, remote: capabilities?.remote === true, provider: capabilities?.provider ?? null, observer }),
      ),
    };
  };
}

/** A version's bulkhead, or null when its concurrency is not capped (`max_concurrent: 0`). */
function admissionOf(policies: PoliciesConfig): Admission | null {
  const a = policies.admission;
  return a.max_concurrent === 0 ? null : new Admission({ maxConcurrent: a.max_concurrent, queueSize: a.queue_size, slaMs: a.sla_ms });
}
