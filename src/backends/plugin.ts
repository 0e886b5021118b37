/**
 * The plug-in interface of a backend kind: everything the layers above need to know about a kind
 * (its config schema, how to make one, what it can do) in one object that its own folder exports.
 * config/, the registry, the policies and the KServe metadata read these objects and name no kind,
 * so a new kind is one folder with a plugin.ts plus one line in the list in ./index.ts.
 */
import type { Static, TObject } from '@sinclair/typebox';
import type { Task } from '../core/call.js';
import type { DeploymentObserver, GenerationObserver } from '../core/observer.js';
import type { Backend } from './backend.js';
import type { DiscoveryLog, EndpointSource, RegistryDiscovery } from './discovery.js';

/** What a backend gets besides its config, from the model version it serves. */
export interface BackendContext {
  /** The model's name, used upstream by remote backends unless configured otherwise. */
  readonly modelName: string;
  /** Told each model execution's size (and, by llama, each request shed for a full queue). */
  readonly observer?: DeploymentObserver;
  /** Told each finished generation's stats, by backends that generate in process. */
  readonly onGeneration?: GenerationObserver;
  /** Worker processes serving this config (each loads its own backends); in-process backends size their threads by it. */
  readonly workers?: number;
  /**
   * The fleet registry's instances of a model, as a live list, for remote versions configured with
   * `discovery.registry`; the cluster layer provides it when the config has a fleet store. Absent:
   * no fleet registry, and such a version fails to load saying so. The backend closes the source
   * it gets when it unloads.
   */
  readonly discover?: (spec: RegistryDiscovery) => EndpointSource;
  /** The server's logger, for what a backend reports as it runs (a DNS lookup that fails); absent: it says nothing. */
  readonly log?: DiscoveryLog;
}

/** What a kind can do, as the layers above it ask. */
export interface BackendCapabilities {
  /** Every task a backend of this kind can serve; one backend may serve fewer, as its config says (its `tasks`). */
  readonly tasks: ReadonlySet<Task>;
  /**
   * Whether it calls a server over the network: remote versions get retries and a circuit breaker
   * by default (a failure there is often a passing one of the network or of one replica), in-process
   * ones neither (retrying a model that failed in process fails again).
   */
  readonly remote: boolean;
  /** The `platform` of its models in KServe v2 model metadata. */
  readonly kservePlatform: string;
  /** The GenAI semantic conventions' `gen_ai.provider.name` of a remote kind's calls (traces); null for in-process kinds. */
  readonly provider: string | null;
}

/** A problem a kind's own rules find in a backend config; `path` is relative to the `backend` mapping ([] for the mapping itself). */
export interface BackendProblem {
  readonly path: ReadonlyArray<string | number>;
  readonly message: string;
}

/**
 * A backend kind. `schema` is a TypeBox object whose `kind` property is the literal `kind`; the
 * config is validated against it (defaults filled) before `check` and `create` see it.
 */
export interface BackendPlugin<K extends string = string, S extends TObject = TObject> {
  /** The `kind` a config names it by. */
  readonly kind: K;
  /** Its options, their defaults and descriptions; they also go into config/infergate.schema.json. */
  readonly schema: S;
  readonly capabilities: BackendCapabilities;
  /**
   * Options that name a file relative to the config file: made absolute when the config loads (so
   * the backend never depends on the working directory), and reported when no such file exists.
   * Top-level string options of `schema` (a test checks it); not typed by `schema`'s keys, which
   * would make plug-ins of different kinds unassignable to one list.
   */
  readonly files: readonly string[];
  /** Rules across its options that the schema cannot state (one of two options, say); absent: none. */
  check?(config: Static<S>): readonly BackendProblem[];
  /** A new backend for one model version, not loaded yet: the caller runs its `load()`. */
  create(config: Static<S>, context: BackendContext): Backend;
}

/** Declares a kind's plug-in (frozen); it exists so that `check` and `create` are typed by the kind's own schema. */
export function backendPlugin<const K extends string, S extends TObject>(plugin: BackendPlugin<K, S>): BackendPlugin<K, S> {
  return Object.freeze(plugin);
}
