/**
 * The fleet's store in etcd v3, through the `etcd3` gRPC client. An entry that expires is a key
 * attached to a lease granted for that one write; a fleet lease (`acquire`) is a key holding its
 * holder's name on such a lease; the change feed is an etcd watch on the prefix, which also reports
 * expiries (as deletes) and resumes from the last revision it saw after a broken stream.
 *
 * etcd counts lease TTLs in whole seconds and raises short ones to its minimum (1.5 election
 * timeouts, rounded up: 2 s with the default 1 s election timeout), so a `ttlMs` is rounded up to a
 * second and may live a little longer than asked; an expired lease's keys go within about half a
 * second of its deadline. Callers' TTLs are many seconds, so neither matters.
 *
 * Nothing fails open: every call has one deadline, retries included, and then rejects.
 */
import { Etcd3, Range, type IKeyValue, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import type { Entry, FleetStore, Unwatch } from './fleet-store.js';
import { within } from '../core/within.js';

/** How long one call, retries included, may take before it rejects. */
const CALL_TIMEOUT_MS = 3000;
/** How long `watch` waits for etcd to confirm the watch. */
const WATCH_TIMEOUT_MS = 5000;

/** One `watch`: the etcd watcher in force (replaced when etcd cancels it) and whether it was stopped. */
interface Watch {
  readonly prefix: string;
  readonly changed: (key: string) => void;
  watcher: Watcher | null;
  stopped: boolean;
}

/** The fleet's store in etcd, shared by every replica that names the same cluster and prefix. */
export class EtcdFleetStore implements FleetStore {
  readonly kind = 'etcd';
  readonly #etcd: Etcd3;
  readonly #prefix: string;
  readonly #log: Logger;
  /**
   * Leases this process granted and has not revoked, with when they expire (epoch ms). When a
   * write replaces a key that was on one of them, the lease is revoked at once, so a heartbeat every
   * few seconds keeps one lease per key alive, not one per beat. Each lease carries one key, so
   * revoking it once that key has moved to another lease deletes nothing.
   */
  readonly #granted = new Map<string, number>();
  readonly #watches = new Set<Watch>();

  /** `endpoints`: client URLs (`http://127.0.0.1:2379`); `prefix` goes in front of every key (`/infergate/fleet/`). */
  constructor(endpoints: string[], prefix: string, log: Logger) {
    this.#etcd = new Etcd3({ hosts: endpoints, dialTimeout: CALL_TIMEOUT_MS });
    this.#prefix = prefix;
    this.#log = log;
  }

  async put(key: string, value: string, ttlMs?: number): Promise<void> {
    const lease = ttlMs === undefined ? '0' : await this.#grant(ttlMs);
    try {
      const res = await this.#etcd.kv.put({ key: this.#key(key), value: Buffer.from(value), lease, prev_kv: true }, this.#deadline());
      this.#replaced(res.prev_kv);
    } catch (err) {
      this.#revoke(lease);
      throw err;
    }
  }

  async get(key: string): Promise<string | null> {
    const res = await this.#etcd.kv.range({ key: this.#key(key) }, this.#deadline());
    return res.kvs[0]?.value.toString() ?? null;
  }

  async list(prefix: string): Promise<Entry[]> {
    const range = Range.prefix(this.#key(prefix));
    // etcd returns a range in key order (bytes; the same as string order for the ASCII keys the fleet uses).
    const res = await this.#etcd.kv.range({ key: range.start, range_end: range.end }, this.#deadline());
    return res.kvs.map((kv) => ({ key: this.#relative(kv.key), value: kv.value.toString() }));
  }

  async delete(key: string): Promise<void> {
    const res = await this.#etcd.kv.deleteRange({ key: this.#key(key), prev_kv: true }, this.#deadline());
    for (const kv of res.prev_kvs) this.#replaced(kv);
  }

  async acquire(key: string, holder: string, ttlMs: number): Promise<boolean> {
    const k = this.#key(key);
    const value = Buffer.from(holder);
    const lease = await this.#grant(ttlMs);
    const put = { request_put: { key: k, value, lease, prev_kv: true } };
    try {
      // Compares in one txn are ANDed, so "free, or already the holder's" takes two: renew if the
      // holder's (its value), else take it if it does not exist (create revision 0). A lease that
      // changed hands between the two is simply not taken this time.
      for (const compare of [
        { key: k, target: 'Value', result: 'Equal', value },
        { key: k, target: 'Create', result: 'Equal', create_revision: 0 },
      ] as const) {
        const res = await this.#etcd.kv.txn({ compare: [compare], success: [put] }, this.#deadline());
        if (res.succeeded) {
          this.#replaced(res.responses[0]?.response_put.prev_kv);
          return true;
        }
      }
    } catch (err) {
      this.#revoke(lease);
      throw err;
    }
    this.#revoke(lease);
    return false;
  }

  async release(key: string, holder: string): Promise<void> {
    const k = this.#key(key);
    const res = await this.#etcd.kv.txn(
      {
        compare: [{ key: k, target: 'Value', result: 'Equal', value: Buffer.from(holder) }],
        success: [{ request_delete_range: { key: k, prev_kv: true } }],
      },
      this.#deadline(),
    );
    if (res.succeeded) for (const kv of res.responses[0]?.response_delete_range.prev_kvs ?? []) this.#replaced(kv);
  }

  async watch(prefix: string, changed: (key: string) => void): Promise<Unwatch> {
    const watch: Watch = { prefix, changed, watcher: null, stopped: false };
    this.#watches.add(watch);
    try {
      await this.#start(watch);
    } catch (err) {
      await this.#stop(watch);
      throw err;
    }
    // Stops at once (no more calls to `changed`); etcd's cancellation completes in the background.
    return () => void this.#stop(watch);
  }

  async close(): Promise<void> {
    // A watcher left open keeps its gRPC stream, and so the process, alive after close().
    await Promise.all([...this.#watches].map((w) => this.#stop(w)));
    this.#etcd.close();
  }

  /**
   * Opens an etcd watcher for `watch` and resolves once etcd confirmed it. The client reconnects a
   * broken stream itself and resumes after the last revision it saw; each reconnect after the first
   * still tells the watcher to read everything again, as the interface promises. A watcher that
   * etcd cancels (its start revision was compacted away while the stream was down) is replaced by a
   * fresh one, from now, and the watcher told to read everything again.
   */
  #start(watch: Watch, resumed = false): Promise<void> {
    const start = this.#key(watch.prefix);
    const watcher = this.#etcd.watch().prefix(start).watcher();
    watch.watcher = watcher;
    const notify = (key: string): void => {
      if (watch.stopped) return;
      try {
        watch.changed(key);
      } catch (err) {
        this.#log.error({ err }, 'a fleet store watcher threw');
      }
    };
    const event = (kv: IKeyValue): void => notify(this.#relative(kv.key));
    watcher.on('put', event).on('delete', event);
    watcher.on('disconnected', (err) => this.#log.warn({ err: err.message }, 'etcd watch stream broken: reconnecting'));
    let confirmed = false;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        void watcher.cancel().catch(() => undefined);
        reject(new Error(`etcd did not confirm the watch on ${start} within ${WATCH_TIMEOUT_MS} ms`));
      }, WATCH_TIMEOUT_MS);
      watcher.on('connected', () => {
        if (confirmed || resumed) notify(watch.prefix);
        if (confirmed) return;
        confirmed = true;
        clearTimeout(timer);
        resolve();
      });
      watcher.on('error', (err) => {
        if (!confirmed) {
          clearTimeout(timer);
          reject(err);
          return;
        }
        if (watch.stopped) return;
        this.#log.warn({ err: err.message }, 'etcd cancelled the fleet watch: watching again from now');
        this.#start(watch, true).catch((e: unknown) => this.#retry(watch, e));
      });
    });
  }

  /** A replacement watcher that could not start: try again in a second, until the watch is stopped. */
  #retry(watch: Watch, err: unknown): void {
    if (watch.stopped) return;
    this.#log.warn({ err: (err as Error).message }, 'etcd fleet watch not restarted: trying again');
    setTimeout(() => {
      if (!watch.stopped) this.#start(watch, true).catch((e: unknown) => this.#retry(watch, e));
    }, 1000).unref();
  }

  async #stop(watch: Watch): Promise<void> {
    watch.stopped = true;
    this.#watches.delete(watch);
    const watcher = watch.watcher;
    watch.watcher = null;
    // A watcher etcd already cancelled, or one whose stream is down, detaches without a reply;
    // the time-out keeps close() from waiting on a server that is gone.
    if (watcher !== null) await within(watcher.cancel(), CALL_TIMEOUT_MS).catch(() => undefined);
  }

  /** Grants a lease for one write: `ttlMs` rounded up to whole seconds (etcd raises it to its minimum). */
  async #grant(ttlMs: number): Promise<string> {
    const ttl = Math.max(1, Math.ceil(ttlMs / 1000));
    const res = await this.#etcd.leaseClient.leaseGrant({ TTL: ttl }, this.#deadline());
    const now = Date.now();
    for (const [id, expires] of this.#granted) if (expires < now) this.#granted.delete(id);
    this.#granted.set(res.ID, now + Number(res.TTL) * 1000);
    return res.ID;
  }

  /** A key this process's write moved off its lease, or deleted: that lease, if ours, is revoked. */
  #replaced(prev: IKeyValue | undefined | null): void {
    if (prev?.lease !== undefined) this.#revoke(prev.lease);
  }

  /** Revokes a lease this process granted, in the background: one that fails expires by itself. */
  #revoke(lease: string): void {
    if (!this.#granted.delete(lease)) return;
    this.#etcd.leaseClient.leaseRevoke({ ID: lease }, this.#deadline()).catch((err: Error) => {
      this.#log.debug({ err: err.message, lease }, 'revoking an etcd lease failed: it expires by itself');
    });
  }

  #key(key: string): Buffer {
    return Buffer.from(this.#prefix + key);
  }

  #relative(key: Buffer): string {
    return key.toString().slice(this.#prefix.length);
  }

  /** One deadline for a call and all the client's retries of it. */
  #deadline(): { deadline: number } {
    return { deadline: Date.now() + CALL_TIMEOUT_MS };
  }
}
