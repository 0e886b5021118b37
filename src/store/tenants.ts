/** Tenants and their API keys in the database: typed rows in, typed rows out; JSON columns parsed here only. */
import type { Limits } from '../config/schema.js';
import type { Priority } from '../scheduling/admission.js';
import type { ApiKeysTable, Db, TenantsTable } from './database.js';

/** A tenant as stored; times are ms since the epoch. */
export interface Tenant {
  readonly id: string;
  readonly priority: Priority;
  /** Model names and patterns this tenant may use; `*` matches any run of characters. */
  readonly models: readonly string[];
  readonly limits: Limits;
  readonly created_at: number;
  readonly updated_at: number;
}

/** A key as listed: never the key itself. */
export interface ApiKey {
  readonly id: string;
  readonly tenant_id: string;
  readonly name: string;
  readonly prefix: string;
  readonly limits: Limits;
  readonly created_at: number;
  readonly revoked_at: number | null;
}

/** A key with its hash, as the authenticator holds it. */
export interface StoredKey extends ApiKey {
  readonly hash: string;
}

/** What an admin sets on a tenant; create and update write all three. */
export type TenantFields = Pick<Tenant, 'priority' | 'models' | 'limits'>;

/** Reads and writes tenants and keys; a change to a row that does not exist returns false rather than throwing. */
export class TenantStore {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  async list(): Promise<Tenant[]> {
    return (await this.#db.selectFrom('tenants').selectAll().orderBy('id').execute()).map(toTenant);
  }

  async get(id: string): Promise<Tenant | null> {
    const row = await this.#db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? null : toTenant(row);
  }

  /** Inserts a tenant; false when the id is taken. */
  async create(id: string, fields: TenantFields, now = Date.now()): Promise<boolean> {
    const result = await this.#db
      .insertInto('tenants')
      .values({ id, ...tenantColumns(fields), created_at: now, updated_at: now })
      .onConflict((c) => c.column('id').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  async update(id: string, fields: TenantFields, now = Date.now()): Promise<boolean> {
    const result = await this.#db
      .updateTable('tenants')
      .set({ ...tenantColumns(fields), updated_at: now })
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Deletes a tenant, its keys and its stored Responses (its usage records stay, for billing). The
   * Responses go too because a tenant created later with the same id would otherwise read them.
   */
  async delete(id: string): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      await trx.deleteFrom('api_keys').where('tenant_id', '=', id).execute();
      await trx.deleteFrom('responses').where('tenant_id', '=', id).execute();
      const result = await trx.deleteFrom('tenants').where('id', '=', id).executeTakeFirst();
      return Number(result.numDeletedRows) === 1;
    });
  }

  async keys(tenantId: string): Promise<ApiKey[]> {
    const rows = await this.#db.selectFrom('api_keys').selectAll().where('tenant_id', '=', tenantId).orderBy('created_at').execute();
    return rows.map((row) => withoutHash(toKey(row)));
  }

  async key(id: string): Promise<ApiKey | null> {
    const row = await this.#db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? null : withoutHash(toKey(row));
  }

  async addKey(key: StoredKey): Promise<void> {
    await this.#db
      .insertInto('api_keys')
      .values({ ...key, limits: JSON.stringify(key.limits) })
      .execute();
  }

  /** Marks a key revoked; false when there is no such live key. */
  async revokeKey(id: string, now = Date.now()): Promise<boolean> {
    const result = await this.#db
      .updateTable('api_keys')
      .set({ revoked_at: now })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Replaces a live key with `next` in one transaction: the old one stops working as the new one starts. */
  async rotateKey(id: string, next: StoredKey, now = Date.now()): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable('api_keys')
        .set({ revoked_at: now })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) return false;
      await trx
        .insertInto('api_keys')
        .values({ ...next, limits: JSON.stringify(next.limits) })
        .execute();
      return true;
    });
  }

  /** Every tenant and every live key, for the in-memory authenticator. */
  async snapshot(): Promise<{ tenants: Tenant[]; keys: StoredKey[] }> {
    const [tenants, keys] = await Promise.all([
      this.list(),
      this.#db.selectFrom('api_keys').selectAll().where('revoked_at', 'is', null).execute(),
    ]);
    return { tenants, keys: keys.map(toKey) };
  }
}

function tenantColumns(fields: TenantFields): Pick<TenantsTable, 'priority' | 'models' | 'limits'> {
  return { priority: fields.priority, models: JSON.stringify(fields.models), limits: JSON.stringify(fields.limits) };
}

function toTenant(row: TenantsTable): Tenant {
  return {
    id: row.id,
    priority: row.priority as Priority,
    models: JSON.parse(row.models) as string[],
    limits: JSON.parse(row.limits) as Limits,
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
  };
}

function toKey(row: ApiKeysTable): StoredKey {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    prefix: row.prefix,
    hash: row.hash,
    limits: JSON.parse(row.limits) as Limits,
    created_at: Number(row.created_at),
    revoked_at: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

function withoutHash({ hash: _hash, ...key }: StoredKey): ApiKey {
  return key;
}
