/**
 * The fleet's store in Redis: a key per entry (`SET … PX` for the ones that expire), a lease as a
 * key holding its holder's name, and the change feed as a pub/sub channel. Each write or delete and
 * its announcement run in one Lua script, so no replica sees a change that was not made, nor misses
 * one that was while it stays subscribed.
 *
 * Redis does not announce expiries (keyspace notifications are off by default, and are lost while a
 * subscriber is away anyway): a watcher learns of an entry that expired only when it reads the
 * prefix again. Callers poll as well, at the pace of the entries' TTLs; that is enough.
 *
 * Unlike the limit counters (redis-state.ts), nothing here fails open: the fleet store is not on
 * the request path, so a call waits a few seconds for Redis and then rejects, and the caller
 * decides (a heartbeat retries, a rollout step waits).
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Entry, FleetStore, Unwatch } from './fleet-store.js';
import { within } from '../core/within.js';

/** KEYS: the key. ARGV: value, TTL in ms (0: none), channel, relative key. Writes, then announces. */
const PUT = `
if ARGV[2] == '0' then redis.call('SET', KEYS[1], ARGV[1])
else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1`;

/** KEYS: the key. ARGV: channel, relative key. Deletes, and announces it when there was something to delete. */
const DELETE = `
local n = redis.call('DEL', KEYS[1])
if n == 1 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return n`;

/** KEYS: the lease. ARGV: holder, TTL in ms. Takes a free lease or renews the holder's own: 1; another's: 0. */
const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

/** KEYS: the lease. ARGV: holder. Deletes it only if the holder holds it. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** How long a command waits for Redis, queued while it reconnects, before it rejects. */
const COMMAND_TIMEOUT_MS = 3000;
/** Keys SCAN looks at per round trip. */
const SCAN_COUNT = 500;
/** Keys per MGET, so one huge prefix does not become one huge reply. */
const MGET_CHUNK = 500;

type Commands = Redis & {
  fleetPut(key: string, value: string, ttlMs: number, channel: string, relative: string): Promise<number>;
  fleetDelete(key: string, channel: string, relative: string): Promise<number>;
  fleetAcquire(key: string, holder: string, ttlMs: number): Promise<number>;
  fleetRelease(key: string, holder: string): Promise<number>;
};

interface Watcher {
  readonly prefix: string;
  readonly changed: (key: string) => void;
}

/** The fleet's store in Redis, shared by every replica that names the same server and prefix. */
export class RedisFleetStore implements FleetStore {
  readonly kind = 'redis';
  readonly #redis: Commands;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #log: Logger;
  readonly #watchers = new Set<Watcher>();
  /** The subscribed connection, made by the first watch; its promise resolves once subscribed. */
  #subscribed: Promise<void> | null = null;
  #subscriber: Redis | null = null;
  #down = false;

  /** `prefix` goes in front of every key (`infergate:fleet:`); the change channel is `${prefix}changes`. */
  constructor(url: string, prefix: string, log: Logger) {
    // Commands wait in the offline queue while connecting or reconnecting, but for no longer than
    // the time-out (it runs from the call, queued or not): unreachable means rejected, not hung.
    const redis = new Redis(url, {
      enableOfflineQueue: true,
      maxRetriesPerRequest: 1,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: COMMAND_TIMEOUT_MS,
    });
    redis.defineCommand('fleetPut', { numberOfKeys: 1, lua: PUT });
    redis.defineCommand('fleetDelete', { numberOfKeys: 1, lua: DELETE });
    redis.defineCommand('fleetAcquire', { numberOfKeys: 1, lua: ACQUIRE });
    redis.defineCommand('fleetRelease', { numberOfKeys: 1, lua: RELEASE });
    redis.on('error', (err: Error) => this.#outage(err));
    redis.on('ready', () => {
      if (this.#down) this.#log.info('redis is back: the fleet store is reachable again');
      this.#down = false;
    });
    this.#redis = redis as Commands;
    this.#prefix = prefix;
    this.#channel = `${prefix}changes`;
    this.#log = log;
  }

  async put(key: string, value: string, ttlMs?: number): Promise<void> {
    // PX takes whole milliseconds, at least one; 0 means no expiry to the script.
    const ttl = ttlMs === undefined ? 0 : Math.max(1, Math.ceil(ttlMs));
    await this.#redis.fleetPut(this.#prefix + key, value, ttl, this.#channel, key);
  }

  async get(key: string): Promise<string | null> {
    return this.#redis.get(this.#prefix + key);
  }

  async list(prefix: string): Promise<Entry[]> {
    const match = `${(this.#prefix + prefix).replace(/[*?[\\\]]/g, '\\$&')}*`;
    // SCAN may return a key more than once (the table grew meanwhile): a set drops the repeats.
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT);
      for (const k of keys) found.add(k);
      cursor = next;
    } while (cursor !== '0');
    const keys = [...found].sort();
    const out: Entry[] = [];
    for (let i = 0; i < keys.length; i += MGET_CHUNK) {
      const chunk = keys.slice(i, i + MGET_CHUNK);
      const values = await this.#redis.mget(...chunk);
      chunk.forEach((k, j) => {
        const value = values[j];
        // null: expired or deleted between the SCAN and the MGET.
        if (value !== null && value !== undefined) out.push({ key: k.slice(this.#prefix.length), value });
      });
    }
    return out;
  }

  async delete(key: string): Promise<void> {
    await this.#redis.fleetDelete(this.#prefix + key, this.#channel, key);
  }

  async acquire(key: string, holder: string, ttlMs: number): Promise<boolean> {
    return (await this.#redis.fleetAcquire(this.#prefix + key, holder, Math.max(1, Math.ceil(ttlMs)))) === 1;
  }

  async release(key: string, holder: string): Promise<void> {
    await this.#redis.fleetRelease(this.#prefix + key, holder);
  }

  async watch(prefix: string, changed: (key: string) => void): Promise<Unwatch> {
    const watcher: Watcher = { prefix, changed };
    this.#watchers.add(watcher);
    try {
      await (this.#subscribed ??= this.#subscribe());
    } catch (err) {
      this.#watchers.delete(watcher);
      throw err;
    }
    return () => this.#watchers.delete(watcher);
  }

  async close(): Promise<void> {
    this.#watchers.clear();
    this.#subscriber?.disconnect();
    await this.#redis.quit().catch(() => undefined);
  }

  /** One subscribed connection for all of this store's watchers (a subscribed connection can do nothing else). */
  async #subscribe(): Promise<void> {
    // Without the command time-out: a SUBSCRIBE answered late is no failure, and the subscription
    // itself lives as long as the store. The time-out on the first one is below.
    // Named, so an operator's CLIENT LIST tells the fleet's feed from the rest.
    const sub = this.#redis.duplicate({
      enableOfflineQueue: true,
      enableAutoPipelining: false,
      commandTimeout: undefined,
      connectionName: `${this.#prefix}watch`,
    });
    sub.on('error', () => undefined); // reported by the main connection
    this.#subscriber = sub;
    sub.on('message', (channel: string, key: string) => {
      if (channel !== this.#channel) return;
      for (const w of this.#watchers) if (key.startsWith(w.prefix)) this.#notify(w, key);
    });
    let subscribed = false;
    // Changes announced while the subscription was down are lost: each watcher reads its prefix again.
    sub.on('ready', () => {
      if (subscribed) for (const w of this.#watchers) this.#notify(w, w.prefix);
    });
    try {
      await within(
        sub.subscribe(this.#channel),
        COMMAND_TIMEOUT_MS,
        `redis did not confirm the fleet feed's subscription within ${COMMAND_TIMEOUT_MS} ms`,
      );
    } catch (err) {
      // The next watch tries again on a fresh connection.
      this.#subscribed = null;
      this.#subscriber = null;
      sub.disconnect();
      throw err;
    }
    subscribed = true;
  }

  /** Runs one watcher's callback; one that throws neither stops the others nor the connection. */
  #notify(w: Watcher, key: string): void {
    try {
      w.changed(key);
    } catch (err) {
      this.#log.error({ err }, 'a fleet store watcher threw');
    }
  }

  #outage(err: Error): void {
    if (this.#down) return;
    this.#down = true;
    this.#log.warn({ err: err.message }, 'redis unreachable: fleet store calls fail until it is back');
  }
}
