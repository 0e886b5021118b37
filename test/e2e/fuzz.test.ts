/**
 * Hostile input, generated: thousands of malformed bodies and headers (fast-check) at every public
 * endpoint of the real server in `keys` mode. Every answer must be a 4xx in its protocol's error
 * shape, the process must stay up, and nothing may reach the usage ledger.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { MODELS, get, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN, ADMIN_KEY, adminCall, tenantWithKey } from '../helpers/tenancy.js';

/** Printable ASCII, which HTTP clients will send as a header value. */
const headerText = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 80 });

/** JSON texts that are not a valid call: anything but an object, or an object whose fields are wrong. */
const badBody = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc
    .record(
      { model: fc.oneof(fc.constant('chat'), fc.anything()), messages: fc.anything().filter((m) => !Array.isArray(m)) },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
  fc
    .record({
      model: fc.constant('chat'),
      messages: fc.array(fc.anything(), { maxLength: 3 }),
      max_tokens: fc.oneof(fc.string(), fc.double(), fc.constant(-1)),
    })
    .map((v) => JSON.stringify(v)),
  fc.record({ inputs: fc.anything(), outputs: fc.anything() }).map((v) => JSON.stringify(v)),
  fc.constantFrom(
    '{"__proto__": {"polluted": true}, "model": "chat", "messages": []}',
    '{"constructor": {"prototype": {"polluted": true}}}',
    `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
    '{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "n": 1e309}',
    '\u0000\u0001\u0002',
    'null',
    '',
  ),
);

const POSTS = [
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/embeddings',
  '/v2/models/tiny-mlp/infer',
  '/v2/models/chat/versions/9/infer',
];
const GETS = [
  '/v1/models',
  '/v1/models/%E0%A4%A',
  '/v1/usage?from=yesterday',
  '/v2/models/nope',
  '/v2/models/tiny-mlp/versions/x',
  '/v1/nothing',
];

function assertShape(path: string, status: number, body: unknown): void {
  assert.ok(status >= 400 && status < 500, `${path} answered ${status}: ${JSON.stringify(body)}`);
  if (path.startsWith('/v2/')) {
    const e = body as { error?: unknown; code?: unknown };
    assert.equal(typeof e.error, 'string', `${path}: KServe error shape, got ${JSON.stringify(body)}`);
    assert.equal(typeof e.code, 'string');
  } else {
    const e = (body as { error?: { message?: unknown; type?: unknown; code?: unknown } }).error;
    assert.equal(typeof e?.message, 'string', `${path}: OpenAI error shape, got ${JSON.stringify(body)}`);
    assert.equal(typeof e?.type, 'string');
    assert.equal(typeof e?.code, 'string');
  }
}

describe('hostile input', () => {
  let server: RunningServer;
  let key: string;

  before(async () => {
    const config = writeConfig(`
server: { body_limit_bytes: 65536 }
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
usage: { flush_interval_ms: 20 }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: '${MODELS}/tiny-mlp/1/model.onnx' } }]
`);
    server = await startServer({ config });
    key = (await tenantWithKey(server.url, { id: 'fuzz', models: ['*'], limits: { requests_per_minute: 100_000 } })).key;
  });

  after(async () => {
    await server.stop();
  });

  it('answers every malformed body with a 4xx in the protocol’s shape', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...POSTS),
        badBody,
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'),
        async (path, body, type) => {
          const res = await fetch(server.url + path, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': type },
            body,
          });
          const text = await res.text();
          assertShape(path, res.status, JSON.parse(text));
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('answers hostile headers with 401 or 400, never a call', async () => {
    const valid = JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
    const noise = { 'x-api-key': headerText, 'x-model-version': headerText, 'x-request-id': headerText };
    // Either the key is wrong (401 everywhere), or it is right and a call header is malformed (400 on every call).
    const wrongKey = fc.record({
      path: fc.constantFrom(...POSTS, ...GETS),
      headers: fc.record(
        {
          authorization: fc.oneof(
            headerText,
            headerText.map((t) => `Bearer ${t}`),
            fc.constant(`Bearer ${ADMIN_KEY}`),
          ),
          ...noise,
        },
        { requiredKeys: ['authorization'] },
      ),
    });
    const badHeader = fc.record({
      path: fc.constantFrom(...POSTS),
      headers: fc.oneof(
        fc.record(
          { 'x-priority': headerText.filter((t) => !['high', 'normal', 'low'].includes(t)), ...noise },
          { requiredKeys: ['x-priority'] },
        ),
        fc.record(
          { 'x-request-timeout-ms': headerText.filter((t) => !/^0*[1-9]\d*$/.test(t)), ...noise },
          { requiredKeys: ['x-request-timeout-ms'] },
        ),
      ),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          wrongKey,
          badHeader.map((c) => ({ ...c, headers: { ...c.headers, authorization: `Bearer ${key}` } })),
        ),
        async ({ path, headers }) => {
          const post = POSTS.includes(path);
          const res = await fetch(server.url + path, {
            method: post ? 'POST' : 'GET',
            headers: { ...headers, 'content-type': 'application/json' },
            body: post ? valid : undefined,
          });
          assertShape(path, res.status, JSON.parse(await res.text()));
        },
      ),
      { numRuns: 800 },
    );
  });

  it('answers malformed admin bodies with 400s naming the problem, and changes nothing', async () => {
    const before = (await adminCall(server.url, 'GET', '/admin/tenants')).body.data.length;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('POST /admin/tenants', 'PATCH /admin/tenants/fuzz', 'POST /admin/tenants/fuzz/keys'),
        badBody,
        async (route, body) => {
          const [method, path] = route.split(' ') as [string, string];
          const res = await fetch(server.url + path, { method, headers: { ...ADMIN, 'content-type': 'application/json' }, body });
          const answer = JSON.parse(await res.text());
          // An empty or null body is a valid "no changes" PATCH or a default key request; everything else is refused.
          if (res.status < 300) {
            assert.ok(body === '' || body === 'null' || body === '{}', `${route} accepted ${body.slice(0, 80)}`);
            if (path.endsWith('/keys')) await adminCall(server.url, 'DELETE', `/admin/keys/${answer.id}`);
            return;
          }
          assertShape(path, res.status, answer);
        },
      ),
      { numRuns: 400 },
    );
    assert.equal((await adminCall(server.url, 'GET', '/admin/tenants')).body.data.length, before);
  });

  it('stays up, and wrote nothing to the ledger for any of it', async () => {
    assert.equal(server.process.exitCode, null);
    assert.equal((await get(`${server.url}/health/live`)).status, 200);
    const usage = await adminCall(server.url, 'GET', '/admin/usage');
    assert.deepEqual(usage.body.data, [], `usage records: ${JSON.stringify(usage.body.data)}`);
  });
});
