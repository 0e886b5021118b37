/**
 * The operator's API over HTTP, registered in one place: process health (/health, open), metrics
 * (/metrics) and the admin API (/admin: breakers, reload, profiles, tenants, keys, usage, and the
 * fleet's instances, weights and rollouts, and the dashboard's info and live stream), the
 * last two guarded by the admin key (guard.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../../config/schema.js';
import type { ReloadResult } from '../../../config/reload-result.js';
import { parseJsonBody } from '../../../core/json.js';
import { fastError } from '../../../core/errors.js';
import { OPENAI_ERROR_TYPES } from '../../../protocols/openai/errors.js';
import type { Gateway } from '../../../pipeline/gateway.js';
import type { Metrics } from '../../../telemetry/metrics.js';
import type { TenancyHttp } from '../../../tenancy/setup.js';
import { adminDebugRoutes } from './debug.js';
import { adminGuard } from './guard.js';
import { adminTenantRoutes } from './tenants.js';
import { adminFleetRoutes } from './fleet.js';
import { adminDashboardRoutes, type DashboardFacts } from './dashboard.js';
import type { Logger } from 'pino';
import { liveReadingFor } from '../../../telemetry/cluster-metrics.js';
import type { Fleet } from '../../../cluster/fleet.js';

/** What the operator's API serves from; each optional part left out leaves its routes out. */
export interface AdminDeps {
  readonly config: Config;
  readonly gateway: Gateway;
  /** Set by shutdown: readiness answers 503 `draining` from then on. */
  readonly lifecycle?: { readonly draining: boolean };
  /** Applies the config file again (POST /admin/reload); absent: the route answers 404. */
  readonly reload?: () => Promise<ReloadResult>;
  /** Tenants, keys and usage; absent: no /admin tenant routes. */
  readonly tenancy?: TenancyHttp;
  /** Metrics to read, all of them (every worker's); absent: no /metrics. */
  readonly metrics?: { readonly metrics: Metrics; readonly scrape: () => Promise<string> };
  /** This process in the fleet (registry, weights, rollouts); absent: no /admin/instances or /admin/models. */
  readonly fleet?: Fleet;
  /** Where the dashboard's stream logs a failed reading. */
  readonly log: Logger;
  /** What GET /admin/ui/info says of the running server; absent: that route answers 404. */
  readonly dashboard?: () => DashboardFacts;
}

/** Registers every route of the operator's API on `app`. */
export function registerAdmin(app: FastifyInstance, deps: AdminDeps): void {
  const { config, tenancy, metrics } = deps;
  const guard = adminGuard(tenancy?.adminKey ?? config.auth.admin_key, tenancy?.directory ?? null, config.server.host);
  healthRoutes(app, deps);

  if (metrics !== undefined) {
    // Guarded like /admin: open on loopback without an admin key, else the admin key (Prometheus: `authorization: { credentials: ... }`).
    app.register(async (scope) => {
      scope.addHook('onRequest', guard);
      scope.get('/metrics', async (_request, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(await metrics.scrape()));
    });
  }

  app.register(
    async (admin) => {
      admin.addHook('onRequest', guard);
      // Every body is read as JSON whatever its content type says, or without one: `curl -d`, as
      // in the README's examples, sends application/x-www-form-urlencoded.
      admin.removeAllContentTypeParsers();
      admin.addContentTypeParser(
        '*',
        { parseAs: 'string', bodyLimit: config.server.body_limit_bytes },
        adminJsonBody(config.server.max_json_depth),
      );
      adminRoutes(admin, deps);
      admin.register(adminDebugRoutes);
      if (tenancy !== undefined) admin.register(adminTenantRoutes(tenancy.admin, tenancy.usage, tenancy.ledger));
      if (deps.fleet !== undefined) admin.register(adminFleetRoutes(deps.fleet, deps.gateway));
      const read = metrics === undefined ? undefined : liveReadingFor(metrics.metrics.registry);
      admin.register(adminDashboardRoutes({ ...deps, authMode: config.auth.mode, read, facts: deps.dashboard }));
    },
    { prefix: '/admin' },
  );
}

/** `GET /health/live` and `GET /health/ready`: the process, and every model, for load balancers and orchestrators. */
function healthRoutes(app: FastifyInstance, { gateway, lifecycle }: AdminDeps): void {
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
}

/** `GET /breakers` and `POST /reload`, under /admin's guard. */
function adminRoutes(admin: FastifyInstance, { gateway, reload }: AdminDeps): void {
  // Circuit breakers per deployment (model@version); versions without one are listed as `disabled`.
  admin.get('/breakers', async () => ({
    breakers: gateway.deployments().map((v) => ({
      model: v.model.name,
      version: v.version,
      ...(v.governor?.status() ?? { state: 'disabled' }),
      ...(v.backend.endpointStatus === undefined ? {} : { endpoints: v.backend.endpointStatus() }),
    })),
  }));

  if (reload === undefined) return;
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
    const error = fastError('invalid_config', 'the config file is invalid; still serving the previous config');
    return reply.code(error.status).send({
      error: { message: error.message, type: OPENAI_ERROR_TYPES[error.code], param: null, code: error.code, problems: result.problems },
    });
  });
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
