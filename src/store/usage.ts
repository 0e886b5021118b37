/** The usage ledger in the database: batched inserts and the aggregates the admin and tenant APIs show. */
import { sql, type RawBuilder } from 'kysely';
import { Worker } from 'node:worker_threads';
import type { Db, UsageTable } from './database.js';
import { COLUMNS } from './sqlite.js';

/** A usage row to insert: the database numbers it. */
export type UsageRecord = Omit<UsageTable, 'seq'>;

/** What to total: one tenant (null: every one), over [from, to) in epoch ms, grouped by model or day (null: not). */
export interface UsageQuery {
  readonly tenant: string | null;
  readonly from: number;
  readonly to: number;
  readonly groupBy: 'model' | 'day' | null;
}

/** Totals of one tenant (and group); `errors` counts calls with a status of 400 or more. */
export interface UsageRow {
  readonly tenant: string;
  /** The model, or the UTC day (YYYY-MM-DD), per `group_by`; null when not grouped. */
  readonly group: string | null;
  readonly requests: number;
  readonly errors: number;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

const DAY_MS = 86_400_000;

/** Writes batches on the SQLite writer thread, one at a time; a thread that died is started again for the next batch. */
class SqliteWriter {
  readonly #file: string;
  #worker: Worker | null = null;
  #pending: { resolve: () => void; reject: (err: Error) => void } | null = null;

  constructor(file: string) {
    this.#file = file;
  }

  write(rows: readonly UsageRecord[]): Promise<void> {
    const worker = (this.#worker ??= this.#start());
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      worker.postMessage(rows);
    });
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = null;
    await worker?.terminate();
  }

  #start(): Worker {
    const worker = new Worker(new URL('./sqlite-writer.js', import.meta.url), { workerData: { ledger: this.#file } });
    worker.unref();
    worker.on('message', (m: { ok: boolean; error?: string }) => this.#settle(m.ok ? null : new Error(m.error)));
    worker.on('error', (err) => this.#settle(err));
    worker.on('exit', (code) => {
      if (this.#worker === worker) this.#worker = null;
      this.#settle(new Error(`the ledger's writer thread exited with code ${code}`));
    });
    return worker;
  }

  #settle(error: Error | null): void {
    const p = this.#pending;
    this.#pending = null;
    if (p === null) return;
    if (error === null) p.resolve();
    else p.reject(error);
  }
}

/** The usage table: the ledger's batched inserts and the totals read back. */
export class UsageStore {
  readonly #db: Db;
  readonly #sqlite: SqliteWriter | null;

  /**
   * Reads go through Kysely. Writes are the ledger's hot path (tens of thousands of rows a second
   * under load), where building a many-row INSERT in Kysely cost more than the requests: on SQLite
   * one prepared statement in a transaction on a writer thread (`sqliteFile`), on PostgreSQL one
   * INSERT ... SELECT FROM unnest of an array per column (10 parameters, whatever the rows). The
   * caller does not overlap writes (the ledger chains its flushes).
   */
  constructor(db: Db, sqliteFile: string | null) {
    this.#db = db;
    this.#sqlite = sqliteFile === null ? null : new SqliteWriter(sqliteFile);
  }

  async insert(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.#sqlite !== null) return this.#sqlite.write(records);
    const column = <K extends keyof UsageRecord>(k: K): Array<UsageRecord[K]> => records.map((r) => r[k]);
    await sql`insert into usage (${sql.raw(COLUMNS)})
      select * from unnest(${column('ts')}::bigint[], ${column('request_id')}::text[], ${column('tenant_id')}::text[],
        ${column('key_id')}::text[], ${column('model')}::text[], ${column('version')}::text[], ${column('status')}::int[],
        ${column('prompt_tokens')}::int[], ${column('completion_tokens')}::int[], ${column('latency_ms')}::float8[])`.execute(this.#db);
  }

  /** Stops the writer thread (after the ledger's last flush). */
  async close(): Promise<void> {
    await this.#sqlite?.close();
  }

  /** Totals per tenant, and per model or per UTC day when asked, over [from, to). */
  async aggregate(query: UsageQuery): Promise<UsageRow[]> {
    const group: RawBuilder<string | number | null> =
      query.groupBy === 'model' ? sql`model` : query.groupBy === 'day' ? sql`floor(ts / ${DAY_MS})` : sql`null`;
    let q = this.#db
      .selectFrom('usage')
      .select([
        'tenant_id',
        group.as('grp'),
        sql<number>`count(*)`.as('requests'),
        sql<number>`sum(case when status >= 400 then 1 else 0 end)`.as('errors'),
        sql<number>`sum(prompt_tokens)`.as('prompt_tokens'),
        sql<number>`sum(completion_tokens)`.as('completion_tokens'),
      ])
      .where('ts', '>=', query.from)
      .where('ts', '<', query.to)
      .groupBy(['tenant_id', 'grp'])
      .orderBy('tenant_id')
      .orderBy('grp');
    if (query.tenant !== null) q = q.where('tenant_id', '=', query.tenant);
    const rows = await q.execute();
    return rows.map((r) => {
      const prompt = Number(r.prompt_tokens);
      const completion = Number(r.completion_tokens);
      return {
        tenant: r.tenant_id,
        group:
          r.grp === null ? null : query.groupBy === 'day' ? new Date(Number(r.grp) * DAY_MS).toISOString().slice(0, 10) : String(r.grp),
        requests: Number(r.requests),
        errors: Number(r.errors),
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
      };
    });
  }

  /** Tokens used since `from`, per tenant and per key: the starting point of monthly quotas. */
  async tokensSince(from: number): Promise<{ tenants: Map<string, number>; keys: Map<string, number> }> {
    const rows = await this.#db
      .selectFrom('usage')
      .select(['tenant_id', 'key_id', sql<number>`sum(prompt_tokens + completion_tokens)`.as('tokens')])
      .where('ts', '>=', from)
      .groupBy(['tenant_id', 'key_id'])
      .execute();
    const tenants = new Map<string, number>();
    const keys = new Map<string, number>();
    for (const r of rows) {
      const n = Number(r.tokens);
      tenants.set(r.tenant_id, (tenants.get(r.tenant_id) ?? 0) + n);
      if (r.key_id !== null) keys.set(r.key_id, n);
    }
    return { tenants, keys };
  }
}
