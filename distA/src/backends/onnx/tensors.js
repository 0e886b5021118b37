/** Conversions between core tensors and ONNX Runtime tensors, and batch concat/split along dimension 0. */
import { allocate, datatypeFromOrt, DATATYPES } from '../../core/tensor.js';
export function toOrt(ort, tensor) {
    const type = DATATYPES[tensor.datatype].ort;
    return new ort.Tensor(type, tensor.data, tensor.shape);
}
export function fromOrt(name, value) {
    const datatype = datatypeFromOrt(value.type);
    if (datatype === null)
        throw new Error(`output "${name}" has unsupported ONNX type ${value.type}`);
    return { name, datatype, shape: [...value.dims], data: value.data };
}
/** Concatenates same-named tensors along dimension 0. */
export function concatRows(parts) {
    const first = parts[0];
    if (parts.length === 1)
        return first;
    let rows = 0;
    let length = 0;
    for (const p of parts) {
        rows += p.shape[0];
        length += p.data.length;
    }
    const data = allocate(first.datatype, length);
    let offset = 0;
    for (const p of parts) {
        if (Array.isArray(data))
            for (let i = 0; i < p.data.length; i++)
                data[offset + i] = p.data[i];
        else
            data.set(p.data, offset);
        offset += p.data.length;
    }
    return { name: first.name, datatype: first.datatype, shape: [rows, ...first.shape.slice(1)], data };
}
/** Splits a batched tensor back into pieces of the given row counts (views, not copies). */
export function splitRows(tensor, rows) {
    const total = tensor.shape[0];
    const rowSize = total === 0 ? 0 : tensor.data.length / total;
    const out = [];
    let offset = 0;
    for (const r of rows) {
        const start = offset * rowSize;
        const end = start + r * rowSize;
        const data = Array.isArray(tensor.data) ? tensor.data.slice(start, end) : tensor.data.subarray(start, end);
        out.push({ name: tensor.name, datatype: tensor.datatype, shape: [r, ...tensor.shape.slice(1)], data });
        offset += r;
    }
    return out;
}
//# sourceMappingURL=tensors.js.map