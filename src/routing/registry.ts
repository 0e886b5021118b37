/**
 * The model registry: names and aliases -> models -> versions -> backends, resolved once when
 * the config loads. Per request it only looks up: a pinned version, else a weighted pick.
 */
import type { Logger } from 'pino';
import type { Backend, BackendHealth } from '../backends/backend.js';
import { createBackend, type BackendContext } from '../backends/index.js';
import type { BackendKind, Config, ModelConfig, PoliciesConfig } from '../config/schema.js';
import { fastError, type ApiError } from '../core/errors.js';
import type { CallPolicy, VersionCall } from '../core/policy.js';
import type { Admission } from '../scheduling/admission.js';
import { NO_OBSERVER, type DeploymentObserver } from '../core/observer.js';

/** One version of a model, with its loaded backend. */
export interface ModelVersion {
  readonly model: Model;
  readonly version: string;
  /** Its share of unpinned traffic as the config file says. */
  readonly weight: number;
  readonly backend: Backend;
  /** Its backend's kind (`onnx`, `llama`, `openai`, ...), as the config names it. */
  readonly kind: BackendKind;
  readonly policies: PoliciesConfig;
  /** Its retries and breaker, for their status; null when it has neither. */
  readonly governor: CallPolicy | null;
  /** The bulkhead and its priority queue, for their occupancy; null when concurrency is not capped. */
  readonly admission: Admission | null;
  /**
   * A call to its backend through its policies (admission, retries and breaker, observation),
   * composed once when the registry built the version; what it does not have is not in it.
   */
  readonly call: VersionCall<ModelVersion>;
  /** Where its stages report queue times, attempts, retries, fallbacks and executions. */
  readonly observer: DeploymentObserver;
  /**
   * Why its backend failed to load; null: it loaded, or is loading. Written once, by
   * {@link Registry.load}: the one place that decides a version which failed cannot serve,
   * whatever its backend reports.
   */
  loadError: string | null;
}

/** Whether a version can serve, and why not: one whose load failed is not ready, whatever its backend says of itself. */
export function versionHealth(version: ModelVersion): BackendHealth {
  if (version.loadError !== null) return { ready: false, error: version.loadError };
  return version.backend.health();
}

/** The 503 for a version that cannot serve: the reason its load failed when it did, else that it is still loading. */
export function notReadyError(version: ModelVersion): ApiError {
  const name = `model "${version.model.name}" version "${version.version}"`;
  const error = versionHealth(version).error;
  return fastError('model_not_ready', error === null ? `${name} is not loaded yet` : `${name} failed to load: ${error}`);
}

/** What a version's policies are built from: its names, `policies` config, backend kind and observer. */
export interface VersionSpec {
  readonly model: string;
  readonly version: string;
  readonly kind: BackendKind;
  readonly policies: PoliciesConfig;
  readonly observer: DeploymentObserver;
}

/** A version's policies: the stateful parts (for their status), and the chain they make around its backend call. */
export interface VersionPolicies {
  readonly governor: CallPolicy | null;
  readonly admission: Admission | null;
  /** The version's call: `base` (the backend call) inside the version's policy wrappers. */
  readonly wrap: (base: VersionCall<ModelVersion>) => VersionCall<ModelVersion>;
}

/** Builds a version's policies, once, when the registry builds the version. */
export type PolicyFactory = (spec: VersionSpec) => VersionPolicies;

/** The policies of versions in a registry made without a factory (unit tests of routing): none, the backend called as it is. */
const NO_POLICIES: VersionPolicies = Object.freeze({ governor: null, admission: null, wrap: (base: VersionCall<ModelVersion>) => base });

/** What a registry needs besides the config: backend hooks, the observers, and how policies are composed. */
export interface RegistryContext extends Omit<BackendContext, 'modelName' | 'observer'> {
  /** The observer of each deployment (metrics); absent: nobody watches. */
  readonly observe?: (model: string, version: string) => DeploymentObserver;
  readonly log?: Logger;
  /**
   * Composes a version's policies (admission, retries and breaker, observation) from its config,
   * once when the config loads; absent: versions run without policies. The pipeline provides it
   * (pipeline/policies.ts).
   */
  readonly policies?: PolicyFactory;
  /** The registry this one replaces (a reload): versions whose backend config is unchanged keep its loaded backend. */
  readonly previous?: Registry;
}

/** Another model (and maybe version) to try when this one fails. */
export interface Fallback {
  readonly model: string;
  readonly version: string | undefined;
}

/** A served model: its versions (backends made, not loaded), aliases, fallbacks, and the pick of a version per call. */
export class Model {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly ownedBy: string;
  readonly created: number;
  readonly versions: ReadonlyMap<string, ModelVersion>;
  readonly defaultVersion: ModelVersion;
  readonly fallbacks: readonly Fallback[];
  /** The last-resort answer text for chat and completions; null: none. */
  readonly degradedText: string | null;
  /** Each backend's identity (model, version, backend config), for reuse across reloads. */
  readonly #backendKeys = new Map<Backend, string>();
  /** Backends taken over from a previous registry: already loaded. */
  readonly #reused = new Set<Backend>();
  /** Versions with weight > 0 and their cumulative weights, for the weighted pick; replaced whole when weights change. */
  #weighted: readonly ModelVersion[] = [];
  #cumulative: readonly number[] = [];
  #total = 0;
  /** Each version's weight in force: the config's, or an override (the fleet's). */
  #weights: ReadonlyMap<string, number> = new Map();

  constructor(config: ModelConfig, context: RegistryContext, created: number) {
    this.name = config.name;
    this.aliases = config.aliases;
    this.ownedBy = config.owned_by;
    this.created = created;
    this.fallbacks = config.fallbacks.map((f) => ({ model: f.model, version: f.version }));
    this.degradedText = config.degraded_response?.text ?? null;
    const versions = new Map<string, ModelVersion>();
    for (const v of config.versions) {
      const key = backendKey(config.name, v.version, v.backend);
      const reused = context.previous?.backendFor(key);
      const observer = context.observe?.(config.name, v.version) ?? NO_OBSERVER;
      const backend = reused ?? createBackend(v.backend, { ...context, modelName: config.name, observer });
      this.#backendKeys.set(backend, key);
      if (reused !== undefined) this.#reused.add(backend);
      const spec: VersionSpec = { model: config.name, version: v.version, kind: v.backend.kind, policies: v.policies, observer };
      const policies = context.policies?.(spec) ?? NO_POLICIES;
      const version: ModelVersion = {
        model: this,
        version: v.version,
        weight: v.weight,
        backend,
        kind: v.backend.kind,
        policies: v.policies,
        governor: policies.governor,
        admission: policies.admission,
        // Called only once `version` is made: the chain's innermost call gives the work its version.
        call: policies.wrap(function backendCall(work, ctx) {
          return work(version, ctx);
        }),
        observer,
        loadError: null,
      };
      versions.set(v.version, version);
    }
    this.versions = versions;
    this.defaultVersion = versions.get(config.default_version ?? (config.versions[0]?.version as string)) as ModelVersion;
    this.setWeights(new Map());
  }

  /**
   * The weights in force from now on: `overrides` by version (the fleet's cluster-wide settings),
   * the config file's for every version not in it. Versions this model lacks are ignored. The
   * pick's tables are rebuilt whole, so a call that is picking sees either the old or the new ones.
   */
  setWeights(overrides: ReadonlyMap<string, number>): void {
    const weights = new Map<string, number>();
    for (const v of this.versions.values()) weights.set(v.version, overrides.get(v.version) ?? v.weight);
    const weighted = [...this.versions.values()].filter((v) => (weights.get(v.version) as number) > 0);
    let sum = 0;
    const cumulative = weighted.map((v) => (sum += weights.get(v.version) as number));
    this.#weights = weights;
    this.#weighted = weighted;
    this.#cumulative = cumulative;
    this.#total = sum;
  }

  /** The weight in force of `version` (the config's, or an override's). */
  weightOf(version: string): number {
    return this.#weights.get(version) ?? 0;
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

  /** Backends by identity, and which of them came loaded from a previous registry. */
  get backends(): ReadonlyMap<Backend, string> {
    return this.#backendKeys;
  }

  isReused(backend: Backend): boolean {
    return this.#reused.has(backend);
  }

  /** Whether every version has loaded. */
  ready(): boolean {
    for (const v of this.versions.values()) if (!versionHealth(v).ready) return false;
    return true;
  }
}

/** The models of one config, by name and alias; a reload builds a new one and the gateway swaps to it. */
export class Registry {
  readonly models: readonly Model[];
  readonly #byName: ReadonlyMap<string, Model>;

  constructor(config: Config, context: RegistryContext = {}) {
    const created = Math.floor(Date.now() / 1000);
    this.models = config.models.map((m) => new Model(m, context, created));
    const byName = new Map<string, Model>();
    for (const model of this.models) for (const name of [model.name, ...model.aliases]) byName.set(name, model);
    this.#byName = byName;
  }

  /** Finds a model by name or alias; throws 404 model_not_found. */
  get(name: string): Model {
    const model = this.#byName.get(name);
    if (model === undefined) throw modelNotFound(name);
    return model;
  }

  /**
   * Loads every version (not those taken over loaded from a previous registry); a version that
   * fails stays not ready, with its error as the reason (503 `model_not_ready`, `/health/ready`),
   * and is reported; others still load.
   */
  async load(onError: (version: ModelVersion, error: Error) => void): Promise<void> {
    const all = this.models.flatMap((m) => [...m.versions.values()]).filter((v) => !v.model.isReused(v.backend));
    await Promise.all(
      all.map((v) =>
        v.backend.load().catch((err: Error) => {
          v.loadError = err instanceof Error ? err.message : String(err);
          onError(v, err);
        }),
      ),
    );
  }

  /** Versions that cannot serve and why: the reason their load failed, else null (still loading). */
  notReady(): Array<{ model: string; version: string; error: string | null }> {
    const out: Array<{ model: string; version: string; error: string | null }> = [];
    for (const m of this.models) {
      for (const v of m.versions.values()) {
        const health = versionHealth(v);
        if (!health.ready) out.push({ model: m.name, version: v.version, error: health.error });
      }
    }
    return out;
  }

  async unload(): Promise<void> {
    await Promise.all(this.models.flatMap((m) => [...m.versions.values()].map((v) => v.backend.unload())));
  }

  /** A loaded backend with this identity, for a registry that replaces this one. */
  backendFor(key: string): Backend | undefined {
    for (const model of this.models) {
      for (const v of model.versions.values()) if (model.backends.get(v.backend) === key && versionHealth(v).ready) return v.backend;
    }
    return undefined;
  }

  /** This registry's backends that `next` did not take over: to unload once their in-flight calls are done. */
  retiredBy(next: Registry): Backend[] {
    const kept = new Set(next.models.flatMap((m) => [...m.backends.keys()]));
    return this.models.flatMap((m) => [...m.backends.keys()]).filter((b) => !kept.has(b));
  }

  ready(): boolean {
    return this.models.every((m) => m.ready());
  }
}

/** A backend's identity: the same model, version and backend settings can keep the loaded backend. */
function backendKey(model: string, version: string, backend: unknown): string {
  return `${model}\u0000${version}\u0000${JSON.stringify(backend)}`;
}

/** Client-supplied names are echoed in errors; a long one is cut so an error never echoes a whole body. */
function clip(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}...` : text;
}

/** The 404 for a name no model has, or one the caller may not see (the two must read the same). */
export function modelNotFound(name: string): ApiError {
  return fastError('model_not_found', `model "${clip(name)}" does not exist`, 'model');
}
