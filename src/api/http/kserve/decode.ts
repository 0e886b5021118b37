/**
 * Decodes KServe v2 JSON tensors into core tensors: nested or flat `data` in row-major order,
 * element types checked against the datatype, element count checked against the shape.
 */
import { fastError } from '../../../core/errors.js';
import { DATATYPES, elementCount, toHalf, type DataType, type Tensor, type TensorData } from '../../../core/tensor.js';

/** An input tensor as the JSON body gives it, after schema validation: `data` not yet checked. */
export interface WireTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: DataType;
  readonly data: readonly unknown[];
}

const INT_RANGES: Partial<Record<DataType, readonly [number, number]>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
};

/** A core tensor from `wire`; throws invalid_request naming the field under `at` (e.g. `inputs[0]`) when it does not fit. */
export function decodeTensor(wire: WireTensor, at: string): Tensor {
  const count = elementCount(wire.shape);
  const flat = flatten(wire.data, count, wire.shape.length, `${at}.data`);
  if (flat.length !== count) {
    throw fastError(
      'invalid_request',
      `${at}.data has ${flat.length} elements but shape [${wire.shape.join(', ')}] needs ${count}`,
      `${at}.data`,
    );
  }
  return { name: wire.name, datatype: wire.datatype, shape: wire.shape, data: convert(wire.datatype, flat, `${at}.data`) };
}

function flatten(data: readonly unknown[], expected: number, rank: number, at: string): readonly unknown[] {
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  // Nesting can be no deeper than the shape has dimensions; checking keeps a hostile body from exhausting the stack.
  const walk = (node: readonly unknown[], depth: number): void => {
    if (depth > Math.max(rank, 1)) throw fastError('invalid_request', `${at} is nested deeper than its shape's ${rank} dimensions`, at);
    for (const item of node) {
      if (Array.isArray(item)) walk(item, depth + 1);
      else out.push(item);
      if (out.length > expected) throw fastError('invalid_request', `${at} has more than the ${expected} elements its shape needs`, at);
    }
  };
  walk(data, 1);
  return out;
}

function convert(datatype: DataType, values: readonly unknown[], at: string): TensorData {
  const n = values.length;
  const bad = (i: number, want: string): never => {
    throw fastError(
      'invalid_request',
      `${at}[${i}] must be ${want} for datatype ${datatype}, got ${JSON.stringify(values[i]) ?? 'undefined'}`,
      `${at}[${i}]`,
    );
  };
  switch (datatype) {
    case 'BYTES': {
      const out = new Array<string>(n);
      for (let i = 0; i < n; i++) out[i] = typeof values[i] === 'string' ? (values[i] as string) : bad(i, 'a string');
      return out;
    }
    case 'BOOL': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        out[i] = v === true || v === 1 ? 1 : v === false || v === 0 ? 0 : bad(i, 'true or false');
      }
      return out;
    }
    case 'FP16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = typeof values[i] === 'number' ? toHalf(values[i] as number) : bad(i, 'a number');
      return out;
    }
    case 'FP32':
    case 'FP64': {
      const out = datatype === 'FP32' ? new Float32Array(n) : new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = typeof values[i] === 'number' ? (values[i] as number) : bad(i, 'a number');
      return out;
    }
    case 'INT64':
    case 'UINT64': {
      const out = datatype === 'INT64' ? new BigInt64Array(n) : new BigUint64Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v === 'number' && Number.isSafeInteger(v) && (datatype === 'INT64' || v >= 0)) out[i] = BigInt(v);
        else if (typeof v === 'string' && /^-?\d+$/.test(v) && (datatype === 'INT64' || !v.startsWith('-'))) out[i] = BigInt(v);
        else bad(i, 'an integer');
      }
      return out;
    }
    default: {
      const [min, max] = INT_RANGES[datatype] as readonly [number, number];
      const out = new DATATYPES[datatype].array(n) as Int32Array;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        out[i] = typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : bad(i, `an integer in [${min}, ${max}]`);
      }
      return out;
    }
  }
}
