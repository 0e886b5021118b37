/** Maps error codes to gRPC status codes, once; exhaustive over the catalogue, like the HTTP bodies. */
import type { ApiError, ErrorCode } from '../../core/errors.js';
import { Status, type MetadataList } from './transport.js';

/** The gRPC status each error code is answered with. */
export const GRPC_STATUS = {
  invalid_request: Status.INVALID_ARGUMENT,
  invalid_api_key: Status.UNAUTHENTICATED,
  permission_denied: Status.PERMISSION_DENIED,
  rate_limited: Status.RESOURCE_EXHAUSTED,
  insufficient_quota: Status.RESOURCE_EXHAUSTED,
  invalid_json: Status.INVALID_ARGUMENT,
  body_too_large: Status.RESOURCE_EXHAUSTED,
  request_timeout: Status.DEADLINE_EXCEEDED,
  headers_too_large: Status.RESOURCE_EXHAUSTED,
  invalid_config: Status.INVALID_ARGUMENT,
  not_found: Status.UNIMPLEMENTED,
  model_not_found: Status.NOT_FOUND,
  version_not_found: Status.NOT_FOUND,
  unsupported_operation: Status.INVALID_ARGUMENT,
  context_length_exceeded: Status.INVALID_ARGUMENT,
  model_not_ready: Status.UNAVAILABLE,
  overloaded: Status.UNAVAILABLE,
  upstream_error: Status.UNAVAILABLE,
  upstream_unavailable: Status.UNAVAILABLE,
  upstream_timeout: Status.DEADLINE_EXCEEDED,
  upstream_rate_limited: Status.RESOURCE_EXHAUSTED,
  circuit_open: Status.UNAVAILABLE,
  fleet_unavailable: Status.UNAVAILABLE,
  client_closed_request: Status.CANCELLED,
  internal_error: Status.INTERNAL,
} as const satisfies Record<ErrorCode, Status>;

/** A gRPC error's parts: status, message (with the field path when there is one), and trailers. */
export interface GrpcError {
  readonly code: Status;
  readonly details: string;
  readonly metadata: MetadataList;
}

/**
 * An ApiError as a gRPC error: its status, its message, and trailers carrying the stable code, the
 * request id and, for 429 and 503, `retry-after` in seconds.
 */
export function grpcError(e: ApiError, requestId: string): GrpcError {
  const metadata = ['x-error-code', e.code, 'x-request-id', requestId];
  if (e.param !== null) metadata.push('x-error-param', e.param);
  if (e.retryAfterS !== null) metadata.push('retry-after', String(e.retryAfterS));
  return { code: GRPC_STATUS[e.code as ErrorCode], details: e.message, metadata };
}
