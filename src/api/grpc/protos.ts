/** The .proto files under proto/, loaded once: KServe v2's GRPCInferenceService and infergate's Generate service. */
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/** The folder of .proto files shipped with the package (clients load the same files). */
export const PROTO_DIR = fileURLToPath(new URL('../../../../proto/', import.meta.url));
/** The services' .proto files, relative to PROTO_DIR. */
export const PROTO_FILES = ['kserve/grpc_predict_v2.proto', 'infergate/v1/generate.proto'];

/**
 * How messages map to JS: field names as written; 64-bit integers as strings (INT64 tensor elements
 * keep their precision); bytes as Buffers; no defaults filled in, so an unset optional field is
 * undefined (unset `temperature` is the model's default, not 0).
 */
export const LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

/** Reads and parses PROTO_FILES with LOADER_OPTIONS (synchronously, from disk, on every call). */
export function loadProtos(): PackageDefinition {
  return loadSync(PROTO_FILES, LOADER_OPTIONS);
}
