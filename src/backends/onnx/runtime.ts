/**
 * ONNX Runtime, loaded on first use: its native library adds tens of MB to every process, which a
 * gateway serving only remote models (and the cluster primary) should not pay.
 */
import type * as Ort from 'onnxruntime-node';

export type OrtModule = typeof Ort;
export type OrtTensor = Ort.Tensor;
export type OrtSession = Ort.InferenceSession;
export type OrtValueMetadata = Ort.InferenceSession.ValueMetadata;

let loading: Promise<OrtModule> | null = null;

export function loadOrt(): Promise<OrtModule> {
  // A CommonJS package: its exports arrive as the ES module's default export.
  loading ??= import('onnxruntime-node').then((m) => (m as unknown as { default: OrtModule }).default);
  return loading;
}
