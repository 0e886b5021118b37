/**
 * The batcher without HTTP: `concurrency` loops call one ONNX backend in this process for a fixed
 * time, batching on and off. This is the model-level effect of dynamic batching; the HTTP
 * scenario shows what is left of it once each request also pays for HTTP and JSON.
 */
import { OnnxBackend } from '../src/backends/onnx/onnx-backend.js';
import { parseConfig } from '../src/config/load.js';
import type { OnnxBackendConfig } from '../src/backends/onnx/config.js';
import { closedLoop, type LoadResult } from './load.js';

function backendConfig(model: string, batching: boolean): OnnxBackendConfig {
  const config = parseConfig(
    `models: [{ name: m, versions: [{ version: '1', backend: { kind: onnx, path: '${model}', batching: { enabled: ${batching}, max_batch_size: 64, max_queue_delay_ms: 1 } } }] }]`,
    'bench.yaml',
  );
  return config.models[0]?.versions[0]?.backend as OnnxBackendConfig;
}

export async function inprocLoad(model: string, batching: boolean, concurrency: number, seconds: number): Promise<LoadResult> {
  const backend = new OnnxBackend(backendConfig(model, batching));
  await backend.load();
  const data = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i));
  const request = { inputs: [{ name: 'input', datatype: 'FP32' as const, shape: [1, 32], data }], outputs: null };
  try {
    return await closedLoop(concurrency, seconds, async () => {
      await backend.infer(request);
    });
  } finally {
    await backend.unload();
  }
}
