/** `kind: mock` as a plug-in: fixed answers (and, with `tensor`, zero tensors), for tests and benchmarks. */
import { backendPlugin, type BackendProblem } from '../plugin.js';
import { MockBackendSchema, type MockBackendConfig } from './config.js';
import { MockBackend } from './mock-backend.js';

/** The mock kind; it serves `tensor` only where its config has a `tensor` signature. */
export const mockPlugin = backendPlugin({
  kind: 'mock',
  schema: MockBackendSchema,
  capabilities: { tasks: new Set(['chat', 'completion', 'embedding', 'tensor']), remote: false, kservePlatform: 'mock', provider: null },
  files: [],
  check: tensorProblems,
  create: (config) => new MockBackend(config),
});

/** A `tensor` signature's rules the schema cannot state: names unique, and an output's -1 (the batch) first only. */
function tensorProblems(config: MockBackendConfig): BackendProblem[] {
  const problems: BackendProblem[] = [];
  const tensor = config.tensor;
  if (tensor === undefined) return problems;
  for (const side of ['inputs', 'outputs'] as const) {
    const seen = new Set<string>();
    tensor[side].forEach((spec, i) => {
      if (seen.has(spec.name)) problems.push({ path: ['tensor', side, i, 'name'], message: `"${spec.name}" appears twice` });
      seen.add(spec.name);
      if (side === 'outputs' && spec.shape.some((d, k) => d < 0 && k > 0)) {
        problems.push({ path: ['tensor', side, i, 'shape'], message: 'only the first dimension of an output may be -1 (the batch size)' });
      }
    });
  }
  return problems;
}
