/** `kind: anthropic` as a plug-in: an upstream Anthropic Messages API server, or replicas of one, called over HTTP. */
import { backendPlugin, type BackendProblem } from '../plugin.js';
import { placementProblems } from '../remote-config.js';
import { AnthropicBackend } from './anthropic-backend.js';
import { AnthropicBackendSchema, type AnthropicBackendConfig } from './config.js';

/** The anthropic kind: remote, so its versions get retries and a circuit breaker unless their policies say otherwise; chat only. */
export const anthropicPlugin = backendPlugin({
  kind: 'anthropic',
  schema: AnthropicBackendSchema,
  capabilities: { tasks: new Set(['chat']), remote: true, kservePlatform: 'anthropic', provider: 'anthropic' },
  files: [],
  check: problems,
  create: (config, context) => new AnthropicBackend(config, context),
});

/**
 * What the schema cannot say: exactly one of `base_url`, `endpoints` and `discovery` (and the
 * rules of `discovery`), and an API root without /v1 (calls go to its /v1/messages, as the
 * Anthropic SDK's do; one ending in /v1 would call /v1/v1/messages), a discovered one's `path` included.
 */
function problems(config: AnthropicBackendConfig): BackendProblem[] {
  const placement = placementProblems(config, 'anthropic');
  if (placement.length > 0) return placement;
  return roots(config)
    .filter((r) => /\/v1\/*$/.test(r.url))
    .map((r) => ({
      path: r.path,
      message:
        r.path[0] === 'discovery'
          ? `must not end in /v1 (calls go to each instance's /v1/messages), got "${r.url}"; '' for instances at the API root`
          : `must be the API root without /v1 (calls go to its /v1/messages), got "${r.url}"; e.g. https://api.anthropic.com`,
    }));
}

/** The API roots a config gives, with their paths: its `base_url`, each of `endpoints`, or the `path` discovery appends. */
function roots(config: AnthropicBackendConfig): Array<{ url: string; path: Array<string | number> }> {
  const { dns, registry } = config.discovery ?? {};
  if (dns !== undefined) return [{ url: dns.path, path: ['discovery', 'dns', 'path'] }];
  if (registry !== undefined) return [{ url: registry.path, path: ['discovery', 'registry', 'path'] }];
  if (config.endpoints !== undefined) return config.endpoints.map((e, i) => ({ url: e.base_url, path: ['endpoints', i, 'base_url'] }));
  return [{ url: config.base_url as string, path: ['base_url'] }];
}
