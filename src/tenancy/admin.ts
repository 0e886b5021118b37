/**
 * Managing tenants and keys (the admin API and CLI call this): every change is written to the
 * database, then this process's authenticator reloads, then every other live process is told
 * (`announce`: sibling workers through the cluster primary, or every worker of every replica
 * through Redis) and the call waits until each has reloaded too, up to the ack time-out. So when
 * a call returns, a revoked key is refused and a new one accepted everywhere, except in the
 * processes its answer names as unconfirmed.
 */
import type { Limits } from '../config/schema.js';
import type { Priority } from '../scheduling/admission.js';
import type { ApiKey, Tenant, TenantStore } from '../store/tenants.js';
import { fastError } from '../core/errors.js';
import type { Directory } from './directory.js';
import { generateKey } from './keys.js';
import { ANONYMOUS } from './tenancy.js';

/** A tenant update: a field left out keeps its current value. */
export interface TenantPatch {
  readonly models?: readonly string[];
  readonly priority?: Priority;
  readonly limits?: Limits;
}

/** A key as created or rotated: the secret is in this answer and nowhere else, ever. */
export interface IssuedKey extends ApiKey {
  readonly key: string;
}

/** A change's result, and the processes that did not confirm in time that they apply it (empty: all did). */
export interface Applied<T> {
  readonly result: T;
  readonly unconfirmed: readonly string[];
}

/** Tells the other processes of a change; resolves with those that did not confirm it in time. */
export type Announce = () => Promise<readonly string[]>;

/** Changes tenants and keys; each change resolves once it is in the database, applied here and, up to the ack time-out, everywhere. */
export class TenantAdmin {
  readonly store: TenantStore;
  readonly #directory: Directory | null;
  readonly #announce: Announce;

  constructor(store: TenantStore, directory: Directory | null, announce: Announce) {
    this.store = store;
    this.#directory = directory;
    this.#announce = announce;
  }

  /**
   * Null when the id is taken. The anonymous owner's id is refused (400): calls made while auth was
   * off are recorded, and their Responses stored, under it, so a tenant of that name would see them.
   */
  async createTenant(
    id: string,
    fields: { models: readonly string[]; priority: Priority; limits: Limits },
  ): Promise<Applied<Tenant> | null> {
    if (id === ANONYMOUS)
      throw fastError('invalid_request', `tenant id "${ANONYMOUS}" is reserved for calls made without authentication`, 'id');
    if (!(await this.store.create(id, fields))) return null;
    return this.#applied(await this.store.get(id));
  }

  async updateTenant(id: string, patch: TenantPatch): Promise<Applied<Tenant> | null> {
    const current = await this.store.get(id);
    if (current === null) return null;
    await this.store.update(id, {
      models: patch.models ?? current.models,
      priority: patch.priority ?? current.priority,
      limits: patch.limits ?? current.limits,
    });
    return this.#applied(await this.store.get(id));
  }

  /** Null when there is no such tenant. */
  async deleteTenant(id: string): Promise<Applied<string> | null> {
    return (await this.store.delete(id)) ? this.#applied(id) : null;
  }

  /** Issues a key for a tenant; null when there is no such tenant. */
  async createKey(tenantId: string, name: string, limits: Limits): Promise<Applied<IssuedKey> | null> {
    if ((await this.store.get(tenantId)) === null) return null;
    const { id, secret, hash, prefix } = generateKey();
    const key = { id, tenant_id: tenantId, name, prefix, limits, created_at: Date.now(), revoked_at: null };
    await this.store.addKey({ ...key, hash });
    return this.#applied({ ...key, key: secret });
  }

  /** Null when there is no such live key. */
  async revokeKey(id: string): Promise<Applied<ApiKey> | null> {
    if (!(await this.store.revokeKey(id))) return null;
    return this.#applied(await this.store.key(id));
  }

  /** Replaces a live key with a new one (same tenant, name and limits); the old one stops at once. */
  async rotateKey(id: string): Promise<Applied<IssuedKey> | null> {
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
    return this.#applied({ ...key, key: secret });
  }

  /** Applies a change made in the database here, then everywhere else; null (gone meanwhile) stays null. */
  async #applied<T>(result: T | null): Promise<Applied<T> | null> {
    await this.#directory?.refresh();
    const unconfirmed = await this.#announce();
    return result === null ? null : { result, unconfirmed };
  }
}
