/**
 * KServe v2 gRPC tensors to and from core tensors: typed `contents` (a repeated field per element
 * type) or `raw_input_contents` (each tensor's elements as little-endian bytes; BYTES elements as a
 * 4-byte little-endian length and the bytes), checked against shape and datatype like the JSON path.
 */
import { endianness } from 'node:os';
import { fastError } from '../../core/errors.js';
import { DATATYPES, elementCount, type DataType, type Tensor, type TensorData } from '../../core/tensor.js';

/** InferTensorContents as proto-loader gives it (64-bit integers as strings, bytes as Buffers). */
export interface Contents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: string[];
  uint_contents?: number[];
  uint64_contents?: string[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

/** An InferInputTensor as proto-loader gives it: every field optional, int64 shape dimensions possibly strings. */
export interface WireTensor {
  name?: string;
  datatype?: string;
  shape?: Array<string | number>;
  contents?: Contents | null;
}

// Typed arrays are viewed over raw bytes as they are: right only on a little-endian host (x86, ARM).
if (endianness() !== 'LE') throw new Error('the gRPC tensor codec needs a little-endian host');

const TYPED_FIELD: Record<DataType, keyof Contents | null> = {
  BOOL: 'bool_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  FP16: null,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

const invalid = (message: string, param: string): never => {
  throw fastError('invalid_request', message, param);
};

/** Decodes the request's inputs; `raw` (raw_input_contents) holds one entry per input when used. */
export function decodeInputs(inputs: readonly WireTensor[], raw: readonly Buffer[]): Tensor[] {
  if (inputs.length === 0) invalid('inputs must hold at least one tensor', 'inputs');
  if (raw.length > 0 && raw.length !== inputs.length) {
    invalid(`raw_input_contents has ${raw.length} entries for ${inputs.length} inputs; send one per input, in order`, 'raw_input_contents');
  }
  return inputs.map((wire, i) => {
    const at = `inputs[${i}]`;
    const name = wire.name ?? '';
    if (name === '') invalid(`${at}.name must not be empty`, `${at}.name`);
    const datatype = wire.datatype ?? '';
    if (!Object.hasOwn(DATATYPES, datatype))
      invalid(`${at}.datatype must be one of ${Object.keys(DATATYPES).join(', ')}, got "${datatype}"`, `${at}.datatype`);
    const shape = (wire.shape ?? []).map((d) => Number(d));
    if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) invalid(`${at}.shape must hold whole numbers >= 0`, `${at}.shape`);
    const type = datatype as DataType;
    const count = elementCount(shape);
    const data =
      raw.length > 0 ? fromRaw(type, raw[i] as Buffer, count, `raw_input_contents[${i}]`) : fromTyped(type, wire.contents, count, at);
    return { name, datatype: type, shape, data };
  });
}

function fromTyped(datatype: DataType, contents: Contents | null | undefined, count: number, at: string): TensorData {
  const field = TYPED_FIELD[datatype];
  if (field === null) return invalid(`${at}: ${datatype} has no typed contents field; send it in raw_input_contents`, `${at}.contents`);
  const values = (contents?.[field] ?? []) as readonly unknown[];
  if (values.length !== count) {
    invalid(`${at}.contents.${field} has ${values.length} elements but the shape needs ${count}`, `${at}.contents.${field}`);
  }
  switch (datatype) {
    case 'BOOL':
      return Uint8Array.from(values as boolean[], (v) => (v ? 1 : 0));
    case 'BYTES':
      return (values as Buffer[]).map((b) => b.toString('utf8'));
    case 'INT64':
      return BigInt64Array.from(values as string[], (v) => BigInt(v));
    case 'UINT64':
      return BigUint64Array.from(values as string[], (v) => BigInt(v));
    default: {
      const out = new DATATYPES[datatype].array(count) as Float32Array;
      out.set(values as number[]);
      // A narrower integer type than its field (INT8 in int_contents) must hold its values as sent.
      if (datatype !== 'FP32' && datatype !== 'FP64') {
        for (let k = 0; k < count; k++) if (out[k] !== (values[k] as number)) outOfRange(datatype, at, field, k);
      }
      return out;
    }
  }
}

function outOfRange(datatype: DataType, at: string, field: string, k: number): never {
  return invalid(`${at}.contents.${field}[${k}] is out of range for ${datatype}`, `${at}.contents.${field}[${k}]`);
}

function fromRaw(datatype: DataType, bytes: Buffer, count: number, at: string): TensorData {
  if (datatype === 'BYTES') return stringsFromRaw(bytes, count, at);
  const array = DATATYPES[datatype].array as unknown as { BYTES_PER_ELEMENT: number; new (n: number): TensorData };
  const size = array.BYTES_PER_ELEMENT;
  if (bytes.length !== count * size) invalid(`${at} has ${bytes.length} bytes; ${count} ${datatype} elements need ${count * size}`, at);
  const out = new array(count) as Exclude<TensorData, string[]>;
  // Copied, not viewed: a Buffer's offset into its pool need not be aligned for the element size.
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function stringsFromRaw(bytes: Buffer, count: number, at: string): string[] {
  // Each element takes at least its 4-byte length: checked before allocating for a shape's count.
  if (count * 4 > bytes.length) invalid(`${at} has ${bytes.length} bytes, too few for ${count} BYTES elements of 4 bytes or more`, at);
  const out = new Array<string>(count);
  let offset = 0;
  for (let k = 0; k < count; k++) {
    if (offset + 4 > bytes.length) invalid(`${at} ends before element ${k}'s 4-byte length`, at);
    const length = bytes.readUInt32LE(offset);
    offset += 4;
    if (offset + length > bytes.length) invalid(`${at}: element ${k} is longer than the bytes left`, at);
    out[k] = bytes.toString('utf8', offset, offset + length);
    offset += length;
  }
  if (offset !== bytes.length) invalid(`${at} has ${bytes.length - offset} bytes after its ${count} elements`, at);
  return out;
}

/** An output tensor in the response, its values typed (`raw` false) or left for raw_output_contents. */
export function outputTensor(t: Tensor, raw: boolean): object {
  return { name: t.name, datatype: t.datatype, shape: t.shape, contents: raw ? undefined : typedContents(t) };
}

/** Whether the outputs go raw: when the request came raw, or an output has no typed field (FP16). */
export function rawOutputs(requestRaw: boolean, outputs: readonly Tensor[]): boolean {
  return requestRaw || outputs.some((t) => TYPED_FIELD[t.datatype] === null);
}

function typedContents(t: Tensor): Contents {
  const field = TYPED_FIELD[t.datatype] as keyof Contents;
  const data = t.data;
  switch (t.datatype) {
    case 'BOOL':
      return { bool_contents: Array.from(data as Uint8Array, (v) => v !== 0) };
    case 'BYTES':
      return { bytes_contents: (data as string[]).map((s) => Buffer.from(s, 'utf8')) };
    case 'INT64':
    case 'UINT64':
      return { [field]: Array.from(data as BigInt64Array, (v) => v.toString()) };
    default:
      return { [field]: Array.from(data as Float32Array) };
  }
}

/** A tensor's elements as raw little-endian bytes. */
export function rawBytes(t: Tensor): Buffer {
  if (t.datatype !== 'BYTES') {
    const a = t.data as Exclude<TensorData, string[]>;
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  }
  const parts: Buffer[] = [];
  for (const s of t.data as string[]) {
    const b = Buffer.from(s, 'utf8');
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32LE(b.length);
    parts.push(length, b);
  }
  return Buffer.concat(parts);
}
