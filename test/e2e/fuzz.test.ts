/**
 * Hostile input, generated: thousands of malformed bodies and headers (fast-check) at every public
 * endpoint of the real server in `keys` mode. Every answer must be a 4xx in its protocol's error
 * shape, the process must stay up, and nothing may reach the usage ledger.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { credentials, makeGenericClientConstructor, Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';
import { MODELS, get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { grpcServices } from '../helpers/grpc.js';
import { ADMIN, ADMIN_KEY, adminCall, breakers, tenantWithKey } from '../helpers/tenancy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

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

/**
 * Every endpoint, both transports: the inputs that hurt parsers and the code behind them (deep
 * nesting, numbers no double holds, invalid UTF-8, duplicate and prototype keys, bodies over the
 * limit, a client that dribbles). Only client errors (or successes, where the input happens to be
 * a valid call) may come back: never a 5xx, never a hang, never an opened breaker or an ejected
 * endpoint, and the server's memory stays bounded.
 */
describe('hostile input on every endpoint and transport', () => {
  let upstream: Upstream;
  let server: RunningServer;
  let key: string;
  let rssBefore: number;
  let inference: Client;
  let generate: Client;
  let rawInference: Client;

  before(async () => {
    upstream = await startUpstream();
    const config = writeConfig(`
server: { body_limit_bytes: 65536 }
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
  - name: proxy
    versions: [{ version: '1', backend: { kind: openai, base_url: '${upstream.url}' } }]
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: '${MODELS}/tiny-mlp/1/model.onnx' } }]
`);
    server = await startServer({ config });
    key = (await tenantWithKey(server.url, { id: 'fuzz', models: ['*'], limits: { requests_per_minute: 1_000_000 } })).key;
    assert.equal((await adminCall(server.url, 'POST', '/admin/tenants', { id: 'target', models: ['chat'] })).status, 201);
    const address = server.grpc as string;
    inference = new Inference(address, credentials.createInsecure());
    generate = new Generate(address, credentials.createInsecure());
    rawInference = new RawClient(address, credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
    // Warm: every path has run once before the baseline is read.
    await post(`${server.url}/v1/chat/completions`, CHAT, { authorization: `Bearer ${key}` });
    await post(`${server.url}/v1/chat/completions`, { ...CHAT, model: 'proxy' }, { authorization: `Bearer ${key}` });
    await post(`${server.url}/v2/models/tiny-mlp/infer`, INFER, { authorization: `Bearer ${key}` });
    rssBefore = rss(server.process.pid as number);
  });

  after(async () => {
    for (const c of [inference, generate, rawInference]) c?.close();
    await server?.stop();
    await upstream?.close();
  });

  /** What a call sends over HTTP: method, path, and a body (text or raw bytes). */
  const auth = (path: string): Record<string, string> =>
    path.startsWith('/admin') || path === '/metrics' ? ADMIN : { authorization: `Bearer ${key}` };

  it('answers hostile JSON on every HTTP endpoint without a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...TEMPLATES), hostileJson, async ([method, path, template], value) => {
        const body = template.replace('@', value);
        const res = await send(server.url + path, method, auth(path), body);
        assertNo5xx(path, res, body);
      }),
      { seed: 1515, numRuns: 500 },
    );
  });

  it('answers invalid UTF-8 on every HTTP endpoint without a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...TEMPLATES),
        fc.constantFrom(...BAD_UTF8),
        fc.boolean(),
        async ([method, path, template], bytes, inString) => {
          const [head, tail] = template.split('@') as [string, string];
          const middle = inString ? Buffer.concat([Buffer.from('"'), bytes, Buffer.from('"')]) : bytes;
          const body = Buffer.concat([Buffer.from(head), middle, Buffer.from(tail)]);
          assertNo5xx(path, await send(server.url + path, method, auth(path), body), body.toString('latin1'));
        },
      ),
      { seed: 1516, numRuns: 200 },
    );
  });

  it('answers hostile query strings on every read-only route without a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...GETS_ALL), fc.constantFrom(...QUERY_VALUES), async (path, value) => {
        const url = `${server.url}${path}?from=${value}&to=${value}&group_by=${value}&tenant=${value}&seconds=${value}`;
        assertNo5xx(path, await send(url, 'GET', auth(path)), value);
      }),
      { seed: 1517, numRuns: 150 },
    );
  });

  it('answers 10 MB bodies with 413 on every POST endpoint, before reading them', async () => {
    const big = Buffer.alloc(10 * 1024 * 1024, 0x20);
    big.write('{"model":"chat","messages":[{"role":"user","content":"');
    for (const [method, path] of [...new Set(TEMPLATES.map(([m, p]) => `${m} ${p}`))].map((r) => r.split(' ') as [string, string])) {
      for (const chunked of [false, true]) {
        const res = await send(server.url + path, method, auth(path), big, chunked);
        assert.notEqual(res, 'closed', `${method} ${path}${chunked ? ' (chunked)' : ''} closed the connection`);
        if (res === 'closed') continue;
        assert.equal(res.status, 413, `${method} ${path}${chunked ? ' (chunked)' : ''}: ${res.text.slice(0, 200)}`);
      }
    }
  });

  it('stays responsive to others while a client dribbles a body a byte at a time', async () => {
    const port = Number(new URL(server.url).port);
    const slow = connect(port, '127.0.0.1');
    slow.on('error', () => undefined);
    const body = JSON.stringify(CHAT);
    slow.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-length: ${body.length}\r\n\r\n`);
    let sent = 0;
    const dribble = setInterval(() => slow.write(body[sent++ % body.length] as string), 50);
    try {
      const started = Date.now();
      let answered = 0;
      // For 2 s (40 bytes dribbled), and at most 400 calls.
      while (Date.now() - started < 2000 && answered < 400) {
        const t = Date.now();
        const res = await post(`${server.url}/v1/chat/completions`, CHAT, { authorization: `Bearer ${key}` });
        assert.equal(res.status, 200);
        assert.ok(Date.now() - t < 2000, `a call took ${Date.now() - t} ms while a client dribbled`);
        answered++;
      }
      const elapsed = Date.now() - started;
      assert.ok(answered >= 5, `only ${answered} calls answered in 2 s`);
      // The loop may end early on its count (a fast machine); the dribble must have gone on meanwhile, a byte
      // every 50 ms with room for timer lag, so every call above was answered with the slow body still open.
      assert.ok(sent >= Math.floor(elapsed / 100), `only ${sent} bytes dribbled in ${elapsed} ms`);
    } finally {
      clearInterval(dribble);
      slow.destroy();
    }
  });

  it('answers hostile gRPC ModelInfer, Chat and Embed calls with client errors', async () => {
    const huge = fc.constantFrom('9223372036854775807', '-9223372036854775808', '18446744073709551615', '4294967296', '-1', '0');
    const text = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom('__proto__', 'constructor', 'prototype', '\ud800', 'a\udfffb', 'x'.repeat(70_000), '\u0000'),
    );
    const infer = fc.record({
      model_name: fc.oneof(fc.constant('tiny-mlp'), fc.constant('proxy'), text),
      parameters: fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'x'), fc.record({ string_param: text }), { maxKeys: 2 }),
      inputs: fc.array(
        fc.record({
          name: fc.oneof(fc.constant('input'), text),
          datatype: fc.constantFrom('FP32', 'INT64', 'BYTES', 'BOOL', '__proto__'),
          shape: fc.array(huge, { maxLength: 4 }),
          parameters: fc.dictionary(fc.constantFrom('__proto__', 'constructor'), fc.record({ int64_param: huge }), { maxKeys: 2 }),
          contents: fc.record(
            {
              fp32_contents: fc.array(fc.constantFrom(Infinity, -Infinity, NaN, -0, 3.4e38, 1e-45), { maxLength: 40 }),
              int64_contents: fc.array(huge, { maxLength: 8 }),
              bytes_contents: fc.array(fc.constantFrom(...BAD_UTF8), { maxLength: 3 }),
            },
            { requiredKeys: [] },
          ),
        }),
        { maxLength: 2 },
      ),
    });
    const chatRequest = fc.record({
      model: fc.oneof(fc.constantFrom('chat', 'proxy'), text),
      messages: fc.array(fc.record({ role: fc.constantFrom('user', 'system', '__proto__'), content: text }), { maxLength: 3 }),
      max_tokens: fc.constantFrom(0, 1, 2 ** 32 - 1),
      temperature: fc.constantFrom(Infinity, -Infinity, NaN, -0, 3.4e38),
      seed: huge,
    });
    const embed = fc.record({
      model: fc.oneof(fc.constantFrom('chat', 'proxy'), text),
      input: fc.array(text, { maxLength: 3 }),
      dimensions: fc.constantFrom(0, 1, 2 ** 32 - 1),
    });
    const request = fc.oneof(
      infer.map((r) => ['ModelInfer', r] as const),
      chatRequest.map((r) => ['Chat', r] as const),
      embed.map((r) => ['Embed', r] as const),
    );
    await fc.assert(
      fc.asyncProperty(request, async ([method, r]) => {
        const code = await grpcCall(method === 'ModelInfer' ? inference : generate, method, r, key);
        assert.ok(CLIENT_CODES.has(code), `${method}: status ${code} for ${JSON.stringify(r).slice(0, 300)}`);
      }),
      { seed: 1518, numRuns: 300 },
    );
  });

  it('answers undecodable and oversized gRPC messages with client errors', async () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      // Nested groups (field 1, wire type 3) 100,000 deep, and a length that runs past the end.
      fc.constant(Buffer.alloc(100_000, 0x0b)),
      fc.constant(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])),
      fc.constant(Buffer.alloc(10 * 1024 * 1024, 0x41)),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...RAW_METHODS), bytes, async (method, message) => {
        const code = await grpcCall(rawInference, method, message, key);
        assert.ok(
          CLIENT_CODES.has(code),
          `${method}: status ${code} for ${message.length} bytes ${message.subarray(0, 16).toString('hex')}`,
        );
      }),
      { seed: 1519, numRuns: 60 },
    );
  });

  it('opened no breaker, ejected no endpoint, stayed up, and kept its memory bounded', async (t) => {
    assert.equal(server.process.exitCode, null);
    for (const b of await breakers(server.url)) {
      assert.ok(b.state === 'closed' || b.state === 'disabled', `${b.model}: breaker ${b.state}`);
      for (const e of b.endpoints ?? []) assert.equal(e.ejected, false, `${b.model}: ${e.url} ejected`);
    }
    const metrics = await (await fetch(`${server.url}/metrics`, { headers: ADMIN })).text();
    const states = [...metrics.matchAll(/^infergate_circuit_breaker_state\{[^}]*\} (\S+)$/gm)].map((m) => Number(m[1]));
    assert.ok(states.length > 0 && states.every((s) => s === 0), `breaker states ${JSON.stringify(states)}`);
    const res = await post(`${server.url}/v1/chat/completions`, { ...CHAT, model: 'proxy' }, { authorization: `Bearer ${key}` });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const grown = rss(server.process.pid as number) - rssBefore;
    t.diagnostic(`RSS grew by ${Math.round(grown / 1024 / 1024)} MiB`);
    assert.ok(grown < 256 * 1024 * 1024, `RSS grew by ${Math.round(grown / 1024 / 1024)} MiB`);
  });
});

const CHAT = { model: 'chat', messages: [{ role: 'user', content: 'hi' }] };
const INFER = { inputs: [{ name: 'input', shape: [1, 32], datatype: 'FP32', data: Array.from({ length: 32 }, () => 0.5) }] };

/** Valid-looking calls with one hole (`@`) for a hostile value; duplicate keys in some. */
const TEMPLATES: ReadonlyArray<readonly [string, string, string]> = [
  ['POST', '/v1/chat/completions', '{"model":"proxy","messages":[{"role":"user","content":"hi"}],"metadata":@}'],
  ['POST', '/v1/chat/completions', '{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":@}'],
  ['POST', '/v1/chat/completions', '{"model":"proxy","model":@,"messages":[{"role":"user","content":"hi"}]}'],
  ['POST', '/v1/chat/completions', '{"model":"proxy","messages":[{"role":"user","content":@}],"temperature":1,"temperature":@}'],
  ['POST', '/v1/completions', '{"model":"proxy","prompt":@,"logit_bias":@}'],
  ['POST', '/v1/completions', '{"model":"chat","prompt":"hi","seed":@}'],
  ['POST', '/v1/embeddings', '{"model":"proxy","input":@}'],
  ['POST', '/v1/embeddings', '{"model":"chat","input":"hi","dimensions":@}'],
  ['POST', '/v2/models/tiny-mlp/infer', '{"inputs":[{"name":"input","shape":[1,32],"datatype":"FP32","data":@}]}'],
  ['POST', '/v2/models/tiny-mlp/infer', '{"inputs":[{"name":"input","shape":@,"datatype":"FP32","data":[1]}],"parameters":@}'],
  ['POST', '/v2/models/tiny-mlp/versions/1/infer', '{"id":@,"inputs":@,"outputs":[{"name":"output"}]}'],
  ['POST', '/admin/tenants', '{"id":"hostile","models":["*"],"priority":"low","limits":@}'],
  ['POST', '/admin/tenants', '{"id":"hostile2","id":@,"models":["*"]}'],
  ['PATCH', '/admin/tenants/target', '{"models":["chat"],"priority":@}'],
  ['POST', '/admin/tenants/target/keys', '{"name":@}'],
  ['POST', '/admin/reload', '@'],
];
const GETS_ALL = [
  '/v1/models',
  '/v1/models/chat',
  '/v1/usage',
  '/v2',
  '/v2/health/ready',
  '/v2/models/tiny-mlp',
  '/v2/models/tiny-mlp/ready',
  '/v2/models/tiny-mlp/versions/1',
  '/admin/tenants',
  '/admin/tenants/target/keys',
  '/admin/usage',
  '/admin/breakers',
  '/metrics',
];
const QUERY_VALUES = [
  '1e400',
  '-0',
  '18446744073709551616',
  '9'.repeat(400),
  '__proto__',
  'constructor',
  '%FF%FE',
  '%E0%A4%A',
  '%00',
  '-1e308',
];

/** Numbers no double holds, nesting deeper than any limit, and keys that aim at prototypes. */
const hostileJson = fc.oneof(
  fc.integer({ min: 65, max: 20_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.integer({ min: 65, max: 5000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
  fc.constantFrom(
    '1e400',
    '-1e400',
    '-0',
    '18446744073709551616',
    '1e-400',
    '9'.repeat(5000),
    `0.${'0'.repeat(3000)}1`,
    '-9007199254740993',
    '123456789012345678901234567890e-30',
  ),
  fc.constantFrom(
    '{"__proto__":{"polluted":1}}',
    '{"constructor":{"prototype":{"polluted":1}}}',
    '{"\\u005f_proto__":{"x":1}}',
    '[{"__proto__":[]}]',
    '"__proto__"',
    '{"constructor":null,"toString":1,"hasOwnProperty":2}',
    '{"a":1,"a":2,"a":{"__proto__":null}}',
  ),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
);

/** Byte sequences that are not UTF-8: a lone continuation, overlong forms, a UTF-16 surrogate, 0xFF. */
const BAD_UTF8 = [
  Buffer.from([0xff]),
  Buffer.from([0x80]),
  Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xe0, 0x80, 0xaf]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0xc3]),
  Buffer.from([0xfe, 0xfe, 0xff, 0xff]),
];

/** gRPC codes a client's mistake may get; never INTERNAL, UNKNOWN, UNAVAILABLE, DATA_LOSS or a passed deadline. */
const CLIENT_CODES = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.RESOURCE_EXHAUSTED,
  status.FAILED_PRECONDITION,
  status.OUT_OF_RANGE,
  status.UNIMPLEMENTED,
]);

const { Inference, Generate } = grpcServices();
/** Sends raw bytes as the message of each method: for messages no stock client would encode. */
const RAW_METHODS = ['ModelInfer', 'ModelMetadata', 'ModelReady', 'Chat', 'Embed'];
const identity = (b: Buffer): Buffer => b;
const RawClient = makeGenericClientConstructor(
  Object.fromEntries(
    RAW_METHODS.map((m) => [
      m,
      {
        path: m === 'Chat' || m === 'Embed' ? `/infergate.v1.Generate/${m}` : `/inference.GRPCInferenceService/${m}`,
        requestStream: false,
        responseStream: m === 'Chat',
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    ]),
  ),
  'Raw',
);

/** Calls a gRPC method to its end (a stream is read out) with a deadline; resolves with the status code. */
function grpcCall(client: Client, method: string, request: unknown, key: string): Promise<number> {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  const options = { deadline: Date.now() + 10_000 };
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method] as (...args: unknown[]) => unknown;
  return new Promise((resolve) => {
    if (method !== 'Chat') {
      fn.call(client, request, metadata, options, (err: ServiceError | null) => resolve(err === null ? status.OK : err.code));
      return;
    }
    const stream = fn.call(client, request, metadata, options) as NodeJS.EventEmitter;
    stream.on('data', () => undefined);
    stream.once('error', (err: ServiceError) => resolve(err.code));
    stream.once('end', () => resolve(status.OK));
  });
}

/** An HTTP answer, or `closed` when the server closed the connection without one. */
type Answer = { readonly status: number; readonly text: string } | 'closed';

/** Sends one request on its own connection with a time-out; a body may go chunked (no content-length). */
function send(url: string, method: string, headers: Record<string, string>, body?: string | Buffer, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, 'content-type': 'application/json' }, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${method} ${url}: no answer in 10 s`));
    }, 10_000);
    let answered = false;
    req.once('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.once('error', () => {
        clearTimeout(timer);
        resolve('closed');
      });
    });
    req.once('error', () => {
      if (answered) return;
      clearTimeout(timer);
      resolve('closed');
    });
    if (body !== undefined && !chunked) req.setHeader('content-length', Buffer.byteLength(body));
    if (body === undefined) return void req.end();
    if (body.length <= 1024 * 1024) return void req.end(body);
    // A big body is refused before it is read: with its length declared, from the headers alone;
    // chunked, once past the limit. So the client sends only so much and waits for the answer, as
    // curl does: writing on into the connection the server closes after a refusal would race the
    // answer with a reset.
    if (chunked) req.write(Buffer.from(body).subarray(0, 256 * 1024));
    else req.flushHeaders();
  });
}

function assertNo5xx(path: string, res: Answer, body: string): void {
  assert.notEqual(res, 'closed', `${path} closed the connection for ${body.slice(0, 120)}`);
  if (res === 'closed') return;
  assert.ok(res.status < 500, `${path} answered ${res.status} ${res.text.slice(0, 300)} for ${body.slice(0, 200)}`);
  if (res.status >= 400 && path !== '/metrics') assertShape(path, res.status, JSON.parse(res.text));
}

/** Resident memory of a process, in bytes (Linux). */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}
