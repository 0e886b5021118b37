/**
 * The limit stage: requests and tokens per rolling minute, concurrent requests, and a monthly token
 * quota, each per tenant and per key (both apply). A call is admitted or refused with 429, its
 * `Retry-After`, and OpenAI's `x-ratelimit-*` headers; an admitted call holds a {@link Grant} that
 * counts its tokens as they are spent and frees its concurrency slot when it ends.
 */
import type { Limits } from '../config/schema.js';
import { fastError, type ApiError } from '../core/errors.js';
import type { RateLimit, RateWindow } from '../core/rate-limit.js';
import { estimate, monthOf, untilNextMonth, waitFor, type Check, type LimitState, type WindowCounts } from '../cluster/state.js';
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

/** Enforces every tenant's and key's limits on its calls, with the counters in `state` (memory or Redis). */
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
    const plan = planOf(principal);
    if (plan.scopes.length === 0) return UNLIMITED;
    const now = this.#now();
    const month = monthOf(now);
    let allowance = Infinity;
    for (const scope of plan.quotas) {
      const quota = scope.limits.monthly_tokens as number;
      const used = await this.#monthly(scope, month, 0);
      if (used >= quota) {
        throw refusal(
          'insufficient_quota',
          'monthly_tokens',
          `${scope.label} has used its monthly quota of ${quota} tokens (${used} used in ${month}); it renews at the start of next month (UTC)`,
          untilNextMonth(now),
          null,
        );
      }
      allowance = Math.min(allowance, quota - used);
    }
    const pending = this.#state.admit(plan.checks, now);
    const { failed, counts } = pending instanceof Promise ? await pending : pending;
    const requests: Windowed[] = [];
    const tokens: Windowed[] = [];
    for (let i = 0; i < counts.length && i !== failed; i++) {
      const c = counts[i];
      const check = plan.checks[i] as Check;
      if (c === null || c === undefined) continue;
      if (check.kind === 'tokens') {
        tokens.push({ counts: c, limit: check.limit });
        allowance = Math.min(allowance, check.limit - estimate(c, now));
      } else requests.push({ counts: c, limit: check.limit });
    }
    if (failed >= 0) throw this.#refused(plan, failed, counts[failed] ?? null, requests, tokens, now);
    return this.#grant(plan.scopes, allowance, plan.slots, rateLimitOf(requests, tokens, now), month);
  }

  #refused(plan: Plan, failed: number, counts: WindowCounts | null, requests: Windowed[], tokens: Windowed[], now: number): ApiError {
    const check = plan.checks[failed] as Check;
    const label = (plan.owners[failed] as Scope).label;
    if (check.kind === 'concurrency' || counts === null) {
      return refusal(
        'rate_limited',
        'concurrent_requests',
        `${label} already has ${check.limit} requests in flight, its limit`,
        1000,
        rateLimitOf(requests, tokens, now),
      );
    }
    const used = estimate(counts, now);
    const wait = waitFor(counts, used + 1 - check.limit, now);
    // The refused limit's reset is the instant Retry-After names (there rounded up to whole seconds):
    // when a call fits again, not when the whole minute has rolled off.
    const refused: RateWindow = { limit: check.limit, remaining: Math.max(0, Math.floor(check.limit - used)), resetMs: Math.max(1, wait) };
    return check.kind === 'tokens'
      ? refusal('rate_limited', 'tokens_per_minute', `${label} is over its limit of ${check.limit} tokens per minute`, wait, {
          requests: tightest(requests, now),
          tokens: refused,
        })
      : refusal('rate_limited', 'requests_per_minute', `${label} is over its limit of ${check.limit} requests per minute`, wait, {
          requests: refused,
          tokens: tightest(tokens, now),
        });
  }

  #grant(scopes: readonly Scope[], initial: number, held: readonly string[], rateLimit: RateLimit | null, month: string): Grant {
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

interface Windowed {
  readonly counts: WindowCounts;
  readonly limit: number;
}

/** What to check for a principal, made once (a reload of the directory makes new principals). */
interface Plan {
  readonly scopes: readonly Scope[];
  /** Scopes with a monthly quota. */
  readonly quotas: readonly Scope[];
  /** Tokens, then requests, then concurrency, per scope: a refused call has spent nothing. */
  readonly checks: readonly Check[];
  /** The scope of each check. */
  readonly owners: readonly Scope[];
  /** Concurrency slots an admitted call holds. */
  readonly slots: readonly string[];
}

const planCache = new WeakMap<Principal, Plan>();

function planOf(principal: Principal): Plan {
  let plan = planCache.get(principal);
  if (plan !== undefined) return plan;
  const scope = (id: string, label: string, limits: Limits): Scope => ({
    id,
    requestsKey: `${id}:req`,
    tokensKey: `${id}:tok`,
    label,
    limits,
  });
  const scopes: Scope[] = [];
  const { tenant, key } = principal;
  if (hasLimits(tenant.limits)) scopes.push(scope(`t:${tenant.id}`, `tenant "${tenant.id}"`, tenant.limits));
  if (hasLimits(key.limits)) scopes.push(scope(`k:${key.id}`, `key ${key.id}`, key.limits));
  const checks: Check[] = [];
  const owners: Scope[] = [];
  const add = (s: Scope, check: Check): void => {
    checks.push(check);
    owners.push(s);
  };
  for (const s of scopes)
    if (s.limits.tokens_per_minute !== undefined) add(s, { kind: 'tokens', key: s.tokensKey, limit: s.limits.tokens_per_minute });
  for (const s of scopes)
    if (s.limits.requests_per_minute !== undefined) add(s, { kind: 'requests', key: s.requestsKey, limit: s.limits.requests_per_minute });
  for (const s of scopes)
    if (s.limits.concurrent_requests !== undefined) add(s, { kind: 'concurrency', key: s.id, limit: s.limits.concurrent_requests });
  plan = {
    scopes,
    quotas: scopes.filter((s) => s.limits.monthly_tokens !== undefined),
    checks,
    owners,
    slots: checks.filter((c) => c.kind === 'concurrency').map((c) => c.key),
  };
  planCache.set(principal, plan);
  return plan;
}

function hasLimits(limits: Limits): boolean {
  return (
    limits.requests_per_minute !== undefined ||
    limits.tokens_per_minute !== undefined ||
    limits.concurrent_requests !== undefined ||
    limits.monthly_tokens !== undefined
  );
}

/** The limit of a tenant or key that refused a call, as its config names it. */
type LimitName = 'requests_per_minute' | 'tokens_per_minute' | 'concurrent_requests' | 'monthly_tokens';

function refusal(
  code: 'rate_limited' | 'insufficient_quota',
  limit: LimitName,
  message: string,
  waitMs: number,
  rateLimit: RateLimit | null,
): ApiError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  return fastError(code, `${message}; retry after ${seconds} s`, null, { retryAfterS: seconds, rateLimit, limit });
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
