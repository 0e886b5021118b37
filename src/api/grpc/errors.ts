/** Maps error codes to gRPC status codes, once; exhaustive over the catalogue, like the HTTP bodies. */
import { Metadata, status, type ServerErrorResponse } from '@grpc/grpc-js';
import type { ApiError, ErrorCode } from '../../core/errors.js';

export const GRPC_STATUS = {
  invalid_request: status.INVALID_ARGUMENT,
  invalid_api_key: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  rate_limited: status.RESOURCE_EXHAUSTED,
  insufficient_quota: status.RESOURCE_EXHAUSTED,
  invalid_json: status.INVALID_ARGUMENT,
  body_too_large: status.RESOURCE_EXHAUSTED,
  not_found: status.UNIMPLEMENTED,
  model_not_found: status.NOT_FOUND,
  version_not_found: status.NOT_FOUND,
  unsupported_operation: status.INVALID_ARGUMENT,
  context_length_exceeded: status.INVALID_ARGUMENT,
  model_not_ready: status.UNAVAILABLE,
  overloaded: status.UNAVAILABLE,
  upstream_error: status.UNAVAILABLE,
  upstream_unavailable: status.UNAVAILABLE,
  upstream_timeout: status.DEADLINE_EXCEEDED,
  upstream_rate_limited: status.RESOURCE_EXHAUSTED,
  circuit_open: status.UNAVAILABLE,
  internal_error: status.INTERNAL,
} as const satisfies Record<ErrorCode, status>;

/**
 * An ApiError as a gRPC error: its status, its message (with the field path when there is one), and
 * trailers carrying the stable code, the request id and, for 429 and 503, `retry-after` in seconds.
 */
export function grpcError(e: ApiError, requestId: string): Partial<ServerErrorResponse> {
  const metadata = new Metadata();
  metadata.set('x-error-code', e.code);
  metadata.set('x-request-id', requestId);
  if (e.param !== null) metadata.set('x-error-param', e.param);
  if (e.retryAfterS !== null) metadata.set('retry-after', String(e.retryAfterS));
  return { code: GRPC_STATUS[e.code as ErrorCode], details: e.message, metadata };
}
