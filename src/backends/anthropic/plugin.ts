/** `kind: anthropic` as a plug-in: an upstream Anthropic Messages API server, or replicas of one, called over HTTP. */
import { backendPlugin, type BackendProblem } from '../plugin.js';
import { AnthropicBackend } from './anthropic-backend.js';
import { AnthropicBackendSchema, type AnthropicBackendConfig } from './config.js';

/** The anthropic kind: remote, so its versions get retries and a circuit breaker unless their policies say otherwise; chat only. */
export const anthropicPlugin = backendPlugin({
  kind: 'anthropic',
  schema: AnthropicBackendSchema,
  capabilities: { tasks: new Set(['chat']), remote: true, kservePlatform: 'anthropic', provider: 'anthropic' },
  files: [],
  check: problems,
  create: (config, context) => new AnthropicBackend(config, context.modelName),
});

/**
 * What the schema cannot say: exactly one of `base_url` and `endpoints`, and an API root without
 * /v1 (calls go to its /v1/messages, as the Anthropic SDK's do; one ending in /v1 would call /v1/v1/messages).
 */
function problems(config: AnthropicBackendConfig): BackendProblem[] {
  if ((config.base_url === undefined) === (config.endpoints === undefined)) {
    return [{ path: [], message: 'an anthropic backend needs exactly one of `base_url` and `endpoints`' }];
  }
  const roots = config.endpoints?.map((e, i) => ({ url: e.base_url, path: ['endpoints', i, 'base_url'] })) ?? [
    { url: config.base_url as string, path: ['base_url'] },
  ];
  return roots
    .filter((r) => /\/v1\/*$/.test(r.url))
    .map((r) => ({
      path: r.path,
      message: `must be the API root without /v1 (calls go to its /v1/messages), got "${r.url}"; e.g. https://api.anthropic.com`,
    }));
}
