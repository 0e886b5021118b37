/**
 * A version that failed to load, through the real server: an ONNX tensor model configured as
 * `task: embedding` (its load fails on the signature check) is not ready anywhere readiness is
 * asked (/health/ready, KServe HTTP and gRPC), and its calls answer 503 `model_not_ready` naming
 * the reason, while the model's other version and other models serve.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { credentials, Metadata, type Client } from '@grpc/grpc-js';
import { get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { grpcServices } from '../helpers/grpc.js';

const { Inference } = grpcServices();

const REASON = /an embedding model must take input_ids and attention_mask/;
const tensor = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 32], data: Array.from({ length: 32 }, () => 0.5) }] };

function modelReady(client: Client, name: string, version = ''): Promise<boolean> {
  return new Promise((resolve, reject) =>
    (
      client as unknown as Record<string, (r: object, m: Metadata, cb: (e: Error | null, r: { ready: boolean }) => void) => void>
    ).ModelReady!.call(client, { name, version }, new Metadata(), (err, res) => (err === null ? resolve(res.ready) : reject(err))),
  );
}

describe('a version that failed to load', () => {
  let server: RunningServer;
  let grpc: Client;

  before(async () => {
    const config = writeConfig(`
models:
  - name: mlp
    versions:
      - { version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }
      - { version: '2', weight: 0, backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx, task: embedding } }
  - name: misembed
    versions:
      - { version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx, task: embedding } }
`);
    server = await startServer({ config });
    grpc = new Inference(server.grpc as string, credentials.createInsecure());
  });

  after(async () => {
    grpc?.close();
    await server?.stop();
  });

  it('makes /health/ready 503, naming the version and why', async () => {
    const ready = await get(`${server.url}/health/ready`);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.status, 'failed');
    assert.deepEqual(ready.body.models, { mlp: false, misembed: false });
    assert.deepEqual(
      ready.body.versions.map((v: { model: string; version: string }) => `${v.model}@${v.version}`),
      ['mlp@2', 'misembed@1'],
    );
    for (const v of ready.body.versions) assert.match(v.reason, REASON);
    assert.equal((await get(`${server.url}/v2/health/ready`)).status, 503);
  });

  it('reports the version not ready over KServe HTTP and gRPC, and the one that loaded ready', async () => {
    const http = async (path: string): Promise<[number, boolean]> => {
      const res = await get(`${server.url}/v2/models/${path}/ready`);
      return [res.status, res.body.ready];
    };
    assert.deepEqual(await http('misembed'), [503, false]);
    assert.deepEqual(await http('mlp/versions/2'), [503, false]);
    assert.deepEqual(await http('mlp/versions/1'), [200, true]);
    assert.equal(await modelReady(grpc, 'misembed'), false);
    assert.equal(await modelReady(grpc, 'mlp', '2'), false);
    assert.equal(await modelReady(grpc, 'mlp', '1'), true);
  });

  it('answers its calls 503 model_not_ready with the load error, never 500', async () => {
    const embed = await post(`${server.url}/v1/embeddings`, { model: 'misembed', input: ['a red fox'] });
    assert.equal(embed.status, 503);
    assert.equal(embed.body.error.code, 'model_not_ready');
    assert.match(embed.body.error.message, /model "misembed" version "1" failed to load: /);
    assert.match(embed.body.error.message, REASON);
    const infer = await post(`${server.url}/v2/models/misembed/infer`, tensor);
    assert.equal(infer.status, 503);
    assert.equal(infer.body.code, 'model_not_ready');
    assert.match(infer.body.error, REASON);
    const pinned = await post(`${server.url}/v2/models/mlp/versions/2/infer`, tensor);
    assert.equal(pinned.status, 503);
    assert.match(pinned.body.error, REASON);
    assert.equal((await post(`${server.url}/v2/models/mlp/versions/1/infer`, tensor)).status, 200, 'the version that loaded serves');
    assert.doesNotMatch(server.output(), /internal error/);
  });
});
