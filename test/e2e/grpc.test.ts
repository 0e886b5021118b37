/**
 * gRPC through the real server with a stock client (@grpc/grpc-js loading the shipped .proto files):
 * KServe v2 health and metadata, ModelInfer equal to the HTTP path element for element, raw
 * contents round-tripped, errors with the right status codes, deadlines and cancellation, chat
 * tokens streamed in order, embeddings, and server reflection.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  credentials,
  loadPackageDefinition,
  Metadata,
  status,
  type Client,
  type GrpcObject,
  type ServiceClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import fc from 'fast-check';
import { post, ROOT, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { grpcServices } from '../helpers/grpc.js';
import { ADMIN, ADMIN_KEY, tenantWithKey } from '../helpers/tenancy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const { Inference, Generate } = grpcServices(OPTIONS);
const reflectionProto = loadPackageDefinition(
  loadSync('grpc/reflection/v1/reflection.proto', { ...OPTIONS, includeDirs: [join(ROOT, 'node_modules/@grpc/reflection/build/proto')] }),
);
const Reflection = (((reflectionProto.grpc as GrpcObject).reflection as GrpcObject).v1 as GrpcObject)
  .ServerReflection as ServiceClientConstructor;

type Unary = (
  request: object,
  metadata: Metadata,
  options: { deadline?: number },
  cb: (err: ServiceError | null, res: any) => void,
) => void;

/** Calls a unary method; resolves with the response, or rejects with the ServiceError. */
function call(client: Client, method: string, request: object, key?: string, deadlineMs?: number): Promise<any> {
  const metadata = new Metadata();
  if (key !== undefined) metadata.set('authorization', `Bearer ${key}`);
  const options = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
  return new Promise((resolve, reject) =>
    ((client as unknown as Record<string, Unary>)[method] as Unary).call(client, request, metadata, options, (err, res) =>
      err === null ? resolve(res) : reject(err),
    ),
  );
}

/** Streams a chat to its end; resolves with the chunks, or rejects with the ServiceError. */
async function chat(client: Client, request: object, key: string, deadlineMs?: number): Promise<any[]> {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  const options = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
  const stream = (client as unknown as { Chat: (r: object, m: Metadata, o: object) => AsyncIterable<any> }).Chat(
    request,
    metadata,
    options,
  );
  const chunks: any[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/** The ServiceError a call fails with. */
async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as ServiceError;
  }
  assert.fail('the call succeeded');
}

const input = (rows: number) => Array.from({ length: rows * 32 }, (_, i) => Math.sin(i) * 2);

describe('gRPC', () => {
  let server: RunningServer;
  let upstream: Upstream;
  let inference: Client;
  let generate: Client;
  let key: string;

  before(async () => {
    upstream = await startUpstream();
    const config = writeConfig(`
server: { body_limit_bytes: 65536 }
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }]
  - name: tiny-embed
    versions: [{ version: '1', backend: { kind: onnx, task: embedding, path: \${MODELS}/tiny-embed/1/model.onnx } }]
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0, stream_chunks: 5 } }]
  - name: slow
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 3000 } }]
  - name: narrow
    versions:
      - version: '1'
        backend: { kind: mock, latency_ms: 500 }
        policies: { admission: { max_concurrent: 1, queue_size: 0 } }
  - name: remote
    versions: [{ version: r, backend: { kind: openai, base_url: '${upstream.url}' } }]
`);
    server = await startServer({ config });
    assert.ok(server.grpc !== null, 'the gRPC address is announced');
    inference = new Inference(server.grpc as string, credentials.createInsecure());
    generate = new Generate(server.grpc as string, credentials.createInsecure());
    key = (await tenantWithKey(server.url, { id: 'acme', models: ['*'] })).key;
  });

  after(async () => {
    inference?.close();
    generate?.close();
    await server?.stop();
    await upstream?.close();
  });

  it('answers health and metadata as KServe v2 says', async () => {
    assert.deepEqual(await call(inference, 'ServerLive', {}), { live: true });
    assert.deepEqual(await call(inference, 'ServerReady', {}), { ready: true });
    const meta = await call(inference, 'ServerMetadata', {}, key);
    assert.equal(meta.name, 'infergate');
    assert.deepEqual(await call(inference, 'ModelReady', { name: 'tiny-mlp', version: '1' }, key), { ready: true });
    const model = await call(inference, 'ModelMetadata', { name: 'tiny-mlp', version: '' }, key);
    assert.equal(model.name, 'tiny-mlp');
    assert.deepEqual(model.versions, ['1']);
    assert.equal(model.platform, 'onnxruntime_onnx');
    assert.deepEqual(model.inputs, [{ name: 'input', datatype: 'FP32', shape: ['-1', '32'] }]);
    assert.equal(model.outputs.length, 1);
  });

  it('infers what the HTTP path infers, element for element, typed and raw', async () => {
    const data = input(3);
    const http = await post(
      `${server.url}/v2/models/tiny-mlp/infer`,
      { inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 32], data }] },
      { authorization: `Bearer ${key}` },
    );
    assert.equal(http.status, 200);
    const expected = http.body.outputs[0];
    const typed = await call(
      inference,
      'ModelInfer',
      {
        model_name: 'tiny-mlp',
        id: 'req-7',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 32], contents: { fp32_contents: data } }],
      },
      key,
    );
    assert.equal(typed.id, 'req-7');
    assert.equal(typed.model_version, '1');
    const out = typed.outputs[0];
    assert.equal(out.name, expected.name);
    assert.deepEqual(out.shape.map(Number), expected.shape);
    assert.deepEqual(out.contents.fp32_contents, expected.data);
    assert.equal(typed.raw_output_contents.length, 0);

    const raw = await call(
      inference,
      'ModelInfer',
      {
        model_name: 'tiny-mlp',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 32] }],
        raw_input_contents: [Buffer.from(Float32Array.from(data).buffer)],
      },
      key,
    );
    assert.equal(raw.outputs[0].contents, null, 'raw in, raw out');
    const bytes = raw.raw_output_contents[0] as Buffer;
    const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    assert.deepEqual(Array.from(values), expected.data);
  });

  it('maps errors to gRPC status codes, with the error code and request id in trailers', async () => {
    const body = {
      model_name: 'tiny-mlp',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 32], contents: { fp32_contents: input(1) } }],
    };
    const unauthenticated = await failure(call(inference, 'ModelInfer', body));
    assert.equal(unauthenticated.code, status.UNAUTHENTICATED);
    assert.equal(unauthenticated.metadata.get('x-error-code')[0], 'invalid_api_key');
    assert.match(String(unauthenticated.metadata.get('x-request-id')[0]), /^[\w.:-]+$/);
    assert.equal((await failure(call(inference, 'ModelInfer', body, 'ig-wrong'))).code, status.UNAUTHENTICATED);
    const missing = await failure(call(inference, 'ModelInfer', { ...body, model_name: 'nope' }, key));
    assert.equal(missing.code, status.NOT_FOUND);
    assert.match(missing.details, /model "nope" does not exist/);
    assert.equal((await failure(call(inference, 'ModelInfer', { ...body, model_version: '9' }, key))).code, status.NOT_FOUND);
    const short = await failure(
      call(inference, 'ModelInfer', { ...body, inputs: [{ ...body.inputs[0], contents: { fp32_contents: [1, 2] } }] }, key),
    );
    assert.equal(short.code, status.INVALID_ARGUMENT);
    assert.equal(short.metadata.get('x-error-param')[0], 'inputs[0].contents.fp32_contents');
    const badRaw = await failure(
      call(
        inference,
        'ModelInfer',
        { model_name: 'tiny-mlp', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 32] }], raw_input_contents: [Buffer.alloc(7)] },
        key,
      ),
    );
    assert.equal(badRaw.code, status.INVALID_ARGUMENT);
    assert.match(badRaw.details, /raw_input_contents\[0\] has 7 bytes; 32 FP32 elements need 128/);
    assert.equal(
      (await failure(call(inference, 'ModelInfer', { ...body, inputs: [{ ...body.inputs[0], datatype: 'FP99' }] }, key))).code,
      status.INVALID_ARGUMENT,
    );
    // Over server.body_limit_bytes: refused before it is decoded.
    const huge = await failure(
      call(
        inference,
        'ModelInfer',
        {
          model_name: 'tiny-mlp',
          inputs: [{ name: 'input', datatype: 'FP32', shape: [1024, 32] }],
          raw_input_contents: [Buffer.alloc(1024 * 32 * 4)],
        },
        key,
      ),
    );
    assert.equal(huge.code, status.RESOURCE_EXHAUSTED);
    // A full admission queue: UNAVAILABLE with retry-after, as HTTP's 503.
    const narrow = { model: 'narrow', messages: [{ role: 'user', content: 'x' }] };
    const [first, second] = await Promise.allSettled([chat(generate, narrow, key), chat(generate, narrow, key)]);
    const shed = [first, second].find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    assert.ok(shed !== undefined, 'one of two calls to a one-slot model with no queue is shed');
    assert.equal((shed.reason as ServiceError).code, status.UNAVAILABLE);
    assert.equal((shed.reason as ServiceError).metadata.get('retry-after')[0], '1');
  });

  it('answers RESOURCE_EXHAUSTED when a tenant is over its rate limit', async () => {
    const limited = (await tenantWithKey(server.url, { id: 'metered', models: ['chat'], limits: { requests_per_minute: 1 } })).key;
    await call(generate, 'Embed', { model: 'chat', input: ['a'] }, limited);
    const over = await failure(call(generate, 'Embed', { model: 'chat', input: ['a'] }, limited));
    assert.equal(over.code, status.RESOURCE_EXHAUSTED);
    assert.equal(over.metadata.get('x-error-code')[0], 'rate_limited');
    assert.ok(Number(over.metadata.get('retry-after')[0]) >= 1);
  });

  it('makes the client’s deadline the call’s deadline: DEADLINE_EXCEEDED, promptly', async () => {
    const started = Date.now();
    const late = await failure(chat(generate, { model: 'slow', messages: [{ role: 'user', content: 'x' }] }, key, 300));
    assert.equal(late.code, status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 2000, `answered after ${Date.now() - started} ms`);
  });

  it('streams chat tokens in order, the last chunk with the finish reason and usage', async () => {
    const http = await post(
      `${server.url}/v1/chat/completions`,
      { model: 'chat', messages: [{ role: 'user', content: 'hello there' }] },
      { authorization: `Bearer ${key}` },
    );
    const chunks = await chat(generate, { model: 'chat', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 64 }, key);
    assert.ok(chunks.length >= 5, `${chunks.length} chunks`);
    assert.equal(chunks.map((c) => c.delta).join(''), http.body.choices[0].message.content);
    const last = chunks.at(-1);
    assert.equal(last.finish_reason, 'stop');
    assert.deepEqual(last.usage, {
      prompt_tokens: http.body.usage.prompt_tokens,
      completion_tokens: http.body.usage.completion_tokens,
      total_tokens: http.body.usage.total_tokens,
    });
    assert.ok(chunks.slice(0, -1).every((c) => c.finish_reason === '' && c.usage === null));
    assert.equal(last.model, 'chat');
  });

  it('refuses a chat request as the HTTP endpoint would (same schema)', async () => {
    const err = await failure(chat(generate, { model: 'chat', messages: [{ role: 'user', content: 'x' }], temperature: 7 }, key));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.metadata.get('x-error-param')[0], 'temperature');
  });

  it('stops the upstream stream when the client cancels', async () => {
    upstream.streamChunks = 50;
    upstream.streamDelayMs = 50;
    const before = upstream.abortedStreams;
    try {
      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${key}`);
      const stream = (generate as unknown as { Chat: (r: object, m: Metadata) => NodeJS.ReadableStream & { cancel(): void } }).Chat(
        { model: 'remote', messages: [{ role: 'user', content: 'x' }] },
        metadata,
      );
      const first = await new Promise<any>((resolve, reject) => {
        stream.once('data', resolve);
        stream.once('error', reject);
      });
      assert.equal(first.model, 'remote');
      stream.on('error', () => undefined); // CANCELLED, as asked
      stream.cancel();
      for (let i = 0; i < 40 && upstream.abortedStreams === before; i++) await sleep(50);
      assert.equal(upstream.abortedStreams, before + 1, 'the upstream saw the stream end early');
    } finally {
      upstream.streamChunks = 3;
      upstream.streamDelayMs = 0;
    }
  });

  it('ends a chat with UNAVAILABLE when the upstream stream turns malformed', async () => {
    upstream.faults.push({ malformedAfterChunks: 1 });
    const err = await failure(chat(generate, { model: 'remote', messages: [{ role: 'user', content: 'x' }] }, key));
    assert.equal(err.code, status.UNAVAILABLE);
    assert.equal(err.metadata.get('x-error-code')[0], 'upstream_error');
    assert.match(err.details, /not JSON/);
  });

  it('embeds as the HTTP endpoint does', async () => {
    const http = await post(
      `${server.url}/v1/embeddings`,
      { model: 'tiny-embed', input: ['a red fox', 'blue'] },
      { authorization: `Bearer ${key}` },
    );
    const res = await call(generate, 'Embed', { model: 'tiny-embed', input: ['a red fox', 'blue'] }, key);
    assert.equal(res.data.length, 2);
    res.data.forEach((e: { values: number[] }, i: number) =>
      e.values.forEach((v, k) => assert.ok(Math.abs(v - http.body.data[i].embedding[k]) < 1e-6, `vector ${i} element ${k}`)),
    );
    assert.equal(res.usage.prompt_tokens, http.body.usage.prompt_tokens);
  });

  it('lists its services over server reflection', async () => {
    const client = new Reflection(server.grpc as string, credentials.createInsecure());
    try {
      const stream = (client as unknown as { ServerReflectionInfo: () => NodeJS.ReadWriteStream }).ServerReflectionInfo();
      const answer = new Promise<any>((resolve, reject) => {
        stream.once('data', resolve);
        stream.once('error', reject);
      });
      (stream as unknown as { write(m: object): void }).write({ list_services: '' });
      const services = ((await answer).list_services_response.service as Array<{ name: string }>).map((s) => s.name);
      stream.end();
      assert.ok(services.includes('inference.GRPCInferenceService'), services.join(', '));
      assert.ok(services.includes('infergate.v1.Generate'), services.join(', '));
    } finally {
      client.close();
    }
  });

  it('counts gRPC calls in the same metrics as HTTP ones', async () => {
    const text = await (await fetch(`${server.url}/metrics`, { headers: ADMIN })).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith('infergate_requests_total{model="tiny-mlp",version="1",tenant="acme",status="200"'));
    assert.ok(line !== undefined && Number(line.split(' ').at(-1)) >= 3, line);
  });

  it('answers hostile ModelInfer and Chat requests with client errors, and stays up (fast-check)', async () => {
    const datatype = fc.oneof(
      fc.constantFrom('FP32', 'FP16', 'INT8', 'INT64', 'UINT64', 'BOOL', 'BYTES', 'FP64'),
      fc.string({ maxLength: 8 }),
    );
    const dim = fc.oneof(fc.integer({ min: -2, max: 70 }), fc.constantFrom('9223372036854775807', '-1', '4294967296'));
    const tensor = fc.record(
      {
        name: fc.oneof(fc.constant('input'), fc.string({ maxLength: 6 })),
        datatype,
        shape: fc.array(dim, { maxLength: 4 }),
        contents: fc.record(
          {
            fp32_contents: fc.array(fc.float({ noNaN: false }), { maxLength: 70 }),
            int_contents: fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 8 }),
            int64_contents: fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String), { maxLength: 8 }),
            bytes_contents: fc.array(
              fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)),
              { maxLength: 4 },
            ),
            bool_contents: fc.array(fc.boolean(), { maxLength: 8 }),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: [] },
    );
    const infer = fc.record(
      {
        model_name: fc.oneof(fc.constant('tiny-mlp'), fc.string({ maxLength: 10 })),
        model_version: fc.constantFrom('', '1', '9', '../1'),
        inputs: fc.array(tensor, { maxLength: 3 }),
        raw_input_contents: fc.array(
          fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
          { maxLength: 3 },
        ),
        outputs: fc.array(fc.record({ name: fc.string({ maxLength: 6 }) }), { maxLength: 2 }),
      },
      { requiredKeys: [] },
    );
    const chatRequest = fc.record(
      {
        model: fc.oneof(fc.constant('chat'), fc.string({ maxLength: 8 })),
        messages: fc.array(
          fc.record({
            role: fc.oneof(fc.constantFrom('user', 'system', 'tool'), fc.string({ maxLength: 6 })),
            content: fc.string({ maxLength: 20 }),
          }),
          {
            maxLength: 3,
          },
        ),
        max_tokens: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        temperature: fc.float(),
        stop: fc.array(fc.string({ maxLength: 5 }), { maxLength: 6 }),
      },
      { requiredKeys: [] },
    );
    // What a client's mistake may be answered with; never INTERNAL or UNKNOWN.
    const allowed = new Set([status.OK, status.INVALID_ARGUMENT, status.NOT_FOUND, status.RESOURCE_EXHAUSTED]);
    await fc.assert(
      fc.asyncProperty(infer, async (request) => {
        const code = await call(inference, 'ModelInfer', request, key).then(
          () => status.OK,
          (err: ServiceError) => err.code,
        );
        assert.ok(allowed.has(code), `status ${code} for ${JSON.stringify(request).slice(0, 300)}`);
      }),
      { numRuns: 500 },
    );
    await fc.assert(
      fc.asyncProperty(chatRequest, async (request) => {
        const code = await chat(generate, request, key).then(
          () => status.OK,
          (err: ServiceError) => err.code,
        );
        assert.ok(allowed.has(code), `status ${code} for ${JSON.stringify(request).slice(0, 300)}`);
      }),
      { numRuns: 150 },
    );
    assert.deepEqual(await call(inference, 'ServerLive', {}), { live: true });
  });
});

describe('gRPC on shutdown', () => {
  it('lets calls in flight finish on SIGTERM, then exits 0', async () => {
    const config = writeConfig(`
server: { shutdown_grace_ms: 0, shutdown_timeout_ms: 10000 }
models:
  - name: slow
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 800, stream_chunks: 4 } }]
`);
    const server = await startServer({ config });
    const client = new Generate(server.grpc as string, credentials.createInsecure());
    try {
      const streams = Array.from({ length: 3 }, () => chat(client, { model: 'slow', messages: [{ role: 'user', content: 'x' }] }, 'none'));
      await sleep(200); // the calls are in flight
      const exited = new Promise<number | null>((resolve) => server.process.once('exit', resolve));
      server.process.kill('SIGTERM');
      for (const chunks of await Promise.all(streams)) assert.equal(chunks.at(-1).finish_reason, 'stop');
      assert.equal(await exited, 0);
    } finally {
      client.close();
      await server.stop();
    }
  });
});

describe('gRPC under workers', () => {
  it('deals connections evenly to the workers, and drains them on SIGTERM', async () => {
    const config = writeConfig(`
server: { access_log: true, shutdown_grace_ms: 0 }
models:
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }]
  - name: slow
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 600 } }]
`);
    const server = await startServer({ config, args: ['--workers', '2'] });
    // Separate subchannel pools: one HTTP/2 connection per client, opened one after another.
    const clients = Array.from(
      { length: 6 },
      (_, i) =>
        new Inference(server.grpc as string, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.channel_id': i }),
    );
    const streamer = new Generate(server.grpc as string, credentials.createInsecure());
    try {
      const request = {
        model_name: 'tiny-mlp',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 32], contents: { fp32_contents: input(1) } }],
      };
      for (const [i, client] of clients.entries()) {
        for (let k = 0; k < 3; k++) {
          const metadata = new Metadata();
          metadata.set('x-request-id', `spread-${i}-${k}`);
          await new Promise((resolve, reject) =>
            ((client as unknown as Record<string, Unary>).ModelInfer as Unary).call(client, request, metadata, {}, (err, res) =>
              err === null ? resolve(res) : reject(err),
            ),
          );
        }
      }
      // A call in flight when the server is told to stop still finishes (its connection open first).
      await failure(chat(streamer, { model: 'nope', messages: [{ role: 'user', content: 'x' }] }, 'none'));
      const late = chat(streamer, { model: 'slow', messages: [{ role: 'user', content: 'x' }] }, 'none');
      await sleep(200);
      assert.equal(await server.stop(), 0);
      assert.equal((await late).at(-1).finish_reason, 'stop');
      // The access log (flushed at exit) says which worker served each call.
      const byPid = new Map<number, Set<string>>();
      for (const line of server.output().split('\n')) {
        const m = /"pid":(\d+).*"req_id":"spread-(\d+)-\d+"/.exec(line);
        if (m !== null) byPid.set(Number(m[1]), (byPid.get(Number(m[1])) ?? new Set()).add(m[2] as string));
      }
      assert.equal(byPid.size, 2, `calls served by ${byPid.size} worker(s)`);
      assert.deepEqual(
        [...byPid.values()].map((connections) => connections.size),
        [3, 3],
        'each worker holds three of the six connections',
      );
    } finally {
      for (const c of [...clients, streamer]) c.close();
      await server.stop();
    }
  });
});
