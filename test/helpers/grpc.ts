/** Client constructors of infergate's gRPC services, loaded from proto/ the way a stock client loads them. */
import { join } from 'node:path';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import { ROOT } from './server.js';

export interface GrpcServices {
  /** KServe v2's `inference.GRPCInferenceService`. */
  readonly Inference: ServiceClientConstructor;
  /** infergate's `infergate.v1.Generate` (Chat, Embed). */
  readonly Generate: ServiceClientConstructor;
}

/** proto-loader `options` on top of keepCase and longs as String (add defaults, enums, oneofs as a test reads them). */
export function grpcServices(options: Options = {}): GrpcServices {
  const packages = loadPackageDefinition(
    loadSync(['kserve/grpc_predict_v2.proto', 'infergate/v1/generate.proto'], {
      keepCase: true,
      longs: String,
      ...options,
      includeDirs: [join(ROOT, 'proto')],
    }),
  );
  return {
    Inference: (packages.inference as GrpcObject).GRPCInferenceService as ServiceClientConstructor,
    Generate: ((packages.infergate as GrpcObject).v1 as GrpcObject).Generate as ServiceClientConstructor,
  };
}
