/** Bad input of every kind gets a 4xx in the protocol's own error shape with the field path: never a 500, a crash or a hang. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';

describe('errors on the OpenAI API', () => {
  let server: RunningServer;
  before(async () => {
    const config = writeConfig(`
server: { body_limit_bytes: 2048 }
models:
  - name: m
    versions:
      - { version: '1', backend: { kind: mock } }
  - name: tiny-mlp
    versions:
      - { version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }
`);
    server = await startServer({ config });
  });
  after(() => server?.stop());

  const chat = (extra: object) => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra });

  for (const [name, body, status, code, param, message] of [
    ['malformed JSON', '{"model": "m",', 400, 'invalid_json', null, /not valid JSON/],
    ['an empty body', '', 400, 'invalid_json', null, /empty/],
    ['a JSON array', '[1,2]', 400, 'invalid_request', null, /must be object/],
    ['a missing field', { model: 'm' }, 400, 'invalid_request', 'messages', /`messages` is required/],
    [
      'a wrong type',
      chat({ temperature: 'hot' }),
      400,
      'invalid_request',
      'temperature',
      /`temperature` must be a number in \[0, 2\] or null/,
    ],
    ['an out-of-range value', chat({ max_tokens: 0 }), 400, 'invalid_request', 'max_tokens', /must be an integer >= 1/],
    [
      'a bad nested field',
      { model: 'm', messages: [{ role: 'robot', content: 'x' }] },
      400,
      'invalid_request',
      'messages[0].role',
      /one of system/,
    ],
    ['an unknown model', chat({ model: 'ghost' }), 404, 'model_not_found', 'model', /model "ghost" does not exist/],
    ['an unknown pinned version', chat({}), 404, 'version_not_found', 'x-model-version', /has no version "v9"/],
    ['prototype poisoning', '{"model":"m","__proto__":{"x":1}}', 400, 'invalid_json', null, /prototype/],
    ['a body over the limit', chat({ pad: 'x'.repeat(4096) }), 413, 'body_too_large', null, /limit of 2048 bytes/],
    ['n > 1 while streaming', chat({ n: 2, stream: true }), 400, 'invalid_request', 'n', /`n` must be 1 when streaming/],
  ] as const) {
    it(`answers ${status} ${code} for ${name}`, async () => {
      const headers: Record<string, string> = name.includes('pinned') ? { 'x-model-version': 'v9' } : {};
      const res = await post(`${server.url}/v1/chat/completions`, body, headers);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'message', 'param', 'type']);
      assert.equal(res.body.error.code, code);
      assert.equal(res.body.error.param, param);
      assert.equal(res.body.error.type, 'invalid_request_error');
      assert.match(res.body.error.message, message);
      assert.ok(res.headers.get('x-request-id'));
    });
  }

  it('parses JSON whatever the content-type says (curl -d sends form encoding)', async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify(chat({})),
    });
    assert.equal(res.status, 200);
  });

  it('answers 404 in OpenAI shape for an unknown path or method', async () => {
    for (const res of [await get(`${server.url}/v1/nothing`), await post(`${server.url}/v1/models`, {})]) {
      assert.equal(res.status, 404);
      assert.equal(res.body.error.code, 'not_found');
    }
  });

  it('echoes a client request id and makes one up otherwise', async () => {
    const given = await post(`${server.url}/v1/chat/completions`, chat({}), { 'x-request-id': 'trace-abc.123' });
    assert.equal(given.headers.get('x-request-id'), 'trace-abc.123');
    const made = await post(`${server.url}/v1/chat/completions`, chat({ model: 'ghost' }));
    assert.match(made.headers.get('x-request-id') ?? '', /^[0-9a-f]{12}-[0-9a-z]+$/);
  });

  it('keeps serving after a burst of bad requests', async () => {
    const bad = await Promise.all(
      Array.from({ length: 50 }, (_, i) => post(`${server.url}/v1/chat/completions`, i % 2 ? '{' : { model: 1 })),
    );
    assert.ok(bad.every((r) => r.status === 400));
    assert.equal((await post(`${server.url}/v1/chat/completions`, chat({}))).status, 200);
    assert.doesNotMatch(server.output(), /internal error/);
  });
});

describe('health', () => {
  it('is live at once and ready only when every model loaded', async () => {
    const config = writeConfig(`
models:
  - name: good
    versions:
      - { version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }
  - name: broken
    versions:
      - { version: '1', backend: { kind: onnx, path: ${JSON.stringify(new URL(import.meta.url).pathname)} } }
`);
    const server = await startServer({ config });
    try {
      assert.equal((await get(`${server.url}/health/live`)).status, 200);
      const ready = await get(`${server.url}/health/ready`);
      assert.equal(ready.status, 503);
      assert.deepEqual(ready.body.models, { good: true, broken: false });
      assert.equal((await get(`${server.url}/v2/health/ready`)).status, 503);
      assert.equal((await get(`${server.url}/v2/models/good/ready`)).status, 200);
      assert.equal((await get(`${server.url}/v2/models/broken/ready`)).status, 503);
      const infer = await post(`${server.url}/v2/models/broken/infer`, {
        inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }],
      });
      assert.equal(infer.status, 503);
      assert.match(server.output(), /model failed to load/);
    } finally {
      await server.stop();
    }
  });

  it('is ready with the bundled default config', async () => {
    const server = await startServer({ config: new URL('../../../config/default.yaml', import.meta.url).pathname });
    try {
      const ready = await get(`${server.url}/health/ready`);
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.body, {
        status: 'ready',
        models: { 'tiny-mlp': true, 'tiny-embed': true, 'tiny-types': true, 'tiny-chat': true },
      });
      assert.match(server.output(), /WITHOUT authentication/);
    } finally {
      await server.stop();
    }
  });
});
