/** KServe v2 model readiness and metadata, the same for its HTTP and gRPC transports. */
import { pluginOf } from '../backends/index.js';
import type { Gateway } from '../pipeline/gateway.js';
import { versionHealth } from '../routing/registry.js';
import type { TensorSpec } from '../core/tensor.js';
import type { Principal } from '../tenancy/directory.js';

type Caller = { readonly principal: Principal | null };

/** KServe v2's model metadata response; `platform` is the backend plug-in's (`onnxruntime_onnx` for ONNX models), else the backend kind. */
export interface ModelMetadata {
  readonly name: string;
  readonly versions: string[];
  readonly platform: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/** Whether a model (every version, when `version` is undefined) or one version is loaded; 404 as the gateway resolves. */
export function modelReady(gateway: Gateway, name: string, version: string | undefined, caller: Caller): { name: string; ready: boolean } {
  const { model, version: v } = gateway.resolve(name, version, caller);
  return { name: model.name, ready: version === undefined ? model.ready() : versionHealth(v).ready };
}

/** A model's versions, platform and tensor signature (of `version`, else the default version). */
export function modelMetadata(gateway: Gateway, name: string, version: string | undefined, caller: Caller): ModelMetadata {
  const { model, version: v } = gateway.resolve(name, version, caller);
  const signature = gateway.signature(v);
  return {
    name: model.name,
    versions: [...model.versions.keys()],
    platform: pluginOf(v.backend.kind)?.capabilities.kservePlatform ?? v.backend.kind,
    inputs: signature.inputs,
    outputs: signature.outputs,
  };
}
