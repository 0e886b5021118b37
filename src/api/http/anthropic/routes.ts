/**
 * The Anthropic Messages API over HTTP: its model calls (Messages, count_tokens: calls.ts, served
 * by model-calls.ts on node:http), and the model objects GET /v1/models answers an Anthropic
 * client with (the route itself is the OpenAI API's: one path, two shapes, told apart by the
 * `anthropic-version` header every Anthropic SDK sends).
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Gateway } from '../../../pipeline/gateway.js';
import type { Model } from '../../../routing/registry.js';
import type { ModelCalls } from '../model-calls.js';
import { anthropicCalls } from './calls.js';

/** What the Anthropic API serves from. */
export interface AnthropicDeps {
  readonly gateway: Gateway;
  readonly log: Logger;
}

/** Registers the Anthropic model calls on `calls`; its read-only routes are the OpenAI API's (see {@link anthropicModel}). */
export function registerAnthropic(_app: FastifyInstance, calls: ModelCalls, deps: AnthropicDeps): void {
  for (const [path, call] of Object.entries(anthropicCalls(deps.gateway, deps.log))) calls.post(path, call);
}

/** Whether a read-only request comes from an Anthropic client (its SDKs send `anthropic-version` with every request). */
export function wantsAnthropic(request: { readonly headers: Readonly<Record<string, unknown>> }): boolean {
  return request.headers['anthropic-version'] !== undefined;
}

/** Anthropic's model object: `created_at` is when the model was loaded, as RFC 3339; `max_input_tokens` where the model reports its context. */
export function anthropicModel(model: Model): object {
  const base = {
    type: 'model',
    id: model.name,
    display_name: model.name,
    created_at: new Date(model.created * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  const contextLength = model.defaultVersion.backend.contextLength?.() ?? null;
  return contextLength === null ? base : { ...base, max_input_tokens: contextLength };
}

/** Anthropic's list of models: every one in one page. */
export function anthropicModelList(models: readonly Model[]): object {
  const data = models.map(anthropicModel);
  const first = models[0];
  const last = models[models.length - 1];
  return { data, has_more: false, first_id: first === undefined ? null : first.name, last_id: last === undefined ? null : last.name };
}
