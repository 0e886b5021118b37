/**
 * The OpenAI API's read-only routes: /v1/models and /v1/models/{id}. The model calls (chat,
 * completions, embeddings) are in calls.ts, served by model-calls.ts.
 */
import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../../../core/gateway.js';
import type { Model } from '../../../routing/registry.js';

export function openaiRoutes(gateway: Gateway) {
  return async function openai(app: FastifyInstance): Promise<void> {
    // Errors and 404s here take the server's own handlers, which answer in OpenAI's shape.
    app.get('/models', async () => ({ object: 'list', data: gateway.registry.models.map(describeModel) }));

    // A wildcard, since model names may contain '/' (e.g. org/model).
    app.get<{ Params: { '*': string } }>('/models/*', async (request) => describeModel(gateway.registry.get(request.params['*'])));
  };
}

/** OpenAI's model object, plus `context_length` (tokens) for models that report one, as OpenRouter and others do. */
function describeModel(model: Model): object {
  const contextLength = model.defaultVersion.backend.contextLength?.() ?? null;
  const base = { id: model.name, object: 'model', created: model.created, owned_by: model.ownedBy };
  return contextLength === null ? base : { ...base, context_length: contextLength };
}
