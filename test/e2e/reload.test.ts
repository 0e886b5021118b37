/** Hot reload: POST /admin/reload, SIGHUP and the opt-in file watch apply a new config without dropping requests; an invalid one changes nothing. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';

const model = (name: string, text: string, latency = 0) => `
  - name: ${name}
    versions:
      - version: '1'
        backend: { kind: mock, text: '${text}', latency_ms: ${latency} }`;

const answer = async (server: RunningServer, name: string) => {
  const res = await post(`${server.url}/v1/chat/completions`, { model: name, messages: [{ role: 'user', content: 'hi' }] });
  return res.status === 200 ? (res.body.choices[0].message.content as string) : res.status;
};

describe('hot reload', () => {
  let server: RunningServer;
  let file: string;

  before(async () => {
    file = writeConfig(`server: { watch_config: true }\nmodels:${model('kept', 'old answer', 500)}${model('dropped', 'bye')}\n`);
    server = await startServer({ config: file });
  });
  after(async () => {
    await server?.stop();
  });

  it('applies a new config on POST /admin/reload while a request is in flight, which finishes on the old model', async () => {
    const inFlight = answer(server, 'kept');
    await sleep(100);
    writeFileSync(file, `server: { watch_config: true }\nmodels:${model('kept', 'new answer')}${model('added', 'hello')}\n`);
    const res = await post(`${server.url}/admin/reload`, {});
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.added, ['added']);
    assert.deepEqual(res.body.removed, ['dropped']);
    assert.equal(await inFlight, 'old answer', 'the request in flight finished where it started');
    assert.equal(await answer(server, 'kept'), 'new answer');
    assert.equal(await answer(server, 'added'), 'hello');
    assert.equal(await answer(server, 'dropped'), 404);
  });

  it('keeps the loaded backend of a version whose settings did not change', async () => {
    const res = await post(`${server.url}/admin/reload`, {});
    assert.equal(res.status, 200);
    assert.equal(res.body.reused, 2, 'kept and added, both unchanged');
    assert.equal(await answer(server, 'kept'), 'new answer');
  });

  it('rejects an invalid config with its problems and keeps serving the old one', async () => {
    writeFileSync(file, `server: { watch_config: true }\nmodels:\n  - name: broken\n    versions: []\n`);
    const res = await post(`${server.url}/admin/reload`, {});
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'invalid_config');
    assert.match(res.body.error.problems.join('\n'), /models\[0\]\.versions/);
    assert.equal(await answer(server, 'kept'), 'new answer');
  });

  it('reloads on SIGHUP', async () => {
    writeFileSync(file, `server: { watch_config: false }\nmodels:${model('kept', 'after hup')}\n`);
    // The watch (still on until this config applies) may reload first; either way the answer changes.
    server.process.kill('SIGHUP');
    let text: string | number = '';
    for (let i = 0; i < 40 && text !== 'after hup'; i++) {
      await sleep(50);
      text = await answer(server, 'kept');
    }
    assert.equal(text, 'after hup');
    assert.match(server.output(), /config reloaded/);
    assert.match(server.output(), /server\.watch_config/, 'a changed server option is reported as needing a restart');
  });

  it('reloads when the watched file changes', async () => {
    const watched = writeConfig(`server: { watch_config: true }\nmodels:${model('w', 'one')}\n`);
    const s = await startServer({ config: watched });
    try {
      writeFileSync(watched, `server: { watch_config: true }\nmodels:${model('w', 'two')}\n`);
      let text: string | number = '';
      for (let i = 0; i < 40 && text !== 'two'; i++) {
        await sleep(50);
        text = await answer(s, 'w');
      }
      assert.equal(text, 'two');
      const models = await get(`${s.url}/v1/models`);
      assert.deepEqual(
        models.body.data.map((m: { id: string }) => m.id),
        ['w'],
      );
    } finally {
      await s.stop();
    }
  });

  it('reloads every worker when one of them gets POST /admin/reload', async () => {
    const shared = writeConfig(`models:${model('w', 'one')}\n`);
    const s = await startServer({ config: shared, args: ['--workers', '2'] });
    try {
      writeFileSync(shared, `models:${model('w', 'two')}\n`);
      assert.equal((await post(`${s.url}/admin/reload`, {})).status, 200);
      let answers: Array<string | number> = [];
      for (let i = 0; i < 40; i++) {
        await sleep(50);
        answers = await Promise.all(Array.from({ length: 20 }, () => answer(s, 'w')));
        if (answers.every((a) => a === 'two')) break;
      }
      assert.deepEqual(new Set(answers), new Set(['two']));
    } finally {
      await s.stop();
    }
  });
});
