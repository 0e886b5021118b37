/**
 * The OpenAI API's read-only routes: /v1/models and /v1/models/{id}. The model calls (chat,
 * completions, embeddings) are in calls.ts, served by model-calls.ts.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Gateway } from '../../../core/gateway.js';
import type { Model } from '../../../routing/registry.js';
import { routeNotFound, sendOpenAIError, toApiError } from '../errors.js';

export function openaiRoutes(gateway: Gateway, log: Logger) {
  return async function openai(app: FastifyInstance): Promise<void> {
    app.setErrorHandler((error, request, reply) => sendOpenAIError(toApiError(error, request, log), request, reply));
    app.setNotFoundHandler((request, reply) => sendOpenAIError(routeNotFound(request), request, reply));

    app.get('/models', async () => ({ object: 'list', data: gateway.registry.models.map(describeModel) }));

    // A wildcard, since model names may contain '/' (e.g. org/model).
    app.get<{ Params: { '*': string } }>('/models/*', async (request) => describeModel(gateway.registry.get(request.params['*'])));
  };
}

function describeModel(model: Model): object {
  return { id: model.name, object: 'model', created: model.created, owned_by: model.ownedBy };
}
