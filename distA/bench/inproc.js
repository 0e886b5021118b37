/**
 * The batcher without HTTP: `concurrency` loops call one ONNX backend in this process for a fixed
 * time, batching on and off. This is the model-level effect of dynamic batching; the HTTP
 * scenario shows what is left of it once each request also pays for HTTP and JSON.
 */
import { OnnxBackend } from '../src/backends/onnx/onnx-backend.js';
import { parseConfig } from '../src/config/load.js';
function backendConfig(model, batching) {
    const config = parseConfig(`models: [{ name: m, versions: [{ version: '1', backend: { kind: onnx, path: '${model}', batching: { enabled: ${batching}, max_batch_size: 64, max_queue_delay_ms: 1 } } }] }]`, 'bench.yaml');
    return config.models[0]?.versions[0]?.backend;
}
export async function inprocLoad(model, batching, concurrency, seconds) {
    const backend = new OnnxBackend(backendConfig(model, batching));
    await backend.load();
    const data = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i));
    const request = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 32], data }], outputs: null };
    const latencies = [];
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    const loop = async () => {
        while (performance.now() < end) {
            const t = performance.now();
            try {
                await backend.infer(request);
                latencies.push(performance.now() - t);
            }
            catch {
                errors++;
            }
        }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, loop));
    const elapsed = (performance.now() - t0) / 1000;
    await backend.unload();
    latencies.sort((a, b) => a - b);
    const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? 0;
    return {
        requests: latencies.length,
        qps: latencies.length / elapsed,
        errors,
        latencyMs: {
            mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
            p50: pct(50),
            p99: pct(99),
            max: latencies.at(-1) ?? 0,
        },
    };
}
//# sourceMappingURL=inproc.js.map