import { fastError } from './errors.js';
import { checkInferRequest } from './signature.js';
export class Gateway {
    registry;
    constructor(registry) {
        this.registry = registry;
    }
    async generate(request, ctx) {
        const version = this.#route(request.model, ctx.pinnedVersion, request.kind);
        return { version, result: await version.backend.generate(request, ctx) };
    }
    async embed(model, request, ctx) {
        const version = this.#route(model, ctx.pinnedVersion, 'embedding');
        return { version, result: await version.backend.embed(request, ctx) };
    }
    async infer(model, request, ctx) {
        const version = this.#route(model, ctx.pinnedVersion, 'tensor');
        const checked = checkInferRequest(this.signature(version), request);
        return { version, result: await version.backend.infer(checked, ctx) };
    }
    /** A version's tensor signature; 503 while it loads. */
    signature(version) {
        if (!version.backend.tasks.has('tensor')) {
            throw fastError('unsupported_operation', `model "${version.model.name}" is not a tensor model; use the OpenAI endpoints`, 'model');
        }
        const signature = version.backend.signature();
        if (signature === null)
            throw fastError('model_not_ready', `model "${version.model.name}" version "${version.version}" is not loaded`);
        return signature;
    }
    /** Looks up a model and a version: the pinned one, else the default (for metadata, not traffic). */
    resolve(model, pinned) {
        const m = this.registry.get(model);
        return { model: m, version: pinned === undefined ? m.defaultVersion : m.select(pinned) };
    }
    #route(name, pinned, task) {
        const version = this.registry.get(name).select(pinned);
        const backend = version.backend;
        if (!backend.tasks.has(task)) {
            throw fastError('unsupported_operation', `model "${name}" does not serve ${task} requests (it serves ${[...backend.tasks].join(', ')})`, 'model');
        }
        if (!backend.health().ready)
            throw fastError('model_not_ready', `model "${name}" version "${version.version}" is not loaded`);
        return version;
    }
}
//# sourceMappingURL=gateway.js.map