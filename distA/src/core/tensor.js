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
};
const ORT_TO_DATATYPE = new Map(Object.entries(DATATYPES).map(([k, v]) => [v.ort, k]));
export function datatypeFromOrt(type) {
    return ORT_TO_DATATYPE.get(type) ?? null;
}
export function elementCount(shape) {
    let n = 1;
    for (const d of shape)
        n *= d;
    return n;
}
/** Allocates storage for `n` elements of a datatype. */
export function allocate(datatype, n) {
    if (datatype === 'BYTES')
        return new Array(n);
    return new DATATYPES[datatype].array(n);
}
// FP16 conversion: IEEE 754 binary16 <-> number, round to nearest even.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
export function toHalf(value) {
    f32[0] = value;
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff)
        return sign | 0x7c00 | (mant ? 0x200 : 0);
    let e = exp - 127 + 15;
    if (e >= 0x1f)
        return sign | 0x7c00;
    if (e <= 0) {
        if (e < -10)
            return sign;
        mant |= 0x800000;
        const shift = 14 - e;
        let half = mant >>> shift;
        const rem = mant & ((1 << shift) - 1);
        const mid = 1 << (shift - 1);
        if (rem > mid || (rem === mid && half & 1))
            half++;
        return sign | half;
    }
    let half = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && half & 1))
        half++;
    e = half >>> 10;
    return sign | half;
}
export function fromHalf(h) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0)
        return sign * mant * 2 ** -24;
    if (exp === 0x1f)
        return mant ? NaN : sign * Infinity;
    return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
/** Converts tensor data to JSON-friendly values: numbers, booleans, strings (int64 as number when safe). */
export function toJsonValues(datatype, data) {
    const n = data.length;
    const out = new Array(n);
    switch (datatype) {
        case 'BOOL':
            for (let i = 0; i < n; i++)
                out[i] = data[i] !== 0;
            return out;
        case 'FP16':
            for (let i = 0; i < n; i++)
                out[i] = fromHalf(data[i]);
            return out;
        case 'INT64':
        case 'UINT64':
            for (let i = 0; i < n; i++)
                out[i] = Number(data[i]);
            return out;
        default:
            for (let i = 0; i < n; i++)
                out[i] = data[i];
            return out;
    }
}
//# sourceMappingURL=tensor.js.map