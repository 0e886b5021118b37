/**
 * The OpenAI API over HTTP, registered in one place: its model calls (chat, completions,
 * embeddings: calls.ts, served by model-calls.ts on node:http) and its read-only routes
 * (/v1/models, /v1/models/{id}, /v1/usage, served by Fastify).
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Gateway } from '../../../pipeline/gateway.js';
import type { Model } from '../../../routing/registry.js';
import type { UsageStore } from '../../../store/usage.js';
import type { Ledger } from '../../../tenancy/ledger.js';
import { ANONYMOUS } from '../../../tenancy/tenancy.js';
import { usageQuery } from '../admin/usage-query.js';
import type { ModelCalls } from '../model-calls.js';
import { openaiCalls } from './calls.js';
import { anthropicModel, anthropicModelList, wantsAnthropic } from '../anthropic/routes.js';

/** What the OpenAI API serves from: `usage` null leaves out `GET /v1/usage`; `ledger` (if any) is flushed before it answers. */
export interface OpenAIDeps {
  readonly gateway: Gateway;
  readonly log: Logger;
  readonly usage: UsageStore | null;
  readonly ledger: Ledger | null;
}

/** Registers every route of the OpenAI API: the model calls on `calls`, the rest on `app` under /v1. */
export function registerOpenAI(app: FastifyInstance, calls: ModelCalls, deps: OpenAIDeps): void {
  for (const [path, call] of Object.entries(openaiCalls(deps.gateway, deps.log))) calls.post(path, call);
  app.register(openaiRoutes(deps), { prefix: '/v1' });
}

/** The read-only routes as a Fastify plugin (under /v1), plus `GET /usage`, the caller's own usage, when `usage` is not null. */
function openaiRoutes({ gateway, usage, ledger }: OpenAIDeps) {
  return async function openai(app: FastifyInstance): Promise<void> {
    // Errors and 404s here take the server's own handlers, which answer in OpenAI's shape.
    // A tenant sees only the models it may use.
    // An Anthropic client (its SDKs send `anthropic-version`) gets Anthropic's shapes on the same paths.
    app.get('/models', async (request) => {
      const models = gateway.registry.models.filter((m) => gateway.visible(m, request));
      return wantsAnthropic(request) ? anthropicModelList(models) : { object: 'list', data: models.map(describeModel) };
    });

    // A wildcard, since model names may contain '/' (e.g. org/model).
    app.get<{ Params: { '*': string } }>('/models/*', async (request) => {
      const model = gateway.model(request.params['*'], request);
      return wantsAnthropic(request) ? anthropicModel(model) : describeModel(model);
    });

    // The caller's own usage: a tenant's, or the anonymous calls' without authentication.
    if (usage !== null) {
      app.get<{ Querystring: Record<string, string | undefined> }>('/usage', async (request) => {
        const { tenant: _ignored, ...params } = request.query;
        const query = usageQuery(params, request.principal?.tenant.id ?? ANONYMOUS);
        await ledger?.flush();
        return { object: 'usage', from: query.from, to: query.to, group_by: query.groupBy, data: await usage.aggregate(query) };
      });
    }
  };
}

/** OpenAI's model object, plus `context_length` (tokens) for models that report one, as OpenRouter and others do. */
function describeModel(model: Model): object {
  const contextLength = model.defaultVersion.backend.contextLength?.() ?? null;
  const base = { id: model.name, object: 'model', created: model.created, owned_by: model.ownedBy };
  return contextLength === null ? base : { ...base, context_length: contextLength };
}
