/**
 * The Open Inference Protocol (KServe v2) over HTTP, as Triton and KServe serve it: server and
 * model health and metadata. Infer is in infer.ts, served by model-calls.ts.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Gateway } from '../../../core/gateway.js';
import type { ModelVersion } from '../../../routing/registry.js';
import type { Principal } from '../../../tenancy/directory.js';
import { routeNotFound, sendKServeError, toApiError } from '../errors.js';

interface ModelParams {
  name: string;
  version?: string;
}

export function kserveRoutes(gateway: Gateway, log: Logger, serverVersion: string) {
  return async function kserve(app: FastifyInstance): Promise<void> {
    app.setErrorHandler((error, request, reply) => sendKServeError(toApiError(error, request, log), request, reply));
    app.setNotFoundHandler((request, reply) => sendKServeError(routeNotFound(request), request, reply));

    app.get('', async () => ({ name: 'infergate', version: serverVersion, extensions: [] }));
    app.get('/health/live', async () => ({ live: true }));
    app.get('/health/ready', async (_req, reply) => {
      const ready = gateway.registry.ready();
      return reply.code(ready ? 200 : 503).send({ ready });
    });

    for (const base of ['/models/:name', '/models/:name/versions/:version']) {
      app.get<{ Params: ModelParams }>(base, async (request) => metadata(gateway, request.params, request));
      app.get<{ Params: ModelParams }>(`${base}/ready`, async (request, reply) => {
        const { model, version } = gateway.resolve(request.params.name, request.params.version, request);
        const ready = request.params.version === undefined ? model.ready() : version.backend.health().ready;
        return reply.code(ready ? 200 : 503).send({ name: model.name, ready });
      });
    }
  };
}

function metadata(gateway: Gateway, params: ModelParams, caller: { readonly principal: Principal | null }): object {
  const { model, version } = gateway.resolve(params.name, params.version, caller);
  const signature = gateway.signature(version);
  return {
    name: model.name,
    versions: [...model.versions.keys()],
    platform: platformOf(version),
    inputs: signature.inputs,
    outputs: signature.outputs,
  };
}

function platformOf(version: ModelVersion): string {
  return version.backend.kind === 'onnx' ? 'onnxruntime_onnx' : version.backend.kind;
}
