/**
 * Where a remote version's replicas come from when they are not listed in the config: an
 * {@link EndpointSource} that says the current list and tells when it changes. Two kinds:
 * the fleet registry (instances that registered themselves; the cluster layer implements it and
 * hands it down through the backend context, as `discover`), and DNS (A, AAAA or SRV records of
 * one name, re-resolved as their TTL says), here. Upstreams (./upstreams.ts) follows the list
 * without a reload.
 */
import { Resolver } from 'node:dns/promises';
import type { Logger } from 'pino';

/** One replica as a source reports it. */
export interface DiscoveredEndpoint {
  /** Its base URL, as `base_url` would be (the API root, e.g. http://10.0.0.6:8000/v1). */
  readonly url: string;
  /** Share of calls with `balance: weighted` (at least 1). */
  readonly weight: number;
  /** The pool it belongs to (`pools.prefer` places calls by it); null: none. */
  readonly pool: string | null;
  /** Calls in flight the endpoint last reported (over every gateway that calls it); 0: unknown. */
  readonly load: number;
}

/**
 * A live list of endpoints. `current()` is the list now (empty until the first answer, or when
 * nothing is there); `onChange` listeners get each new list, and only when it differs; `close()`
 * stops whatever keeps it current (timers, watches). `ready()`, where a source has it, resolves once
 * its first answer is in (whatever it says) and never rejects: a version waits for it as it loads,
 * so that it is not reported as lacking endpoints before anyone looked.
 */
export interface EndpointSource {
  current(): readonly DiscoveredEndpoint[];
  onChange(listener: (list: readonly DiscoveredEndpoint[]) => void): void;
  close(): void;
  ready?(): Promise<void>;
}

/** `discovery.registry`: instances of a model in the fleet registry, as the config gives it (defaults filled). */
export interface RegistryDiscovery {
  /** The model the instances serve, as they registered it. */
  readonly model: string;
  /** Only instances of this version; absent: any. */
  readonly version?: string | undefined;
  /** Only instances in this pool; absent: any. */
  readonly pool?: string | undefined;
  /** Appended by the source to each instance's URL to make its `url` (a base URL), e.g. `/v1`; '' for none. */
  readonly path: string;
}

/** `discovery.dns`: the records of one name, as the config gives it (defaults filled). */
export interface DnsDiscovery {
  readonly name: string;
  readonly type: 'A' | 'AAAA' | 'SRV';
  readonly scheme: 'http' | 'https';
  /** The upstreams' port; required for A and AAAA (SRV records give theirs). */
  readonly port?: number | undefined;
  /** Appended to each address to make the base URL, e.g. `/v1`. */
  readonly path: string;
  /** DNS servers as `ip:port` (or `ip`); absent: the system's. */
  readonly servers?: readonly string[] | undefined;
  /** Longest time between two lookups, in ms. */
  readonly refresh_ms: number;
}

/** Where DNS discovery warns of failed lookups: the server's logger, or nothing. */
export type DiscoveryLog = Pick<Logger, 'warn'>;

/** Answers that say the name has no such records now (NXDOMAIN, or no records of the type): an empty list, not a failure. */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA', 'NOTFOUND', 'NODATA']);

/** The shortest wait between lookups that a small TTL (or 0) may ask for, in ms. */
const MIN_TTL_MS = 1_000;

/** How long one lookup may take: c-ares' per-try time-out (ms) and tries, well under its defaults (5 s, 4 tries) so a dead server does not hold a load for 20 s. */
const LOOKUP = { timeout: 2_000, tries: 2 } as const;

/**
 * DNS discovery: resolves `spec.name` now and again as its records' TTL says (A, AAAA:
 * min(ttl, `refresh_ms`), no sooner than 1 s unless `refresh_ms` is lower; SRV, whose TTL Node's
 * resolver does not give: every `refresh_ms`). A failed lookup (time-out, refused, SERVFAIL)
 * keeps the last list, warned once per streak of failures; an answer that the name has no records
 * (NXDOMAIN, NODATA) empties it. SRV: the records of the lowest priority only (RFC 2782: the
 * others are backups), weighted by their weight (at least 1); each target is then connected to
 * by name. Timers are unref'd: the source never keeps the process alive.
 */
export class DnsSource implements EndpointSource {
  readonly #spec: DnsDiscovery;
  readonly #resolver: Resolver;
  readonly #log: DiscoveryLog | null;
  readonly #listeners: Array<(list: readonly DiscoveredEndpoint[]) => void> = [];
  readonly #first: Promise<void>;
  #list: readonly DiscoveredEndpoint[] = [];
  #key = '';
  #timer: NodeJS.Timeout | null = null;
  #failing = false;
  #closed = false;

  /** Starts the first lookup at once. */
  constructor(spec: DnsDiscovery, log: DiscoveryLog | null = null) {
    this.#spec = spec;
    this.#log = log;
    this.#resolver = new Resolver(LOOKUP);
    if (spec.servers !== undefined && spec.servers.length > 0) this.#resolver.setServers([...spec.servers]);
    this.#first = this.#refresh();
  }

  current(): readonly DiscoveredEndpoint[] {
    return this.#list;
  }

  onChange(listener: (list: readonly DiscoveredEndpoint[]) => void): void {
    this.#listeners.push(listener);
  }

  ready(): Promise<void> {
    return this.#first;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#resolver.cancel();
  }

  /** One lookup, then the next one scheduled. Never rejects: it runs from a timer nobody awaits. */
  async #refresh(): Promise<void> {
    const spec = this.#spec;
    let next = spec.refresh_ms;
    try {
      const { list, ttlMs } = await this.#lookup();
      if (ttlMs !== null) next = Math.max(Math.min(ttlMs, spec.refresh_ms), Math.min(MIN_TTL_MS, spec.refresh_ms));
      this.#failing = false;
      this.#set(list);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && NO_RECORDS.has(code)) {
        this.#failing = false;
        this.#set([]);
      } else if (!this.#closed) {
        if (!this.#failing) {
          this.#log?.warn({ err, name: spec.name, type: spec.type }, 'DNS discovery lookup failed; keeping the endpoints it last found');
        }
        this.#failing = true;
      }
    }
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#refresh(), next);
    this.#timer.unref();
  }

  /** The endpoints the name has now, and the shortest TTL among them in ms (null: the answer gives none). */
  async #lookup(): Promise<{ list: DiscoveredEndpoint[]; ttlMs: number | null }> {
    const spec = this.#spec;
    const { scheme, path } = spec;
    if (spec.type === 'SRV') {
      const records = await this.#resolver.resolveSrv(spec.name);
      const lowest = Math.min(...records.map((r) => r.priority));
      const list = records
        .filter((r) => r.priority === lowest)
        .map((r) => ({ url: `${scheme}://${host(r.name)}:${r.port}${path}`, weight: Math.max(1, r.weight), pool: null, load: 0 }));
      return { list, ttlMs: null };
    }
    const records =
      spec.type === 'A' ? await this.#resolver.resolve4(spec.name, { ttl: true }) : await this.#resolver.resolve6(spec.name, { ttl: true });
    const list = records.map((r) => ({
      url: `${scheme}://${host(r.address)}:${spec.port as number}${path}`,
      weight: 1,
      pool: null,
      load: 0,
    }));
    const ttl = records.length === 0 ? null : Math.min(...records.map((r) => r.ttl));
    return { list, ttlMs: ttl === null ? null : ttl * 1000 };
  }

  /** Takes `list` as the current one, telling the listeners if it differs (in any order) from the last. */
  #set(list: DiscoveredEndpoint[]): void {
    if (this.#closed) return;
    list.sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
    const key = list.map((e) => `${e.url} ${e.weight}`).join('\n');
    if (key === this.#key) return;
    this.#key = key;
    this.#list = Object.freeze(list);
    for (const listener of this.#listeners) {
      // A listener that throws must not stop the others, nor reject the refresh (nobody awaits it).
      try {
        listener(this.#list);
      } catch (err) {
        this.#log?.warn({ err, name: this.#spec.name }, 'DNS discovery: applying the endpoints found failed');
      }
    }
  }
}

/** A host as a URL names it: an IPv6 address in brackets; a name without the root's trailing dot. */
function host(name: string): string {
  if (name.includes(':')) return `[${name}]`;
  return name.endsWith('.') ? name.slice(0, -1) : name;
}
