/**
 * Counters behind the limits, shared by whoever enforces them: in memory for one process, in Redis
 * for many (see redis-state.ts). Windows are per minute; a rolling minute is estimated from the
 * current and previous windows (the sliding-window counter of Cloudflare and nginx), so there is no
 * doubled burst at a window's edge.
 */

/** The length of a rate window: one minute. */
export const WINDOW_MS = 60_000;

/** The two windows a rolling minute spans, as counted. */
export interface WindowCounts {
  /** Whether the cost was admitted (and counted). */
  readonly allowed: boolean;
  readonly current: number;
  readonly previous: number;
}

/** A memory state answers at once; a Redis one after a round trip. Callers await only promises. */
export type Maybe<T> = T | Promise<T>;

/**
 * One check of an admission: `tokens` passes while at least one token is left (counts nothing),
 * `requests` counts one request, `concurrency` takes a slot. Keys: the counter's, or for windows
 * its base (the current and previous windows' keys are made from it).
 */
export interface Check {
  readonly kind: 'tokens' | 'requests' | 'concurrency';
  readonly key: string;
  readonly limit: number;
}

/** The outcome of a batch of checks: the index of the first that failed (-1: none), and each evaluated window's counts. */
export interface Admitted {
  readonly failed: number;
  /** Per check up to and including the failed one; null for concurrency checks. */
  readonly counts: ReadonlyArray<WindowCounts | null>;
}

/** The store of the limit counters: this process's memory (MemoryState) or Redis. `now` is epoch milliseconds. */
export interface LimitState {
  /**
   * Runs checks in order, atomically; at the first that fails, undoes what the earlier ones took
   * (a counted request, a slot) and stops. One round trip in Redis, whatever the number of checks.
   */
  admit(checks: readonly Check[], now: number): Maybe<Admitted>;
  /** Counts `amount` (tokens already spent) without a check. */
  add(key: string, amount: number, now: number): Maybe<WindowCounts>;
  /** Frees a concurrency slot that `admit` took. */
  release(key: string): void;
  /** Adds to a month's total and returns it. */
  addMonthly(key: string, month: string, amount: number): Maybe<number>;
  /** Sets a month's total unless it is already counted (a restart seeding from the ledger). */
  seedMonthly(key: string, month: string, value: number): Promise<void>;
  close(): Promise<void>;
  readonly kind: 'memory' | 'redis';
}

/** The rolling-minute estimate: all of the current window plus the part of the previous one still inside the minute. */
export function estimate(counts: WindowCounts, now: number): number {
  return counts.previous * (1 - (now % WINDOW_MS) / WINDOW_MS) + counts.current;
}

/** Milliseconds until the estimate has dropped by `excess` (nothing more counted meanwhile). */
export function waitFor(counts: WindowCounts, excess: number, now: number): number {
  if (excess <= 0) return 0;
  const elapsed = now % WINDOW_MS;
  const left = WINDOW_MS - elapsed;
  const previousLeft = (counts.previous * left) / WINDOW_MS;
  if (excess <= previousLeft) return Math.ceil((excess * WINDOW_MS) / counts.previous);
  // The previous window is gone when this one ends; then the current one decays as the next minute passes.
  if (counts.current === 0) return left;
  return Math.ceil(left + Math.min(WINDOW_MS, ((excess - previousLeft) * WINDOW_MS) / counts.current));
}

let monthCache = { from: 0, to: 0, name: '' };

/** `2025-11` for a time: the month a quota counts in (UTC). Cached: formatting a date costs more than a limit check. */
export function monthOf(now: number): string {
  const c = monthCache;
  if (now >= c.from && now < c.to) return c.name;
  const d = new Date(now);
  const from = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  monthCache = { from, to: now + untilNextMonth(now), name: d.toISOString().slice(0, 7) };
  return monthCache.name;
}

/** Milliseconds from `now` to the start of the next UTC month. */
export function untilNextMonth(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) - now;
}

interface Windows {
  index: number;
  current: number;
  previous: number;
}

/** One process's counters. */
export class MemoryState implements LimitState {
  readonly kind = 'memory';
  readonly #windows = new Map<string, Windows>();
  readonly #slots = new Map<string, number>();
  readonly #months = new Map<string, number>();

  admit(checks: readonly Check[], now: number): Admitted {
    const counts: Array<WindowCounts | null> = [];
    for (let i = 0; i < checks.length; i++) {
      const c = checks[i] as Check;
      let ok: boolean;
      if (c.kind === 'concurrency') {
        ok = this.acquire(c.key, c.limit);
        counts.push(null);
      } else {
        const w = this.take(c.key, c.limit, c.kind === 'requests' ? 1 : 0, 1, now);
        ok = w.allowed;
        counts.push(w);
      }
      if (!ok) {
        for (let j = 0; j < i; j++) {
          const done = checks[j] as Check;
          if (done.kind === 'concurrency') this.release(done.key);
          else if (done.kind === 'requests') this.add(done.key, -1, now);
        }
        return { failed: i, counts };
      }
    }
    return { failed: -1, counts };
  }

  /**
   * Counts `cost` in the current window of `key` if the rolling-minute estimate plus `need` stays
   * within `limit`. `need` is at least `cost`: a token check passes `cost` 0 and `need` 1 (one token left).
   */
  take(key: string, limit: number, cost: number, need: number, now: number): WindowCounts {
    const w = this.#roll(key, now);
    const allowed = w.previous * (1 - (now % WINDOW_MS) / WINDOW_MS) + w.current + need <= limit;
    if (allowed) w.current += cost;
    return { allowed, current: w.current, previous: w.previous };
  }

  add(key: string, amount: number, now: number): WindowCounts {
    const w = this.#roll(key, now);
    w.current += amount;
    return { allowed: true, current: w.current, previous: w.previous };
  }

  /** Takes one of `limit` concurrent slots; false when all are taken. */
  acquire(key: string, limit: number): boolean {
    const n = this.#slots.get(key) ?? 0;
    if (n >= limit) return false;
    this.#slots.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = (this.#slots.get(key) ?? 1) - 1;
    if (n <= 0) this.#slots.delete(key);
    else this.#slots.set(key, n);
  }

  addMonthly(key: string, month: string, amount: number): number {
    const k = `${key}:${month}`;
    const total = (this.#months.get(k) ?? 0) + amount;
    this.#months.set(k, total);
    return total;
  }

  async seedMonthly(key: string, month: string, value: number): Promise<void> {
    const k = `${key}:${month}`;
    if (!this.#months.has(k)) this.#months.set(k, value);
  }

  async close(): Promise<void> {}

  /** The windows of `key` as of `now`: a new minute moves the current count to previous (or drops both after a gap). */
  #roll(key: string, now: number): Windows {
    const index = Math.floor(now / WINDOW_MS);
    let w = this.#windows.get(key);
    if (w === undefined) {
      w = { index, current: 0, previous: 0 };
      this.#windows.set(key, w);
    } else if (w.index !== index) {
      w.previous = w.index === index - 1 ? w.current : 0;
      w.current = 0;
      w.index = index;
    }
    return w;
  }
}
