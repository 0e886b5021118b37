/** SQLite as every infergate connection opens it, and the usage table's columns in insert order. */
import SQLite from 'better-sqlite3';

/** The usage table's columns, in the order the ledger's INSERT binds them. */
export const COLUMNS = 'ts, request_id, tenant_id, key_id, model, version, status, prompt_tokens, completion_tokens, latency_ms';

/** Opens a SQLite file the way every infergate connection does: shared by processes, WAL, 5 s lock wait. */
export function openSqliteFile(file: string): SQLite.Database {
  const sqlite = new SQLite(file);
  // Set first: switching to WAL takes a lock too.
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: a committed batch survives a process crash; only a power loss may drop the last one.
  sqlite.pragma('synchronous = NORMAL');
  return sqlite;
}
