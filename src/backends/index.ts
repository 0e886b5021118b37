/**
 * The list of backend kinds: the one place that names them all. A new kind is a folder with its
 * plugin.ts and one line here; config validation, the JSON Schema, the registry, the policies and
 * KServe metadata all read this list.
 */
import type { Static } from '@sinclair/typebox';
import type { Backend } from './backend.js';
import { anthropicPlugin } from './anthropic/plugin.js';
import { llamaPlugin } from './llama/plugin.js';
import { mockPlugin } from './mock/plugin.js';
import { onnxPlugin } from './onnx/plugin.js';
import { openaiPlugin } from './openai/plugin.js';
import type { BackendContext, BackendPlugin } from './plugin.js';

/** The plug-in interface, for the layers above that take plug-ins (config validation, tests of a new kind). */
export type { BackendCapabilities, BackendContext, BackendPlugin, BackendProblem } from './plugin.js';

/**
 * Every backend kind, in the order config errors list them ("must be one of onnx, llama, ...") and
 * the JSON Schema's `backend` union has them.
 */
export const BACKEND_PLUGINS = [
  onnxPlugin,
  llamaPlugin,
  openaiPlugin,
  anthropicPlugin,
  mockPlugin,
] as const satisfies readonly BackendPlugin[];

/** The `kind` of a backend config. */
export type BackendKind = (typeof BACKEND_PLUGINS)[number]['kind'];

/** A version's backend config, any kind, defaults filled; narrow it by `kind`. */
export type BackendConfig = Static<(typeof BACKEND_PLUGINS)[number]['schema']>;

const BY_KIND: ReadonlyMap<string, BackendPlugin> = new Map(BACKEND_PLUGINS.map((p) => [p.kind, p]));

/** The plug-in of a kind; undefined for a kind not in the list (a backend made outside it, such as the degraded answer). */
export function pluginOf(kind: string): BackendPlugin | undefined {
  return BY_KIND.get(kind);
}

/** A new backend of `config.kind`, not loaded yet: the caller runs its `load()`. */
export function createBackend(config: BackendConfig, context: BackendContext): Backend {
  const plugin = pluginOf(config.kind);
  // Unreachable for a validated config: its kind is one of the list's.
  if (plugin === undefined) throw new Error(`no backend plug-in for kind "${config.kind}"`);
  return plugin.create(config, context);
}
