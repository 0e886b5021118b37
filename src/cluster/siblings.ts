/**
 * The change feed between the worker processes of one server (node:cluster), used when there is no
 * Redis. A worker tells the primary of its change; the primary passes it to every other worker and,
 * once each has reloaded (or at the ack time-out), answers the first with those that did not.
 *
 * Messages: worker → primary `tenants-subscribed` (once, when it listens for changes),
 * `tenants-changed {id}` and `tenants-reloaded {id}`; primary → worker `tenants-changed {id}` and
 * `tenants-confirmed {id, unconfirmed}`.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { Confirmations, type ChangeFeed } from './change-feed.js';

interface FeedMessage {
  readonly type?: string;
  readonly id?: string;
  readonly unconfirmed?: string[];
}

/** What the feed needs of a worker's process: its IPC channel to the primary. */
export interface WorkerChannel {
  send?(message: FeedMessage): boolean;
  on(event: 'message', listener: (message: FeedMessage) => void): unknown;
}

/** What the relay needs of a worker, as the primary sees it (node:cluster's Worker). */
export interface Sibling {
  readonly process: { readonly pid?: number | undefined };
  send(message: FeedMessage): boolean;
  isConnected(): boolean;
}

/** How a worker is named in `unconfirmed_replicas`: host and pid. */
function nameOf(worker: Sibling): string {
  return `${hostname()}:${worker.process.pid ?? '?'}`;
}

/** A worker's side: publishes through the primary and reloads on its siblings' changes. */
export class SiblingFeed implements ChangeFeed {
  readonly #channel: WorkerChannel;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  readonly #waiting = new Map<string, (unconfirmed: string[]) => void>();

  constructor(channel: WorkerChannel, timeoutMs: number, log: Logger) {
    this.#channel = channel;
    this.#timeoutMs = timeoutMs;
    this.#log = log;
  }

  publish(): Promise<string[]> {
    const id = randomUUID();
    return new Promise((resolve) => {
      const done = (unconfirmed: string[]): void => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(unconfirmed);
      };
      // The primary answers at the time-out; this is for a primary that cannot answer at all.
      const timer = setTimeout(() => done(['*']), this.#timeoutMs + 1000);
      this.#waiting.set(id, done);
      this.#channel.send?.({ type: 'tenants-changed', id });
    });
  }

  async subscribe(reload: () => Promise<void>): Promise<void> {
    this.#channel.on('message', (msg) => {
      if (msg?.type === 'tenants-confirmed' && msg.id !== undefined) this.#waiting.get(msg.id)?.(msg.unconfirmed ?? []);
      if (msg?.type !== 'tenants-changed') return;
      reload().then(
        () => this.#channel.send?.({ type: 'tenants-reloaded', id: msg.id }),
        (err: unknown) => this.#log.warn({ err }, 'reloading tenants failed: the change is not confirmed'),
      );
    });
    this.#channel.send?.({ type: 'tenants-subscribed' });
  }
}

/** The primary's side: relays each change to the other workers and answers once they reloaded it. */
export class SiblingRelay {
  readonly #timeoutMs: number;
  readonly #workers: () => Iterable<Sibling | undefined>;
  readonly #confirmations = new Confirmations();
  /** Workers listening for changes: the ones a change waits for. */
  readonly #subscribed = new Set<Sibling>();

  /** `workers`: every worker now (node:cluster's `cluster.workers`, whose entries may be undefined). */
  constructor(timeoutMs: number, workers: () => Iterable<Sibling | undefined>) {
    this.#timeoutMs = timeoutMs;
    this.#workers = workers;
  }

  /** Handles `msg` from worker `from` if it belongs to the feed (true); other messages are left to the caller. */
  handle(from: Sibling, msg: { readonly type?: string; readonly id?: unknown }): boolean {
    switch (msg.type) {
      case 'tenants-subscribed':
        this.#subscribed.add(from);
        return true;
      case 'tenants-reloaded':
        if (typeof msg.id === 'string') this.#confirmations.confirm(msg.id, nameOf(from));
        return true;
      case 'tenants-changed':
        if (typeof msg.id === 'string') this.#relay(from, msg.id);
        return true;
      default:
        return false;
    }
  }

  /** A worker exited: no change waits for it any longer. */
  gone(worker: Sibling): void {
    this.#subscribed.delete(worker);
    this.#confirmations.forget(nameOf(worker));
  }

  #relay(from: Sibling, id: string): void {
    const others = [...this.#workers()].filter((w): w is Sibling => w !== undefined && w !== from);
    const expected = others.filter((w) => this.#subscribed.has(w)).map(nameOf);
    const confirmed = this.#confirmations.wait(id, expected, this.#timeoutMs);
    // Every other worker is told, also one still starting: it reloads, but is not waited for.
    for (const w of others) send(w, { type: 'tenants-changed', id });
    void confirmed.then((unconfirmed) => send(from, { type: 'tenants-confirmed', id, unconfirmed }));
  }
}

/** Sends over IPC, unless the worker has gone (sending then would emit an error event). */
function send(worker: Sibling, message: FeedMessage): void {
  if (worker.isConnected()) worker.send(message);
}
