/** SQLite as every infergate connection opens it, and the usage table's columns in insert order. */
import SQLite from 'better-sqlite3';

/** The usage table's columns, in the order the ledger's INSERT binds them. */
export const COLUMNS = 'ts, request_id, tenant_id, key_id, model, version, status, prompt_tokens, completion_tokens, latency_ms';

/** Opens a SQLite file the way every infergate connection does: shared by processes, WAL, 5 s lock wait. */
export function openSqliteFile(file: string): SQLite.Database {
  const sqlite = new SQLite(file);
  // Set first: switching to WAL takes a lock too.
  sqlite.pragma('busy_timeout = 5000');
  toWal(sqlite);
  // NORMAL in WAL mode: a committed batch survives a process crash; only a power loss may drop the last one.
  sqlite.pragma('synchronous = NORMAL');
  return sqlite;
}

/** How long processes opening one new file may take turns switching it to WAL (the busy timeout's 5 s). */
const WAL_WAIT_MS = 5000;

/**
 * Switches to WAL. SQLite answers SQLITE_BUSY at once, without waiting out the busy timeout, to a
 * connection whose switch would deadlock with another one's (two processes opening a new file
 * together both hold a shared lock and both want it exclusive: seen in CI, two servers starting on
 * one file). The loser tries again after a few milliseconds, within the same 5 s.
 */
function toWal(sqlite: SQLite.Database): void {
  const until = Date.now() + WAL_WAIT_MS;
  for (;;) {
    try {
      sqlite.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() >= until) throw err;
      // A synchronous pause (this runs once, at start-up, before anything is served).
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 + Math.floor(Math.random() * 20));
    }
  }
}
