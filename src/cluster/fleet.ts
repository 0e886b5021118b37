/**
 * One process's place in the fleet. Every worker of every replica is a member: it renews a record
 * in the shared store (its replica's id and addresses, the versions it serves with readiness, load
 * and rollout counters, and the weight overrides it has applied) under a lease, applies the
 * cluster-wide weight overrides as they change, feeds registry discovery from the other records,
 * and takes its turn at driving rollouts: one member holds each rollout's lease and moves it on.
 *
 * Keys (relative to the store's prefix): `members/<instance>/<member>` (leased), `external/<id>`
 * (leased, renewed by whoever registered it), `weights/<model>/<version>`, `rollouts/<model>`,
 * `leases/rollouts/<model>` (the driver) and `locks/rollouts/<model>` (a short lock around each
 * change of a rollout, so a person's pause and the driver's next step never overwrite each other).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DiscoveredEndpoint, EndpointSource, RegistryDiscovery } from '../backends/discovery.js';
import type { Config, RolloutPlan } from '../config/schema.js';
import { fastError } from '../core/errors.js';
import { addFigures, noFigures, type Figures } from '../core/figures.js';
import { versionHealth, type Model, type Registry } from '../routing/registry.js';
import { isFinished, judge, stepWeights, summarise, type RolloutState, type StepFigures } from '../routing/rollout.js';
import type { FleetStore } from './fleet-store.js';

/** One version as a member serves it. */
export interface MemberModel {
  readonly name: string;
  readonly version: string;
  readonly ready: boolean;
  /** The weight in force here. */
  readonly weight: number;
  readonly in_flight: number;
  readonly queued: number;
}

/** A histogram as stored: [bucket, count] pairs of the buckets that are not empty. */
type Packed = Array<[number, number]>;

/** A member's record in the store. */
export interface MemberRecord {
  readonly instance: string;
  readonly member: string;
  readonly pid: number;
  readonly url: string;
  readonly grpc: string | null;
  readonly labels: Readonly<Record<string, string>>;
  readonly software: string;
  readonly started_at: number;
  readonly renewed_at: number;
  readonly lease_ms: number;
  readonly models: readonly MemberModel[];
  /** `model/version` -> the id of the override applied (absent: none applied). */
  readonly applied: Readonly<Record<string, string>>;
  /** `model/version` -> counters since the member started. */
  readonly figures: Readonly<Record<string, { calls: number; faults: number; latency: Packed; ttft: Packed }>>;
}

/** A model server registered by someone else (`POST /admin/instances`, `infergate register`). */
export interface ExternalRecord {
  readonly id: string;
  readonly url: string;
  readonly grpc: string | null;
  readonly labels: Readonly<Record<string, string>>;
  readonly models: ReadonlyArray<{ readonly name: string; readonly version: string }>;
  readonly registered_at: number;
  readonly renewed_at: number;
  readonly ttl_ms: number;
}

/** A weight set through the admin API (or by a rollout), for every replica. */
export interface WeightOverride {
  readonly weight: number;
  readonly by: string;
  readonly at: number;
  /** This change, uniquely (`<at>-<random>`): what a member's record says it applied. */
  readonly id: string;
}

/** A rollout as stored and shown (`rollout` in GET /admin/models). */
export interface RolloutRecord {
  readonly id: string;
  readonly model: string;
  readonly version: string;
  readonly plan: RolloutPlan;
  readonly state: RolloutState;
  /** 1-based step. */
  readonly step: number;
  /** The canary's percent of unpinned traffic now. */
  readonly weight: number;
  readonly reason: string | null;
  /** The last analysis (of the step now, or of the one that decided the end). */
  readonly figures: StepFigures | null;
  readonly by: string;
  readonly started_at: number;
  readonly updated_at: number;
  readonly step_started_at: number;
  /** The member that drives it; null once it is over. */
  readonly driver: string | null;
  /** Counters per member when the step began: the step's figures are what was added since. */
  readonly baseline: Readonly<Record<string, { canary: Figures; stable: Figures }>>;
  readonly history: ReadonlyArray<{
    readonly at: number;
    readonly state: RolloutState;
    readonly step: number;
    readonly weight: number;
    readonly reason: string | null;
  }>;
}

/** A replica (its members merged) or an external server, as GET /admin/instances lists it. */
export interface InstanceView {
  readonly id: string;
  readonly kind: 'infergate' | 'external';
  readonly url: string;
  readonly grpc: string | null;
  readonly labels: Readonly<Record<string, string>>;
  readonly software: string | null;
  readonly workers: number;
  readonly models: ReadonlyArray<{
    name: string;
    version: string;
    ready: boolean;
    weight: number | null;
    in_flight: number;
    queued: number;
  }>;
  readonly started_at: string | null;
  /** Milliseconds since the lease was last renewed. */
  readonly lease_age_ms: number;
  readonly lease_ms: number;
}

/** One live member's counters summed over its versions, and its load, as its record last said (the dashboard's fleet figures). */
export interface MemberTotals {
  readonly instance: string;
  readonly member: string;
  /** When the member last renewed its record, epoch ms: the counters are as of then. */
  readonly renewed_at: number;
  readonly figures: Figures;
  readonly in_flight: number;
  readonly queued: number;
}

/** What a fleet member reads of its process. */
export interface FleetDeps {
  readonly store: FleetStore;
  /** Whether other replicas can see the store (Redis, etcd), as opposed to this process's memory. */
  readonly shared: boolean;
  /** Worker processes of this replica. */
  readonly workers: number;
  readonly config: Config;
  readonly log: Logger;
  /** This replica's id (every worker's the same). */
  readonly instance: string;
  readonly software: string;
  /** The registry in force (a reload swaps it). */
  readonly registry: () => Registry;
  /** Calls in flight and queued per version, now. */
  readonly load: () => ReadonlyArray<{ model: string; version: string; inFlight: number; queued: number }>;
  /** Each version's rollout counters; null without metrics (then no rollout can be judged here). */
  readonly figures: (() => ReadonlyArray<{ model: string; version: string; figures: Figures }>) | null;
  readonly now?: () => number;
}

const enc = encodeURIComponent;

/** How long a rollout's change lock is held at most (a holder that died frees it after this). */
const LOCK_MS = 15_000;

/** A person's action on a rollout. */
export type RolloutAction = 'pause' | 'resume' | 'abort' | 'promote';

/** A fleet member: registration, weights, discovery and rollouts for one process. */
export class Fleet {
  readonly member: string;
  readonly #deps: FleetDeps;
  readonly #store: FleetStore;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #started: number;
  readonly #applied = new Map<string, string>();
  readonly #sources = new Set<RegistrySource>();
  readonly #unwatch: Array<() => void> = [];
  #members: MemberRecord[] = [];
  #external: ExternalRecord[] = [];
  #rollouts = new Map<string, RolloutRecord>();
  /** The overrides as last read from the store. */
  #overridesRead = new Map<string, Map<string, WeightOverride>>();
  #timer: NodeJS.Timeout | null = null;
  #ticking = false;
  /** Whether the config's rollouts are still to be looked at (the store did not answer yet). */
  #configuredPending = true;
  #refreshTimer: NodeJS.Timeout | null = null;
  #refreshing: Promise<void> = Promise.resolve();
  /** The heartbeat in flight (or the last one). */
  #ticked: Promise<void> = Promise.resolve();
  #applying: Promise<void> | null = null;
  #reapply = false;
  #down = false;
  #stopped = false;
  /** How this replica is reached, known once it listens. */
  #url = '';
  #grpc: string | null = null;

  constructor(deps: FleetDeps) {
    this.#deps = deps;
    this.#store = deps.store;
    this.#log = deps.log;
    this.#now = deps.now ?? Date.now;
    this.#started = this.#now();
    this.member = `${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  get instance(): string {
    return this.#deps.instance;
  }

  get storeKind(): FleetStore['kind'] {
    return this.#store.kind;
  }

  /**
   * Applies the stored overrides and starts following the store (before the server listens, so its
   * first call has the fleet's weights). Rejects when the store cannot be reached; the heartbeat
   * tries again either way.
   */
  async start(): Promise<void> {
    this.#timer = setInterval(() => void this.#tick(), this.#deps.config.fleet.heartbeat_ms);
    this.#timer.unref();
    await this.#watch();
    await this.applyWeights();
    await this.#refreshInstances(true);
    await this.#refreshRollouts();
    await this.#startConfiguredRollouts();
  }

  /** Registers this replica as reached at `url` (and `grpc`), once it listens; renewed at each heartbeat from now on. */
  advertise(url: string, grpc: string | null): void {
    this.#url = url;
    this.#grpc = grpc;
    this.#publish().catch((err: unknown) => this.#outage(err));
  }

  /** Follows the store's changes (once): weights applied, rollouts and instances re-read as soon as they change. */
  async #watch(): Promise<void> {
    if (this.#unwatch.length > 0) return;
    const store = this.#store;
    const refresh = (): void => this.#refreshSoon();
    // All or none: a watch that failed is not left behind with its siblings running (they would pile up at each retry).
    const all = await Promise.allSettled([
      store.watch('weights/', () => void this.applyWeights()),
      store.watch('rollouts/', () => void this.#refreshRollouts()),
      store.watch('members/', (key) => key !== this.#memberKey() && refresh()),
      store.watch('external/', refresh),
    ]);
    const failed = all.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const started = all.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed !== undefined) {
      for (const u of started) u();
      throw failed.reason;
    }
    this.#unwatch.push(...started);
  }

  /** Leaves the registry (graceful shutdown): the record is deleted and the driver leases given up. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    if (this.#refreshTimer !== null) clearTimeout(this.#refreshTimer);
    for (const u of this.#unwatch) u();
    // A renewal in flight would put the record back after the delete: let it land first.
    await Promise.allSettled([this.#ticked, this.#applying]);
    for (const s of this.#sources) s.close();
    const store = this.#store;
    await Promise.allSettled([
      store.delete(this.#memberKey()),
      ...[...this.#rollouts.keys()].map((model) => store.release(`leases/rollouts/${enc(model)}`, this.member)),
    ]);
    await store.close().catch(() => undefined);
  }

  // ---- weights ---------------------------------------------------------------------------

  /** Reads every override and applies it to the registry in force; renews the record so acknowledgements show. */
  applyWeights(): Promise<void> {
    if (this.#applying !== null) {
      this.#reapply = true;
      return this.#applying;
    }
    this.#applying = (async () => {
      do {
        this.#reapply = false;
        try {
          this.#overridesRead = await this.#overrides();
          this.applyTo(this.#deps.registry());
          await this.#publish();
        } catch (err) {
          this.#outage(err);
        }
      } while (this.#reapply);
    })().finally(() => (this.#applying = null));
    return this.#applying;
  }

  /**
   * Applies the overrides read last to `registry`, at once: a reload's new registry serves its
   * first call with the fleet's weights, not the config file's.
   */
  applyTo(registry: Registry): void {
    this.#applied.clear();
    for (const model of registry.models) {
      const weights = new Map<string, number>();
      for (const [version, o] of this.#overridesRead.get(model.name) ?? []) {
        if (!model.versions.has(version)) continue;
        weights.set(version, o.weight);
        this.#applied.set(`${model.name}/${version}`, o.id ?? String(o.at));
      }
      model.setWeights(weights);
    }
  }

  /** Every override in the store, by model and version. */
  async #overrides(): Promise<Map<string, Map<string, WeightOverride>>> {
    const out = new Map<string, Map<string, WeightOverride>>();
    for (const { key, value } of await this.#store.list('weights/')) {
      const [, m, v] = key.split('/');
      const o = parse<WeightOverride>(value);
      if (m === undefined || v === undefined || o === null || typeof o.weight !== 'number') continue;
      const model = decodeURIComponent(m);
      let versions = out.get(model);
      if (versions === undefined) out.set(model, (versions = new Map()));
      versions.set(decodeURIComponent(v), o);
    }
    return out;
  }

  /**
   * Sets `version`'s weight on every replica (`weight` null: clears the override, the config's
   * weight again) and resolves once every live member applied it, or with those that did not
   * within the ack time-out (host:instance/member).
   */
  async setWeight(
    model: Model,
    version: string,
    weight: number | null,
    by: string,
  ): Promise<{ override: WeightOverride | null; unconfirmed: string[] }> {
    this.#needShared();
    const going = this.#rollouts.get(model.name);
    if (going !== undefined && !isFinished(going.state)) {
      throw fastError(
        'invalid_request',
        `model "${model.name}" has rollout ${going.id} ${going.state}: it sets the weights; abort or promote it first`,
        'weight',
      );
    }
    const key = `weights/${enc(model.name)}/${enc(version)}`;
    const at = this.#now();
    const override: WeightOverride | null = weight === null ? null : { weight, by, at, id: changeId(at) };
    try {
      if (override === null) await this.#store.delete(key);
      else await this.#store.put(key, JSON.stringify(override));
    } catch (err) {
      throw this.#unreachable(err);
    }
    await this.applyWeights();
    return { override, unconfirmed: await this.#acknowledged(`${model.name}/${version}`, override?.id ?? null, at) };
  }

  /**
   * Waits until every live member that serves `id` (model/version) says it applied override
   * `change` (null: that it has none), or one written after it (`at`): a change id of its own is
   * compared exactly, so a replica whose clock is ahead cannot confirm a change it has not seen.
   */
  async #acknowledged(id: string, change: string | null, at: number): Promise<string[]> {
    const applied = (seen: string | undefined): boolean =>
      change === null
        ? seen === undefined || Number.parseInt(seen, 10) > at
        : seen === change || (seen !== undefined && Number.parseInt(seen, 10) > at);
    const deadline = this.#now() + this.#deps.config.state.change_ack_timeout_ms;
    for (;;) {
      let pending: string[];
      try {
        const members = (await this.#store.list('members/')).map((e) => parse<MemberRecord>(e.value)).filter(isMember);
        // Only members that serve the version have anything to apply (a replica with other models never would).
        const [model, version] = [id.slice(0, id.lastIndexOf('/')), id.slice(id.lastIndexOf('/') + 1)];
        pending = members
          .filter((m) => m.models.some((v) => v.name === model && v.version === version))
          .filter((m) => !applied(m.applied[id]))
          .map((m) => `${m.instance}/${m.member}`);
      } catch {
        pending = ['*'];
      }
      if (pending.length === 0 || this.#now() >= deadline) return pending;
      await sleep(20);
    }
  }

  /** Where each version's weight comes from: the config file, or an override (who set it, when). */
  async weightSources(): Promise<Map<string, Map<string, WeightOverride>>> {
    try {
      return await this.#overrides();
    } catch (err) {
      throw this.#unreachable(err);
    }
  }

  // ---- the registry ----------------------------------------------------------------------

  /** Every live replica (members merged) and external server. */
  async instances(): Promise<InstanceView[]> {
    await this.#refreshInstances(true);
    const now = this.#now();
    const byInstance = new Map<string, MemberRecord[]>();
    for (const m of this.#members) {
      let list = byInstance.get(m.instance);
      if (list === undefined) byInstance.set(m.instance, (list = []));
      list.push(m);
    }
    const out: InstanceView[] = [];
    for (const [id, members] of byInstance) {
      const first = members[0] as MemberRecord;
      const models = new Map<
        string,
        { name: string; version: string; ready: boolean; weight: number | null; in_flight: number; queued: number }
      >();
      for (const m of members) {
        for (const v of m.models) {
          const key = `${v.name}/${v.version}`;
          const seen = models.get(key);
          if (seen === undefined) models.set(key, { ...v });
          else {
            seen.ready &&= v.ready;
            seen.in_flight += v.in_flight;
            seen.queued += v.queued;
          }
        }
      }
      out.push({
        id,
        kind: 'infergate',
        url: first.url,
        grpc: first.grpc,
        labels: first.labels,
        software: first.software,
        workers: members.length,
        models: [...models.values()],
        started_at: new Date(Math.min(...members.map((m) => m.started_at))).toISOString(),
        lease_age_ms: now - Math.max(...members.map((m) => m.renewed_at)),
        lease_ms: first.lease_ms,
      });
    }
    for (const e of this.#external) {
      out.push({
        id: e.id,
        kind: 'external',
        url: e.url,
        grpc: e.grpc,
        labels: e.labels,
        software: null,
        workers: 0,
        models: e.models.map((m) => ({ name: m.name, version: m.version, ready: true, weight: null, in_flight: 0, queued: 0 })),
        started_at: new Date(e.registered_at).toISOString(),
        lease_age_ms: now - e.renewed_at,
        lease_ms: e.ttl_ms,
      });
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Each live member's counters and load as last read from the store (no store call: the heartbeat re-reads it). */
  memberTotals(): MemberTotals[] {
    return this.#members.map((m) => {
      const figures = noFigures();
      for (const f of Object.values(m.figures ?? {})) addFigures(figures, unpackFigures(f));
      let inFlight = 0;
      let queued = 0;
      for (const v of m.models) {
        inFlight += v.in_flight;
        queued += v.queued;
      }
      return { instance: m.instance, member: m.member, renewed_at: m.renewed_at, figures, in_flight: inFlight, queued };
    });
  }

  /** Registers (or renews) an external model server for `ttlMs`. */
  async register(entry: Omit<ExternalRecord, 'registered_at' | 'renewed_at'>): Promise<ExternalRecord> {
    this.#needShared();
    const key = `external/${enc(entry.id)}`;
    try {
      const before = parse<ExternalRecord>((await this.#store.get(key)) ?? '');
      const now = this.#now();
      const record: ExternalRecord = { ...entry, registered_at: before?.registered_at ?? now, renewed_at: now };
      await this.#store.put(key, JSON.stringify(record), entry.ttl_ms);
      await this.#refreshInstances(true);
      return record;
    } catch (err) {
      throw this.#unreachable(err);
    }
  }

  /** Removes an external server; false if there was none of that id. */
  async deregister(id: string): Promise<boolean> {
    const key = `external/${enc(id)}`;
    try {
      if ((await this.#store.get(key)) === null) return false;
      await this.#store.delete(key);
      await this.#refreshInstances(true);
      return true;
    } catch (err) {
      throw this.#unreachable(err);
    }
  }

  /** Readiness of each version on each live replica, for GET /admin/models. */
  replicasOf(model: string, version: string): Array<{ instance: string; ready: boolean; weight: number | null }> {
    const out = new Map<string, { instance: string; ready: boolean; weight: number | null }>();
    for (const m of this.#members) {
      const v = m.models.find((x) => x.name === model && x.version === version);
      if (v === undefined) continue;
      const seen = out.get(m.instance);
      if (seen === undefined) out.set(m.instance, { instance: m.instance, ready: v.ready, weight: v.weight });
      else seen.ready &&= v.ready;
    }
    for (const e of this.#external) {
      if (e.models.some((x) => x.name === model && x.version === version)) out.set(e.id, { instance: e.id, ready: true, weight: null });
    }
    return [...out.values()];
  }

  /** A live list of the instances that serve `spec.model` (and version, pool): registry discovery for a remote version. */
  discover(spec: RegistryDiscovery): EndpointSource {
    const source = new RegistrySource(spec, this.#deps.instance, () => this.#sources.delete(source));
    this.#sources.add(source);
    source.update(this.#members, this.#external);
    return source;
  }

  /**
   * A re-read of the registry soon, for a change the feed told of: one at a time, and the changes
   * of 100 ms (every member's renewals among them) read together, so N members do not read N times each.
   */
  #refreshSoon(): void {
    if (this.#refreshTimer !== null) return;
    this.#refreshTimer = setTimeout(() => {
      void this.#refreshing.then(() => {
        this.#refreshTimer = null;
        this.#refreshing = this.#refreshInstances();
      });
    }, 100);
    this.#refreshTimer.unref();
  }

  async #refreshInstances(strict = false): Promise<void> {
    try {
      const [members, external] = await Promise.all([this.#store.list('members/'), this.#store.list('external/')]);
      this.#members = members.map((e) => parse<MemberRecord>(e.value)).filter(isMember);
      this.#external = external
        .map((e) => parse<ExternalRecord>(e.value))
        .filter((e): e is ExternalRecord => e !== null && typeof e.url === 'string');
      for (const s of this.#sources) s.update(this.#members, this.#external);
    } catch (err) {
      if (strict) throw this.#unreachable(err);
      this.#outage(err);
    }
  }

  /** Writes this member's record, renewing its lease. */
  async #publish(): Promise<void> {
    if (this.#stopped || this.#url === '') return;
    const record = this.#record();
    await this.#store.put(this.#memberKey(), JSON.stringify(record), this.#deps.config.fleet.lease_ms);
    if (this.#down) {
      this.#down = false;
      this.#log.info('fleet store reachable again');
    }
  }

  /** This member's record as of now. */
  #record(): MemberRecord {
    const registry = this.#deps.registry();
    const load = new Map(this.#deps.load().map((l) => [`${l.model}/${l.version}`, l]));
    const models: MemberModel[] = [];
    for (const model of registry.models) {
      for (const v of model.versions.values()) {
        const l = load.get(`${model.name}/${v.version}`);
        models.push({
          name: model.name,
          version: v.version,
          ready: versionHealth(v).ready,
          weight: model.weightOf(v.version),
          in_flight: l?.inFlight ?? 0,
          queued: l?.queued ?? 0,
        });
      }
    }
    const figures: Record<string, { calls: number; faults: number; latency: Packed; ttft: Packed }> = {};
    for (const f of this.#deps.figures?.() ?? []) {
      if (f.figures.calls === 0) continue;
      figures[`${f.model}/${f.version}`] = {
        calls: f.figures.calls,
        faults: f.figures.faults,
        latency: pack(f.figures.latency),
        ttft: pack(f.figures.ttft),
      };
    }
    const fleet = this.#deps.config.fleet;
    const record: MemberRecord = {
      instance: this.#deps.instance,
      member: this.member,
      pid: process.pid,
      url: this.#url,
      grpc: this.#grpc,
      labels: fleet.labels,
      software: this.#deps.software,
      started_at: this.#started,
      renewed_at: this.#now(),
      lease_ms: fleet.lease_ms,
      models,
      applied: Object.fromEntries(this.#applied),
      figures,
    };
    return record;
  }

  #memberKey(): string {
    return `members/${enc(this.#deps.instance)}/${this.member}`;
  }

  // ---- rollouts ----------------------------------------------------------------------------

  /** The rollout of each model this member knows of (the latest per model). */
  rollouts(): ReadonlyMap<string, RolloutRecord> {
    return this.#rollouts;
  }

  async #refreshRollouts(): Promise<void> {
    try {
      const next = new Map<string, RolloutRecord>();
      for (const { value } of await this.#store.list('rollouts/')) {
        const r = parse<RolloutRecord>(value);
        if (r !== null && typeof r.model === 'string') next.set(r.model, r);
      }
      this.#rollouts = next;
    } catch (err) {
      this.#outage(err);
    }
  }

  /** Starts a rollout of `plan.version` on `model` (replacing a finished one); 409-like error if one is going. */
  /** `marker`: a key written with the rollout, under the same lock (a configured plan's: it ran). */
  async startRollout(
    model: Model,
    plan: RolloutPlan,
    by: string,
    id: string = `r-${randomUUID().slice(0, 8)}`,
    marker?: string,
  ): Promise<RolloutRecord> {
    this.#needShared();
    if (this.#deps.figures === null) {
      throw fastError('invalid_request', 'rollouts compare figures that come from metrics: set metrics.enabled: true', 'version');
    }
    return this.#locked(model.name, async () => {
      // Under the lock: of replicas starting a configured plan together, one does.
      if (marker !== undefined && (await this.#store.get(marker)) !== null) {
        throw fastError('invalid_request', `the configured rollout ${id} of "${model.name}" already ran`, 'version');
      }
      const current = await this.#read(model.name);
      if (current !== null && !isFinished(current.state)) {
        throw fastError(
          'invalid_request',
          `model "${model.name}" already has rollout ${current.id} of version "${current.version}" (${current.state}); abort it first`,
          'version',
        );
      }
      const now = this.#now();
      const weight = plan.steps[0] as number;
      const record: RolloutRecord = {
        id,
        model: model.name,
        version: plan.version,
        plan,
        state: 'running',
        step: 1,
        weight,
        reason: null,
        figures: null,
        by,
        started_at: now,
        updated_at: now,
        step_started_at: now,
        driver: null,
        baseline: await this.#baseline(model, plan.version),
        history: [{ at: now, state: 'running', step: 1, weight, reason: null }],
      };
      await this.#setRolloutWeights(model, plan.version, weight, `rollout ${id}`);
      await this.#write(record);
      if (marker !== undefined) await this.#store.put(marker, JSON.stringify({ id, at: now }));
      this.#log.info({ model: model.name, version: plan.version, rollout: id, weight }, 'rollout started');
      void this.#notify(record);
      return record;
    });
  }

  /** A person's action on rollout `id` of `model`. */
  async act(model: Model, id: string, action: RolloutAction, by: string): Promise<RolloutRecord> {
    this.#needShared();
    return this.#locked(model.name, async () => {
      const r = await this.#read(model.name);
      if (r === null || r.id !== id) throw fastError('not_found', `model "${model.name}" has no rollout "${id.slice(0, 80)}"`);
      const now = this.#now();
      const allowed: Record<RolloutAction, readonly RolloutState[]> = {
        pause: ['running'],
        resume: ['paused'],
        abort: ['running', 'paused'],
        promote: ['running', 'paused'],
      };
      if (!allowed[action].includes(r.state)) {
        throw fastError(
          'invalid_request',
          `rollout ${id} is ${r.state}: it cannot ${action} (only when ${allowed[action].join(' or ')})`,
          'action',
        );
      }
      let next: RolloutRecord;
      const reason = `${action} by ${by}`;
      if (action === 'pause') next = this.#moved(r, { state: 'paused', reason }, now);
      else if (action === 'resume') {
        next = this.#moved(r, { state: 'running', reason, step_started_at: now, baseline: await this.#baseline(model, r.version) }, now);
      } else if (action === 'abort') {
        await this.#setRolloutWeights(model, r.version, 0, `rollout ${id} (aborted)`);
        next = this.#moved(r, { state: 'aborted', weight: 0, reason, driver: null }, now);
      } else {
        await this.#setRolloutWeights(model, r.version, 100, `rollout ${id} (promoted)`);
        next = this.#moved(r, { state: 'promoted', weight: 100, reason, driver: null }, now);
      }
      await this.#write(next);
      this.#log.info({ model: model.name, rollout: id, state: next.state, by }, `rollout ${action}`);
      void this.#notify(next);
      return next;
    });
  }

  /** Rollouts in the config file (`rollout:` of a model) that have not run yet start now, once across the fleet. */
  /**
   * Rollouts in the config file (`rollout:` of a model) start once across the fleet: a marker in
   * the store (`rollouts-started/<model>/<plan id>`) says a plan already ran, whatever came after
   * it. Tried at start and at each heartbeat until the store answered.
   */
  async #startConfiguredRollouts(): Promise<void> {
    if (!this.#configuredPending) return;
    if (!this.#deps.shared && this.#deps.workers > 1) {
      this.#configuredPending = false;
      return;
    }
    const registry = this.#deps.registry();
    for (const m of this.#deps.config.models) {
      if (m.rollout === undefined || !registry.models.some((x) => x.name === m.name)) continue;
      const id = `cfg-${createHash('sha256')
        .update(JSON.stringify([m.name, m.rollout]))
        .digest('hex')
        .slice(0, 10)}`;
      const marker = `rollouts-started/${enc(m.name)}/${id}`;
      if ((await this.#store.get(marker)) !== null) continue;
      try {
        await this.startRollout(registry.get(m.name), m.rollout, 'config', id, marker);
      } catch (err) {
        // One is going (started by a person, or by another replica a moment ago): not this one's to start.
        this.#log.warn({ err: (err as Error).message, model: m.name }, 'the configured rollout did not start');
      }
    }
    this.#configuredPending = false;
    await this.#refreshRollouts();
  }

  /** One heartbeat: apply the weights and renew, re-read the fleet, drive rollouts. */
  #tick(): Promise<void> {
    if (this.#ticking || this.#stopped) return this.#ticked;
    this.#ticked = this.#beat();
    return this.#ticked;
  }

  async #beat(): Promise<void> {
    this.#ticking = true;
    try {
      // Read every heartbeat, not only when the feed says: a change missed while the feed was down (or a reload's new registry) is applied now. Renews the record too.
      await this.#watch();
      await this.applyWeights();
      await this.#refreshInstances();
      await this.#refreshRollouts();
      await this.#startConfiguredRollouts();
      for (const r of this.#rollouts.values()) if (r.state === 'running') await this.#drive(r.model);
    } catch (err) {
      this.#outage(err);
    } finally {
      this.#ticking = false;
    }
  }

  /** Moves one rollout on, if this member holds (or takes) its driver lease. */
  async #drive(modelName: string): Promise<void> {
    const store = this.#store;
    const lease = `leases/rollouts/${enc(modelName)}`;
    // A member that does not serve the model leaves the lease to one that does (it could never drive it).
    const model = this.#deps.registry().models.find((m) => m.name === modelName);
    if (model === undefined) return;
    if (!(await store.acquire(lease, this.member, this.#deps.config.fleet.lease_ms))) return;
    await this.#locked(modelName, async () => {
      const r = await this.#read(modelName);
      if (r === null || r.state !== 'running') {
        await store.release(lease, this.member);
        return;
      }
      const now = this.#now();
      if (now - r.updated_at < r.plan.interval_seconds * 1000 - 50 && r.driver === this.member) return;
      if (r.driver !== this.member && r.driver !== null) {
        this.#log.info({ model: modelName, rollout: r.id, from: r.driver }, 'taking over a rollout whose driver is gone');
      }
      const figures = this.#stepFigures(model, r, now);
      const verdict = judge(r.plan, figures);
      let next: RolloutRecord;
      if (verdict.kind === 'fail') {
        await this.#setRolloutWeights(model, r.version, 0, `rollout ${r.id} (rolled back)`);
        next = this.#moved(r, { state: 'rolled_back', weight: 0, reason: verdict.reason, figures, driver: null }, now);
        this.#log.error({ model: modelName, version: r.version, rollout: r.id, reason: verdict.reason, figures }, 'rollout rolled back');
      } else if (verdict.kind === 'next' && r.step >= r.plan.steps.length) {
        await this.#setRolloutWeights(model, r.version, 100, `rollout ${r.id} (promoted)`);
        next = this.#moved(r, { state: 'promoted', weight: 100, reason: 'every step passed its gates', figures, driver: null }, now);
        this.#log.info({ model: modelName, version: r.version, rollout: r.id }, 'rollout promoted');
      } else if (verdict.kind === 'next') {
        const weight = r.plan.steps[r.step] as number;
        await this.#setRolloutWeights(model, r.version, weight, `rollout ${r.id}`);
        next = this.#moved(
          r,
          {
            step: r.step + 1,
            weight,
            figures,
            step_started_at: now,
            baseline: await this.#baseline(model, r.version),
            driver: this.member,
            reason: null,
          },
          now,
        );
        this.#log.info({ model: modelName, rollout: r.id, step: next.step, weight }, 'rollout step passed');
      } else {
        // Only the figures change: no history entry.
        await this.#write({ ...r, figures, updated_at: now, driver: this.member });
        return;
      }
      await this.#write(next);
      void this.#notify(next);
      if (isFinished(next.state)) await store.release(lease, this.member);
    });
  }

  /** A rollout moved to a new state or step, with a history entry. */
  #moved(r: RolloutRecord, change: Partial<RolloutRecord>, now: number): RolloutRecord {
    const next = { ...r, ...change, updated_at: now };
    const history = [...r.history, { at: now, state: next.state, step: next.step, weight: next.weight, reason: next.reason }].slice(-50);
    return { ...next, history };
  }

  /** Sums, per member, of the canary's counters and of the other versions' together. */
  #sums(model: Model, canary: string): Map<string, { canary: Figures; stable: Figures }> {
    const out = new Map<string, { canary: Figures; stable: Figures }>();
    for (const m of this.#members) {
      const sides = { canary: noFigures(), stable: noFigures() };
      for (const v of model.versions.keys()) {
        const f = m.figures[`${model.name}/${v}`];
        if (f === undefined) continue;
        addFigures(v === canary ? sides.canary : sides.stable, unpackFigures(f));
      }
      out.set(`${m.instance}/${m.member}`, sides);
    }
    return out;
  }

  /** The counters now, per member: a new step's baseline. Fresh records first, so the baseline is as of now. */
  async #baseline(model: Model, canary: string): Promise<Record<string, { canary: Figures; stable: Figures }>> {
    await this.#publish();
    await this.#refreshInstances();
    return Object.fromEntries(this.#sums(model, canary));
  }

  /** The step's figures: what every live member counted since the step began. */
  #stepFigures(model: Model, r: RolloutRecord, now: number): StepFigures {
    const canary = noFigures();
    const stable = noFigures();
    for (const [member, sides] of this.#sums(model, r.version)) {
      const base = r.baseline[member];
      addFigures(canary, sides.canary);
      addFigures(stable, sides.stable);
      if (base !== undefined) {
        addFigures(canary, base.canary, -1);
        addFigures(stable, base.stable, -1);
      }
    }
    return { canary: summarise(canary), stable: summarise(stable), elapsed_s: Math.round((now - r.step_started_at) / 100) / 10 };
  }

  /** Writes the overrides that give the canary `percent` and the other versions the rest as the config shares it. */
  async #setRolloutWeights(model: Model, canary: string, percent: number, by: string): Promise<void> {
    const configured = new Map([...model.versions.values()].map((v) => [v.version, v.weight]));
    const at = this.#now();
    const weights = stepWeights(canary, percent, configured, model.defaultVersion.version);
    await Promise.all(
      [...weights].map(([version, weight]) =>
        this.#store.put(
          `weights/${enc(model.name)}/${enc(version)}`,
          JSON.stringify({ weight, by, at, id: changeId(at) } satisfies WeightOverride),
        ),
      ),
    );
    await this.applyWeights();
  }

  async #read(model: string): Promise<RolloutRecord | null> {
    return parse<RolloutRecord>((await this.#store.get(`rollouts/${enc(model)}`)) ?? '');
  }

  async #write(r: RolloutRecord): Promise<void> {
    await this.#store.put(`rollouts/${enc(r.model)}`, JSON.stringify(r));
    this.#rollouts.set(r.model, r);
  }

  /** Runs `change` holding the rollout's lock, so two changes of one rollout never interleave. */
  async #locked<T>(model: string, change: () => Promise<T>): Promise<T> {
    const key = `locks/rollouts/${enc(model)}`;
    const holder = `${this.member}-${randomBytes(3).toString('hex')}`;
    const deadline = this.#now() + 5000;
    try {
      // Backing off: in etcd each try is a lease granted and revoked.
      for (let wait = 10; !(await this.#store.acquire(key, holder, LOCK_MS)); wait = Math.min(200, wait * 2)) {
        if (this.#now() > deadline)
          throw fastError('fleet_unavailable', `the rollout of "${model}" is being changed by another replica; try again`);
        await sleep(wait);
      }
    } catch (err) {
      throw this.#unreachable(err);
    }
    try {
      return await change();
    } catch (err) {
      throw this.#unreachable(err);
    } finally {
      await this.#store.release(key, holder).catch(() => undefined);
    }
  }

  /** POSTs the rollout's new state to its webhook, if it has one; failures are logged, never thrown. */
  async #notify(r: RolloutRecord): Promise<void> {
    const url = r.plan.webhook_url;
    if (url === undefined) return;
    const event = { event: `rollout.${r.state}`, rollout: publicRollout(r) };
    try {
      // undici loads on a rollout's first webhook, not with the fleet (see backends/upstream-call.ts).
      const { request } = await import('undici');
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(event),
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      await res.body.dump();
      if (res.statusCode >= 300) this.#log.warn({ url, status: res.statusCode, rollout: r.id }, 'rollout webhook answered an error');
    } catch (err) {
      this.#log.warn({ url, err: (err as Error).message, rollout: r.id }, 'rollout webhook could not be reached');
    }
  }

  // ---- errors ------------------------------------------------------------------------------

  /** Changes that other processes must apply need a store they share, unless this process is alone. */
  #needShared(): void {
    if (!this.#deps.shared && this.#deps.workers > 1) {
      throw fastError(
        'fleet_unavailable',
        `this server runs ${this.#deps.workers} workers without a shared store: set state.redis_url or fleet.etcd_url for cluster-wide weights and rollouts`,
      );
    }
  }

  #unreachable(err: unknown): Error {
    if (err instanceof Error && 'code' in err && (err as { status?: unknown }).status !== undefined) return err;
    this.#outage(err);
    return fastError(
      'fleet_unavailable',
      `the fleet store (${this.#store.kind}) cannot be reached: ${(err as Error).message ?? String(err)}`,
    );
  }

  #outage(err: unknown): void {
    if (this.#down) return;
    this.#down = true;
    this.#log.error(
      { err: (err as Error).message ?? String(err), store: this.#store.kind },
      'fleet store unreachable: registry, weights and rollouts are stale until it is back',
    );
  }
}

/** A rollout as the API shows it: without the per-member baseline. */
export function publicRollout(r: RolloutRecord): Omit<RolloutRecord, 'baseline'> {
  const { baseline: _baseline, ...rest } = r;
  return rest;
}

/** Registry discovery: the live instances serving a model (version, pool), as endpoints of a remote version. */
class RegistrySource implements EndpointSource {
  readonly #spec: RegistryDiscovery;
  readonly #self: string;
  readonly #closed: () => void;
  readonly #listeners: Array<(list: readonly DiscoveredEndpoint[]) => void> = [];
  #list: readonly DiscoveredEndpoint[] = [];
  #signature = '';

  constructor(spec: RegistryDiscovery, self: string, closed: () => void) {
    this.#spec = spec;
    this.#self = self;
    this.#closed = closed;
  }

  current(): readonly DiscoveredEndpoint[] {
    return this.#list;
  }

  onChange(listener: (list: readonly DiscoveredEndpoint[]) => void): void {
    this.#listeners.push(listener);
  }

  close(): void {
    this.#listeners.length = 0;
    this.#closed();
  }

  /** Recomputes the list from the fleet's records; listeners hear of it only when it differs. */
  update(members: readonly MemberRecord[], external: readonly ExternalRecord[]): void {
    const spec = this.#spec;
    const byUrl = new Map<string, { url: string; weight: number; pool: string | null; load: number }>();
    const matches = (name: string, version: string): boolean =>
      name === spec.model && (spec.version === undefined || version === spec.version);
    const pooled = (labels: Readonly<Record<string, string>>): boolean => spec.pool === undefined || labels.pool === spec.pool;
    for (const m of members) {
      // A replica never discovers itself: a call to it from it would go round.
      if (m.instance === this.#self || !pooled(m.labels)) continue;
      const served = m.models.filter((v) => matches(v.name, v.version) && v.ready);
      if (served.length === 0) continue;
      const url = m.url.replace(/\/+$/, '') + spec.path;
      const load = served.reduce((n, v) => n + v.in_flight + v.queued, 0);
      const seen = byUrl.get(url);
      if (seen === undefined) byUrl.set(url, { url, weight: 1, pool: m.labels.pool ?? null, load });
      else seen.load += load;
    }
    for (const e of external) {
      if (!pooled(e.labels) || !e.models.some((v) => matches(v.name, v.version))) continue;
      const url = e.url.replace(/\/+$/, '') + spec.path;
      if (!byUrl.has(url)) byUrl.set(url, { url, weight: 1, pool: e.labels.pool ?? null, load: 0 });
    }
    const list = [...byUrl.values()].sort((a, b) => a.url.localeCompare(b.url));
    this.#list = list;
    // Load is part of it: balancing counts each endpoint's reported calls in flight, kept in place by Endpoints.replace.
    const signature = list.map((e) => `${e.url} ${e.pool ?? ''} ${e.load}`).join('\n');
    if (signature === this.#signature) return;
    this.#signature = signature;
    for (const l of this.#listeners) l(list);
  }
}

function pack(counts: readonly number[]): Packed {
  const out: Packed = [];
  counts.forEach((c, i) => {
    if (c !== 0) out.push([i, c]);
  });
  return out;
}

function unpack(packed: Packed | undefined): number[] {
  const out = noFigures().latency;
  for (const [i, c] of packed ?? []) if (i >= 0 && i < out.length) out[i] = c;
  return out;
}

function unpackFigures(f: { calls: number; faults: number; latency: Packed; ttft: Packed }): Figures {
  return { calls: f.calls, faults: f.faults, latency: unpack(f.latency), ttft: unpack(f.ttft) };
}

function isMember(m: MemberRecord | null): m is MemberRecord {
  return m !== null && typeof m.instance === 'string' && Array.isArray(m.models);
}

function parse<T>(text: string): T | null {
  if (text === '') return null;
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

/** A change's id: when it was made, and a random part that makes it unique. */
function changeId(at: number): string {
  return `${at}-${randomBytes(4).toString('hex')}`;
}
