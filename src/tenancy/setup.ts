/**
 * Builds the tenancy stages from the config, once per worker: the database (migrated), the limit
 * counters (memory or Redis), the key directory, the limiter, the ledger, and what the gateway and
 * the HTTP layer take from them. `close` writes the last usage records and disconnects.
 */
import type { Logger } from 'pino';
import type { Config, TrustedHeaderConfig } from '../config/schema.js';
import type { ChangeFeed } from '../cluster/change-feed.js';
import { MemoryState, type LimitState } from '../cluster/state.js';
import { databaseUrl, openDatabase } from '../store/database.js';
import { TenantStore } from '../store/tenants.js';
import { UsageStore } from '../store/usage.js';
import { ResponseStore } from '../store/responses.js';
import { TenantAdmin } from './admin.js';
import { Directory } from './directory.js';
import { Ledger } from './ledger.js';
import { Limiter } from './limits.js';
import { Tenancy } from './tenancy.js';

/** What the HTTP layer needs of tenancy. */
export interface TenancyHttp {
  /** The key directory in `keys` and `trusted_header` modes; null in `none` mode (no authentication). */
  readonly directory: Directory | null;
  /** `auth.trusted_header` in `trusted_header` mode, whose peers may name their tenant; null in the other modes. */
  readonly trustedHeader: TrustedHeaderConfig | null;
  readonly admin: TenantAdmin;
  readonly usage: UsageStore;
  readonly ledger: Ledger | null;
  /** Stored Responses of the Responses API, each owned by its tenant. */
  readonly responses: ResponseStore;
  /** The admin key; '' leaves /admin/* open (allowed on a loopback host only). */
  readonly adminKey: string;
}

/** What setUpTenancy builds; `close()` writes the last usage records, then disconnects from the database and Redis. */
export interface TenancySetup {
  /** For the gateway; null when there is nothing to do per call (no keys and no ledger). */
  readonly tenancy: Tenancy | null;
  readonly http: TenancyHttp;
  /** Where things are, for the start-up log line. */
  readonly describe: { database: string; state: string; auth: string; usage: boolean };
  close(): Promise<void>;
}

/**
 * `siblings`: the change feed between this process's sibling workers (through the cluster
 * primary); null when it has none. With Redis, the Redis feed reaches them instead, like every
 * other replica.
 */
export async function setUpTenancy(config: Config, log: Logger, siblings: ChangeFeed | null): Promise<TenancySetup> {
  const database = await openDatabase(databaseUrl(config.storage.database_url), config.storage.pool_size);
  const tenants = new TenantStore(database.db);
  const usage = new UsageStore(database.db, database.sqliteFile);
  const responses = new ResponseStore(database.db, config.responses.retention_hours * 3_600_000);
  responses.startSweeping((err) => log.warn({ err }, 'deleting expired stored responses failed; the next sweep tries again'));
  const redisUrl = config.state.redis_url !== '' ? config.state.redis_url : (process.env.REDIS_URL ?? '');
  const ackTimeoutMs = config.state.change_ack_timeout_ms;
  let state: LimitState;
  let feed = siblings;
  if (redisUrl === '') state = new MemoryState();
  else {
    // ioredis loads only with a Redis URL (about 1 MiB of heap per worker otherwise).
    const { RedisState } = await import('../cluster/redis-state.js');
    const redis = new RedisState(redisUrl, config.state.key_prefix, log, ackTimeoutMs);
    await redis.ready();
    state = feed = redis;
  }
  // `trusted_header` mode takes its tenants (and still API keys) from the same directory.
  const keys = config.auth.mode !== 'none';
  const directory = keys ? new Directory(tenants, log) : null;
  // Subscribed before the first load: a change made meanwhile is either in that load or reloaded after it.
  await feed?.subscribe(async () => directory?.refresh());
  await directory?.start(config.auth.refresh_interval_ms);
  const ledger = config.usage.enabled ? new Ledger(usage, config.usage.flush_interval_ms, log) : null;
  const limiter = keys
    ? new Limiter(state, async (scope, month) => {
        const totals = await usage.tokensSince(Date.parse(`${month}-01T00:00:00Z`));
        return (scope.kind === 'tenant' ? totals.tenants : totals.keys).get(scope.id) ?? 0;
      })
    : null;
  const admin = new TenantAdmin(tenants, directory, async () => {
    if (feed === null) return [];
    const unconfirmed = await feed.publish();
    if (unconfirmed.length > 0) {
      log.warn(
        { unconfirmed_replicas: unconfirmed, timeout_ms: ackTimeoutMs },
        'a tenant or key change was not confirmed by every replica in time: it is in the database, and they apply it when they next reload',
      );
    }
    return unconfirmed;
  });
  return {
    tenancy: limiter === null && ledger === null ? null : new Tenancy(limiter, ledger),
    http: {
      directory,
      trustedHeader: config.auth.mode === 'trusted_header' ? config.auth.trusted_header : null,
      admin,
      usage,
      ledger,
      responses,
      adminKey: config.auth.admin_key,
    },
    describe: {
      database: database.where,
      state: state.kind === 'redis' ? redisUrl.replace(/\/\/[^@/]*@/, '//***@') : 'memory',
      auth: config.auth.mode,
      usage: ledger !== null,
    },
    async close() {
      directory?.stop();
      await ledger?.close();
      await usage.close();
      responses.close();
      await state.close();
      await database.close();
    },
  };
}
