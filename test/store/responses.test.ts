/** Stored Responses in a real SQLite database, on a clock the test moves: each tenant's own, expired ones never returned, the sweep deleting them. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openDatabase, type Database } from '../../src/store/database.js';
import { ResponseStore, type StoredResponse } from '../../src/store/responses.js';
import type { ResponseObject } from '../../src/protocols/responses/encode.js';

const HOUR = 3_600_000;

function stored(id: string, tenant: string, createdAt: number): StoredResponse {
  return {
    id,
    tenant,
    createdAt,
    input: [{ type: 'message', id: `msg_${id}`, role: 'user', content: [{ type: 'input_text', text: 'hi' }] }],
    conversation: [{ type: 'message', id: `msg_${id}`, role: 'user', content: [{ type: 'input_text', text: 'hi' }] }],
    response: { id, object: 'response', output_text: 'hello' } as unknown as ResponseObject,
  };
}

describe('ResponseStore', () => {
  let database: Database;
  let now = 1_000 * HOUR;

  before(async () => {
    database = await openDatabase(`sqlite:${join(mkdtempSync(join(tmpdir(), 'infergate-responses-')), 'db.sqlite')}`, 1);
  });
  after(async () => {
    await database.close();
  });

  it("returns a tenant's response to that tenant only, and deletes it for that tenant only", async () => {
    const store = new ResponseStore(database.db, 24 * HOUR, () => now);
    await store.save(stored('resp_a', 'alpha', now));
    const read = await store.get('resp_a', 'alpha');
    assert.deepEqual(read, stored('resp_a', 'alpha', now));
    assert.equal(await store.get('resp_a', 'beta'), null);
    assert.equal(await store.delete('resp_a', 'beta'), false);
    assert.equal(await store.delete('resp_a', 'alpha'), true);
    assert.equal(await store.get('resp_a', 'alpha'), null);
    assert.equal(await store.delete('resp_a', 'alpha'), false);
  });

  it('never returns an expired response, and the sweep deletes only expired ones', async () => {
    const store = new ResponseStore(database.db, 24 * HOUR, () => now);
    await store.save(stored('resp_old', 'alpha', now - 25 * HOUR));
    await store.save(stored('resp_new', 'alpha', now - 23 * HOUR));
    assert.equal(await store.get('resp_old', 'alpha'), null);
    assert.equal(await store.delete('resp_old', 'alpha'), false);
    assert.notEqual(await store.get('resp_new', 'alpha'), null);
    // A store that keeps everything still sees the expired row: it is there until swept.
    assert.notEqual(await new ResponseStore(database.db, 0, () => now).get('resp_old', 'alpha'), null);
    assert.equal(await store.sweep(), 1);
    assert.equal(await new ResponseStore(database.db, 0, () => now).get('resp_old', 'alpha'), null);
    now += 2 * HOUR;
    assert.equal(await store.get('resp_new', 'alpha'), null);
    assert.equal(await store.sweep(), 1);
  });

  it('keeps responses until deleted when the retention is 0', async () => {
    const store = new ResponseStore(database.db, 0, () => now);
    await store.save(stored('resp_kept', 'alpha', 0));
    assert.notEqual(await store.get('resp_kept', 'alpha'), null);
    assert.equal(await store.sweep(), 0);
    assert.equal(await store.delete('resp_kept', 'alpha'), true);
  });
});
