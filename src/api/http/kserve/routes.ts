/**
 * The Open Inference Protocol (KServe v2) over HTTP, as Triton and KServe serve it, registered in
 * one place: infer (infer.ts, served by model-calls.ts on node:http), and server and model health
 * and metadata (served by Fastify). Readiness and metadata answer as over gRPC (../../kserve-models.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Gateway } from '../../../pipeline/gateway.js';
import { modelMetadata, modelReady } from '../../kserve-models.js';
import { routeNotFound, sendKServeError, toApiError } from '../errors.js';
import type { ModelCalls } from '../model-calls.js';
import { kserveInfer } from './infer.js';

/** What the KServe API serves from; `version` is the server's, for its metadata. */
export interface KServeDeps {
  readonly gateway: Gateway;
  readonly log: Logger;
  readonly version: string;
}

/** Registers every route of the KServe v2 API: infer on `calls`, the rest on `app` under /v2. */
export function registerKServe(app: FastifyInstance, calls: ModelCalls, deps: KServeDeps): void {
  calls.kserveInfer(kserveInfer(deps.gateway));
  app.register(kserveRoutes(deps), { prefix: '/v2' });
}

interface ModelParams {
  name: string;
  version?: string;
}

/** A Fastify plugin (registered under `/v2`) with KServe's server and model health and metadata routes, and its error shape. */
function kserveRoutes({ gateway, log, version: serverVersion }: KServeDeps) {
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
      app.get<{ Params: ModelParams }>(base, async (request) =>
        modelMetadata(gateway, request.params.name, request.params.version, request),
      );
      app.get<{ Params: ModelParams }>(`${base}/ready`, async (request, reply) => {
        const answer = modelReady(gateway, request.params.name, request.params.version, request);
        return reply.code(answer.ready ? 200 : 503).send(answer);
      });
    }
  };
}
