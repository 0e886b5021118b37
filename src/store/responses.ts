/**
 * Stored Responses (the Responses API's `store`) in the database: each row owned by the tenant
 * that made it, read back only by that tenant, and kept for the configured retention. An expired
 * row is never returned, whether or not the sweep has deleted it yet.
 */
import type { Item } from '../protocols/responses/request.js';
import type { ResponseObject } from '../protocols/responses/encode.js';
import type { Db } from './database.js';

/** One stored Response; `createdAt` in epoch ms. */
export interface StoredResponse {
  readonly id: string;
  readonly tenant: string;
  readonly createdAt: number;
  /** The request's input items as given, each with its id (references replaced by the items they named). */
  readonly input: readonly Item[];
  /** Every item so far: the turns this one continued, its input, its output. */
  readonly conversation: readonly Item[];
  readonly response: ResponseObject;
}

/** How often the sweep deletes expired rows: often enough that the table stays near its retained size. */
const SWEEP_INTERVAL_MS = 10 * 60_000;

/** Reads and writes stored Responses; a row of another tenant, or an expired one, is as absent as one never stored. */
export class ResponseStore {
  readonly #db: Db;
  readonly #retentionMs: number;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;

  /** `retentionMs`: how long a Response is kept; 0 keeps them until deleted. */
  constructor(db: Db, retentionMs: number, now: () => number = Date.now) {
    this.#db = db;
    this.#retentionMs = retentionMs;
    this.#now = now;
  }

  async save(stored: StoredResponse): Promise<void> {
    await this.#db
      .insertInto('responses')
      .values({
        id: stored.id,
        tenant_id: stored.tenant,
        created_at: stored.createdAt,
        input: JSON.stringify(stored.input),
        conversation: JSON.stringify(stored.conversation),
        response: JSON.stringify(stored.response),
      })
      .execute();
  }

  /** The Response `id` of `tenant`; null when there is none, it is another tenant's, or it has expired. */
  async get(id: string, tenant: string): Promise<StoredResponse | null> {
    const row = await this.#db
      .selectFrom('responses')
      .selectAll()
      .where('id', '=', id)
      .where('tenant_id', '=', tenant)
      .where('created_at', '>', this.#oldest())
      .executeTakeFirst();
    if (row === undefined) return null;
    return {
      id: row.id,
      tenant: row.tenant_id,
      createdAt: Number(row.created_at),
      input: JSON.parse(row.input) as Item[],
      conversation: JSON.parse(row.conversation) as Item[],
      response: JSON.parse(row.response) as ResponseObject,
    };
  }

  /** Deletes the Response `id` of `tenant`; false when `get` would not have found it. */
  async delete(id: string, tenant: string): Promise<boolean> {
    const result = await this.#db
      .deleteFrom('responses')
      .where('id', '=', id)
      .where('tenant_id', '=', tenant)
      .where('created_at', '>', this.#oldest())
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** Deletes every expired row; returns how many. */
  async sweep(): Promise<number> {
    if (this.#retentionMs === 0) return 0;
    const result = await this.#db.deleteFrom('responses').where('created_at', '<=', this.#oldest()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Sweeps now and every few minutes, on a timer that does not keep the process alive; `onError` hears a failed sweep. */
  startSweeping(onError: (err: unknown) => void): void {
    if (this.#retentionMs === 0 || this.#timer !== null) return;
    const sweep = (): void => void this.sweep().catch(onError);
    sweep();
    this.#timer = setInterval(sweep, Math.min(SWEEP_INTERVAL_MS, Math.max(1000, this.#retentionMs / 4)));
    this.#timer.unref();
  }

  /** Stops the sweep (before the database closes). */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Rows created at or before this (epoch ms) have expired; -1 when nothing expires. */
  #oldest(): number {
    return this.#retentionMs === 0 ? -1 : this.#now() - this.#retentionMs;
  }
}
