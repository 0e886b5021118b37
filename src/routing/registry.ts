/**
 * The model registry: names and aliases -> models -> versions -> backends, resolved once when
 * the config loads. Per request it only looks up: a pinned version, else a weighted pick.
 */
import type { Backend } from '../backends/backend.js';
import { createBackend, type BackendContext } from '../backends/index.js';
import type { Config, ModelConfig } from '../config/schema.js';
import { fastError } from '../core/errors.js';

/** One version of a model, with its loaded backend. */
export interface ModelVersion {
  readonly model: Model;
  readonly version: string;
  readonly weight: number;
  readonly backend: Backend;
}

export class Model {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly ownedBy: string;
  readonly created: number;
  readonly versions: ReadonlyMap<string, ModelVersion>;
  readonly defaultVersion: ModelVersion;
  /** Versions with weight > 0 and their cumulative weights, for the weighted pick. */
  readonly #weighted: readonly ModelVersion[];
  readonly #cumulative: readonly number[];
  readonly #total: number;

  constructor(config: ModelConfig, context: Omit<BackendContext, 'modelName'>, created: number) {
    this.name = config.name;
    this.aliases = config.aliases;
    this.ownedBy = config.owned_by;
    this.created = created;
    const versions = new Map<string, ModelVersion>();
    for (const v of config.versions) {
      versions.set(v.version, {
        model: this,
        version: v.version,
        weight: v.weight,
        backend: createBackend(v.backend, { ...context, modelName: config.name }),
      });
    }
    this.versions = versions;
    this.defaultVersion = versions.get(config.default_version ?? (config.versions[0]?.version as string)) as ModelVersion;
    this.#weighted = [...versions.values()].filter((v) => v.weight > 0);
    let sum = 0;
    this.#cumulative = this.#weighted.map((v) => (sum += v.weight));
    this.#total = sum;
  }

  /** The version for one request: the pinned one if given, else a weighted random pick, else the default. */
  select(pinned: string | undefined, random: () => number = Math.random): ModelVersion {
    if (pinned !== undefined) {
      const v = this.versions.get(pinned);
      if (v === undefined) {
        throw fastError(
          'version_not_found',
          `model "${this.name}" has no version "${clip(pinned)}"; it has ${[...this.versions.keys()].join(', ')}`,
          'x-model-version',
        );
      }
      return v;
    }
    const weighted = this.#weighted;
    if (weighted.length === 0) return this.defaultVersion;
    if (weighted.length === 1) return weighted[0] as ModelVersion;
    const r = random() * this.#total;
    for (let i = 0; i < weighted.length; i++) if (r < (this.#cumulative[i] as number)) return weighted[i] as ModelVersion;
    return weighted[weighted.length - 1] as ModelVersion;
  }

  /** Whether every version has loaded. */
  ready(): boolean {
    for (const v of this.versions.values()) if (!v.backend.health().ready) return false;
    return true;
  }
}

export class Registry {
  readonly models: readonly Model[];
  readonly #byName: ReadonlyMap<string, Model>;

  constructor(config: Config, context: Omit<BackendContext, 'modelName'> = {}) {
    const created = Math.floor(Date.now() / 1000);
    this.models = config.models.map((m) => new Model(m, context, created));
    const byName = new Map<string, Model>();
    for (const model of this.models) for (const name of [model.name, ...model.aliases]) byName.set(name, model);
    this.#byName = byName;
  }

  /** Finds a model by name or alias; throws 404 model_not_found. */
  get(name: string): Model {
    const model = this.#byName.get(name);
    if (model === undefined) throw fastError('model_not_found', `model "${clip(name)}" does not exist`, 'model');
    return model;
  }

  /** Loads every version; a version that fails stays not-ready and its error is reported, others still load. */
  async load(onError: (version: ModelVersion, error: Error) => void): Promise<void> {
    const all = this.models.flatMap((m) => [...m.versions.values()]);
    await Promise.all(all.map((v) => v.backend.load().catch((err: Error) => onError(v, err))));
  }

  async unload(): Promise<void> {
    await Promise.all(this.models.flatMap((m) => [...m.versions.values()].map((v) => v.backend.unload())));
  }

  ready(): boolean {
    return this.models.every((m) => m.ready());
  }
}

/** Client-supplied names are echoed in errors; a long one is cut so an error never echoes a whole body. */
function clip(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}...` : text;
}
