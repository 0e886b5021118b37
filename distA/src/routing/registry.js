import { createBackend } from '../backends/index.js';
import { fastError } from '../core/errors.js';
export class Model {
    name;
    aliases;
    ownedBy;
    created;
    versions;
    defaultVersion;
    /** Versions with weight > 0 and their cumulative weights, for the weighted pick. */
    #weighted;
    #cumulative;
    #total;
    constructor(config, context, created) {
        this.name = config.name;
        this.aliases = config.aliases;
        this.ownedBy = config.owned_by;
        this.created = created;
        const versions = new Map();
        for (const v of config.versions) {
            versions.set(v.version, {
                model: this,
                version: v.version,
                weight: v.weight,
                backend: createBackend(v.backend, { ...context, modelName: config.name }),
            });
        }
        this.versions = versions;
        this.defaultVersion = versions.get(config.default_version ?? config.versions[0]?.version);
        this.#weighted = [...versions.values()].filter((v) => v.weight > 0);
        let sum = 0;
        this.#cumulative = this.#weighted.map((v) => (sum += v.weight));
        this.#total = sum;
    }
    /** The version for one request: the pinned one if given, else a weighted random pick, else the default. */
    select(pinned, random = Math.random) {
        if (pinned !== undefined) {
            const v = this.versions.get(pinned);
            if (v === undefined) {
                throw fastError('version_not_found', `model "${this.name}" has no version "${clip(pinned)}"; it has ${[...this.versions.keys()].join(', ')}`, 'x-model-version');
            }
            return v;
        }
        const weighted = this.#weighted;
        if (weighted.length === 0)
            return this.defaultVersion;
        if (weighted.length === 1)
            return weighted[0];
        const r = random() * this.#total;
        for (let i = 0; i < weighted.length; i++)
            if (r < this.#cumulative[i])
                return weighted[i];
        return weighted[weighted.length - 1];
    }
    /** Whether every version has loaded. */
    ready() {
        for (const v of this.versions.values())
            if (!v.backend.health().ready)
                return false;
        return true;
    }
}
export class Registry {
    models;
    #byName;
    constructor(config, context = {}) {
        const created = Math.floor(Date.now() / 1000);
        this.models = config.models.map((m) => new Model(m, context, created));
        const byName = new Map();
        for (const model of this.models)
            for (const name of [model.name, ...model.aliases])
                byName.set(name, model);
        this.#byName = byName;
    }
    /** Finds a model by name or alias; throws 404 model_not_found. */
    get(name) {
        const model = this.#byName.get(name);
        if (model === undefined)
            throw fastError('model_not_found', `model "${clip(name)}" does not exist`, 'model');
        return model;
    }
    /** Loads every version; a version that fails stays not-ready and its error is reported, others still load. */
    async load(onError) {
        const all = this.models.flatMap((m) => [...m.versions.values()]);
        await Promise.all(all.map((v) => v.backend.load().catch((err) => onError(v, err))));
    }
    async unload() {
        await Promise.all(this.models.flatMap((m) => [...m.versions.values()].map((v) => v.backend.unload())));
    }
    ready() {
        return this.models.every((m) => m.ready());
    }
}
/** Client-supplied names are echoed in errors; a long one is cut so an error never echoes a whole body. */
function clip(text) {
    return text.length > 100 ? `${text.slice(0, 100)}...` : text;
}
//# sourceMappingURL=registry.js.map