/** The usage ledger in the database: batched inserts and the aggregates the admin and tenant APIs show. */
import { sql, type RawBuilder } from 'kysely';
import type SQLite from 'better-sqlite3';
import type { Db, UsageTable } from './database.js';

export type UsageRecord = Omit<UsageTable, 'seq'>;

export interface UsageQuery {
  readonly tenant: string | null;
  readonly from: number;
  readonly to: number;
  readonly groupBy: 'model' | 'day' | null;
}

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
/** Rows per SQLite transaction; the event loop gets a turn between two (1000 rows take about 1 ms). */
const ROWS_PER_TRANSACTION = 1000;
const COLUMNS = 'ts, request_id, tenant_id, key_id, model, version, status, prompt_tokens, completion_tokens, latency_ms';

export class UsageStore {
  readonly #db: Db;
  readonly #sqliteInsert: ((rows: readonly UsageRecord[]) => void) | null;

  /**
   * Reads go through Kysely. Writes are the ledger's hot path (tens of thousands of rows a second
   * under load), where building a many-row INSERT in Kysely cost more than the requests: on SQLite
   * they use one prepared statement in a transaction, on PostgreSQL one INSERT ... SELECT FROM unnest
   * of an array per column (11 parameters, whatever the rows).
   */
  constructor(db: Db, sqlite: SQLite.Database | null) {
    this.#db = db;
    if (sqlite === null) this.#sqliteInsert = null;
    else {
      const insert = sqlite.prepare(`INSERT INTO usage (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
      this.#sqliteInsert = sqlite.transaction((rows: readonly UsageRecord[]) => {
        for (const r of rows) {
          insert.run(
            r.ts,
            r.request_id,
            r.tenant_id,
            r.key_id,
            r.model,
            r.version,
            r.status,
            r.prompt_tokens,
            r.completion_tokens,
            r.latency_ms,
          );
        }
      });
    }
  }

  /** Writes records; on SQLite in transactions of a thousand, each all or nothing, yielding between them. */
  async insert(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    const sqliteInsert = this.#sqliteInsert;
    if (sqliteInsert !== null) {
      for (let i = 0; i < records.length; i += ROWS_PER_TRANSACTION) {
        if (i > 0) await new Promise((resolve) => setImmediate(resolve));
        sqliteInsert(records.slice(i, i + ROWS_PER_TRANSACTION));
      }
      return;
    }
    const column = <K extends keyof UsageRecord>(k: K): Array<UsageRecord[K]> => records.map((r) => r[k]);
    await sql`insert into usage (${sql.raw(COLUMNS)})
      select * from unnest(${column('ts')}::bigint[], ${column('request_id')}::text[], ${column('tenant_id')}::text[],
        ${column('key_id')}::text[], ${column('model')}::text[], ${column('version')}::text[], ${column('status')}::int[],
        ${column('prompt_tokens')}::int[], ${column('completion_tokens')}::int[], ${column('latency_ms')}::float8[])`.execute(this.#db);
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
