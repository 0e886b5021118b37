/**
 * The HTTP transport: the OpenAI API under /v1, the Open Inference Protocol under /v2, process
 * health under /health. Model calls (POSTs) are served by model-calls.ts on node:http (node:https with
 * `server.tls`); Fastify serves the read-only routes and every 404. Routes decode, call the gateway, encode.
 */
import { createServer, STATUS_CODES, type ServerOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createHttpsServer } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config, ServerConfig } from '../../config/schema.js';
import type { Gateway } from '../../pipeline/gateway.js';
import { openaiErrorBody, routeNotFound, sendKServeError, sendOpenAIError, toApiError } from './errors.js';
import { kserveInfer } from './kserve/infer.js';
import { kserveRoutes } from './kserve/routes.js';
import { modelCalls } from './model-calls.js';
import { openaiCalls } from './openai/calls.js';
import { openaiRoutes } from './openai/routes.js';
import type { ReloadResult } from '../../config/reload-result.js';
import { requestId } from '../request-id.js';
import { ApiError } from '../../core/errors.js';
import { parseJsonBody } from '../../core/json.js';
import { adminGuard } from './admin/guard.js';
import { adminDebugRoutes } from './admin/debug.js';
import { adminTenantRoutes } from './admin/tenants.js';
import type { Authenticate } from './model-calls.js';
import { presentedKey } from '../../tenancy/keys.js';
import type { Principal } from '../../tenancy/directory.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { Tracing } from '../../telemetry/tracing.js';
import type { AccessLog } from '../../telemetry/access-log.js';
import type { TlsMaterial } from '../../config/tls.js';

import type { TenancyHttp } from '../../tenancy/setup.js';

/** What the HTTP server serves and with what; each optional part left out turns its feature off. */
export interface HttpServerOptions {
  readonly config: Config;
  /** Where unexpected errors are logged (with the request id). */
  readonly log: Logger;
  readonly gateway: Gateway;
  readonly version: string;
  /** Set by shutdown: readiness answers 503 `draining` from then on. */
  readonly lifecycle?: { draining: boolean };
  /** Applies the config file again (POST /admin/reload); absent: the route answers 404. */
  readonly reload?: () => Promise<ReloadResult>;
  /** Tenants, keys and usage; absent: no /admin tenant routes and no authentication (tests of other features). */
  readonly tenancy?: TenancyHttp;
  /** One JSON line per model call; absent: none. */
  readonly accessLog?: AccessLog;
  /** Metrics to record, and how to read them all (every worker's); absent: no /metrics. */
  readonly metrics?: { readonly metrics: Metrics; readonly scrape: () => Promise<string> };
  /** Traces of sampled model calls; absent: tracing is off. */
  readonly tracing?: Tracing;
  /** The certificate and key (`server.tls`, read by loadTls): HTTPS on the port; absent: cleartext HTTP. */
  readonly tls?: TlsMaterial;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated tenant and key; null without authentication. */
    principal: Principal | null;
  }
}

/** The HTTP app with every route registered, not yet listening: the caller runs `listen` (and `close`). */
export function createHttpServer({
  config,
  log,
  gateway,
  version,
  lifecycle,
  reload,
  tenancy,
  metrics,
  accessLog,
  tracing,
  tls,
}: HttpServerOptions): FastifyInstance {
  const directory = tenancy?.directory ?? null;
  const authenticate: Authenticate | null =
    directory === null ? null : (headers) => directory.authenticate(presentedKey(headers.authorization, headers['x-api-key']));
  const app = Fastify({
    // Admin bodies are checked as sent: unknown fields are errors, nothing is coerced or dropped.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    // No Fastify logger: its per-request child loggers and timers cost about a third of the throughput
    // of a small request (measured with wrk on loopback). Unexpected errors go to `log`, with the request id.
    logger: false,
    return503OnClosing: true,
    requestIdHeader: false,
    // Errors Fastify raises before routing (a malformed URL escape, a bad content type) take our shapes too.
    frameworkErrors: (error, request, reply) => {
      const e = new ApiError('invalid_request', error.message);
      if (request.url.startsWith('/v2')) sendKServeError(e, request, reply);
      else sendOpenAIError(e, request, reply);
    },
    genReqId: (req) => requestId(req.headers['x-request-id']),
    // A request Node refuses before any route sees it (too slow, headers too large, unparsable) gets our error shape.
    clientErrorHandler: answerClientError,
    // The model calls (every POST that reaches a model) are served before Fastify sees them;
    // Fastify serves the rest (models, metadata, health) and every 404.
    serverFactory: (fastifyHandler) => {
      const routes = { exact: openaiCalls(gateway, log), kserveInfer: kserveInfer(gateway) };
      const handler = modelCalls(routes, {
        bodyLimit: config.server.body_limit_bytes,
        maxJsonDepth: config.server.max_json_depth,
        log,
        next: fastifyHandler,
        lifecycle,
        authenticate,
        metrics: metrics?.metrics ?? null,
        accessLog: accessLog ?? null,
        tracing: tracing ?? null,
      });
      const limits = slowClientLimits(config.server);
      const server =
        tls === undefined
          ? createServer(limits, handler)
          : // A client that never finishes the TLS handshake is dropped like one that never finishes its headers.
            createHttpsServer({ ...limits, cert: tls.cert, key: tls.key, handshakeTimeout: config.server.headers_timeout_ms }, handler);
      // Past it, Node accepts and at once closes each new connection (a `drop` event), until one of these closes.
      server.maxConnections = config.server.max_connections;
      return server;
    },
  });
  // Bodies of routes nobody serves are not read: the 404 needs none.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  // Authenticate: every API route under /v1 and /v2 except the KServe health probes.
  app.decorateRequest('principal', null);
  if (authenticate !== null) {
    app.addHook('onRequest', async (request) => {
      const url = request.url;
      if ((url.startsWith('/v1/') || url.startsWith('/v2')) && !url.startsWith('/v2/health/'))
        request.principal = authenticate(request.headers);
    });
  }
  app.register(openaiRoutes(gateway, tenancy?.usage ?? null, tenancy?.ledger ?? null), { prefix: '/v1' });
  app.register(kserveRoutes(gateway, log, version), { prefix: '/v2' });

  app.get('/health/live', async () => ({ status: 'live' }));
  app.get('/health/ready', async (_request, reply) => {
    const models: Record<string, boolean> = {};
    for (const m of gateway.registry.models) models[m.name] = m.ready();
    if (lifecycle?.draining === true) return reply.code(503).send({ status: 'draining', models });
    const ready = Object.values(models).every(Boolean);
    if (ready) return reply.code(200).send({ status: 'ready', models });
    // Why each version that cannot serve cannot: the error its load failed with, else that it is loading.
    const notReady = gateway.registry.notReady();
    const failed = notReady.some((v) => v.error !== null);
    const versions = notReady.map((v) => ({ model: v.model, version: v.version, reason: v.error ?? 'loading' }));
    return reply.code(503).send({ status: failed ? 'failed' : 'loading', models, versions });
  });

  if (metrics !== undefined) {
    // Guarded like /admin: open on loopback without an admin key, else the admin key (Prometheus: `authorization: { credentials: ... }`).
    app.register(async (scope) => {
      scope.addHook('onRequest', adminGuard(tenancy?.adminKey ?? config.auth.admin_key, directory, config.server.host));
      scope.get('/metrics', async (_request, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(await metrics.scrape()));
    });
  }

  app.register(
    async (admin) => {
      admin.addHook('onRequest', adminGuard(tenancy?.adminKey ?? config.auth.admin_key, directory, config.server.host));
      // Every body is read as JSON whatever its content type says, or without one: `curl -d`, as
      // in the README's examples, sends application/x-www-form-urlencoded.
      admin.removeAllContentTypeParsers();
      admin.addContentTypeParser(
        '*',
        { parseAs: 'string', bodyLimit: config.server.body_limit_bytes },
        adminJsonBody(config.server.max_json_depth),
      );
      // Circuit breakers per deployment (model@version); versions without one are listed as `disabled`.
      admin.get('/breakers', async () => ({
        breakers: gateway.deployments().map((v) => ({
          model: v.model.name,
          version: v.version,
          ...(v.governor?.status() ?? { state: 'disabled' }),
          ...(v.backend.endpointStatus === undefined ? {} : { endpoints: v.backend.endpointStatus() }),
        })),
      }));

      if (reload !== undefined) {
        admin.post('/reload', async (_request, reply) => {
          const result = await reload();
          if (result.ok)
            return {
              status: 'reloaded',
              models: result.models,
              added: result.added,
              removed: result.removed,
              reused: result.reused,
              restart_needed: result.restartNeeded,
            };
          return reply.code(400).send({
            error: {
              message: 'the config file is invalid; still serving the previous config',
              type: 'invalid_request_error',
              code: 'invalid_config',
              problems: result.problems,
            },
          });
        });
      }
      admin.register(adminDebugRoutes);
      if (tenancy !== undefined) admin.register(adminTenantRoutes(tenancy.admin, tenancy.usage, tenancy.ledger));
    },
    { prefix: '/admin' },
  );

  app.setErrorHandler((error, request, reply) => sendOpenAIError(toApiError(error, request, log), request, reply));
  app.setNotFoundHandler((request, reply) => sendOpenAIError(routeNotFound(request), request, reply));
  return app;
}

/**
 * How long a client may take to send a request. Node cuts a request whose headers (or whole request,
 * body included) have not arrived in time with 408 and closes the connection; the answer, however long
 * a model takes, is not bounded by these. Node looks for such requests every `connectionsCheckingInterval`
 * (30 s by default, which would let a 1 s limit run to 31 s): every second keeps the cut within a second
 * of the limit, at the cost of one timer per server walking only the connections with a request half-read.
 */
function slowClientLimits(server: ServerConfig): ServerOptions {
  return {
    headersTimeout: server.headers_timeout_ms,
    requestTimeout: server.request_timeout_ms,
    keepAliveTimeout: server.keep_alive_timeout_ms,
    connectionsCheckingInterval: 1000,
  };
}

/**
 * Node's `clientError`: a request cut for coming too slowly (408), headers over Node's limit (431),
 * or bytes that are not HTTP (400). Answered in the OpenAI error shape, which carries the stable
 * `code` as the KServe shape does, and the connection closed, as Node itself would.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new ApiError('request_timeout', 'the request did not arrive in time (server.headers_timeout_ms, server.request_timeout_ms)')
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new ApiError('headers_too_large', 'the request headers are larger than 16 KiB')
        : new ApiError('invalid_request', `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'})`);
  if (socket.writable) {
    const body = openaiErrorBody(error);
    socket.write(
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** JSON bodies of the admin API: an empty body is null; depth is bounded and prototype poisoning refused. */
function adminJsonBody(maxDepth: number) {
  const options = { maxDepth, constructorAction: 'error' } as const;
  return function parseAdminBody(_request: unknown, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
    const text = body.toString();
    if (text === '') return done(null, null);
    try {
      done(null, parseJsonBody(text, options));
    } catch (err) {
      done(err as Error);
    }
  };
}
