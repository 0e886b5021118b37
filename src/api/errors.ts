/**
 * What any transport does with an error thrown on its request path, before it writes the error in
 * its own protocol's shape: an ApiError stays as it is, a client that left becomes
 * `client_closed_request`, and anything else is a 500 `internal_error` that names the request id,
 * its cause logged here and never sent. Each transport may first map errors of its own framework
 * (HTTP: Fastify's body limit and 4xx errors, `http/errors.ts`).
 */
import type { Logger } from 'pino';
import { isClientGone } from '../core/call.js';
import { ApiError, clientClosedError, pointerToPath } from '../core/errors.js';

/** What error handling needs to know of a request, whichever server parsed it. */
export interface RequestInfo {
  readonly id: string;
  readonly method?: string;
  readonly url?: string;
}

/** Turns anything thrown on the request path into an ApiError; unknown errors are logged here. */
export function toApiError(error: unknown, request: RequestInfo, log: Logger): ApiError {
  if (error instanceof ApiError) return error;
  // Nobody is left to read an answer; not a failure worth a log line.
  if (isClientGone(error)) return clientClosedError();
  log.error({ err: error, reqId: request.id, method: request.method, url: request.url }, 'internal error');
  return new ApiError('internal_error', `internal error; request id ${request.id}`);
}

/** The parts of an Ajv error that validationError reads; `parentSchema` and `data` are there only with Ajv's `verbose: true`. */
export interface AjvError {
  readonly instancePath: string;
  readonly keyword: string;
  readonly message?: string;
  readonly params?: Record<string, unknown>;
  readonly parentSchema?: { description?: string };
  readonly data?: unknown;
}

/** The first failure, worded for people: a union names its accepted forms (from the schema's description). */
export function validationError(errors: readonly AjvError[]): ApiError {
  const v = errors.find((e) => e.keyword === 'anyOf') ?? (errors[0] as AjvError);
  let path = pointerToPath(v.instancePath);
  let message = `${v.message ?? 'is invalid'}`;
  if (v.keyword === 'anyOf') message = `must be ${v.parentSchema?.description ?? 'one of the accepted forms'}`;
  else if (
    v.keyword === 'type' ||
    v.keyword === 'minimum' ||
    v.keyword === 'maximum' ||
    v.keyword === 'minLength' ||
    v.keyword === 'minItems'
  ) {
    message = `${message}, got ${preview(v.data)}`;
  }
  const params = v.params ?? {};
  if (typeof params.missingProperty === 'string') {
    path = path === '' ? params.missingProperty : `${path}.${params.missingProperty}`;
    message = 'is required';
  } else if (Array.isArray(params.allowedValues)) {
    message = `must be one of ${params.allowedValues.join(', ')}`;
  }
  return new ApiError('invalid_request', `${path === '' ? 'body' : `\`${path}\``} ${message}`, path === '' ? null : path);
}

/** A short, safe rendering of a value for an error message (never serialises a whole structure). */
export function preview(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length} item(s)`;
  if (value !== null && typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
