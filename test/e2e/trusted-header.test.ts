/**
 * `auth.mode: trusted_header` through the real server: a peer in `trusted_peers` names the tenant
 * in `x-tenant-id` (and the key id in `x-key-id`), over HTTP and gRPC; from any other peer those
 * headers are ignored. Loopback stands in for the network: Linux routes all of 127.0.0.0/8 to `lo`,
 * so a client that binds its source address to 127.0.0.2 reaches the server on 127.0.0.1 from a
 * peer other than 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect as http2Connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { grpcServices } from '../helpers/grpc.js';
import { ADMIN_KEY, adminCall, cli, postgresAnswers, tenantWithKey } from '../helpers/tenancy.js';

const TRUSTED = '127.0.0.2';
const UNTRUSTED = '127.0.0.1';
const hi = [{ role: 'user', content: 'hello there' }];

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: any;
}

/** An HTTP request from source address `from`, on a connection of its own. */
function from(source: string, method: string, url: string, headers: Record<string, string>, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = httpRequest(
      url,
      {
        method,
        localAddress: source,
        agent: false,
        headers: text === undefined ? headers : { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d: string) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data === '' ? null : JSON.parse(data) }));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

const { Generate } = grpcServices({ defaults: true });
const Embed = Generate.service.Embed!;

/** A gRPC session to `address` (host:port) whose TCP connection comes from source address `source`. */
function grpcFrom(source: string, address: string): ClientHttp2Session {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return http2Connect(`http://${address}`, { createConnection: () => tcpConnect({ host, port, localAddress: source }) });
}

/** A unary Embed call over `session` with `metadata`: its gRPC status, error code and response. */
function embed(
  session: ClientHttp2Session,
  metadata: Record<string, string>,
  model = 'chat',
): Promise<{ status: number; code: string; response: any }> {
  const payload = Embed.requestSerialize({ model, input: ['a red fox'] });
  const frame = Buffer.alloc(5 + payload.length);
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, 5);
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': '/infergate.v1.Generate/Embed',
      'content-type': 'application/grpc',
      te: 'trailers',
      ...metadata,
    });
    const chunks: Buffer[] = [];
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', reject);
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const status = Number(trailers['grpc-status'] ?? headers['grpc-status']);
      const code = String(trailers['x-error-code'] ?? headers['x-error-code'] ?? '');
      resolve({ status, code, response: body.length > 5 ? Embed.responseDeserialize(body.subarray(5)) : null });
    });
    req.end(frame);
  });
}

describe('auth.mode: trusted_header', () => {
  let server: RunningServer;
  let url: string;
  let betaKey: string;

  before(async () => {
    const config = writeConfig(`
server: { access_log: true }
auth:
  mode: trusted_header
  admin_key: '${ADMIN_KEY}'
  trusted_header: { trusted_peers: ['${TRUSTED}/32'] }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
  - name: other
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
`);
    server = await startServer({ config });
    url = server.url;
    // A tenant with no key at all: the proxy in front vouches for its callers.
    const acme = await adminCall(url, 'POST', '/admin/tenants', { id: 'acme', models: ['chat'] });
    assert.equal(acme.status, 201, JSON.stringify(acme.body));
    betaKey = (await tenantWithKey(url, { id: 'beta', models: ['chat', 'other'] })).key;
  });

  after(() => server.stop());

  it('says loudly at start-up that it trusts the headers, and from which peers', () => {
    const line = server
      .output()
      .split('\n')
      .find((l) => l.includes('trusting x-tenant-id'));
    assert.ok(line !== undefined, server.output());
    const entry = JSON.parse(line) as Record<string, unknown>;
    assert.equal(entry.level, 40);
    assert.deepEqual(entry.trusted_peers, [`${TRUSTED}/32`]);
    assert.match(
      String(entry.msg),
      /trusting x-tenant-id and x-key-id from 127\.0\.0\.2\/32: anything that connects from there can call as any tenant/,
    );
  });

  it("serves a trusted peer's call as the tenant x-tenant-id names, with that tenant's models only", async () => {
    const vouched = { 'x-tenant-id': 'acme', 'x-key-id': 'user-7' };
    const ok = await from(TRUSTED, 'POST', `${url}/v1/chat/completions`, vouched, { model: 'chat', messages: hi });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.choices[0].message.role, 'assistant');
    const models = await from(TRUSTED, 'GET', `${url}/v1/models`, vouched);
    assert.equal(models.status, 200);
    assert.deepEqual(
      models.body.data.map((m: { id: string }) => m.id),
      ['chat'],
    );
    const forbidden = await from(TRUSTED, 'POST', `${url}/v1/chat/completions`, vouched, { model: 'other', messages: hi });
    assert.equal(forbidden.status, 404);
    assert.equal(forbidden.body.error.code, 'model_not_found');
    // Without x-key-id the call is still the tenant's, under the key id `trusted`.
    const anonymous = await from(TRUSTED, 'POST', `${url}/v1/chat/completions`, { 'x-tenant-id': 'acme' }, { model: 'chat', messages: hi });
    assert.equal(anonymous.status, 200);
    // Usage is the tenant's: the two calls that reached the model (a model it may not use never does).
    const usage = await adminCall(url, 'GET', '/admin/usage?tenant=acme');
    assert.equal(usage.status, 200);
    assert.deepEqual(
      usage.body.data.map((r: { tenant: string; requests: number }) => [r.tenant, r.requests]),
      [['acme', 2]],
    );
  });

  it('ignores the headers from a peer not in trusted_peers: 401 without an API key', async () => {
    const vouched = { 'x-tenant-id': 'acme', 'x-key-id': 'user-7' };
    const chat = await from(UNTRUSTED, 'POST', `${url}/v1/chat/completions`, vouched, { model: 'chat', messages: hi });
    assert.equal(chat.status, 401);
    assert.equal(chat.body.error.code, 'invalid_api_key');
    assert.equal(chat.headers['www-authenticate'], 'Bearer');
    assert.match(chat.body.error.message, /x-tenant-id is not accepted from this address; send an API key/);
    assert.doesNotMatch(JSON.stringify(chat.body), /acme/);
    const models = await from(UNTRUSTED, 'GET', `${url}/v1/models`, vouched);
    assert.equal(models.status, 401);
    const infer = await from(UNTRUSTED, 'POST', `${url}/v2/models/chat/infer`, vouched, { inputs: [] });
    assert.equal(infer.status, 401);
    assert.equal(infer.body.code, 'invalid_api_key');
  });

  it("still takes API keys, from any peer: a call with a key and an ignored x-tenant-id is the key tenant's", async () => {
    const keyed = { authorization: `Bearer ${betaKey}`, 'x-tenant-id': 'acme' };
    const untrusted = await from(UNTRUSTED, 'POST', `${url}/v1/chat/completions`, keyed, { model: 'other', messages: hi });
    assert.equal(untrusted.status, 200, JSON.stringify(untrusted.body));
    const wrongKey = await from(
      UNTRUSTED,
      'POST',
      `${url}/v1/chat/completions`,
      { authorization: 'Bearer ig-nope', 'x-tenant-id': 'acme' },
      {
        model: 'chat',
        messages: hi,
      },
    );
    assert.equal(wrongKey.status, 401);
    assert.match(wrongKey.body.error.message, /the API key is not valid/);
    const trustedByKey = await from(
      TRUSTED,
      'POST',
      `${url}/v1/chat/completions`,
      { authorization: `Bearer ${betaKey}` },
      { model: 'other', messages: hi },
    );
    assert.equal(trustedByKey.status, 200);
    const usage = await adminCall(url, 'GET', '/admin/usage?tenant=beta');
    assert.equal(usage.body.data[0].requests, 2);
  });

  it('answers 401 naming an unknown tenant, and 400 naming the header for a malformed key id, from a trusted peer', async () => {
    const unknown = await from(TRUSTED, 'POST', `${url}/v1/chat/completions`, { 'x-tenant-id': 'nobody' }, { model: 'chat', messages: hi });
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.error.code, 'invalid_api_key');
    assert.equal(unknown.body.error.message, 'the tenant "nobody" named by x-tenant-id is not known');
    const badKey = await from(
      TRUSTED,
      'POST',
      `${url}/v1/chat/completions`,
      { 'x-tenant-id': 'acme', 'x-key-id': 'k'.repeat(33) },
      { model: 'chat', messages: hi },
    );
    assert.equal(badKey.status, 400);
    assert.equal(badKey.body.error.code, 'invalid_request');
    assert.equal(badKey.body.error.param, 'x-key-id');
    assert.match(badKey.body.error.message, /x-key-id must be 1 to 32 of/);
  });

  it('takes the tenant from gRPC metadata from a trusted peer only', async () => {
    assert.ok(server.grpc !== null);
    const trusted = grpcFrom(TRUSTED, server.grpc);
    const untrusted = grpcFrom(UNTRUSTED, server.grpc);
    try {
      const ok = await embed(trusted, { 'x-tenant-id': 'acme', 'x-key-id': 'grpc-user' });
      assert.equal(ok.status, 0, ok.code);
      assert.equal(ok.response.model, 'chat');
      assert.equal(ok.response.data.length, 1);
      const forbidden = await embed(trusted, { 'x-tenant-id': 'acme' }, 'other');
      assert.equal(forbidden.status, 5); // NOT_FOUND
      const unknown = await embed(trusted, { 'x-tenant-id': 'nobody' });
      assert.deepEqual([unknown.status, unknown.code], [16, 'invalid_api_key']); // UNAUTHENTICATED
      const refused = await embed(untrusted, { 'x-tenant-id': 'acme' });
      assert.deepEqual([refused.status, refused.code], [16, 'invalid_api_key']);
      const keyed = await embed(untrusted, { authorization: `Bearer ${betaKey}` });
      assert.equal(keyed.status, 0);
    } finally {
      trusted.close();
      untrusted.close();
    }
  });

  it("records the key id x-key-id names in the access log, `trusted` when it is absent, and the key's own id for a key", async () => {
    assert.equal(await server.stop(), 0);
    const calls = server
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"call"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.status === 200);
    const pairs = new Set(calls.map((l) => `${String(l.tenant)}/${String(l.key)}`));
    for (const pair of ['acme/user-7', 'acme/trusted', 'acme/grpc-user']) assert.ok(pairs.has(pair), `${pair} in ${[...pairs].join(', ')}`);
    assert.ok(
      [...pairs].some((p) => /^beta\/key_[0-9a-f]+$/.test(p)),
      [...pairs].join(', '),
    );
  });
});

describe('trusted_header config', () => {
  it('fails validation without trusted_peers, naming the path', async () => {
    const file = writeConfig(`auth: { mode: trusted_header, admin_key: '${ADMIN_KEY}' }\nmodels: []\n`);
    const { code, stdout, stderr } = await cli(['config', 'validate', file]);
    assert.equal(code, 1);
    assert.match(stdout + stderr, /auth\.trusted_header\.trusted_peers: `trusted_header` mode needs at least one trusted peer/);
  });
});

const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

describe('auth.mode: trusted_header with PostgreSQL', async () => {
  if (!(await postgresAnswers(DATABASE_URL))) {
    it('needs PostgreSQL', (t) => t.skip(`no PostgreSQL answers at ${DATABASE_URL}; set DATABASE_URL to run these tests`));
    return;
  }

  it('records usage under a vouched-for key id of the longest length allowed', async () => {
    const server = await startServer({
      config: writeConfig(`
auth: { mode: trusted_header, admin_key: '${ADMIN_KEY}', trusted_header: { trusted_peers: ['${TRUSTED}'] } }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
`),
      env: { DATABASE_URL },
    });
    // The database outlives test runs: a fresh tenant each time.
    const tenant = `vouched-${Date.now().toString(36)}`;
    try {
      assert.equal((await adminCall(server.url, 'POST', '/admin/tenants', { id: tenant, models: ['*'] })).status, 201);
      const headers = { 'x-tenant-id': tenant, 'x-key-id': 'k'.repeat(32) };
      const ok = await from(TRUSTED, 'POST', `${server.url}/v1/chat/completions`, headers, { model: 'chat', messages: hi });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const usage = await adminCall(server.url, 'GET', `/admin/usage?tenant=${tenant}`);
      assert.equal(usage.body.data[0]?.requests, 1, server.output());
    } finally {
      await adminCall(server.url, 'DELETE', `/admin/tenants/${tenant}`);
      await server.stop();
    }
    assert.doesNotMatch(server.output(), /writing usage records failed|"level":50/);
  });
});
