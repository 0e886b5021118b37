/**
 * The limit counters in Redis, so every replica enforces one global limit. An admission is one Lua
 * script (atomic, one round trip), counting spent tokens another. When Redis cannot be reached the limits fail open, logged once
 * per outage: a rate limiter should not take the gateway down with it.
 *
 * Also the change feed between replicas (and their workers): each process subscribes to the
 * deployment's change channel and to an ack channel of its own, named after it; the ack channels
 * with a subscriber (PUBSUB CHANNELS) are the live processes a change waits for.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Confirmations, type ChangeFeed } from './change-feed.js';
import { WINDOW_MS, type Admitted, type Check, type LimitState, type WindowCounts } from './state.js';
import { within } from '../core/within.js';

/** KEYS: current window, previous window. ARGV: amount, window TTL. Counts spent tokens; returns both windows' counts. */
const ADD = `
local cur = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {cur, tonumber(redis.call('GET', KEYS[2]) or '0')}`;

/**
 * A whole admission in one script. KEYS: two per check (a window's current and previous counters,
 * or a slot counter and an unused key). ARGV: weight of the previous window, window TTL, slot TTL,
 * then kind and limit per check. Returns the 1-based index of the failed check (0: none), then two
 * numbers per check evaluated (the window's current and previous counts; for a slot, its count and 0).
 */
const ADMIT = `
local w = tonumber(ARGV[1])
local n = (#ARGV - 3) / 2
local out = {0}
local function undo(upto)
  for j = 1, upto do
    local kind = ARGV[2 + 2 * j]
    if kind == 'r' then redis.call('DECRBY', KEYS[2 * j - 1], 1)
    elseif kind == 'c' then redis.call('DECR', KEYS[2 * j - 1]) end
  end
end
for i = 1, n do
  local kind = ARGV[2 + 2 * i]
  local limit = tonumber(ARGV[3 + 2 * i])
  local k = KEYS[2 * i - 1]
  if kind == 'c' then
    local v = redis.call('INCR', k)
    if v > limit then
      redis.call('DECR', k)
      undo(i - 1)
      out[1] = i
      out[#out + 1] = v - 1
      out[#out + 1] = 0
      return out
    end
    redis.call('PEXPIRE', k, ARGV[3])
    out[#out + 1] = v
    out[#out + 1] = 0
  else
    local cur = tonumber(redis.call('GET', k) or '0')
    local prev = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
    if prev * w + cur + 1 > limit then
      undo(i - 1)
      out[1] = i
      out[#out + 1] = cur
      out[#out + 1] = prev
      return out
    end
    if kind == 'r' then
      cur = redis.call('INCRBY', k, 1)
      redis.call('PEXPIRE', k, ARGV[2])
    end
    out[#out + 1] = cur
    out[#out + 1] = prev
  end
end
return out`;

/**
 * Frees one concurrency slot: a count that would go below one is deleted instead. A slot counter
 * that expired while its calls ran (a replica idle past SLOT_TTL_MS), or a release after an admit
 * that failed open (Redis was down), must not leave -1 behind: a key without a TTL that would
 * raise the tenant's limit by one for good.
 */
const RELEASE = `
local v = redis.call('DECR', KEYS[1])
if v <= 0 then redis.call('DEL', KEYS[1]) end
return v`;

/** A slot held by a replica that crashed frees itself after this long without activity on its key. */
const SLOT_TTL_MS = 10 * 60_000;
const MONTH_TTL_S = 40 * 86_400;
/** How long start-up waits for the change feed's subscription. */
const SUBSCRIBE_TIMEOUT_MS = 5000;

/** A change on the feed: who made it (its ack channel) and its id. */
interface ChangeMessage {
  readonly from: string;
  readonly id: string;
}

type Commands = Redis & {
  addSpent(cur: string, prev: string, amount: number, ttl: number): Promise<[number, number]>;
  admitAll(...args: Array<string | number>): Promise<number[]>;
  releaseSlot(key: string): Promise<number>;
};

/** The limit counters and the change feed in Redis, shared by every replica; limits fail open while it is unreachable. */
export class RedisState implements LimitState, ChangeFeed {
  readonly kind = 'redis';
  /**
   * This process on the change feed, as `unconfirmed_replicas` names it: host, pid and a random
   * suffix (pids repeat across hosts, and host names across restarted containers).
   */
  readonly name = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly #redis: Commands;
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #ackTimeoutMs: number;
  readonly #confirmations = new Confirmations();
  #subscriber: Redis | null = null;
  #down = false;

  /** `ackTimeoutMs`: how long a published change waits for the other processes' confirmations. */
  constructor(url: string, prefix: string, log: Logger, ackTimeoutMs = 2000) {
    // Fail fast instead of queueing while disconnected: a limit check must not hold a request.
    // Auto-pipelining sends the commands of one event-loop turn (many requests' checks) in one write.
    const redis = new Redis(url, {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
      commandTimeout: 500,
      lazyConnect: false,
    });
    redis.defineCommand('addSpent', { numberOfKeys: 2, lua: ADD });
    redis.defineCommand('admitAll', { lua: ADMIT });
    redis.defineCommand('releaseSlot', { numberOfKeys: 1, lua: RELEASE });
    redis.on('error', (err: Error) => this.#outage(err));
    redis.on('ready', () => {
      if (this.#down) this.#log.info('redis is back: limits are enforced again');
      this.#down = false;
    });
    this.#redis = redis as Commands;
    this.#prefix = prefix;
    this.#log = log;
    this.#ackTimeoutMs = ackTimeoutMs;
  }

  /** Resolves when connected; rejects with the connection error after `timeoutMs`. */
  async ready(timeoutMs = 5000): Promise<void> {
    if (this.#redis.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.#redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async admit(checks: readonly Check[], now: number): Promise<Admitted> {
    const index = Math.floor(now / WINDOW_MS);
    const keys: string[] = [];
    const argv: Array<string | number> = [1 - (now % WINDOW_MS) / WINDOW_MS, 2 * WINDOW_MS, SLOT_TTL_MS];
    for (const c of checks) {
      if (c.kind === 'concurrency') keys.push(`${this.#prefix}cc:${c.key}`, `${this.#prefix}cc:${c.key}`);
      else keys.push(`${this.#prefix}rl:${c.key}:${index}`, `${this.#prefix}rl:${c.key}:${index - 1}`);
      argv.push(c.kind === 'tokens' ? 't' : c.kind === 'requests' ? 'r' : 'c', c.limit);
    }
    try {
      const out = await this.#redis.admitAll(keys.length, ...keys, ...argv);
      const counts: Array<WindowCounts | null> = [];
      for (let i = 0; 2 * i + 1 < out.length; i++) {
        const kind = (checks[i] as Check).kind;
        counts.push(
          kind === 'concurrency' ? null : { allowed: true, current: out[2 * i + 1] as number, previous: out[2 * i + 2] as number },
        );
      }
      return { failed: (out[0] as number) - 1, counts };
    } catch (err) {
      this.#outage(err as Error);
      // Failed open: every check passes; a slot check has no window counts, as when it is answered.
      return { failed: -1, counts: checks.map((c) => (c.kind === 'concurrency' ? null : { allowed: true, current: 0, previous: 0 })) };
    }
  }

  async add(key: string, amount: number, now: number): Promise<WindowCounts> {
    const index = Math.floor(now / WINDOW_MS);
    const base = `${this.#prefix}rl:${key}:`;
    try {
      const [current, previous] = await this.#redis.addSpent(base + index, base + (index - 1), amount, 2 * WINDOW_MS);
      return { allowed: true, current, previous };
    } catch (err) {
      this.#outage(err as Error);
      return { allowed: true, current: 0, previous: 0 };
    }
  }

  release(key: string): void {
    this.#redis.releaseSlot(`${this.#prefix}cc:${key}`).catch((err: Error) => this.#outage(err));
  }

  async addMonthly(key: string, month: string, amount: number): Promise<number> {
    const k = `${this.#prefix}mo:${key}:${month}`;
    try {
      const [[, total]] = (await this.#redis.multi().incrby(k, amount).expire(k, MONTH_TTL_S).exec()) as [[Error | null, number]];
      return total;
    } catch (err) {
      this.#outage(err as Error);
      return 0;
    }
  }

  async seedMonthly(key: string, month: string, value: number): Promise<void> {
    try {
      await this.#redis.set(`${this.#prefix}mo:${key}:${month}`, value, 'EX', MONTH_TTL_S, 'NX');
    } catch (err) {
      this.#outage(err as Error);
    }
  }

  async publish(): Promise<string[]> {
    const change: ChangeMessage = { from: this.name, id: randomUUID() };
    let missing: string[];
    try {
      // Awaited from before the PUBLISH, so no confirmation can come first.
      const confirmed = this.#confirmations.wait(change.id, await this.#live(), this.#ackTimeoutMs);
      await this.#redis.publish(`${this.#prefix}changes`, JSON.stringify(change));
      missing = await confirmed;
    } catch (err) {
      this.#outage(err as Error);
      return ['*'];
    }
    if (missing.length === 0) return missing;
    try {
      // A process that exited meanwhile (its subscription closed with it) serves no more calls.
      const live = new Set(await this.#live());
      return missing.filter((name) => live.has(name));
    } catch {
      return missing;
    }
  }

  async subscribe(reload: () => Promise<void>): Promise<void> {
    // A connection of its own (a subscribed one can do nothing else), without the main one's
    // 500 ms command time-out, which is for limit checks that must not hold a request. A
    // subscription answered late (start-up work on a loaded machine keeps the event loop from
    // reading the reply) is no failure; with that time-out it was, and, unhandled, killed the server.
    const sub = this.#redis.duplicate({ enableOfflineQueue: true, enableAutoPipelining: false, commandTimeout: undefined });
    sub.on('error', () => undefined); // reported by the main connection
    this.#subscriber = sub;
    const changes = `${this.#prefix}changes`;
    const acks = this.#ackChannel(this.name);
    sub.on('message', (channel: string, message: string) => {
      if (channel === changes) this.#changed(message, reload);
      else if (channel === acks) this.#acked(message);
    });
    let subscribed = false;
    // Changes published while the subscription was down were missed: reload when it is back.
    sub.on('ready', () => {
      if (subscribed) reload().catch((err: unknown) => this.#log.warn({ err }, 'reloading tenants failed'));
    });
    // Both in one SUBSCRIBE: a process is never on the feed without its ack channel, or the reverse.
    await within(
      sub.subscribe(changes, acks),
      SUBSCRIBE_TIMEOUT_MS,
      `redis did not confirm the change feed's subscription within ${SUBSCRIBE_TIMEOUT_MS} ms`,
    );
    subscribed = true;
  }

  /** Another process's change: reload, then confirm it to that process. */
  #changed(message: string, reload: () => Promise<void>): void {
    const change = parseChange(message);
    if (change?.from === this.name) return;
    reload().then(
      () => {
        // A message without an id (an older version's) is reloaded, not confirmed.
        if (change === null) return;
        this.#redis
          .publish(this.#ackChannel(change.from), JSON.stringify({ id: change.id, by: this.name }))
          .catch((err: Error) => this.#outage(err));
      },
      (err: unknown) => this.#log.warn({ err }, 'reloading tenants failed: the change is not confirmed'),
    );
  }

  #acked(message: string): void {
    try {
      const { id, by } = JSON.parse(message) as { id?: unknown; by?: unknown };
      if (typeof id === 'string' && typeof by === 'string') this.#confirmations.confirm(id, by);
    } catch {
      // not an ack
    }
  }

  #ackChannel(name: string): string {
    return `${this.#prefix}acks:${name}`;
  }

  /** The other processes on the feed now: those whose ack channel has a subscriber. */
  async #live(): Promise<string[]> {
    const base = this.#ackChannel('');
    const channels = (await this.#redis.pubsub('CHANNELS', `${base.replace(/[*?[\\\]]/g, '\\$&')}*`)) as string[];
    return channels.map((c) => c.slice(base.length)).filter((name) => name !== this.name);
  }

  async close(): Promise<void> {
    this.#subscriber?.disconnect();
    await this.#redis.quit().catch(() => undefined);
  }

  #outage(err: Error): void {
    if (this.#down) return;
    this.#down = true;
    this.#log.error({ err: err.message }, 'redis unreachable: limits are NOT enforced until it is back');
  }
}

function parseChange(message: string): ChangeMessage | null {
  try {
    const m = JSON.parse(message) as Partial<ChangeMessage> | null;
    return typeof m?.from === 'string' && typeof m.id === 'string' ? { from: m.from, id: m.id } : null;
  } catch {
    return null;
  }
}
