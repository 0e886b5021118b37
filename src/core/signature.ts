/**
 * Semantic checks of a tensor request against the model's signature, in one place: names,
 * datatypes, ranks and fixed dimensions. Later stages accept the result without re-checking.
 */
import type { InferRequest, Signature } from './call.js';
import { fastError } from './errors.js';
import type { Tensor } from './tensor.js';

/** Returns the request with inputs in signature order; throws 400 naming the field on any mismatch. */
export function checkInferRequest(signature: Signature, request: InferRequest): InferRequest {
  const byName = new Map<string, Tensor>();
  request.inputs.forEach((input, i) => {
    if (byName.has(input.name)) throw fastError('invalid_request', `input "${input.name}" appears twice`, `inputs[${i}].name`);
    byName.set(input.name, input);
  });
  const ordered: Tensor[] = [];
  for (const spec of signature.inputs) {
    const input = byName.get(spec.name);
    if (input === undefined)
      throw fastError('invalid_request', `missing input "${spec.name}" (${spec.datatype} ${fmt(spec.shape)})`, 'inputs');
    const at = `inputs[${request.inputs.indexOf(input)}]`;
    if (input.datatype !== spec.datatype) {
      throw fastError(
        'invalid_request',
        `input "${spec.name}" must have datatype ${spec.datatype}, got ${input.datatype}`,
        `${at}.datatype`,
      );
    }
    if (input.shape.length !== spec.shape.length || spec.shape.some((d, k) => d >= 0 && d !== input.shape[k])) {
      throw fastError('invalid_request', `input "${spec.name}" must have shape ${fmt(spec.shape)}, got ${fmt(input.shape)}`, `${at}.shape`);
    }
    byName.delete(spec.name);
    ordered.push(input);
  }
  for (const extra of byName.keys()) {
    const known = signature.inputs.map((s) => s.name).join(', ');
    throw fastError(
      'invalid_request',
      `unknown input "${extra}"; the model takes ${known}`,
      `inputs[${request.inputs.findIndex((t) => t.name === extra)}].name`,
    );
  }
  if (request.outputs !== null) {
    request.outputs.forEach((name, i) => {
      if (!signature.outputs.some((o) => o.name === name)) {
        const known = signature.outputs.map((s) => s.name).join(', ');
        throw fastError('invalid_request', `unknown output "${name}"; the model has ${known}`, `outputs[${i}].name`);
      }
    });
  }
  return { inputs: ordered, outputs: request.outputs };
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
