/**
 * Maps errors to each HTTP protocol's error body, once. The table is exhaustive over the
 * catalogue (the compiler catches a missing row); anything outside the catalogue becomes a
 * 500 `internal_error` naming the request id, with its cause logged and never sent.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isClientGone } from '../../core/call.js';
import { ApiError, fastError } from '../../core/errors.js';
import { toApiError as anyToApiError, type RequestInfo } from '../errors.js';
import { withRateLimit } from './rate-limit.js';
import { openaiErrorBody } from '../../protocols/openai/errors.js';
import { anthropicErrorBody, anthropicStatus } from '../../protocols/anthropic/errors.js';

/**
 * Turns anything thrown on an HTTP request path into an ApiError: Fastify's own errors first (its
 * body limit, its 4xx errors and JSON syntax errors are the client's), then as every transport does.
 */
export function toApiError(error: unknown, request: RequestInfo, log: Logger): ApiError {
  const e = error as FastifyError;
  if (!(error instanceof ApiError) && !isClientGone(error)) {
    // Fastify's own limit on the bodies it reads (the admin API's, set to server.body_limit_bytes).
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return fastError('body_too_large', 'the body is larger than the limit (server.body_limit_bytes)');
    if (e instanceof SyntaxError || (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500))
      return new ApiError('invalid_request', e.message);
  }
  return anyToApiError(error, request, log);
}

/** The 404 for a path (and method) no route serves. */
export function routeNotFound(request: { method: string; url: string }): ApiError {
  return fastError('not_found', `no endpoint ${request.method} ${request.url.split('?')[0]}`);
}

/** `{"error": "..."}`, as the Open Inference Protocol answers (plus our stable `code`). */
export function kserveErrorBody(error: ApiError): string {
  return JSON.stringify({ error: error.message, code: error.code });
}

/** The headers of an error response besides content type and request id. */
export function errorHeaders(error: ApiError): Record<string, string> {
  const headers = error.rateLimit === null ? {} : withRateLimit(error.rateLimit, null, null);
  if (error.retryAfterS !== null) headers['retry-after'] = String(error.retryAfterS);
  if (error.code === 'invalid_api_key') headers['www-authenticate'] = 'Bearer';
  return headers;
}

/** Sends the error as an OpenAI error body, with its status, headers and the request id. */
export function sendOpenAIError(error: ApiError, request: FastifyRequest, reply: FastifyReply): void {
  sendError(error, request, reply, openaiErrorBody(error));
}

/** Sends the error as an Open Inference Protocol error body, with its status, headers and the request id. */
export function sendKServeError(error: ApiError, request: FastifyRequest, reply: FastifyReply): void {
  sendError(error, request, reply, kserveErrorBody(error));
}

/** Sends the error as an Anthropic error body (`{"type": "error", "error": {...}}`), with Anthropic's status for it. */
export function sendAnthropicError(error: ApiError, request: FastifyRequest, reply: FastifyReply): void {
  sendError(error, request, reply, anthropicErrorBody(error), anthropicStatus(error));
}

/** Whether a request speaks the Anthropic API: a path of its own, or any /v1 path with `anthropic-version`. */
export function isAnthropicRequest(request: { readonly url: string; readonly headers: Readonly<Record<string, unknown>> }): boolean {
  return request.url.startsWith('/v1/messages') || (request.url.startsWith('/v1/') && request.headers['anthropic-version'] !== undefined);
}

function sendError(error: ApiError, request: FastifyRequest, reply: FastifyReply, body: string, status = error.status): void {
  reply.code(status).headers(errorHeaders(error)).header('x-request-id', request.id).type('application/json').send(body);
}
