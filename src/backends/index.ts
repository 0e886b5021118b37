/** Builds a backend from its config: the one place that knows every kind. */
import type { BackendConfig } from '../config/schema.js';
import type { Backend } from './backend.js';
import { MockBackend } from './mock/mock-backend.js';
import { OnnxBackend, type BatchObserver } from './onnx/onnx-backend.js';
import { OpenAIBackend } from './openai/openai-backend.js';

export interface BackendContext {
  /** The model's name, used upstream by remote backends unless configured otherwise. */
  readonly modelName: string;
  readonly onBatch?: BatchObserver;
}

export function createBackend(config: BackendConfig, context: BackendContext): Backend {
  switch (config.kind) {
    case 'onnx':
      return new OnnxBackend(config, context.onBatch);
    case 'openai':
      return new OpenAIBackend(config, context.modelName);
    case 'mock':
      return new MockBackend(config);
  }
}
