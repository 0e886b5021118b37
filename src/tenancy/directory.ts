/**
 * The authenticate stage: every live key and its tenant, held in memory and looked up by the key's
 * hash, so a request costs one SHA-256 and one map lookup, and an unknown key never reaches the
 * database. The snapshot is reloaded after every change made through this process (before the
 * admin call answers), when told of a change elsewhere, and every `refresh_interval_ms`.
 */
import type { Logger } from 'pino';
import type { Model } from '../routing/registry.js';
import type { StoredKey, Tenant, TenantStore } from '../store/tenants.js';
import { fastError, type ApiError } from '../core/errors.js';
import { hashKey } from './keys.js';
import { modelMatcher } from './models.js';

/** Who is calling: a tenant and the key it used. */
export class Principal {
  readonly tenant: Tenant;
  readonly key: StoredKey;
  readonly #allows: (model: string) => boolean;

  constructor(tenant: Tenant, key: StoredKey) {
    this.tenant = tenant;
    this.key = key;
    this.#allows = modelMatcher(tenant.models);
  }

  /** Whether the tenant may use (and see) this model, by its name or any alias. */
  mayUse(model: Model): boolean {
    return this.#allows(model.name) || model.aliases.some(this.#allows);
  }
}

/** No key limits: a vouched-for key is the proxy's name for its caller, not a key an admin set limits on. */
const NO_LIMITS = Object.freeze({});

/** A tenant as `trusted_header` mode finds it, with the principal of each key id it was called with (up to VOUCHED_KEYS). */
interface VouchedTenant {
  readonly tenant: Tenant;
  readonly principals: Map<string, Principal>;
}

/** Key ids whose principal is kept per tenant; past it, each call with a new id makes its own. */
const VOUCHED_KEYS = 1024;

/**
 * Every live key's principal, in memory by key hash, and every tenant by id (for `trusted_header`
 * mode): `start` loads them and refreshes them on a timer until `stop`.
 */
export class Directory {
  readonly #store: TenantStore;
  readonly #log: Logger;
  #byHash = new Map<string, Principal>();
  #byTenant = new Map<string, VouchedTenant>();
  #timer: NodeJS.Timeout | null = null;
  #refreshing: Promise<void> | null = null;
  #again = false;

  constructor(store: TenantStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /** Loads the snapshot, then reloads it every `intervalMs`. */
  async start(intervalMs: number): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(
      () => void this.refresh().catch((err: unknown) => this.#log.warn({ err }, 'reloading tenants failed')),
      intervalMs,
    );
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
  }

  /** Reloads tenants and keys; calls that overlap share one reload that starts after the last of them. */
  refresh(): Promise<void> {
    if (this.#refreshing !== null) {
      this.#again = true;
      return this.#refreshing;
    }
    this.#refreshing = (async () => {
      try {
        do {
          this.#again = false;
          const { tenants, keys } = await this.#store.snapshot();
          const byId = new Map(tenants.map((t) => [t.id, t]));
          const next = new Map<string, Principal>();
          for (const key of keys) {
            const tenant = byId.get(key.tenant_id);
            if (tenant !== undefined) next.set(key.hash, new Principal(tenant, key));
          }
          this.#byHash = next;
          this.#byTenant = new Map(tenants.map((tenant) => [tenant.id, { tenant, principals: new Map() }]));
        } while (this.#again);
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  /**
   * The principal of a presented key, else 401. The lookup is by SHA-256 of the key: its timing can
   * reveal at most which hashes are near, and nothing about other keys' secrets.
   */
  authenticate(secret: string | null): Principal {
    if (secret === null) throw unauthorized('no API key; send Authorization: Bearer <key> or x-api-key');
    const principal = secret === '' ? undefined : this.#byHash.get(hashKey(secret));
    if (principal === undefined) throw unauthorized('the API key is not valid');
    return principal;
  }

  /**
   * The principal of a call that a trusted proxy says comes from tenant `tenantId` and key `keyId`
   * (`auth.mode: trusted_header`); null when no such tenant exists. The key is made up: its id is
   * the proxy's, and it has no limits of its own. Principals are kept per key id, so the limiter's
   * plan of a tenant's caller is made once, not per call.
   */
  vouchedFor(tenantId: string, keyId: string): Principal | null {
    const vouched = this.#byTenant.get(tenantId);
    if (vouched === undefined) return null;
    const known = vouched.principals.get(keyId);
    if (known !== undefined) return known;
    const { tenant, principals } = vouched;
    const key: StoredKey = {
      id: keyId,
      tenant_id: tenant.id,
      name: 'trusted header',
      prefix: '',
      limits: NO_LIMITS,
      created_at: 0,
      revoked_at: null,
      hash: '',
    };
    const principal = new Principal(tenant, key);
    if (principals.size < VOUCHED_KEYS) principals.set(keyId, principal);
    return principal;
  }
}

/** A 401 `invalid_api_key` error with this message, to throw. */
export function unauthorized(message: string): ApiError {
  return fastError('invalid_api_key', message);
}
