/**
 * The call envelope through both transports at once: the real HTTP server and the real gRPC
 * server, in this process, over one gateway built from a real config (mock models, keys in a
 * SQLite file). The same call made over each is given the same request id treatment, refused with
 * the same catalogue code, and recorded once in the same metric series.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { GrpcServer } from '../../src/api/grpc/server.js';
import { createHttpServer } from '../../src/api/http/server.js';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/pipeline/gateway.js';
import { Registry } from '../../src/routing/registry.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { setUpTenancy, type TenancySetup } from '../../src/tenancy/setup.js';
import { grpcServices } from '../helpers/grpc.js';
import { parseMetrics } from '../helpers/prometheus.js';

const { Generate } = grpcServices({ defaults: true });
const hi = [{ role: 'user', content: 'hi' }];

/** What a gRPC call came to: its response (or error) and its trailers. */
interface GrpcOutcome {
  readonly response: Record<string, unknown> | null;
  readonly error: ServiceError | null;
  readonly trailers: Metadata;
}

type Unary = (
  request: object,
  metadata: Metadata,
  cb: (err: ServiceError | null, res: Record<string, unknown>) => void,
) => {
  on(event: 'status', listener: (s: { metadata: Metadata }) => void): void;
};

describe('the call envelope, over HTTP and gRPC alike', () => {
  let setup: TenancySetup;
  let http: FastifyInstance;
  let grpc: GrpcServer;
  let client: Client;
  let url: string;
  let metrics: Metrics;
  let key: string;

  before(async () => {
    const data = mkdtempSync(join(tmpdir(), 'infergate-envelope-'));
    const config = parseConfig(
      `
auth: { mode: keys, admin_key: 'admin-key-for-tests' }
storage: { database_url: 'sqlite:${join(data, 'infergate.db')}' }
state: { redis_url: '' }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0, stream_chunks: 3 } }]
`,
      'envelope.yaml',
      { env: {} },
    );
    const log = pino({ level: 'silent' });
    const registry = new Registry(config);
    setup = await setUpTenancy(config, log, null);
    const gateway = new Gateway(registry, setup.tenancy);
    await registry.load((_version, error) => assert.fail(error));
    metrics = new Metrics({ tenantLabel: true });
    const lifecycle = { draining: false };
    const scrape = () => metrics.registry.metrics();
    http = createHttpServer({ config, log, gateway, version: 'test', lifecycle, tenancy: setup.http, metrics: { metrics, scrape } });
    url = await http.listen({ host: '127.0.0.1', port: 0 });
    grpc = new GrpcServer({ gateway, log, version: 'test', directory: setup.http.directory, maxMessageBytes: 65536, lifecycle, metrics });
    client = new Generate(`127.0.0.1:${await grpc.listen('127.0.0.1', 0)}`, credentials.createInsecure());
    await setup.http.admin.createTenant('acme', { models: ['chat'], priority: 'normal', limits: {} });
    key = ((await setup.http.admin.createKey('acme', 'test', {})) as { result: { key: string } }).result.key;
  });

  after(async () => {
    client?.close();
    await grpc?.close(1000);
    await http?.close();
    await setup?.close();
  });

  /** POSTs JSON to the HTTP server with the tenant's key (unless `headers` names another). */
  async function httpCall(path: string, body: object, headers: Record<string, string> = {}) {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text };
  }

  /** Calls infergate.v1.Generate/Embed with the tenant's key (unless `metadata` names another). */
  function grpcEmbed(request: object, metadata: Record<string, string> = {}): Promise<GrpcOutcome> {
    const md = new Metadata();
    md.set('authorization', `Bearer ${key}`);
    for (const [name, value] of Object.entries(metadata)) md.set(name, value);
    return new Promise((resolve) => {
      let response: Record<string, unknown> | null = null;
      let error: ServiceError | null = null;
      const call = ((client as unknown as Record<string, Unary>).Embed as Unary).call(client, request, md, (err, res) => {
        error = err;
        response = err === null ? res : null;
      });
      call.on('status', (s) => setImmediate(() => resolve({ response, error, trailers: s.metadata })));
    });
  }

  /** Streams infergate.v1.Generate/Chat to its end: the chunks and the trailers. */
  function grpcChat(request: object): Promise<{ chunks: Array<Record<string, unknown>>; trailers: Metadata }> {
    const md = new Metadata();
    md.set('authorization', `Bearer ${key}`);
    const stream = (client as unknown as { Chat: (r: object, m: Metadata) => NodeJS.EventEmitter }).Chat(request, md);
    const chunks: Array<Record<string, unknown>> = [];
    return new Promise((resolve, reject) => {
      stream.on('data', (chunk: Record<string, unknown>) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('status', (s: { metadata: Metadata }) => resolve({ chunks, trailers: s.metadata }));
    });
  }

  /** The value of one series of infergate_requests_total (0 when it has none yet). */
  async function calls(labels: string): Promise<number> {
    return parseMetrics(await metrics.registry.metrics()).get(`infergate_requests_total{${labels}}`) ?? 0;
  }

  it('echoes a client request id, and makes one of the same form up otherwise', async () => {
    const given = await httpCall('/v1/embeddings', { model: 'chat', input: 'a' }, { 'x-request-id': 'same-id.1' });
    assert.equal(given.status, 200, given.text);
    assert.equal(given.headers.get('x-request-id'), 'same-id.1');
    const overGrpc = await grpcEmbed({ model: 'chat', input: ['a'] }, { 'x-request-id': 'same-id.1' });
    assert.equal(overGrpc.error, null);
    assert.deepEqual(overGrpc.trailers.get('x-request-id'), ['same-id.1']);
    assert.deepEqual(overGrpc.trailers.get('x-model-version'), ['1']);

    // Not a sane token (a space): both replace it with one of their own, from one counter.
    const made = (await httpCall('/v1/embeddings', { model: 'chat', input: 'a' }, { 'x-request-id': 'not sane' })).headers.get(
      'x-request-id',
    );
    const madeOverGrpc = String(
      (await grpcEmbed({ model: 'chat', input: ['a'] }, { 'x-request-id': 'not sane' })).trailers.get('x-request-id')[0],
    );
    const form = /^([0-9a-f]{12})-([0-9a-z]+)$/;
    assert.match(made ?? '', form);
    assert.match(madeOverGrpc, form);
    assert.equal(form.exec(made ?? '')?.[1], form.exec(madeOverGrpc)?.[1], 'one prefix per process');
    assert.notEqual(made, madeOverGrpc);
  });

  // Each refusal, made over both transports: the HTTP status and the gRPC status of one catalogue
  // code, and its series counted once per call, with no model (and no tenant when the context never opened).
  for (const { name, body, headers, status: httpStatus, grpcStatus, code, param, series } of [
    {
      name: 'an unknown model, under the tenant that asked',
      body: { model: 'ghost' },
      headers: {},
      status: 404,
      grpcStatus: status.NOT_FOUND,
      code: 'model_not_found',
      param: 'model',
      series: 'model="",version="",tenant="acme",status="404",code="model_not_found"',
    },
    {
      name: 'a bad x-priority, before the call, without a tenant',
      body: {},
      headers: { 'x-priority': 'urgent' },
      status: 400,
      grpcStatus: status.INVALID_ARGUMENT,
      code: 'invalid_request',
      param: 'x-priority',
      series: 'model="",version="",tenant="",status="400",code="invalid_request"',
    },
    {
      name: 'a key that is not valid, without a tenant',
      body: {},
      headers: { authorization: 'Bearer ig-wrong' },
      status: 401,
      grpcStatus: status.UNAUTHENTICATED,
      code: 'invalid_api_key',
      param: null,
      series: 'model="",version="",tenant="",status="401",code="invalid_api_key"',
    },
  ]) {
    it(`refuses ${name}: the same code, message and param on both, recorded once each`, async () => {
      const before = await calls(series);
      const res = await httpCall('/v1/embeddings', { model: 'chat', input: 'a', ...body }, { ...headers, 'x-request-id': `${code}-1` });
      const error = JSON.parse(res.text).error as { code: string; message: string; param: string | null };
      assert.deepEqual([res.status, error.code, error.param], [httpStatus, code, param]);
      assert.equal(res.headers.get('x-request-id'), `${code}-1`);
      const overGrpc = await grpcEmbed({ model: 'chat', input: ['a'], ...body }, { ...headers, 'x-request-id': `${code}-2` });
      assert.equal(overGrpc.error?.code, grpcStatus);
      assert.equal(overGrpc.error?.details, error.message);
      assert.deepEqual(overGrpc.trailers.get('x-error-code'), [code]);
      assert.deepEqual(overGrpc.trailers.get('x-error-param'), param === null ? [] : [param]);
      assert.deepEqual(overGrpc.trailers.get('x-request-id'), [`${code}-2`]);
      assert.equal(await calls(series), before + 2);
    });
  }

  it('asks for the key over HTTP with www-authenticate', async () => {
    const res = await httpCall('/v1/embeddings', { model: 'chat', input: 'a' }, { authorization: 'Bearer ig-wrong' });
    assert.equal(res.headers.get('www-authenticate'), 'Bearer');
  });

  it('records a streamed answer once, when it ends, under the tenant and the model that served it', async () => {
    const series = 'model="chat",version="1",tenant="acme",status="200",code=""';
    const before = await calls(series);
    const res = await httpCall('/v1/chat/completions', { model: 'chat', messages: hi, stream: true });
    assert.equal(res.status, 200);
    assert.ok(res.text.trimEnd().endsWith('data: [DONE]'), res.text);
    const overGrpc = await grpcChat({ model: 'chat', messages: hi });
    assert.ok(overGrpc.chunks.length > 1, 'chunks as they are generated');
    assert.notEqual(overGrpc.chunks.at(-1)?.finish_reason, '');
    assert.deepEqual(overGrpc.trailers.get('x-model-version'), ['1']);
    assert.equal(await calls(series), before + 2);
  });
});
