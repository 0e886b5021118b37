/**
 * ONNX Runtime, loaded on first use: its native library adds tens of MB to every process, which a
 * gateway serving only remote models (and the cluster primary) should not pay.
 */
import type * as Ort from 'onnxruntime-node';

/** The onnxruntime-node module, as loadOrt resolves it. */
export type OrtModule = typeof Ort;
/** onnxruntime-node's Tensor, as a type only (naming it loads nothing). */
export type OrtTensor = Ort.Tensor;
/** onnxruntime-node's InferenceSession, as a type only. */
export type OrtSession = Ort.InferenceSession;
/** What a session declares of an input or output: its name and, for a tensor, its type and shape (symbolic dimensions as strings). */
export type OrtValueMetadata = Ort.InferenceSession.ValueMetadata;

let loading: Promise<OrtModule> | null = null;

/** Imports onnxruntime-node on the first call; later calls share that promise (a failed import is not retried). */
export function loadOrt(): Promise<OrtModule> {
  // A CommonJS package: its exports arrive as the ES module's default export.
  loading ??= import('onnxruntime-node').then((m) => (m as unknown as { default: OrtModule }).default);
  return loading;
}
