/**
 * The dashboard's own data, under /admin's guard: `GET /admin/ui/info` (what runs: version,
 * start-up, workers, storage, warnings) and `GET /admin/ui/stream`, a server-sent event stream of
 * live figures once a second (telemetry/live-stats.ts), one timer for every open stream
 * (telemetry/live-feed.ts). The dashboard reads the stream with fetch(), since EventSource cannot
 * send the Authorization header.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Gateway } from '../../../pipeline/gateway.js';
import type { Fleet } from '../../../cluster/fleet.js';
import { LiveFeed, type LiveListener } from '../../../telemetry/live-feed.js';
import { LiveStats, type Reading } from '../../../telemetry/live-stats.js';

/** What GET /admin/ui/info says of the running server, as serve.ts knows it. */
export interface DashboardFacts {
  readonly version: string;
  /** When this process started, epoch ms. */
  readonly startedAt: number;
  /** Milliseconds from loading the models to listening (as the start-up line says); null until it listens. */
  readonly startupMs: number | null;
  /** Worker processes of this replica. */
  readonly workers: number;
  /** Where tenants and usage (database), limit counters (state) and the fleet registry (fleet) live. */
  readonly storage: { readonly database: string; readonly state: string; readonly fleet: string };
  /** What the start-up warned about, one sentence each. */
  readonly warnings: readonly string[];
}

/** What the dashboard's routes read from. */
export interface DashboardDeps {
  readonly gateway: Gateway;
  readonly log: Logger;
  readonly authMode: string;
  /** Every worker's live series, summed (cluster-metrics.ts liveReadingFor); absent when metrics are off. */
  readonly read?: () => Promise<Reading>;
  readonly fleet?: Fleet;
  /** The facts of /admin/ui/info, read at each call; absent: the route answers 404. */
  readonly facts?: () => DashboardFacts;
}

/** A stream whose client reads slower than this many bytes behind is cut (it would only pile up memory). */
const MAX_BUFFERED = 1 << 20;

/** The dashboard routes, as a plugin for the /admin scope. */
export function adminDashboardRoutes(deps: DashboardDeps) {
  return async function dashboardRoutes(admin: FastifyInstance): Promise<void> {
    const { fleet, facts } = deps;
    const shared = fleet !== undefined && fleet.storeKind !== 'memory';
    const stats = new LiveStats({
      read: deps.read ?? null,
      deployments: () => deps.gateway.deployments().map((v) => ({ model: v.model.name, version: v.version })),
      members: shared ? () => fleet.memberTotals() : null,
    });
    const feed = new LiveFeed({ sampler: stats, log: deps.log });
    const ends = new Map<LiveListener, () => void>();
    // Open streams would hold the server's close until its time-out: they end first.
    admin.addHook('preClose', (done) => {
      feed.close((l) => ends.get(l)?.());
      done();
    });

    if (facts !== undefined) {
      admin.get('/ui/info', async () => {
        const f = facts();
        return {
          version: f.version,
          started_at: new Date(f.startedAt).toISOString(),
          startup_ms: f.startupMs,
          workers: f.workers,
          auth_mode: deps.authMode,
          metrics: deps.read !== undefined,
          storage: f.storage,
          warnings: f.warnings,
          ui: '/ui/',
        };
      });
    }

    // No HEAD twin: a HEAD would hold a subscription open with nothing to send.
    admin.get('/ui/stream', { exposeHeadRoute: false }, async (request, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // A proxy in front (nginx) passes events as they come rather than buffering them.
        'x-accel-buffering': 'no',
        'x-request-id': request.id,
      });
      // At once, so the client sees the stream open before the first event.
      res.write(': connected\n\n');
      const listener: LiveListener = (chunk) => {
        if (res.writableLength > MAX_BUFFERED) res.destroy();
        else res.write(chunk);
      };
      // The close listener first: a client gone before it was attached would leave the subscription (and the timer) for good.
      let unsubscribe: (() => void) | null = null;
      res.once('close', () => {
        ends.delete(listener);
        unsubscribe?.();
      });
      if (res.destroyed) return;
      unsubscribe = feed.subscribe(listener);
      ends.set(listener, () => res.end());
    });
  };
}
