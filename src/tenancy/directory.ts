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

/** Every live key's principal, in memory by key hash: `start` loads it and refreshes it on a timer until `stop`. */
export class Directory {
  readonly #store: TenantStore;
  readonly #log: Logger;
  #byHash = new Map<string, Principal>();
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
}

/** A 401 `invalid_api_key` error with this message, to throw. */
export function unauthorized(message: string): ApiError {
  return fastError('invalid_api_key', message);
}
