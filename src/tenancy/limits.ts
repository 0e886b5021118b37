/**
 * The limit stage: requests and tokens per rolling minute, concurrent requests, and a monthly token
 * quota, each per tenant and per key (both apply). A call is admitted or refused with 429, its
 * `Retry-After`, and OpenAI's `x-ratelimit-*` headers; an admitted call holds a {@link Grant} that
 * counts its tokens as they are spent and frees its concurrency slot when it ends.
 */
import type { Limits } from '../config/schema.js';
import { fastError, type ApiError } from '../core/errors.js';
import type { RateLimit, RateWindow } from '../core/rate-limit.js';
import { estimate, monthOf, untilNextMonth, waitFor, type LimitState, type WindowCounts } from '../cluster/state.js';
import type { Principal } from './directory.js';

/** One set of limits and whose they are, with its counter keys made once. */
interface Scope {
  /** The counter key: `t:<tenant>` or `k:<key id>`. */
  readonly id: string;
  readonly requestsKey: string;
  readonly tokensKey: string;
  /** For messages: `tenant "acme"` or `key key_1f2e`. */
  readonly label: string;
  readonly limits: Limits;
}

/** What the limits say about one admitted call: where the caller stands and the tokens it may still spend. */
export interface Grant {
  /** Where the caller stands (sent as `x-ratelimit-*`); null when no rate limit applies. */
  readonly rateLimit: RateLimit | null;
  /** Tokens this call may spend before a token limit or quota runs out; Infinity when none applies. */
  readonly allowance: number;
  /** Counts tokens spent; resolves to the allowance left (at most 0 means stop). */
  charge(tokens: number): Promise<number>;
  /** Frees the call's concurrency slots; called once, when the call (or its stream) ends. */
  release(): void;
}

const UNLIMITED: Grant = { rateLimit: null, allowance: Infinity, charge: async () => Infinity, release: () => undefined };

/** Seeds a scope's month total from the ledger the first time the scope is checked in a month. */
export type MonthSeed = (scope: { kind: 'tenant' | 'key'; id: string }, month: string) => Promise<number>;

export class Limiter {
  readonly #state: LimitState;
  readonly #seed: MonthSeed;
  readonly #now: () => number;
  readonly #seeded = new Set<string>();

  constructor(state: LimitState, seed: MonthSeed, now: () => number = Date.now) {
    this.#state = state;
    this.#seed = seed;
    this.#now = now;
  }

  /** Admits a call of `principal` or throws 429; the checks that passed are undone when a later one fails. */
  async admit(principal: Principal): Promise<Grant> {
    const scopes = scopesOf(principal);
    if (scopes.length === 0) return UNLIMITED;
    const now = this.#now();
    const state = this.#state;
    const month = monthOf(now);
    let allowance = Infinity;
    const requests: Array<{ scope: Scope; counts: WindowCounts; limit: number }> = [];
    const tokens: Array<{ scope: Scope; counts: WindowCounts; limit: number }> = [];
    const held: string[] = [];
    try {
      for (const scope of scopes) {
        const quota = scope.limits.monthly_tokens;
        if (quota === undefined) continue;
        const used = await this.#monthly(scope, month, 0);
        if (used >= quota) {
          throw refusal(
            'insufficient_quota',
            `${scope.label} has used its monthly quota of ${quota} tokens (${used} used in ${month}); it renews at the start of next month (UTC)`,
            untilNextMonth(now),
            null,
          );
        }
        allowance = Math.min(allowance, quota - used);
      }
      for (const scope of scopes) {
        const limit = scope.limits.tokens_per_minute;
        if (limit === undefined) continue;
        const taken = state.take(scope.tokensKey, limit, 0, 1, now);
        const counts = taken instanceof Promise ? await taken : taken;
        const used = estimate(counts, now);
        if (!counts.allowed) {
          const rateLimit = rateLimitOf(requests, [{ counts, limit }], now);
          throw refusal(
            'rate_limited',
            `${scope.label} is over its limit of ${limit} tokens per minute`,
            waitFor(counts, used + 1 - limit, now),
            rateLimit,
          );
        }
        tokens.push({ scope, counts, limit });
        allowance = Math.min(allowance, limit - used);
      }
      for (const scope of scopes) {
        const limit = scope.limits.requests_per_minute;
        if (limit === undefined) continue;
        const taken = state.take(scope.requestsKey, limit, 1, 1, now);
        const counts = taken instanceof Promise ? await taken : taken;
        if (!counts.allowed) {
          const rateLimit = rateLimitOf([{ counts, limit }], tokens, now);
          throw refusal(
            'rate_limited',
            `${scope.label} is over its limit of ${limit} requests per minute`,
            waitFor(counts, estimate(counts, now) + 1 - limit, now),
            rateLimit,
          );
        }
        requests.push({ scope, counts, limit });
      }
      for (const scope of scopes) {
        const limit = scope.limits.concurrent_requests;
        if (limit === undefined) continue;
        const acquired = state.acquire(scope.id, limit);
        if (!(acquired instanceof Promise ? await acquired : acquired)) {
          throw refusal(
            'rate_limited',
            `${scope.label} already has ${limit} requests in flight, its limit`,
            1000,
            rateLimitOf(requests, tokens, now),
          );
        }
        held.push(scope.id);
      }
    } catch (err) {
      for (const id of held) state.release(id);
      // An admitted request count is given back, so a refusal does not use up the minute.
      for (const r of requests) void state.add(r.scope.requestsKey, -1, now);
      throw err;
    }
    return this.#grant(scopes, allowance, held, rateLimitOf(requests, tokens, now), month);
  }

  #grant(scopes: readonly Scope[], initial: number, held: string[], rateLimit: RateLimit | null, month: string): Grant {
    const state = this.#state;
    let released = false;
    const grant: Grant = {
      rateLimit,
      allowance: initial,
      charge: async (n: number): Promise<number> => {
        if (n <= 0) return grant.allowance;
        const now = this.#now();
        let left = Infinity;
        for (const scope of scopes) {
          const tpm = scope.limits.tokens_per_minute;
          if (tpm !== undefined) {
            const added = state.add(scope.tokensKey, n, now);
            left = Math.min(left, tpm - estimate(added instanceof Promise ? await added : added, now));
          }
          const quota = scope.limits.monthly_tokens;
          if (quota !== undefined) left = Math.min(left, quota - (await this.#monthly(scope, month, n)));
        }
        (grant as { allowance: number }).allowance = left;
        return left;
      },
      release: () => {
        if (released) return;
        released = true;
        for (const id of held) state.release(id);
      },
    };
    return grant;
  }

  async #monthly(scope: Scope, month: string, add: number): Promise<number> {
    // Rare enough (only scopes with a monthly quota) to stay simple.
    const key = `${scope.id}:${month}`;
    if (!this.#seeded.has(key)) {
      const [kind, id] = scope.id.startsWith('t:') ? (['tenant', scope.id.slice(2)] as const) : (['key', scope.id.slice(2)] as const);
      await this.#state.seedMonthly(scope.id, month, await this.#seed({ kind, id }, month));
      this.#seeded.add(key);
    }
    return this.#state.addMonthly(scope.id, month, add);
  }
}

/** Scopes per principal, made once (a reload of the directory makes new principals). */
const scopeCache = new WeakMap<Principal, readonly Scope[]>();

function scopesOf(principal: Principal): readonly Scope[] {
  let scopes = scopeCache.get(principal);
  if (scopes !== undefined) return scopes;
  const scope = (id: string, label: string, limits: Limits): Scope => ({
    id,
    requestsKey: `${id}:req`,
    tokensKey: `${id}:tok`,
    label,
    limits,
  });
  const list: Scope[] = [];
  const { tenant, key } = principal;
  if (hasLimits(tenant.limits)) list.push(scope(`t:${tenant.id}`, `tenant "${tenant.id}"`, tenant.limits));
  if (hasLimits(key.limits)) list.push(scope(`k:${key.id}`, `key ${key.id}`, key.limits));
  scopes = list;
  scopeCache.set(principal, scopes);
  return scopes;
}

function hasLimits(limits: Limits): boolean {
  return (
    limits.requests_per_minute !== undefined ||
    limits.tokens_per_minute !== undefined ||
    limits.concurrent_requests !== undefined ||
    limits.monthly_tokens !== undefined
  );
}

function refusal(code: 'rate_limited' | 'insufficient_quota', message: string, waitMs: number, rateLimit: RateLimit | null): ApiError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  const e = fastError(code, `${message}; retry after ${seconds} s`);
  e.retryAfterS = seconds;
  e.rateLimit = rateLimit;
  return e;
}

/** Where the caller stands, for the scope closest to its limit of each kind. */
function rateLimitOf(
  requests: ReadonlyArray<{ counts: WindowCounts; limit: number }>,
  tokens: ReadonlyArray<{ counts: WindowCounts; limit: number }>,
  now: number,
): RateLimit | null {
  if (requests.length === 0 && tokens.length === 0) return null;
  return { requests: tightest(requests, now), tokens: tightest(tokens, now) };
}

function tightest(list: ReadonlyArray<{ counts: WindowCounts; limit: number }>, now: number): RateWindow | null {
  let best: RateWindow | null = null;
  for (const { counts, limit } of list) {
    const used = estimate(counts, now);
    const remaining = Math.max(0, Math.floor(limit - used));
    if (best === null || remaining < best.remaining) best = { limit, remaining, resetMs: waitFor(counts, used, now) };
  }
  return best;
}
