/**
 * JSON nested deeper than `server.max_json_depth` is refused at the door, on every route that
 * reads a body, in the route's own error shape: a client cannot get a stack-overflowing body as far
 * as an upstream call, where it once counted as a backend failure and opened the breaker for
 * every tenant.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { get, MODELS, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN, ADMIN_KEY, breakers, tenantWithKey } from '../helpers/tenancy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** `levels` nested arrays: `[[[...]]]`. */
const nested = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);
/** A JSON object text with `field` set to raw JSON text. */
const withRaw = (body: object, field: string, raw: string): string => JSON.stringify(body).replace(/}$/, `,"${field}":${raw}}`);
const DEPTH_ERROR = /^the JSON body nests deeper than 64 levels \(server\.max_json_depth\)$/;

describe('JSON nesting depth', () => {
  let upstream: Upstream;
  let server: RunningServer;
  let attacker: string;
  let bystander: string;

  before(async () => {
    upstream = await startUpstream();
    const config = writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: proxy-chat
    versions: [{ version: '1', backend: { kind: openai, base_url: '${upstream.url}' } }]
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: '${MODELS}/tiny-mlp/1/model.onnx' } }]
`);
    server = await startServer({ config });
    attacker = (await tenantWithKey(server.url, { id: 'attacker', models: ['*'] })).key;
    bystander = (await tenantWithKey(server.url, { id: 'bystander', models: ['*'] })).key;
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  const deep = nested(6000);
  const chat = { model: 'proxy-chat', messages: [{ role: 'user', content: 'hi' }] };

  for (const [name, path, text, shape] of [
    ['chat (the issue’s body)', '/v1/chat/completions', withRaw(chat, 'metadata', deep), 'openai'],
    ['completions', '/v1/completions', withRaw({ model: 'proxy-chat', prompt: 'hi' }, 'logit_bias', deep), 'openai'],
    ['embeddings', '/v1/embeddings', withRaw({ model: 'proxy-chat', input: 'hi' }, 'user', deep), 'openai'],
    ['KServe infer', '/v2/models/tiny-mlp/infer', `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":${deep}}]}`, 'kserve'],
  ] as const) {
    it(`answers 400 invalid_request naming the limit on ${name}`, async () => {
      const res = await post(server.url + path, text, { authorization: `Bearer ${attacker}` });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      if (shape === 'openai') {
        assert.equal(res.body.error.code, 'invalid_request');
        assert.equal(res.body.error.type, 'invalid_request_error');
        assert.match(res.body.error.message, DEPTH_ERROR);
      } else {
        assert.equal(res.body.code, 'invalid_request');
        assert.match(res.body.error, DEPTH_ERROR);
      }
    });
  }

  it('answers 400 naming the limit on an admin route, whatever the content type', async () => {
    for (const type of ['application/json', 'application/x-www-form-urlencoded']) {
      const text = withRaw({ id: 'deep', models: ['*'] }, 'limits', deep);
      const res = await post(`${server.url}/admin/tenants`, text, { ...ADMIN, 'content-type': type });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'invalid_request');
      assert.match(res.body.error.message, DEPTH_ERROR);
    }
    assert.equal((await get(`${server.url}/admin/tenants/deep`, ADMIN)).status, 404);
  });

  it('takes a body exactly at the limit, and counts no brackets inside strings', async () => {
    // The object is level 1: 63 more arrays make 64.
    const atLimit = await post(`${server.url}/v1/chat/completions`, withRaw(chat, 'metadata', nested(63)), {
      authorization: `Bearer ${attacker}`,
    });
    assert.equal(atLimit.status, 200, JSON.stringify(atLimit.body));
    const over = await post(`${server.url}/v1/chat/completions`, withRaw(chat, 'metadata', nested(64)), {
      authorization: `Bearer ${attacker}`,
    });
    assert.match(over.body.error.message, DEPTH_ERROR);
    const brackets = { ...chat, messages: [{ role: 'user', content: `"\\"${'[{'.repeat(5000)}` }] };
    const text = await post(`${server.url}/v1/chat/completions`, brackets, { authorization: `Bearer ${attacker}` });
    assert.equal(text.status, 200, JSON.stringify(text.body));
  });

  it('keeps the model serving other tenants: no breaker opened, no endpoint ejected, nothing sent upstream', async () => {
    const seen = upstream.received.length;
    for (let i = 0; i < 8; i++) {
      const res = await post(`${server.url}/v1/chat/completions`, withRaw(chat, 'metadata', deep), { authorization: `Bearer ${attacker}` });
      assert.equal(res.status, 400);
    }
    assert.equal(upstream.received.length, seen, 'no deep body reached the upstream');
    const res = await post(`${server.url}/v1/chat/completions`, chat, { authorization: `Bearer ${bystander}` });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.choices[0].message.content, 'upstream says hi');
    const proxy = (await breakers(server.url)).find((b) => b.model === 'proxy-chat');
    assert.equal(proxy?.state, 'closed', JSON.stringify(proxy));
    assert.ok(
      proxy?.endpoints?.every((e) => !e.ejected),
      JSON.stringify(proxy),
    );
    assert.equal(server.process.exitCode, null);
  });
});
