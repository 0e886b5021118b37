/** `kind: mock` as a plug-in: fixed answers, for tests and benchmarks. */
import { backendPlugin } from '../plugin.js';
import { MockBackendSchema } from './config.js';
import { MockBackend } from './mock-backend.js';

/** The mock kind. */
export const mockPlugin = backendPlugin({
  kind: 'mock',
  schema: MockBackendSchema,
  capabilities: { tasks: new Set(['chat', 'completion', 'embedding']), remote: false, kservePlatform: 'mock', provider: null },
  files: [],
  create: (config) => new MockBackend(config),
});
