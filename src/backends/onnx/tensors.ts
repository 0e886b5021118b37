/** Conversions between core tensors and ONNX Runtime tensors, and batch concat/split along dimension 0. */
import { allocate, datatypeFromOrt, DATATYPES, type Tensor, type TensorData } from '../../core/tensor.js';
import type { OrtModule, OrtTensor } from './runtime.js';

/** A core tensor as an ONNX Runtime tensor over the same data (not copied). */
export function toOrt(ort: OrtModule, tensor: Tensor): OrtTensor {
  const type = DATATYPES[tensor.datatype].ort;
  return new ort.Tensor(type as 'float32', tensor.data as Float32Array, tensor.shape as number[]);
}

/** An ONNX Runtime output as a core tensor named `name`, over the same data; throws if its element type is not supported. */
export function fromOrt(name: string, value: OrtTensor): Tensor {
  const datatype = datatypeFromOrt(value.type);
  if (datatype === null) throw new Error(`output "${name}" has unsupported ONNX type ${value.type}`);
  return { name, datatype, shape: [...value.dims], data: value.data as TensorData };
}

/** Concatenates same-named tensors along dimension 0. */
export function concatRows(parts: readonly Tensor[]): Tensor {
  const first = parts[0] as Tensor;
  if (parts.length === 1) return first;
  let rows = 0;
  let length = 0;
  for (const p of parts) {
    rows += p.shape[0] as number;
    length += p.data.length;
  }
  const data = allocate(first.datatype, length);
  let offset = 0;
  for (const p of parts) {
    if (Array.isArray(data)) for (let i = 0; i < p.data.length; i++) data[offset + i] = (p.data as string[])[i] as string;
    else (data as Float32Array).set(p.data as Float32Array, offset);
    offset += p.data.length;
  }
  return { name: first.name, datatype: first.datatype, shape: [rows, ...first.shape.slice(1)], data };
}

/** Splits a batched tensor back into pieces of the given row counts (views, not copies). */
export function splitRows(tensor: Tensor, rows: readonly number[]): Tensor[] {
  const total = tensor.shape[0] as number;
  const rowSize = total === 0 ? 0 : tensor.data.length / total;
  const out: Tensor[] = [];
  let offset = 0;
  for (const r of rows) {
    const start = offset * rowSize;
    const end = start + r * rowSize;
    const data = Array.isArray(tensor.data) ? tensor.data.slice(start, end) : (tensor.data as Float32Array).subarray(start, end);
    out.push({ name: tensor.name, datatype: tensor.datatype, shape: [r, ...tensor.shape.slice(1)], data });
    offset += r;
  }
  return out;
}
