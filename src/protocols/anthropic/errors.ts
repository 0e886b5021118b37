/**
 * The Anthropic API's error shape: each catalogue code's `error.type`, the status infergate
 * answers with on Anthropic routes, and the error body. Statuses are the catalogue's, except
 * `overloaded`, which answers 529 `overloaded_error` as Anthropic does (its SDKs retry it).
 */
import type { ApiError, ErrorCode } from '../../core/errors.js';

/** Anthropic's `error.type` values. */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'overloaded_error'
  | 'timeout_error';

/** The Anthropic `error.type` of each code. */
export const ANTHROPIC_ERROR_TYPES = {
  invalid_request: 'invalid_request_error',
  invalid_api_key: 'authentication_error',
  permission_denied: 'permission_error',
  rate_limited: 'rate_limit_error',
  insufficient_quota: 'rate_limit_error',
  invalid_json: 'invalid_request_error',
  invalid_config: 'invalid_request_error',
  body_too_large: 'request_too_large',
  request_timeout: 'timeout_error',
  headers_too_large: 'invalid_request_error',
  not_found: 'not_found_error',
  model_not_found: 'not_found_error',
  version_not_found: 'not_found_error',
  unsupported_operation: 'invalid_request_error',
  context_length_exceeded: 'invalid_request_error',
  model_not_ready: 'overloaded_error',
  overloaded: 'overloaded_error',
  upstream_error: 'api_error',
  upstream_unavailable: 'api_error',
  upstream_timeout: 'timeout_error',
  upstream_rate_limited: 'rate_limit_error',
  circuit_open: 'overloaded_error',
  fleet_unavailable: 'api_error',
  client_closed_request: 'invalid_request_error',
  internal_error: 'api_error',
} as const satisfies Record<ErrorCode, AnthropicErrorType>;

/** Anthropic's own status for an overloaded server. */
export const OVERLOADED_STATUS = 529;

/** The HTTP status of `error` on an Anthropic route. */
export function anthropicStatus(error: ApiError): number {
  return error.code === 'overloaded' ? OVERLOADED_STATUS : error.status;
}

/** The `error` object: Anthropic's type and message, plus infergate's stable `code` and the field (`param`) where one is at fault. */
export function anthropicError(error: ApiError): { type: AnthropicErrorType; message: string; code: ErrorCode; param?: string } {
  const e = { type: ANTHROPIC_ERROR_TYPES[error.code], message: error.message, code: error.code };
  return error.param === null ? e : { ...e, param: error.param };
}

/** `{"type": "error", "error": {"type", "message"}}`, as the Anthropic API answers (and as the stream's `error` event's data). */
export function anthropicErrorBody(error: ApiError): string {
  return JSON.stringify({ type: 'error', error: anthropicError(error) });
}
