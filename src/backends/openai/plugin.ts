/** `kind: openai` as a plug-in: an upstream OpenAI-compatible server, or replicas of one, called over HTTP. */
import { backendPlugin } from '../plugin.js';
import { placementProblems } from '../remote-config.js';
import { OpenAIBackendSchema } from './config.js';
import { OpenAIBackend } from './openai-backend.js';

/** The openai kind: remote, so its versions get retries and a circuit breaker unless their policies say otherwise. */
export const openaiPlugin = backendPlugin({
  kind: 'openai',
  schema: OpenAIBackendSchema,
  capabilities: { tasks: new Set(['chat', 'completion', 'embedding']), remote: true, kservePlatform: 'openai', provider: 'openai' },
  files: [],
  // A schema cannot say "exactly one of three optional options" in words a user reads, so it is checked here.
  check: (config) => placementProblems(config, 'openai'),
  create: (config, context) => new OpenAIBackend(config, context),
});
