/**
 * The store a fleet of replicas shares: key-value with expiry (an instance's record lives only
 * while it renews it), leases one holder owns at a time (the replica that drives a rollout), and a
 * feed of changes under a prefix (a weight override written by one replica, seen by all). Three
 * implementations: this process's memory (one replica, nothing shared), Redis and etcd. Keys are
 * relative (`instances/abc`); each store puts its own prefix in front.
 */

/** One key and its value, as `list` returns them. */
export interface Entry {
  readonly key: string;
  readonly value: string;
}

/** Stops a watch. */
export type Unwatch = () => void;

/** What a fleet shares, whatever keeps it. Every method rejects when the store cannot be reached. */
export interface FleetStore {
  readonly kind: 'memory' | 'redis' | 'etcd';
  /**
   * Writes `key`. With `ttlMs` the value disappears that long after this write unless written again
   * (an instance's heartbeat); without it, it stays until deleted.
   */
  put(key: string, value: string, ttlMs?: number): Promise<void>;
  get(key: string): Promise<string | null>;
  /** Every live key under `prefix` and its value, in key order. */
  list(prefix: string): Promise<Entry[]>;
  delete(key: string): Promise<void>;
  /**
   * Takes or renews the lease `key` for `holder` for `ttlMs`: true when `holder` holds it now
   * (it was free, had expired, or was already its own), false when another holder does. Atomic.
   */
  acquire(key: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up if `holder` holds it. */
  release(key: string, holder: string): Promise<void>;
  /**
   * Calls `changed` with the key of each write or delete under `prefix` by any replica (in etcd
   * also expiries); a feed that was interrupted calls it with `prefix` itself once it is back, for
   * the watcher to read everything again. Resolves once watching.
   */
  watch(prefix: string, changed: (key: string) => void): Promise<Unwatch>;
  close(): Promise<void>;
}

/** The watchers of a store that tells them itself (memory, the primary's over IPC): who hears which prefix. */
export class PrefixWatchers {
  readonly #all = new Set<{ prefix: string; changed: (key: string) => void }>();

  add(prefix: string, changed: (key: string) => void): Unwatch {
    const watcher = { prefix, changed };
    this.#all.add(watcher);
    return () => this.#all.delete(watcher);
  }

  /** Tells every watcher of a prefix of `key`; `defer` runs each call (default: at once). */
  notify(key: string, defer: (call: () => void) => void = (call) => call()): void {
    for (const w of this.#all) if (key.startsWith(w.prefix)) defer(() => w.changed(key));
  }

  clear(): void {
    this.#all.clear();
  }
}

interface Held {
  value: string;
  /** Epoch ms; Infinity: no expiry. */
  expires: number;
}

/** One process's store: what one replica needs when there is no fleet (weight overrides still work, for its own worker). */
export class MemoryFleetStore implements FleetStore {
  readonly kind = 'memory';
  readonly #entries = new Map<string, Held>();
  readonly #watchers = new PrefixWatchers();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async put(key: string, value: string, ttlMs?: number): Promise<void> {
    this.#entries.set(key, { value, expires: ttlMs === undefined ? Infinity : this.#now() + ttlMs });
    this.#notify(key);
  }

  async get(key: string): Promise<string | null> {
    return this.#live(key)?.value ?? null;
  }

  async list(prefix: string): Promise<Entry[]> {
    const out: Entry[] = [];
    for (const key of [...this.#entries.keys()].sort()) {
      const held = key.startsWith(prefix) ? this.#live(key) : undefined;
      if (held !== undefined) out.push({ key, value: held.value });
    }
    return out;
  }

  async delete(key: string): Promise<void> {
    if (this.#entries.delete(key)) this.#notify(key);
  }

  async acquire(key: string, holder: string, ttlMs: number): Promise<boolean> {
    const held = this.#live(key);
    if (held !== undefined && held.value !== holder) return false;
    this.#entries.set(key, { value: holder, expires: this.#now() + ttlMs });
    return true;
  }

  async release(key: string, holder: string): Promise<void> {
    if (this.#live(key)?.value === holder) this.#entries.delete(key);
  }

  async watch(prefix: string, changed: (key: string) => void): Promise<Unwatch> {
    return this.#watchers.add(prefix, changed);
  }

  async close(): Promise<void> {
    this.#watchers.clear();
  }

  #live(key: string): Held | undefined {
    const held = this.#entries.get(key);
    if (held === undefined) return undefined;
    if (held.expires > this.#now()) return held;
    this.#entries.delete(key);
    return undefined;
  }

  #notify(key: string): void {
    // Asynchronously, as a shared store's feed would: a writer never runs its watchers inside its own write.
    this.#watchers.notify(key, queueMicrotask);
  }
}
