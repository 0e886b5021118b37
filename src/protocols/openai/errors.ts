/** The OpenAI API's error shape: each catalogue code's `error.type`, and the error body. */
import type { ApiError, ErrorCode } from '../../core/errors.js';

type OpenAIErrorType = 'invalid_request_error' | 'authentication_error' | 'permission_error' | 'rate_limit_error' | 'server_error';

/** The OpenAI `error.type` of each code. */
export const OPENAI_ERROR_TYPES = {
  invalid_request: 'invalid_request_error',
  invalid_api_key: 'authentication_error',
  permission_denied: 'permission_error',
  rate_limited: 'rate_limit_error',
  insufficient_quota: 'rate_limit_error',
  invalid_json: 'invalid_request_error',
  invalid_config: 'invalid_request_error',
  body_too_large: 'invalid_request_error',
  request_timeout: 'invalid_request_error',
  headers_too_large: 'invalid_request_error',
  not_found: 'invalid_request_error',
  model_not_found: 'invalid_request_error',
  version_not_found: 'invalid_request_error',
  unsupported_operation: 'invalid_request_error',
  context_length_exceeded: 'invalid_request_error',
  model_not_ready: 'server_error',
  overloaded: 'server_error',
  upstream_error: 'server_error',
  upstream_unavailable: 'server_error',
  upstream_timeout: 'server_error',
  upstream_rate_limited: 'rate_limit_error',
  circuit_open: 'server_error',
  fleet_unavailable: 'server_error',
  client_closed_request: 'invalid_request_error',
  internal_error: 'server_error',
} as const satisfies Record<ErrorCode, OpenAIErrorType>;

/** `{"error": {"message", "type", "param", "code"}}`, as the OpenAI API answers. */
export function openaiErrorBody(error: ApiError): string {
  return JSON.stringify({ error: { message: error.message, type: OPENAI_ERROR_TYPES[error.code], param: error.param, code: error.code } });
}
