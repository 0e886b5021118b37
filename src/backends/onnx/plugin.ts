/** `kind: onnx` as a plug-in: tensors (and, with `task: embedding`, embeddings) run in process by ONNX Runtime. */
import { backendPlugin } from '../plugin.js';
import { OnnxBackendSchema } from './config.js';
import { OnnxBackend } from './onnx-backend.js';

/** The onnx kind; KServe clients know ONNX Runtime's models by the platform name `onnxruntime_onnx`. */
export const onnxPlugin = backendPlugin({
  kind: 'onnx',
  schema: OnnxBackendSchema,
  capabilities: { tasks: new Set(['tensor', 'embedding']), remote: false, kservePlatform: 'onnxruntime_onnx', provider: null },
  files: ['path'],
  create: (config, context) => new OnnxBackend(config, context.observer),
});
