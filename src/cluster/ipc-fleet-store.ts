/**
 * The fleet store of one replica's workers when there is no Redis or etcd: the cluster primary
 * holds a MemoryFleetStore and each worker reaches it over node:cluster's IPC channel, so a weight
 * override or a rollout set through one worker is in force in every worker of the replica (not in
 * other replicas: for those, a shared store). Messages: worker -> primary `fleet-store {id, op,
 * args}`; primary -> worker `fleet-store-reply {id, result | error}` and, to every worker,
 * `fleet-store-changed {key}` after each write or delete.
 */
import type { Entry, FleetStore, Unwatch } from './fleet-store.js';
import { MemoryFleetStore, PrefixWatchers } from './fleet-store.js';

type Op = 'put' | 'get' | 'list' | 'delete' | 'acquire' | 'release';

interface StoreMessage {
  readonly type?: string;
  readonly id?: number;
  readonly op?: Op;
  readonly args?: unknown[];
  readonly result?: unknown;
  readonly error?: string;
  readonly key?: string;
}

/** What the store needs of a worker's process: its IPC channel to the primary. */
export interface StoreChannel {
  send?(message: StoreMessage): boolean;
  on(event: 'message', listener: (message: StoreMessage) => void): unknown;
}

/** How long a worker waits for the primary's answer. */
const ANSWER_MS = 3000;

/** A worker's side: every call is a message to the primary's store. */
export class IpcFleetStore implements FleetStore {
  readonly kind = 'memory';
  readonly #channel: StoreChannel;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #watchers = new PrefixWatchers();
  #next = 0;

  constructor(channel: StoreChannel) {
    this.#channel = channel;
    channel.on('message', (msg) => {
      if (msg?.type === 'fleet-store-reply' && msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        if (p === undefined) return;
        this.#pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.error !== undefined) p.reject(new Error(msg.error));
        else p.resolve(msg.result);
      } else if (msg?.type === 'fleet-store-changed' && typeof msg.key === 'string') {
        this.#watchers.notify(msg.key);
      }
    });
  }

  put(key: string, value: string, ttlMs?: number): Promise<void> {
    return this.#call('put', [key, value, ttlMs]) as Promise<void>;
  }

  get(key: string): Promise<string | null> {
    return this.#call('get', [key]) as Promise<string | null>;
  }

  list(prefix: string): Promise<Entry[]> {
    return this.#call('list', [prefix]) as Promise<Entry[]>;
  }

  delete(key: string): Promise<void> {
    return this.#call('delete', [key]) as Promise<void>;
  }

  acquire(key: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.#call('acquire', [key, holder, ttlMs]) as Promise<boolean>;
  }

  release(key: string, holder: string): Promise<void> {
    return this.#call('release', [key, holder]) as Promise<void>;
  }

  async watch(prefix: string, changed: (key: string) => void): Promise<Unwatch> {
    return this.#watchers.add(prefix, changed);
  }

  async close(): Promise<void> {
    this.#watchers.clear();
  }

  #call(op: Op, args: unknown[]): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`the cluster primary did not answer a fleet store call within ${ANSWER_MS} ms`));
      }, ANSWER_MS);
      timer.unref();
      this.#pending.set(id, { resolve, reject, timer });
      if (this.#channel.send?.({ type: 'fleet-store', id, op, args }) !== true) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new Error('no IPC channel to the cluster primary'));
      }
    });
  }
}

/** What the primary needs of a worker (node:cluster's Worker). */
export interface StoreWorker {
  send(message: StoreMessage): boolean;
  isConnected(): boolean;
}

/** The primary's side: the store itself, answering its workers and telling each of every change. */
export class FleetStoreHost {
  readonly #store = new MemoryFleetStore();
  readonly #workers: () => Iterable<StoreWorker | undefined>;

  constructor(workers: () => Iterable<StoreWorker | undefined>) {
    this.#workers = workers;
    void this.#store.watch('', (key) => {
      for (const w of this.#workers()) if (w?.isConnected() === true) w.send({ type: 'fleet-store-changed', key });
    });
  }

  /** Answers a worker's store call; false for any other message. */
  handle(worker: StoreWorker, msg: StoreMessage): boolean {
    if (msg?.type !== 'fleet-store' || msg.id === undefined || msg.op === undefined) return false;
    const id = msg.id;
    const args = msg.args ?? [];
    const store = this.#store;
    const ops: Record<Op, () => Promise<unknown>> = {
      put: () => store.put(String(args[0]), String(args[1]), typeof args[2] === 'number' ? args[2] : undefined),
      get: () => store.get(String(args[0])),
      list: () => store.list(String(args[0])),
      delete: () => store.delete(String(args[0])),
      acquire: () => store.acquire(String(args[0]), String(args[1]), Number(args[2])),
      release: () => store.release(String(args[0]), String(args[1])),
    };
    if (!Object.hasOwn(ops, msg.op)) return true;
    const run = ops[msg.op];
    run().then(
      (result) => worker.isConnected() && worker.send({ type: 'fleet-store-reply', id, result: result ?? null }),
      (err: Error) => worker.isConnected() && worker.send({ type: 'fleet-store-reply', id, error: err.message }),
    );
    return true;
  }
}
