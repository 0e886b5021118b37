/** The access log: one JSON line per model call, with the request id, tenant, model and tokens, and never a prompt or a key. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { post, startServer } from '../helpers/server.js';
import { keysConfig, tenantWithKey } from '../helpers/tenancy.js';

describe('access log', () => {
  it('writes one line per call, flushed on shutdown, without prompts or keys', async () => {
    const config = keysConfig('server: { access_log: true }');
    const server = await startServer({ config });
    after(() => server.stop());
    const t = await tenantWithKey(server.url, { id: 'acme', models: ['chat'] });
    const auth = { authorization: `Bearer ${t.key}` };
    const prompt = 'a secret prompt that must not be logged';
    assert.equal(
      (
        await post(
          `${server.url}/v1/chat/completions`,
          { model: 'chat', messages: [{ role: 'user', content: prompt }] },
          { ...auth, 'x-request-id': 'trace-1' },
        )
      ).status,
      200,
    );
    const stream = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'x-request-id': 'trace-2' },
      body: JSON.stringify({ model: 'chat', stream: true, messages: [{ role: 'user', content: prompt }] }),
    });
    await stream.text();
    assert.equal(
      (
        await post(
          `${server.url}/v1/chat/completions`,
          { model: 'other', messages: [{ role: 'user', content: 'x' }] },
          { ...auth, 'x-request-id': 'trace-3' },
        )
      ).status,
      404,
    );
    assert.equal(await server.stop(), 0);
    const lines = server
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"call"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((l) => [l.req_id, l.status, l.model, l.code]),
      [
        ['trace-1', 200, 'chat', ''],
        ['trace-2', 200, 'chat', ''],
        ['trace-3', 404, '', 'model_not_found'],
      ],
    );
    const first = lines[0] as Record<string, unknown>;
    assert.equal(first.tenant, 'acme');
    assert.equal(first.key, t.id);
    assert.equal(first.version, '1');
    assert.equal(first.level, 30);
    assert.equal(typeof first.duration_ms, 'number');
    assert.ok((first.prompt_tokens as number) > 0 && (first.completion_tokens as number) > 0);
    assert.equal((lines[1] as Record<string, unknown>).completion_tokens, first.completion_tokens, 'a stream logs its tokens too');
    assert.ok(!server.output().includes(prompt), 'prompts are never logged');
    assert.ok(!server.output().includes(t.key), 'keys are never logged');
  });
});
