/**
 * node-llama-cpp, loaded on first use and shared: one `Llama` (native binding plus GPU backend)
 * per process and GPU setting, however many models use it. Processes that serve no GGUF model
 * never load it.
 */
import type { Llama } from 'node-llama-cpp';
import type { LlamaBackendConfig } from './config.js';

/** The node-llama-cpp module's type, for code that must not import it eagerly. */
export type NodeLlamaCpp = typeof import('node-llama-cpp');

let module: Promise<NodeLlamaCpp> | null = null;
const instances = new Map<string, Promise<Llama>>();

/** Imports node-llama-cpp on the first call; later calls get the same promise. */
export function loadNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  module ??= import('node-llama-cpp');
  return module;
}

/** The shared Llama for a GPU setting. Prebuilt binaries only: a server never compiles llama.cpp at start-up. */
export function getLlama(gpu: LlamaBackendConfig['gpu']): Promise<Llama> {
  const key = String(gpu);
  let llama = instances.get(key);
  if (llama === undefined) {
    llama = loadNodeLlamaCpp().then((m) =>
      m.getLlama({ gpu, build: 'never', progressLogs: false, logLevel: m.LlamaLogLevel.error, skipDownload: true }),
    );
    instances.set(key, llama);
  }
  return llama;
}
