/** Dynamic batching through real ONNX Runtime: merged calls, results equal to unbatched ones element for element. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { OnnxBackend } from '../../src/backends/onnx/onnx-backend.js';
import { parseConfig } from '../../src/config/load.js';
import type { OnnxBackendConfig } from '../../src/backends/onnx/config.js';
import type { Tensor } from '../../src/core/tensor.js';
import { NO_OBSERVER } from '../../src/core/observer.js';
import { MODELS, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';

function backend(model: string, batching: boolean, extra = ''): OnnxBackendConfig {
  const config = parseConfig(
    `models: [{ name: m, versions: [{ version: '1', backend: { kind: onnx, path: ${MODELS}/${model}/1/model.onnx, ${extra} batching: { enabled: ${batching}, max_batch_size: 16, max_queue_delay_ms: 2 } } }] }]`,
    'x.yaml',
  );
  return config.models[0]?.versions[0]?.backend as OnnxBackendConfig;
}

const input = (i: number, rows = 1): Tensor => ({
  name: 'input',
  datatype: 'FP32',
  shape: [rows, 32],
  data: Float32Array.from({ length: rows * 32 }, (_, k) => Math.cos(i * 7 + k)),
});

describe('ONNX dynamic batching', () => {
  it('merges concurrent requests into fewer model calls with the same results', async () => {
    const sizes: number[] = [];
    const batched = new OnnxBackend(backend('tiny-mlp', true), { ...NO_OBSERVER, executed: (rows) => sizes.push(rows) });
    const single = new OnnxBackend(backend('tiny-mlp', false));
    await Promise.all([batched.load(), single.load()]);
    try {
      const requests = Array.from({ length: 40 }, (_, i) => ({ inputs: [input(i, 1 + (i % 3))], outputs: null }));
      const merged = await Promise.all(requests.map((r) => batched.infer(r)));
      const alone = await Promise.all(requests.map((r) => single.infer(r)));
      assert.ok(sizes.length < requests.length, `${requests.length} requests ran as ${sizes.length} calls`);
      assert.ok(Math.max(...sizes) > 1);
      assert.ok(Math.max(...sizes) <= 16 + 2, 'a batch holds at most max_batch_size rows, unless one request is larger');
      assert.equal(
        sizes.reduce((a, b) => a + b, 0),
        requests.reduce((n, r) => n + (r.inputs[0]?.shape[0] as number), 0),
      );
      merged.forEach((result, i) => {
        const a = result.outputs[0] as Tensor;
        const b = alone[i]?.outputs[0] as Tensor;
        assert.deepEqual(a.shape, b.shape);
        assert.deepEqual(Array.from(a.data as Float32Array), Array.from(b.data as Float32Array), `request ${i}`);
      });
    } finally {
      await Promise.all([batched.unload(), single.unload()]);
    }
  });

  it('batches embeddings of different lengths, padding without changing the vectors', async () => {
    const sizes: number[] = [];
    const batched = new OnnxBackend(backend('tiny-embed', true, 'task: embedding,'), {
      ...NO_OBSERVER,
      executed: (rows) => sizes.push(rows),
    });
    const single = new OnnxBackend(backend('tiny-embed', false, 'task: embedding,'));
    await Promise.all([batched.load(), single.load()]);
    try {
      const texts = ['a', 'a much longer sentence with many words in it', 'mid length text', 'x y'];
      const merged = await Promise.all(texts.map((t) => batched.embed({ input: [t], dimensions: null })));
      const alone = await Promise.all(texts.map((t) => single.embed({ input: [t], dimensions: 64 })));
      assert.ok(Math.max(...sizes) > 1);
      merged.forEach((r, i) => {
        const a = r.vectors[0] as Float32Array;
        const b = alone[i]?.vectors[0] as Float32Array;
        a.forEach((x, k) => assert.ok(Math.abs(x - (b[k] as number)) < 1e-6, `text ${i} element ${k}: ${x} vs ${b[k]}`));
      });
    } finally {
      await Promise.all([batched.unload(), single.unload()]);
    }
  });
});

describe('batching through the HTTP API', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({
      config: writeConfig(`
models:
  - name: batched
    versions: [{ version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx, batching: { max_batch_size: 32, max_queue_delay_ms: 5 } } }]
  - name: unbatched
    versions: [{ version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx, batching: { enabled: false } } }]
`),
    });
  });
  after(() => server?.stop());

  it('answers 64 concurrent requests exactly as without batching', async () => {
    const bodies = Array.from({ length: 64 }, (_, i) => ({
      inputs: [{ name: 'input', shape: [1, 32], datatype: 'FP32', data: Array.from({ length: 32 }, (_, k) => Math.sin(i + k / 3)) }],
    }));
    const batched = await Promise.all(bodies.map((b) => post(`${server.url}/v2/models/batched/infer`, b)));
    const unbatched = await Promise.all(bodies.map((b) => post(`${server.url}/v2/models/unbatched/infer`, b)));
    batched.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.outputs, unbatched[i]?.body.outputs, `request ${i}`);
    });
  });
});
