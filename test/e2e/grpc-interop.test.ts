/**
 * gRPC with a client on another HTTP/2 stack: Python's grpcio is gRPC core (its own HTTP/2 and HPACK,
 * with Huffman strings, the dynamic table, BDP pings), where grpc-js, node:http2 and h2load all sit
 * on nghttp2. Health, ModelInfer equal to the HTTP path, a large call, errors with their trailers,
 * a streamed chat, a deadline, and many calls on one channel. Skips with a message without
 * Debian's python3-grpcio (`.ci/run` installs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadSync } from '@grpc/proto-loader';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { post, ROOT, startServer, writeConfig, type RunningServer } from '../helpers/server.js';

const PYTHON = '/usr/bin/python3';
const CLIENT = join(ROOT, 'test/interop/grpc_client.py');
const available = spawnSync(PYTHON, ['-c', 'import grpc']).status === 0;
if (!available) console.log('# skipping the gRPC interop test: no Python grpcio (apt-get install python3-grpcio)');

const definition = loadSync(['kserve/grpc_predict_v2.proto', 'infergate/v1/generate.proto'], {
  keepCase: true,
  longs: String,
  defaults: true,
  includeDirs: [join(ROOT, 'proto')],
});
const inference = definition['inference.GRPCInferenceService'] as ServiceDefinition;
const generate = definition['infergate.v1.Generate'] as ServiceDefinition;

interface PyCall {
  method: string;
  request: Buffer;
  streaming?: boolean;
  metadata?: Record<string, string>;
  timeout?: number;
}

interface PyResult {
  code: number;
  details: string;
  trailers: Record<string, string>;
  responses: Buffer[];
}

const rows = (n: number) => Float32Array.from({ length: n * 32 }, (_, i) => Math.cos(i));
const infer = (model: string, n: number) =>
  inference.ModelInfer!.requestSerialize({
    model_name: model,
    inputs: [{ name: 'input', datatype: 'FP32', shape: [n, 32] }],
    raw_input_contents: [Buffer.from(rows(n).buffer)],
  });
const floats = (b: Buffer) => Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));

describe('gRPC interop with gRPC core (Python grpcio)', { skip: !available, timeout: 60_000 }, () => {
  let server: RunningServer;

  before(async () => {
    const config = writeConfig(`
models:
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }]
  - name: chat
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0, stream_chunks: 5 } }]
  - name: slow
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 3000 } }]
`);
    server = await startServer({ config });
  });

  after(async () => {
    await server?.stop();
  });

  /** Makes the calls in order on one Python channel. */
  function python(calls: PyCall[]): PyResult[] {
    const input = JSON.stringify(calls.map((c) => ({ ...c, target: server.grpc, request: c.request.toString('hex') })));
    const run = spawnSync(PYTHON, [CLIENT], { input, encoding: 'utf8', timeout: 45_000, maxBuffer: 64 << 20 });
    assert.equal(run.status, 0, run.stderr);
    return (JSON.parse(run.stdout) as Array<Omit<PyResult, 'responses'> & { responses: string[] }>).map((r) => ({
      ...r,
      responses: r.responses.map((h) => Buffer.from(h, 'hex')),
    }));
  }

  it('serves health, inference equal to HTTP, errors, a streamed chat and a deadline', async () => {
    const path = (service: ServiceDefinition, name: string) => service[name]!.path;
    const [live, small, large, missing, chat, late] = python([
      { method: path(inference, 'ServerLive'), request: Buffer.alloc(0) },
      { method: path(inference, 'ModelInfer'), request: infer('tiny-mlp', 3), metadata: { 'x-request-id': 'py-1' } },
      { method: path(inference, 'ModelInfer'), request: infer('tiny-mlp', 3000) },
      { method: path(inference, 'ModelInfer'), request: infer('nope', 1) },
      {
        method: path(generate, 'Chat'),
        streaming: true,
        request: generate.Chat!.requestSerialize({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }),
      },
      {
        method: path(generate, 'Chat'),
        streaming: true,
        request: generate.Chat!.requestSerialize({ model: 'slow', messages: [{ role: 'user', content: 'hi' }] }),
        timeout: 0.3,
      },
    ]) as [PyResult, PyResult, PyResult, PyResult, PyResult, PyResult];

    assert.equal(live.code, 0);
    assert.equal(inference.ServerLive!.responseDeserialize(live.responses[0]!).live, true);

    for (const [result, n] of [
      [small, 3],
      [large, 3000],
    ] as const) {
      assert.equal(result.code, 0, result.details);
      const answer = inference.ModelInfer!.responseDeserialize(result.responses[0]!);
      const http = await post(`${server.url}/v2/models/tiny-mlp/infer`, {
        inputs: [{ name: 'input', datatype: 'FP32', shape: [n, 32], data: Array.from(rows(n)) }],
      });
      assert.deepEqual(floats(answer.raw_output_contents[0]), http.body.outputs[0].data, `${n} rows`);
    }
    assert.equal(small.trailers['x-request-id'], 'py-1');
    assert.equal(small.trailers['x-model-version'], '1');

    assert.equal(missing.code, 5, 'NOT_FOUND');
    assert.equal(missing.trailers['x-error-code'], 'model_not_found');
    assert.match(missing.details, /model "nope" does not exist/);

    assert.equal(chat.code, 0, chat.details);
    const chunks = chat.responses.map((b) => generate.Chat!.responseDeserialize(b));
    assert.ok(chunks.length >= 2, `${chunks.length} chunks`);
    assert.equal(chunks.at(-1).finish_reason, 'stop');
    assert.ok(chunks.at(-1).usage.completion_tokens > 0);

    assert.equal(late.code, 4, 'DEADLINE_EXCEEDED');
  });

  it('keeps HPACK in step over many calls on one channel', () => {
    const calls = Array.from({ length: 300 }, (_, i) => ({
      method: inference.ModelInfer!.path,
      request: infer('tiny-mlp', 1 + (i % 4)),
      metadata: { 'x-request-id': `call-${i}`, 'x-note': `value ${i % 7}` },
    }));
    const results = python(calls);
    results.forEach((r, i) => {
      assert.equal(r.code, 0, `call ${i}: ${r.details}`);
      assert.equal(r.trailers['x-request-id'], `call-${i}`);
      assert.equal(inference.ModelInfer!.responseDeserialize(r.responses[0]!).outputs[0].shape[0], String(1 + (i % 4)));
    });
  });
});
