/**
 * Managing tenants and keys (the admin API and CLI call this): every change is written to the
 * database, then this process's authenticator reloads before the call returns (a revoked key stops
 * at once here), and every other process is told (`announce`: sibling workers through the cluster
 * primary, other replicas through Redis).
 */
import type { Limits } from '../config/schema.js';
import type { Priority } from '../scheduling/admission.js';
import type { ApiKey, Tenant, TenantStore } from '../store/tenants.js';
import type { Directory } from './directory.js';
import { generateKey } from './keys.js';

export interface TenantPatch {
  readonly models?: readonly string[];
  readonly priority?: Priority;
  readonly limits?: Limits;
}

/** A key as created or rotated: the secret is in this answer and nowhere else, ever. */
export interface IssuedKey extends ApiKey {
  readonly key: string;
}

export class TenantAdmin {
  readonly store: TenantStore;
  readonly #directory: Directory | null;
  readonly #announce: () => void;

  constructor(store: TenantStore, directory: Directory | null, announce: () => void) {
    this.store = store;
    this.#directory = directory;
    this.#announce = announce;
  }

  async createTenant(id: string, fields: { models: readonly string[]; priority: Priority; limits: Limits }): Promise<Tenant | null> {
    if (!(await this.store.create(id, fields))) return null;
    await this.#changed();
    return this.store.get(id);
  }

  async updateTenant(id: string, patch: TenantPatch): Promise<Tenant | null> {
    const current = await this.store.get(id);
    if (current === null) return null;
    await this.store.update(id, {
      models: patch.models ?? current.models,
      priority: patch.priority ?? current.priority,
      limits: patch.limits ?? current.limits,
    });
    await this.#changed();
    return this.store.get(id);
  }

  async deleteTenant(id: string): Promise<boolean> {
    const deleted = await this.store.delete(id);
    if (deleted) await this.#changed();
    return deleted;
  }

  /** Issues a key for a tenant; null when there is no such tenant. */
  async createKey(tenantId: string, name: string, limits: Limits): Promise<IssuedKey | null> {
    if ((await this.store.get(tenantId)) === null) return null;
    const { id, secret, hash, prefix } = generateKey();
    const key = { id, tenant_id: tenantId, name, prefix, limits, created_at: Date.now(), revoked_at: null };
    await this.store.addKey({ ...key, hash });
    await this.#changed();
    return { ...key, key: secret };
  }

  async revokeKey(id: string): Promise<ApiKey | null> {
    if (!(await this.store.revokeKey(id))) return null;
    await this.#changed();
    return this.store.key(id);
  }

  /** Replaces a live key with a new one (same tenant, name and limits); the old one stops at once. */
  async rotateKey(id: string): Promise<IssuedKey | null> {
    const old = await this.store.key(id);
    if (old === null || old.revoked_at !== null) return null;
    const { id: newId, secret, hash, prefix } = generateKey();
    const key = {
      id: newId,
      tenant_id: old.tenant_id,
      name: old.name,
      prefix,
      limits: old.limits,
      created_at: Date.now(),
      revoked_at: null,
    };
    if (!(await this.store.rotateKey(id, { ...key, hash }))) return null;
    await this.#changed();
    return { ...key, key: secret };
  }

  async #changed(): Promise<void> {
    await this.#directory?.refresh();
    this.#announce();
  }
}
