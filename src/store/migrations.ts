/**
 * The schema, as migrations run at start-up: the same DDL on SQLite and PostgreSQL. Add a new
 * migration for every change; never edit one that has shipped. Kysely's migrator takes a lock, so
 * workers and replicas starting together run each migration once.
 */
import { Migrator, type Kysely, type Migration } from 'kysely';

function migrations(kind: 'sqlite' | 'postgres'): Record<string, Migration> {
  return {
    '0001_tenants_keys_usage': {
      async up(db: Kysely<unknown>): Promise<void> {
        await db.schema
          .createTable('tenants')
          .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('priority', 'varchar(8)', (c) => c.notNull())
          .addColumn('models', 'text', (c) => c.notNull())
          .addColumn('limits', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('api_keys')
          .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
          .addColumn('tenant_id', 'varchar(64)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
          .addColumn('name', 'varchar(128)', (c) => c.notNull())
          .addColumn('prefix', 'varchar(16)', (c) => c.notNull())
          .addColumn('hash', 'char(64)', (c) => c.notNull().unique())
          .addColumn('limits', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('revoked_at', 'bigint')
          .execute();
        await db.schema.createIndex('api_keys_tenant').on('api_keys').column('tenant_id').execute();
        await db.schema
          .createTable('usage')
          // A surrogate key so rows are addressable: SQLite's rowid, PostgreSQL's bigserial.
          .addColumn('seq', kind === 'sqlite' ? 'integer' : 'bigserial', (c) => c.primaryKey())
          .addColumn('ts', 'bigint', (c) => c.notNull())
          .addColumn('request_id', 'varchar(128)', (c) => c.notNull())
          .addColumn('tenant_id', 'varchar(64)', (c) => c.notNull())
          .addColumn('key_id', 'varchar(32)')
          .addColumn('model', 'varchar(256)', (c) => c.notNull())
          .addColumn('version', 'varchar(64)', (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('prompt_tokens', 'integer', (c) => c.notNull())
          .addColumn('completion_tokens', 'integer', (c) => c.notNull())
          .addColumn('latency_ms', 'double precision', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('usage_tenant_ts').on('usage').columns(['tenant_id', 'ts']).execute();
        await db.schema.createIndex('usage_ts').on('usage').column('ts').execute();
      },
    },
    '0002_responses': {
      async up(db: Kysely<unknown>): Promise<void> {
        await db.schema
          .createTable('responses')
          .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
          .addColumn('tenant_id', 'varchar(64)', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('input', 'text', (c) => c.notNull())
          .addColumn('conversation', 'text', (c) => c.notNull())
          .addColumn('response', 'text', (c) => c.notNull())
          .execute();
        // The retention sweep deletes by age.
        await db.schema.createIndex('responses_created_at').on('responses').column('created_at').execute();
      },
    },
  };
}

/** Runs every migration not yet applied to `db`; throws an Error naming the migration that failed. */
export async function migrate(db: Kysely<unknown>, kind: 'sqlite' | 'postgres'): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations(kind) } });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`database migration ${failed} failed: ${(error as Error).message}`, { cause: error });
  }
}
