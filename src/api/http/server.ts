/**
 * The HTTP transport: the OpenAI API under /v1, the Open Inference Protocol under /v2, process
 * health under /health. Model calls (POSTs) are served by model-calls.ts on node:http (node:https with
 * `server.tls`); Fastify serves the read-only routes and every 404. Routes decode, call the gateway, encode.
 */
import { createServer, STATUS_CODES, type ServerOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createHttpsServer } from 'node:https';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config, ServerConfig } from '../../config/schema.js';
import type { Gateway } from '../../pipeline/gateway.js';
import { isAnthropicRequest, routeNotFound, sendAnthropicError, sendKServeError, sendOpenAIError, toApiError } from './errors.js';
import { openaiErrorBody } from '../../protocols/openai/errors.js';
import { registerKServe } from './kserve/routes.js';
import { ModelCalls } from './model-calls.js';
import { registerOpenAI } from './openai/routes.js';
import { registerResponses } from './responses/routes.js';
import { registerAnthropic } from './anthropic/routes.js';
import { registerAdmin } from './admin/routes.js';
import type { DashboardFacts } from './admin/dashboard.js';
import { registerUi } from './ui/routes.js';
import type { ReloadResult } from '../../config/reload-result.js';
import { Envelope } from '../envelope.js';
import { authentication } from '../trusted-header.js';
import { requestId } from '../request-id.js';
import { ApiError } from '../../core/errors.js';
import type { Principal } from '../../tenancy/directory.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { Tracing } from '../../telemetry/tracing.js';
import type { AccessLog } from '../../telemetry/access-log.js';
import type { TlsMaterial } from '../../config/tls.js';
import type { TenancyHttp } from '../../tenancy/setup.js';
import type { Fleet } from '../../cluster/fleet.js';

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
  /** This process in the fleet: the admin API's instances, models, weights and rollouts; absent: none. */
  readonly fleet?: Fleet;
  /** What the dashboard's GET /admin/ui/info says of the running server; absent: that route answers 404. */
  readonly dashboard?: () => DashboardFacts;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated tenant and key; null without authentication. */
    principal: Principal | null;
  }
}

/** The HTTP app with every route registered, not yet listening: the caller runs `listen` (and `close`). */
export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const { config, log, gateway, lifecycle, tenancy, metrics, tls } = options;
  const authenticate = authentication(tenancy?.directory ?? null, tenancy?.trustedHeader ?? null);
  const envelope = new Envelope({
    log,
    authenticate,
    metrics: metrics?.metrics ?? null,
    accessLog: options.accessLog ?? null,
    tracing: options.tracing ?? null,
    toApiError,
  });
  // The model calls (every POST that reaches a model) are served before Fastify sees them;
  // Fastify serves the rest (models, metadata, health) and every 404.
  const calls = new ModelCalls({
    bodyLimit: config.server.body_limit_bytes,
    maxJsonDepth: config.server.max_json_depth,
    envelope,
    lifecycle,
  });
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
      else sendHttpError(e, request, reply);
    },
    genReqId: (req) => requestId(req.headers['x-request-id']),
    // A request Node refuses before any route sees it (too slow, headers too large, unparsable) gets our error shape.
    clientErrorHandler: answerClientError,
    serverFactory: (fastifyHandler) => {
      const handler = calls.listener(fastifyHandler);
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
        request.principal = authenticate(request.headers, request.socket);
    });
  }
  registerOpenAI(app, calls, { gateway, log, usage: tenancy?.usage ?? null, ledger: tenancy?.ledger ?? null });
  registerAnthropic(app, calls, { gateway, log });
  registerResponses(app, calls, { gateway, log, store: tenancy?.responses ?? null, storeByDefault: config.responses.store });
  registerKServe(app, calls, { gateway, log, version: options.version });
  registerAdmin(app, options);
  registerUi(app);

  app.setErrorHandler((error, request, reply) => sendHttpError(toApiError(error, request, log), request, reply));
  app.setNotFoundHandler((request, reply) => sendHttpError(routeNotFound(request), request, reply));
  return app;
}

/** An error of a Fastify route in its caller's shape: Anthropic's for an Anthropic client, else OpenAI's. */
function sendHttpError(error: ApiError, request: FastifyRequest, reply: FastifyReply): void {
  if (isAnthropicRequest(request)) sendAnthropicError(error, request, reply);
  else sendOpenAIError(error, request, reply);
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
