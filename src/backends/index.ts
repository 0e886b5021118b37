/** Builds a backend from its config: the one place that knows every kind. */
import type { BackendConfig } from '../config/schema.js';
import type { Backend } from './backend.js';
import { LlamaBackend, type GenerationObserver } from './llama/llama-backend.js';
import { MockBackend } from './mock/mock-backend.js';
import { OnnxBackend } from './onnx/onnx-backend.js';
import { OpenAIBackend } from './openai/openai-backend.js';
import type { DeploymentObserver } from '../core/observer.js';

/** What a backend gets besides its config, from the model version it serves. */
export interface BackendContext {
  /** The model's name, used upstream by remote backends unless configured otherwise. */
  readonly modelName: string;
  /** Told each model execution's size (and, by llama, each request shed for a full queue). */
  readonly observer?: DeploymentObserver;
  readonly onGeneration?: GenerationObserver;
  /** Worker processes serving this config (each loads its own backends); in-process backends size their threads by it. */
  readonly workers?: number;
}

/** A new backend of `config.kind`, not loaded yet: the caller runs its `load()`. */
export function createBackend(config: BackendConfig, context: BackendContext): Backend {
  switch (config.kind) {
    case 'onnx':
      return new OnnxBackend(config, context.observer);
    case 'llama':
      return new LlamaBackend(config, context.workers, context.onGeneration, context.observer);
    case 'openai':
      return new OpenAIBackend(config, context.modelName);
    case 'mock':
      return new MockBackend(config);
  }
}
