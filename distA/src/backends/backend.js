import { fastError } from '../core/errors.js';
/** The 400 for a `dimensions` a model with fixed-size vectors cannot give. */
export function checkDimensions(request, dim) {
    if (request.dimensions !== null && request.dimensions !== dim) {
        throw fastError('invalid_request', `\`dimensions\` must be ${dim} for this model (its vectors cannot be shortened), got ${request.dimensions}`, 'dimensions');
    }
}
/** The answer of a backend asked for a task it does not list in `tasks`. */
export function unsupported(kind, task) {
    return Promise.reject(fastError('unsupported_operation', `a ${kind} backend does not serve ${task} requests`));
}
/** Defaults for backends that serve text and embeddings but no tensors (remote servers, mock). */
export class TextBackend {
    tasks = new Set(['chat', 'completion', 'embedding']);
    signature() {
        return null;
    }
    contextLength() {
        return null;
    }
    infer() {
        return unsupported(this.kind, 'tensor');
    }
}
//# sourceMappingURL=backend.js.map