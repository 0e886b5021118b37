/**
 * Tensors as the core sees them: a KServe v2 datatype, a shape and a flat typed array.
 * Transports decode wire formats into this type; backends read it without re-checking.
 */

/** KServe v2 datatypes (the Open Inference Protocol's names) and their typed-array storage. */
export const DATATYPES = {
  BOOL: { array: Uint8Array, ort: 'bool' },
  UINT8: { array: Uint8Array, ort: 'uint8' },
  UINT16: { array: Uint16Array, ort: 'uint16' },
  UINT32: { array: Uint32Array, ort: 'uint32' },
  UINT64: { array: BigUint64Array, ort: 'uint64' },
  INT8: { array: Int8Array, ort: 'int8' },
  INT16: { array: Int16Array, ort: 'int16' },
  INT32: { array: Int32Array, ort: 'int32' },
  INT64: { array: BigInt64Array, ort: 'int64' },
  FP16: { array: Uint16Array, ort: 'float16' },
  FP32: { array: Float32Array, ort: 'float32' },
  FP64: { array: Float64Array, ort: 'float64' },
  BYTES: { array: Array, ort: 'string' },
} as const;

/** A KServe v2 datatype name, e.g. `FP32`. */
export type DataType = keyof typeof DATATYPES;

/** A tensor's flat storage: BOOL as 0/1 bytes, FP16 as binary16 bit patterns, INT64 and UINT64 as bigints, BYTES as strings. */
export type TensorData =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Float32Array
  | Float64Array
  | string[];

/** A named tensor with its data flat in row-major order. */
export interface Tensor {
  readonly name: string;
  readonly datatype: DataType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** An input or output a model declares; -1 in `shape` means any size. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: DataType;
  readonly shape: readonly number[];
}

const ORT_TO_DATATYPE = new Map<string, DataType>(Object.entries(DATATYPES).map(([k, v]) => [v.ort, k as DataType]));

/** The datatype of an ONNX Runtime type name (`float32`: FP32); null for a type that has none. */
export function datatypeFromOrt(type: string): DataType | null {
  return ORT_TO_DATATYPE.get(type) ?? null;
}

/** The product of the dimensions (1 for a scalar's `[]`); the shape is not checked, so callers validate it first. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Allocates storage for `n` elements of a datatype. */
export function allocate(datatype: DataType, n: number): TensorData {
  if (datatype === 'BYTES') return new Array<string>(n);
  return new DATATYPES[datatype].array(n);
}

// FP16 conversion: IEEE 754 binary16 <-> number, round to nearest even.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bits of the binary16 value nearest to `value` (ties to even); beyond FP16's range, ±Infinity. */
export function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}

/** The number that binary16 bits `h` encode (subnormals, ±Infinity and NaN included). */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Converts tensor data to JSON-friendly values: numbers, booleans, strings (int64 as number when safe). */
export function toJsonValues(datatype: DataType, data: TensorData): Array<number | boolean | string> {
  const n = data.length;
  const out = new Array<number | boolean | string>(n);
  switch (datatype) {
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = (data as Uint8Array)[i] !== 0;
      return out;
    case 'FP16':
      for (let i = 0; i < n; i++) out[i] = fromHalf((data as Uint16Array)[i] as number);
      return out;
    case 'INT64':
    case 'UINT64':
      for (let i = 0; i < n; i++) out[i] = Number((data as BigInt64Array)[i]);
      return out;
    default:
      for (let i = 0; i < n; i++) out[i] = (data as ArrayLike<number | string>)[i] as number | string;
      return out;
  }
}
