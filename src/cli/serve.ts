/**
 * `infergate serve`: loads the config, loads every model, and serves HTTP. With `workers` > 1 the
 * primary process forks that many workers sharing the port (node:cluster) and restarts any that die.
 */
import cluster from 'node:cluster';
import { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { isLoopbackHost } from '../api/http/admin/guard.js';
import { answerScrape } from '../telemetry/cluster-metrics.js';
import { pino, type Logger } from 'pino';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { GenerationStats } from '../core/observer.js';
import { VERSION } from './version.js';
import { GRPC_CLOSED, GRPC_CONNECTION, GrpcBalancer } from './grpc-balancer.js';
import { loadTls, type TlsMaterial } from '../config/tls.js';
import { UsageError } from './usage-error.js';
import { CpuPinning } from './cpu-affinity.js';
import { SiblingFeed, SiblingRelay } from '../cluster/siblings.js';

/** `infergate serve`'s flags; each one given overrides the config file's setting (`port` also overrides PORT). */
export interface ServeOptions {
  readonly configFile: string;
  readonly host?: string;
  readonly port?: number;
  readonly grpcPort?: number;
  readonly workers?: number;
}

/** Applies command-line and environment overrides to a loaded config (a new frozen object); a bad one is a UsageError naming it. */
export function withOverrides(config: Config, options: ServeOptions): Config {
  const env = process.env.PORT;
  const port =
    options.port !== undefined
      ? portNumber('--port', options.port)
      : env !== undefined && env !== ''
        ? portNumber('PORT', env)
        : config.server.port;
  const grpcPort = options.grpcPort === undefined ? config.grpc.port : portNumber('--grpc-port', options.grpcPort);
  const server = { ...config.server, host: options.host ?? config.server.host, port, workers: options.workers ?? config.server.workers };
  const grpc = { ...config.grpc, port: grpcPort };
  return Object.freeze({ ...config, server: Object.freeze(server), grpc: Object.freeze(grpc) });
}

/** A TCP port from a flag or the environment: decimal digits in [0, 65535] (`PORT=abc` or `8080x` is an error, not NaN or 8080). */
function portNumber(setting: string, value: number | string): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UsageError(`${setting} must be a port number in [0, 65535], got ${JSON.stringify(value)}`);
  return n;
}

/**
 * Serves the config file's models; resolves once listening (a cluster primary: once its workers are
 * forked), and the process runs until a signal. Throws ConfigError or UsageError for a bad config or flag.
 */
export async function serve(options: ServeOptions): Promise<void> {
  const { config: loaded } = loadConfig(options.configFile);
  const config = withOverrides(loaded, options);
  if (config.auth.mode === 'none' && !isLoopbackHost(config.server.host) && !config.auth.allow_none_on_public_host) {
    const message =
      `refusing to serve without authentication on ${config.server.host}, a non-loopback address: set auth.mode: keys, ` +
      'or auth.allow_none_on_public_host: true if a proxy in front authenticates';
    throw new ConfigError(options.configFile, [{ path: 'auth.mode', message, line: null, column: null }]);
  }
  // Read here, before any worker is forked: a bad certificate path is one error at start, not a worker dying in a loop.
  const tls = loadTls(config.server.tls, options.configFile);
  const log = pino({ level: config.server.log_level });
  const workers = config.server.workers === 'auto' ? availableParallelism() : config.server.workers;
  if (workers > 1 && cluster.isPrimary) return primary(config, workers, log, options.configFile);
  return worker(config, log, options.configFile, tls);
}

async function worker(config: Config, log: Logger, file: string, tls: TlsMaterial | null): Promise<void> {
  // Imported here, not at the top: the cluster primary only forks and supervises, and stays small.
  const [
    { createHttpServer },
    grpcModule,
    { Gateway },
    { Registry },
    { RetryBudget },
    { createReloader, watchConfig },
    { setUpTenancy },
    { versionPolicies },
  ] = await Promise.all([
    import('../api/http/server.js'),
    // The KServe gRPC server (grpc-js, protobufjs, the protos) only where gRPC is on.
    config.grpc.enabled ? import('../api/grpc/server.js') : null,
    import('../pipeline/gateway.js'),
    import('../routing/registry.js'),
    import('../policies/retry-budget.js'),
    import('./reload.js'),
    import('../tenancy/setup.js'),
    import('../pipeline/policies.js'),
  ]);
  const [{ Metrics }, { scrapeFor }, { AccessLog }, { tracingSettings }] = await Promise.all([
    import('../telemetry/metrics.js'),
    import('../telemetry/cluster-metrics.js'),
    import('../telemetry/access-log.js'),
    import('../telemetry/tracing-settings.js'),
  ]);
  const workers = config.server.workers === 'auto' ? availableParallelism() : config.server.workers;
  // Per-generation measurements in the backend (queue, prompt time, tokens/s) go to the debug log.
  const budget = config.server.retry_budget;
  const metrics = config.metrics.enabled ? new Metrics({ tenantLabel: config.metrics.tenant_label }) : null;
  // The fleet: this process's record in the shared store, cluster-wide weights, discovery and rollouts.
  const { Fleet } = await import('../cluster/fleet.js');
  const { openFleetStore, instanceId, advertisedUrl } = await import('../cluster/open-fleet.js');
  const fleetStore = await openFleetStore(config, log, cluster.isWorker);
  let gatewayRef: { readonly registry: import('../routing/registry.js').Registry; deployments(): ModelVersionLike[] } | null = null;
  const fleet = new Fleet({
    store: fleetStore.store,
    shared: fleetStore.shared,
    workers,
    config,
    log,
    instance: instanceId(config),
    software: VERSION,
    registry: () => (gatewayRef as NonNullable<typeof gatewayRef>).registry,
    load: () => (gatewayRef?.deployments() ?? []).map(deploymentLoad),
    figures: metrics === null ? null : () => metrics.figures(),
  });
  const context = {
    workers,
    log,
    discover: fleetStore.fleetWide ? fleet.discover.bind(fleet) : undefined,
    // Each version's retries and breaker, composed when the config loads (and again on reload).
    policies: versionPolicies(new RetryBudget(budget.ratio, budget.min_per_second), log),
    onGeneration: (stats: GenerationStats) => log.debug({ ...stats }, 'generation'),
    observe: metrics === null ? undefined : (model: string, version: string) => metrics.deployment(model, version),
  };
  const registry = new Registry(config, context);
  // Sibling workers apply each other's tenant changes (through the primary) before the admin call answers.
  const siblings = cluster.isWorker ? new SiblingFeed(process, config.state.change_ack_timeout_ms, log) : null;
  const tenancy = await setUpTenancy(config, log, siblings);
  const gateway = new Gateway(registry, tenancy.tenancy);
  gatewayRef = gateway;
  gateway.onSwap((next) => fleet.applyTo(next));
  metrics?.watchRollouts(() =>
    [...fleet.rollouts().values()].map((r) => ({
      model: r.model,
      version: r.version,
      id: r.id,
      state: r.state,
      step: r.step,
      weight: r.weight,
    })),
  );
  metrics?.watch(() =>
    gateway.deployments().map((v) => {
      const occupancy = v.backend.occupancy?.() ?? null;
      return {
        model: v.model.name,
        version: v.version,
        breaker: v.governor?.status()?.state ?? null,
        active: v.admission?.active ?? null,
        queued: v.admission?.queued ?? null,
        running: occupancy?.running ?? null,
        waiting: occupancy?.waiting ?? null,
      };
    }),
  );
  const accessLog = config.server.access_log ? new AccessLog() : null;
  const traced = tracingSettings(config.tracing);
  // The OpenTelemetry SDK loads only when something will be traced.
  const tracing = traced === null ? null : new (await import('../telemetry/tracing.js')).Tracing(traced, VERSION);
  const lifecycle = { draining: false };
  const reloader = createReloader({ file, gateway, context, running: config, log });
  const reload = (): ReturnType<typeof reloader.reload> => {
    // The other workers reload too: the primary passes them SIGHUP.
    if (cluster.isWorker) process.send?.({ type: 'reload' });
    return reloader.reload('POST /admin/reload');
  };
  // What the dashboard's GET /admin/ui/info says; start-up time is known once listening.
  let startupMs: number | null = null;
  const dashboard = () => ({
    version: VERSION,
    startedAt: performance.timeOrigin,
    startupMs,
    workers,
    storage: { database: tenancy.describe.database, state: tenancy.describe.state, fleet: fleetStore.describe },
    warnings: startupWarnings(config, workers, tenancy.describe.state).map((w) => w.message),
  });
  const app = createHttpServer({
    config,
    log,
    gateway,
    version: VERSION,
    lifecycle,
    reload,
    tenancy: tenancy.http,
    metrics: metrics === null ? undefined : { metrics, scrape: scrapeFor(metrics.registry) },
    accessLog: accessLog ?? undefined,
    tracing: tracing ?? undefined,
    tls: tls ?? undefined,
    fleet,
    dashboard,
  });
  const started = performance.now();
  await registry.load((version, error) =>
    log.error({ model: version.model.name, version: version.version, err: error }, 'model failed to load'),
  );
  // The fleet's weight overrides are in force before the first call (a canary rolled back stays at 0).
  await fleet
    .start()
    .catch((err: Error) =>
      log.error(
        { err: err.message, store: fleetStore.describe },
        'the fleet store did not answer at start: trying again at each heartbeat',
      ),
    );
  const address = await app.listen({ host: config.server.host, port: config.server.port });
  // Fastify names the scheme from its own `https` option, which a serverFactory bypasses; and on a
  // wildcard host (a container's 0.0.0.0) it names loopback, where the line should say every interface.
  const listened = tls === null ? address : address.replace(/^http:/, 'https:');
  const host = config.server.host;
  const url =
    host === '0.0.0.0' || host === '::'
      ? listened.replace(/\/\/.*:(\d+)$/, `//${host === '::' ? '[::]' : host}:$1`)
      : listened.replace('[::1]', 'localhost');
  const grpc =
    config.grpc.enabled && grpcModule !== null
      ? new grpcModule.GrpcServer({
          gateway,
          log,
          version: VERSION,
          directory: tenancy.http.directory,
          trustedHeader: tenancy.http.trustedHeader,
          maxMessageBytes: config.server.body_limit_bytes,
          transport: {
            maxConcurrentStreams: config.grpc.max_concurrent_streams,
            maxConnectionBufferBytes: config.grpc.max_connection_buffer_bytes ?? 2 * config.server.body_limit_bytes,
            maxConnections: config.server.max_connections,
            idleTimeoutMs: config.grpc.idle_timeout_ms,
            handshakeTimeoutMs: config.grpc.handshake_timeout_ms,
            keepaliveMs: config.grpc.keepalive_ms,
            tls,
          },
          lifecycle,
          metrics,
          accessLog,
          tracing,
        })
      : null;
  // Under workers the primary holds the gRPC port and hands each worker its share of connections.
  const dealt = grpc !== null && cluster.isWorker;
  if (dealt) {
    process.on('message', (msg: { type?: string }, handle: unknown) => {
      if (msg?.type === GRPC_CONNECTION && handle instanceof Socket) grpc.adopt(handle, () => process.send?.({ type: GRPC_CLOSED }));
    });
  }
  const grpcAddress = grpc === null || dealt ? null : `${config.server.host}:${await grpc.listen(config.server.host, config.grpc.port)}`;
  // Registered once it can be called.
  const advertised = advertisedUrl(config, url);
  // gRPC on the advertised host: at the port this process listens on, or (a worker) the primary's.
  const grpcPort = grpcAddress === null ? config.grpc.port : Number(grpcAddress.slice(grpcAddress.lastIndexOf(':') + 1));
  fleet.advertise(advertised, config.grpc.enabled ? `${new URL(advertised).hostname}:${grpcPort}` : null);
  const models = config.models.map((m) => m.name);
  startupMs = Math.round(performance.now() - started);
  if (cluster.isWorker) process.send?.({ type: 'listening', url, storage: tenancy.describe });
  else
    announce(log, config, url, grpcAddress, file, models, 1, startupMs, {
      ...tenancy.describe,
      fleet: fleetStore.describe,
    });

  const shutdown = (signal: string): void => {
    if (lifecycle.draining) return;
    lifecycle.draining = true; // readiness answers 503 from now on
    const { shutdown_grace_ms: grace, shutdown_timeout_ms: drain } = config.server;
    log.info({ signal, grace_ms: grace, drain_ms: drain }, 'shutting down: not ready; draining in-flight requests');
    // Out of the registry first, so routers stop sending calls while those in flight finish.
    void fleet.stop();
    setTimeout(() => close(), grace);
  };
  const close = (): void => {
    const force = setTimeout(() => {
      log.warn({ timeout_ms: config.server.shutdown_timeout_ms }, 'in-flight requests did not finish in time; closing their connections');
      app.server.closeAllConnections();
    }, config.server.shutdown_timeout_ms);
    force.unref();
    // Keep-alive connections whose last response ended after close() began are idle but open: close them as they go idle.
    setInterval(() => app.server.closeIdleConnections(), 100).unref();
    // gRPC calls in flight drain alongside the HTTP ones.
    const grpcClosed = grpc?.close(config.server.shutdown_timeout_ms);
    app
      .close()
      .then(() => grpcClosed)
      // After the last request ended: its usage record is in the buffer, written now.
      .then(() => tenancy.close())
      .then(() => accessLog?.flush())
      .then(() => tracing?.shutdown())
      .then(() => registry.unload())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => reloader.trigger('SIGHUP'));
  if (config.server.watch_config) watchConfig(file, reloader);
}

async function primary(config: Config, workers: number, log: Logger, file: string): Promise<void> {
  // `direct` by default: Node's round-robin on Linux (the primary accepts and hands each connection
  // to a worker, one at a time, waiting for its ack over IPC) starves new connections while workers
  // are busy: at 1000 connections p99 was over 1 s with hundreds of 2 s time-outs; with SCHED_NONE
  // about 80 ms and none (wrk on loopback, 2 cores). The price: 64 connections may split 20/44.
  cluster.schedulingPolicy = config.server.accept_policy === 'direct' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  const started = performance.now();
  const balancer = config.grpc.enabled ? new GrpcBalancer() : null;
  const grpcAddress = balancer === null ? null : `${config.server.host}:${await balancer.listen(config.server.host, config.grpc.port)}`;
  let listening = 0;
  let stopping = false;
  const relay = new SiblingRelay(config.state.change_ack_timeout_ms, () => Object.values(cluster.workers ?? {}));
  // Without Redis or etcd, the workers' fleet store lives here (weights and rollouts shared by this replica's workers).
  const { FleetStoreHost } = await import('../cluster/ipc-fleet-store.js');
  const fleetHost = new FleetStoreHost(() => Object.values(cluster.workers ?? {}));
  // Every worker registers under one replica id.
  const { instanceId, INSTANCE_ENV } = await import('../cluster/open-fleet.js');
  const instance = instanceId(config);
  const pinning = new CpuPinning(config.server.cpu_affinity, workers);
  const fork = (): void => {
    const worker = cluster.fork({ [INSTANCE_ENV]: instance });
    worker.on('message', (msg: { type?: string; id?: number; url?: string; storage?: StorageFacts }) => {
      if (msg.type === GRPC_CLOSED) return balancer?.closed(worker);
      if (relay.handle(worker, msg)) return;
      if (fleetHost.handle(worker, msg)) return;
      if (msg.type === 'reload') {
        for (const w of Object.values(cluster.workers ?? {})) if (w !== undefined && w !== worker) w.process.kill('SIGHUP');
      }
      if (answerScrape(worker, msg)) return;
      if (msg.type === 'listening') balancer?.add(worker);
      // Pinned once listening: its models' threads exist by then and keep their own CPUs (only the event loop's thread is pinned).
      if (msg.type === 'listening') pinning.pin(worker.id, worker.process.pid, (message) => log.warn(message));
      if (msg.type === 'listening' && ++listening === workers) {
        announce(
          log,
          config,
          msg.url ?? '',
          grpcAddress,
          file,
          config.models.map((m) => m.name),
          workers,
          performance.now() - started,
          msg.storage ?? null,
        );
      }
    });
  };
  for (let i = 0; i < workers; i++) fork();
  cluster.on('exit', (w, code, signal) => {
    balancer?.remove(w);
    relay.gone(w);
    pinning.release(w.id);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    log.error({ pid: w.process.pid, code, signal }, 'worker died; starting another');
    listening--;
    setTimeout(fork, 1000).unref();
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    balancer?.close();
    log.info({ signal }, 'shutting down workers');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Each worker reloads its own registry.
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
  });
}

/** Where tenants, usage and limit counters live, as announced at start. */
interface StorageFacts {
  readonly database: string;
  readonly state: string;
  readonly auth: string;
  readonly usage: boolean;
  /** Where the fleet registry lives: memory (alone), redis or etcd. */
  readonly fleet?: string;
}

/** What the fleet reads of a deployment for its load: its admission slots, else its backend's occupancy. */
interface ModelVersionLike {
  readonly model: { readonly name: string };
  readonly version: string;
  readonly admission: { readonly active: number; readonly queued: number } | null;
  readonly backend: { occupancy?(): { running: number; waiting: number } | null };
}

function deploymentLoad(v: ModelVersionLike): { model: string; version: string; inFlight: number; queued: number } {
  const occupancy = v.backend.occupancy?.() ?? null;
  return {
    model: v.model.name,
    version: v.version,
    inFlight: v.admission?.active ?? occupancy?.running ?? 0,
    queued: v.admission?.queued ?? occupancy?.waiting ?? 0,
  };
}

function announce(
  log: Logger,
  config: Config,
  url: string,
  grpc: string | null,
  file: string,
  models: string[],
  workers: number,
  ms: number,
  storage: StorageFacts | null,
): void {
  for (const w of startupWarnings(config, workers, storage?.state ?? null)) log.warn(w.fields, w.message);
  // Last: the listening line is what scripts and tests wait for, so everything above is already out.
  const where = grpc === null ? url : `${url} (gRPC ${grpc})`;
  const ui = `${url}/ui/`;
  log.info(
    { url, grpc, ui, config: file, models, workers, startup_ms: Math.round(ms), ...storage },
    `infergate ${VERSION} listening on ${where}, dashboard ${ui}`,
  );
}

/**
 * What the start-up warns about (and the dashboard shows): no authentication, trusting headers,
 * limits counted per worker. `state` is where limit counters live (memory, redis); null: not known.
 */
function startupWarnings(config: Config, workers: number, state: string | null): Array<{ fields: object; message: string }> {
  const out: Array<{ fields: object; message: string }> = [];
  const host = config.server.host;
  if (config.auth.mode === 'none') {
    out.push({
      fields: { host },
      message: isLoopbackHost(host)
        ? 'running WITHOUT authentication: any local process can call every model (bound to loopback only)'
        : 'running WITHOUT authentication on a non-loopback address: anyone who can reach this port can call every model',
    });
  } else if (config.auth.mode === 'trusted_header') {
    const { tenant_header: tenant, key_header: key, trusted_peers: peers } = config.auth.trusted_header;
    out.push({
      fields: { trusted_peers: peers, tenant_header: tenant, key_header: key },
      message: `trusting ${tenant} and ${key} from ${peers.join(', ')}: anything that connects from there can call as any tenant it names (auth.mode: trusted_header)`,
    });
  }
  if (config.auth.mode !== 'none' && state === 'memory' && workers > 1) {
    out.push({
      fields: { workers },
      message: 'limits are counted in memory per worker process: set state.redis_url for one exact limit across workers and replicas',
    });
  }
  return out;
}
