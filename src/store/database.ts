/**
 * The database behind tenants, keys and the usage ledger: Kysely over SQLite (better-sqlite3, the
 * embedded default) or PostgreSQL (pg), one code path and one set of migrations for both.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, type Generated } from 'kysely';
import type pg from 'pg';
import { migrate } from './migrations.js';
import { openSqliteFile } from './sqlite.js';

/** A row of `tenants`; times are epoch milliseconds. */
export interface TenantsTable {
  id: string;
  /** Admission priority class: high, normal or low. */
  priority: string;
  /** JSON array of model names and patterns (`*` matches any run of characters). */
  models: string;
  /** JSON object of limits (see LimitsSchema). */
  limits: string;
  created_at: number;
  updated_at: number;
}

/** A row of `api_keys`; times are epoch milliseconds, `revoked_at` null while the key is live. */
export interface ApiKeysTable {
  id: string;
  tenant_id: string;
  name: string;
  /** The first characters of the key, shown in lists so people can tell keys apart. */
  prefix: string;
  /** SHA-256 of the key, hex: the key itself is never stored. */
  hash: string;
  limits: string;
  created_at: number;
  revoked_at: number | null;
}

/** A row of `usage`, one per recorded call: `ts` in epoch ms, `status` the HTTP status, `key_id` null without a key. */
export interface UsageTable {
  seq: Generated<number>;
  ts: number;
  request_id: string;
  tenant_id: string;
  key_id: string | null;
  model: string;
  version: string;
  status: number;
  prompt_tokens: number;
  completion_tokens: number;
  latency_ms: number;
}

/** A row of `responses`, one per stored Response: `created_at` in epoch ms; the JSON columns are written by store/responses.ts. */
export interface ResponsesTable {
  id: string;
  tenant_id: string;
  created_at: number;
  /** JSON array: the request's input items, each with its id. */
  input: string;
  /** JSON array: the conversation so far (earlier turns, this input, this output), what `previous_response_id` continues. */
  conversation: string;
  /** JSON: the whole Response object. */
  response: string;
}

/** The schema as Kysely sees it (migrations.ts makes it). */
export interface Tables {
  tenants: TenantsTable;
  api_keys: ApiKeysTable;
  usage: UsageTable;
  responses: ResponsesTable;
}

/** A Kysely instance over this schema, on SQLite or PostgreSQL. */
export type Db = Kysely<Tables>;

/** A connected, migrated database and what it is, for logs. */
export interface Database {
  readonly db: Db;
  readonly kind: 'sqlite' | 'postgres';
  /** The SQLite file, for the ledger's writer thread; null on PostgreSQL. */
  readonly sqliteFile: string | null;
  /** The URL without its password. */
  readonly where: string;
  close(): Promise<void>;
}

/** `postgres://` or `postgresql://` → PostgreSQL; `sqlite:PATH` (or a bare path) → SQLite, creating the folder. */
export async function openDatabase(url: string, poolSize: number): Promise<Database> {
  const postgres = /^postgres(ql)?:\/\//.test(url);
  const sqliteFile = postgres ? null : resolve(url.replace(/^sqlite:(\/\/)?/, ''));
  const sqlite = sqliteFile === null ? null : openSqlite(sqliteFile);
  const db = sqlite === null ? await postgresDb(url, poolSize) : new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrateWithRetry(db as Kysely<unknown>, postgres ? 'postgres' : 'sqlite');
  return {
    db,
    kind: postgres ? 'postgres' : 'sqlite',
    sqliteFile,
    where: url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@'),
    close: () => db.destroy(),
  };
}

/** Which database a config names: the config's URL, else $DATABASE_URL, else the SQLite file under ./data. */
export function databaseUrl(configured: string, env: NodeJS.ProcessEnv = process.env): string {
  if (configured !== '') return configured;
  const fromEnv = env.DATABASE_URL;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : 'sqlite:data/infergate.db';
}

function openSqlite(file: string): SQLite.Database {
  mkdirSync(dirname(file), { recursive: true });
  return openSqliteFile(file);
}

/**
 * pg is imported only for a PostgreSQL URL: on the SQLite default it cost each worker about 2 MiB (5 MiB RSS)
 * of heap (its modules and pg-types') for nothing.
 */
async function postgresDb(url: string, poolSize: number): Promise<Db> {
  const { default: driver } = await import('pg');
  // pg returns BIGINT (int8) as strings; every bigint here is a millisecond time or a count, exact as a double.
  const types = {
    getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : driver.types.getTypeParser(oid, format)),
  } as pg.CustomTypesConfig;
  const pool = new driver.Pool({ connectionString: url, max: poolSize, types, connectionTimeoutMillis: 5000 });
  return new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Runs the migrations; on failure, tries again a few times. Processes starting together on one
 * SQLite file race (Kysely's migration lock is per connection there): the loser fails, and its
 * next try finds the work done. On PostgreSQL the lock makes the first try succeed.
 */
async function migrateWithRetry(db: Kysely<unknown>, kind: 'sqlite' | 'postgres'): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrate(db, kind);
    } catch (err) {
      if (attempt === 5) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt + Math.random() * 100));
    }
  }
}
