/** `kind: llama` as a plug-in: chat and completions from a GGUF model run in process by node-llama-cpp. */
import { backendPlugin } from '../plugin.js';
import { LlamaBackendSchema } from './config.js';
import { LlamaBackend } from './llama-backend.js';

/** The llama kind. */
export const llamaPlugin = backendPlugin({
  kind: 'llama',
  schema: LlamaBackendSchema,
  capabilities: { tasks: new Set(['chat', 'completion']), remote: false, kservePlatform: 'llama', provider: null },
  files: ['path'],
  create: (config, context) => new LlamaBackend(config, context.workers, context.onGeneration, context.observer),
});
