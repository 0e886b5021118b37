/**
 * OpenTelemetry traces through the real server: an OTLP/HTTP receiver on loopback collects what
 * the OpenTelemetry exporter sends (OTEL_EXPORTER_OTLP_ENDPOINT), and the test checks the spans of
 * each stage, their parent links, GenAI attributes, the client's traceparent honoured and passed on
 * to a remote backend, and sampling.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, Metadata } from '@grpc/grpc-js';
import { post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { grpcServices } from '../helpers/grpc.js';
import { ADMIN_KEY, tenantWithKey } from '../helpers/tenancy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { SPAN_KIND, startReceiver, traceOf, type Received } from '../helpers/otlp.js';

const { Inference } = grpcServices();
const hi = [{ role: 'user', content: 'hi' }];
const randomHex = (bytes: number): string =>
  Buffer.from(Array.from({ length: bytes }, () => Math.floor(Math.random() * 256))).toString('hex');

describe('OpenTelemetry traces', () => {
  let server: RunningServer;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let upstream: Upstream;
  let auth: Record<string, string>;

  before(async () => {
    receiver = await startReceiver();
    upstream = await startUpstream();
    const config = writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
  - name: remote
    versions: [{ version: r, backend: { kind: openai, base_url: '${upstream.url}' } }]
  - name: tiny-mlp
    versions:
      - version: '1'
        backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx, batching: { enabled: true, max_batch_size: 8, max_queue_delay_ms: 2 } }
  - name: narrow
    versions:
      - version: n
        backend: { kind: mock, latency_ms: 20 }
        policies: { admission: { max_concurrent: 1, queue_size: 4 } }
`);
    server = await startServer({
      config,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: 'gateway-under-test' },
    });
    const { key } = await tenantWithKey(server.url, { id: 'acme', models: ['*'] });
    auth = { authorization: `Bearer ${key}` };
  });

  after(async () => {
    await server?.stop();
    await upstream?.close();
    receiver?.server.close();
  });

  it('joins the client’s trace: a server span with a child per stage, and the backend span’s id sent upstream', async () => {
    const traceId = randomHex(16);
    const clientSpan = randomHex(8);
    const res = await post(
      `${server.url}/v1/chat/completions`,
      { model: 'remote', messages: hi, max_tokens: 7, temperature: 0.5 },
      { ...auth, traceparent: `00-${traceId}-${clientSpan}-01`, 'x-request-id': 'traced-1' },
    );
    assert.equal(res.status, 200);
    const spans = await traceOf(receiver.spans, (s) => s.traceId === traceId, 5);
    const root = spans.find((s) => s.kind === SPAN_KIND.SERVER) as Received;
    assert.equal(root.name, 'POST /v1/chat/completions');
    assert.equal(root.parentSpanId, clientSpan, 'the server span is a child of the client’s');
    assert.equal(root.resource['service.name'], 'gateway-under-test');
    assert.deepEqual(
      {
        op: root.attributes['gen_ai.operation.name'],
        model: root.attributes['gen_ai.request.model'],
        version: root.attributes['infergate.model.version'],
        tenant: root.attributes['infergate.tenant'],
        maxTokens: root.attributes['gen_ai.request.max_tokens'],
        temperature: root.attributes['gen_ai.request.temperature'],
        status: root.attributes['http.response.status_code'],
        id: root.attributes['infergate.request_id'],
        input: root.attributes['gen_ai.usage.input_tokens'],
        output: root.attributes['gen_ai.usage.output_tokens'],
      },
      {
        op: 'chat',
        model: 'remote',
        version: 'r',
        tenant: 'acme',
        maxTokens: 7,
        temperature: 0.5,
        status: 200,
        id: 'traced-1',
        input: res.body.usage.prompt_tokens,
        output: res.body.usage.completion_tokens,
      },
    );
    const children = spans.filter((s) => s.parentSpanId === root.spanId);
    assert.deepEqual(children.map((s) => s.name).sort(), ['authenticate', 'chat remote', 'limit', 'route']);
    const backend = children.find((s) => s.name === 'chat remote') as Received;
    assert.equal(backend.kind, SPAN_KIND.CLIENT);
    assert.equal(backend.attributes['gen_ai.provider.name'], 'openai');
    assert.equal(backend.attributes['gen_ai.request.model'], 'remote');
    const sent = upstream.received.at(-1)?.headers.traceparent;
    assert.equal(sent, `00-${traceId}-${backend.spanId}-01`, 'the upstream joins the trace under the backend span');
  });

  it('passes an unsampled client trace on unchanged and records nothing of it', async () => {
    const traceId = randomHex(16);
    const traceparent = `00-${traceId}-${randomHex(8)}-00`;
    assert.equal(
      (await post(`${server.url}/v1/chat/completions`, { model: 'remote', messages: hi }, { ...auth, traceparent })).status,
      200,
    );
    assert.equal(upstream.received.at(-1)?.headers.traceparent, traceparent);
    // A later sampled trace has arrived by the time this one would have.
    const marker = randomHex(16);
    await post(
      `${server.url}/v1/chat/completions`,
      { model: 'chat', messages: hi },
      { ...auth, traceparent: `00-${marker}-${randomHex(8)}-01` },
    );
    await traceOf(receiver.spans, (s) => s.traceId === marker, 4);
    assert.equal(receiver.spans.filter((s) => s.traceId === traceId).length, 0);
  });

  it('traces the admission queue, and batches inside a tensor call’s backend span', async () => {
    const answers = await Promise.all(
      Array.from({ length: 2 }, () => post(`${server.url}/v1/chat/completions`, { model: 'narrow', messages: hi }, auth)),
    );
    for (const a of answers) assert.equal(a.status, 200);
    const queued = await traceOf(receiver.spans, (s) => s.attributes['gen_ai.request.model'] === 'narrow', 5);
    assert.ok(queued.some((s) => s.name === 'queue'));

    const body = { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 32], data: Array.from({ length: 64 }, (_, i) => i / 64) }] };
    assert.equal((await post(`${server.url}/v2/models/tiny-mlp/infer`, body, { ...auth, 'x-request-id': 'tensor-1' })).status, 200);
    const spans = await traceOf(receiver.spans, (s) => s.attributes['infergate.request_id'] === 'tensor-1', 6);
    const root = spans.find((s) => s.kind === SPAN_KIND.SERVER) as Received;
    assert.equal(root.name, 'POST /v2/models/{model}/infer');
    assert.equal(root.attributes['url.path'], '/v2/models/tiny-mlp/infer');
    const backend = spans.find((s) => s.name === 'infer tiny-mlp') as Received;
    assert.equal(backend.parentSpanId, root.spanId);
    assert.equal(backend.kind, SPAN_KIND.INTERNAL);
    const batch = spans.find((s) => s.name === 'batch') as Received;
    assert.equal(batch.parentSpanId, backend.spanId);
    assert.equal(batch.attributes['infergate.batch.rows'], 2);
    assert.equal(batch.attributes['infergate.batch.requests'], 1);
  });

  it('traces gRPC calls the same way, joining the trace in `traceparent` metadata', async () => {
    const traceId = randomHex(16);
    const clientSpan = randomHex(8);
    const metadata = new Metadata();
    metadata.set('authorization', auth.authorization as string);
    metadata.set('traceparent', `00-${traceId}-${clientSpan}-01`);
    metadata.set('x-request-id', 'grpc-traced-1');
    const client = new Inference(server.grpc as string, credentials.createInsecure());
    try {
      const request = {
        model_name: 'tiny-mlp',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 32], contents: { fp32_contents: Array.from({ length: 32 }, (_, i) => i) } }],
      };
      await new Promise<void>((resolve, reject) =>
        (client as unknown as Record<string, (r: object, m: Metadata, cb: (err: Error | null) => void) => void>).ModelInfer!.call(
          client,
          request,
          metadata,
          (err) => (err === null ? resolve() : reject(err)),
        ),
      );
    } finally {
      client.close();
    }
    const spans = await traceOf(receiver.spans, (s) => s.traceId === traceId, 4);
    const root = spans.find((s) => s.kind === SPAN_KIND.SERVER) as Received;
    assert.equal(root.name, 'inference.GRPCInferenceService/ModelInfer');
    assert.equal(root.parentSpanId, clientSpan);
    assert.equal(root.attributes['rpc.system'], 'grpc');
    assert.equal(root.attributes['rpc.grpc.status_code'], 0);
    assert.equal(root.attributes['infergate.request_id'], 'grpc-traced-1');
    assert.equal(root.attributes['infergate.tenant'], 'acme');
    for (const name of ['authenticate', 'infer tiny-mlp']) {
      assert.equal(spans.find((s) => s.name === name)?.parentSpanId, root.spanId, `${name} is a child of the server span`);
    }
  });

  it('marks failures: a 404 names its code, a 5xx sets the error status', async () => {
    const res = await post(`${server.url}/v1/chat/completions`, { model: 'nope', messages: hi }, { ...auth, 'x-request-id': 'missing-1' });
    assert.equal(res.status, 404);
    const missing = await traceOf(receiver.spans, (s) => s.attributes['infergate.request_id'] === 'missing-1', 2);
    const root = missing.find((s) => s.kind === SPAN_KIND.SERVER);
    assert.equal(root?.attributes['error.type'], 'model_not_found');
    assert.equal(root?.attributes['http.response.status_code'], 404);
    assert.equal(root?.status, 0, 'a client error leaves the server span unset');
    const limit = missing.find((s) => s.name === 'limit');
    assert.equal(limit?.attributes['error.type'], 'model_not_found');

    upstream.failWith = { status: 500, message: 'boom' };
    try {
      const failed = await post(
        `${server.url}/v1/chat/completions`,
        { model: 'remote', messages: hi },
        { ...auth, 'x-request-id': 'failed-1' },
      );
      assert.equal(failed.status, 502);
    } finally {
      upstream.failWith = null;
    }
    const spans = await traceOf(receiver.spans, (s) => s.attributes['infergate.request_id'] === 'failed-1', 5);
    const server5xx = spans.find((s) => s.kind === SPAN_KIND.SERVER) as Received;
    assert.equal(server5xx.status, 2, 'ERROR');
    const attempts = spans.filter((s) => s.name === 'chat remote');
    assert.ok(attempts.length >= 1 && attempts.every((s) => s.status === 2 && s.attributes['error.type'] === 'upstream_error'));
  });
});

describe('OpenTelemetry sampling', () => {
  it('samples roots at the configured ratio and always follows a sampled parent', async () => {
    const receiver = await startReceiver();
    const config = writeConfig(`
tracing: { sample_ratio: 0 }
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
`);
    const server = await startServer({
      config,
      env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' },
    });
    try {
      for (let i = 0; i < 20; i++)
        assert.equal((await post(`${server.url}/v1/chat/completions`, { model: 'chat', messages: hi })).status, 200);
      const traceId = randomHex(16);
      await post(`${server.url}/v1/chat/completions`, { model: 'chat', messages: hi }, { traceparent: `00-${traceId}-${randomHex(8)}-01` });
      await traceOf(receiver.spans, (s) => s.traceId === traceId, 3);
      assert.deepEqual(new Set(receiver.spans.map((s) => s.traceId)), new Set([traceId]), 'ratio 0: only the parent-sampled trace');
    } finally {
      await server.stop();
      receiver.server.close();
    }
  });
});

describe('OpenTelemetry export over OTLP/HTTP protobuf (the default)', () => {
  it('sends protobuf bodies that carry the trace', async () => {
    const bodies: Array<{ type: string; body: Buffer }> = [];
    const sink = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push({ type: req.headers['content-type'] ?? '', body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'application/x-protobuf' });
        res.end();
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(sink.address() as { port: number }).port}`;
    const config = writeConfig(`
models:
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
`);
    const server = await startServer({ config, env: { OTEL_EXPORTER_OTLP_ENDPOINT: url } });
    try {
      const traceId = randomHex(16);
      await post(`${server.url}/v1/chat/completions`, { model: 'chat', messages: hi }, { traceparent: `00-${traceId}-${randomHex(8)}-01` });
      const id = Buffer.from(traceId, 'hex');
      for (let i = 0; i < 50 && !bodies.some((b) => b.body.includes(id)); i++) await sleep(100);
      const body = bodies.find((b) => b.body.includes(id));
      assert.ok(body !== undefined, 'an export carries the trace id as raw protobuf bytes');
      assert.equal(body.type, 'application/x-protobuf');
      assert.ok(body.body.includes(Buffer.from('POST /v1/chat/completions')));
    } finally {
      await server.stop();
      sink.close();
    }
  });
});
