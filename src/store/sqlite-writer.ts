/**
 * The usage ledger's SQLite writes, on their own thread. better-sqlite3 is synchronous: a write
 * that waits for another worker process's lock (busy_timeout) or for the disk would stall every
 * request on the event loop (measured: p99 from 6 ms to 23 ms at 35k req/s over two workers).
 * Here it stalls only this thread. Messages in: arrays of records; out: `{ ok, error? }` per batch.
 * A worker entry point only: what it shares with the rest of the store is in sqlite.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { UsageRecord } from './usage.js';
import { COLUMNS, openSqliteFile } from './sqlite.js';

if (parentPort !== null && (workerData as { ledger?: string } | null)?.ledger !== undefined) {
  const port = parentPort;
  const sqlite = openSqliteFile((workerData as { ledger: string }).ledger);
  const insert = sqlite.prepare(`INSERT INTO usage (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const insertAll = sqlite.transaction((rows: readonly UsageRecord[]) => {
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
  port.on('message', (rows: UsageRecord[]) => {
    try {
      insertAll(rows);
      port.postMessage({ ok: true });
    } catch (err) {
      port.postMessage({ ok: false, error: (err as Error).message });
    }
  });
}
