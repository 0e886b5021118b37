/**
 * The Responses API over HTTP, registered in one place: its model call (POST /v1/responses:
 * calls.ts, served by model-calls.ts on node:http) and its routes over stored Responses (GET and
 * DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items, served by Fastify). A Response
 * is its tenant's: any other caller gets the 404 of one that does not exist.
 */
import type { FastifyInstance } from 'fastify';
import { fastError } from '../../../core/errors.js';
import type { Item } from '../../../protocols/responses/request.js';
import type { ModelCalls } from '../model-calls.js';
import { ownerOf, responseNotFound, responsesCalls, type ResponsesDeps } from './calls.js';

/** Registers every route of the Responses API: the model call on `calls`, the rest on `app` under /v1. */
export function registerResponses(app: FastifyInstance, calls: ModelCalls, deps: ResponsesDeps): void {
  for (const [path, call] of Object.entries(responsesCalls(deps))) calls.post(path, call);
  app.register(storedRoutes(deps), { prefix: '/v1' });
}

type ById = { Params: { id: string } };

/** The routes over stored Responses, as a Fastify plugin (under /v1); errors take the server's OpenAI-shaped handlers. */
function storedRoutes({ store }: ResponsesDeps) {
  return async function responses(app: FastifyInstance): Promise<void> {
    app.get<ById>('/responses/:id', async (request) => {
      const stored = store === null ? null : await store.get(request.params.id, ownerOf(request));
      return stored === null ? responseNotFound(request.params.id) : stored.response;
    });

    app.delete<ById>('/responses/:id', async (request) => {
      const id = request.params.id;
      if (store === null || !(await store.delete(id, ownerOf(request)))) responseNotFound(id);
      return { id, object: 'response.deleted', deleted: true };
    });

    app.get<ById & { Querystring: Record<string, string | undefined> }>('/responses/:id/input_items', async (request) => {
      const stored = store === null ? null : await store.get(request.params.id, ownerOf(request));
      if (stored === null) return responseNotFound(request.params.id);
      return itemList(stored.input, request.query);
    });
  };
}

/**
 * A page of input items, as OpenAI lists them: `order` desc (newest first, the default) or asc,
 * `limit` 1 to 100 (20), `after` the id of the item the page starts after.
 */
function itemList(items: readonly Item[], query: Record<string, string | undefined>): object {
  const order = query.order ?? 'desc';
  if (order !== 'asc' && order !== 'desc')
    throw fastError('invalid_request', `\`order\` must be asc or desc, got ${JSON.stringify(order)}`, 'order');
  const limit = query.limit === undefined ? 20 : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw fastError('invalid_request', `\`limit\` must be an integer in [1, 100], got ${JSON.stringify(query.limit)}`, 'limit');
  }
  const ordered = order === 'asc' ? items : [...items].reverse();
  let start = 0;
  if (query.after !== undefined) {
    const at = ordered.findIndex((item) => item.id === query.after);
    if (at === -1) throw fastError('invalid_request', `\`after\` names no item of this response: ${JSON.stringify(query.after)}`, 'after');
    start = at + 1;
  }
  const data = ordered.slice(start, start + limit).map(listed);
  return {
    object: 'list',
    data,
    first_id: data[0]?.id ?? null,
    last_id: data[data.length - 1]?.id ?? null,
    has_more: start + limit < ordered.length,
  };
}

/** An item as OpenAI lists it: with its status, and an assistant message's parts with their annotations. */
function listed(item: Item): Item & { readonly status: 'completed' } {
  if (item.type !== 'message' || item.role !== 'assistant') return { ...item, status: 'completed' };
  return { ...item, content: item.content.map((part) => ({ ...part, annotations: [] })), status: 'completed' };
}
