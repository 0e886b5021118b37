/**
 * The one config schema. Every option, its default and its unit live here, except a backend's: each
 * kind's are in its own folder (backends/<kind>/config.ts), and the `backend` of a version is the
 * union of the kinds in the plug-in list (backends/index.ts), so this file names no kind.
 * `config/infergate.schema.json` is generated from it (`npm run schema`) so editors can autocomplete the YAML.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { BACKEND_PLUGINS, type BackendKind, type BackendPlugin } from '../backends/index.js';

/** The `kind` of a backend config: one of the plug-ins' (backends/index.ts). */
export type { BackendKind } from '../backends/index.js';

const strict = { additionalProperties: false } as const;

/** Plug-ins' schemas, as a tuple in the order of the list (a mapped type over a type parameter keeps a tuple a tuple). */
type SchemasOf<P extends readonly BackendPlugin[]> = { -readonly [I in keyof P]: P[I]['schema'] };

/** The union of some plug-ins' backend schemas: what a version's `backend` may be. */
function backendUnion(plugins: readonly BackendPlugin[]): TSchema {
  return Type.Union(plugins.map((p) => p.schema));
}

/** The backend kinds and their schemas, by `kind`, from the list of plug-ins. */
export const BACKEND_SCHEMAS = Object.freeze(Object.fromEntries(BACKEND_PLUGINS.map((p) => [p.kind, p.schema]))) as {
  readonly [K in BackendKind]: Extract<(typeof BACKEND_PLUGINS)[number], { readonly kind: K }>['schema'];
};

/** A version's backend, any kind; load.ts validates it against its kind's plug-in schema instead, for clearer errors. */
export const BackendSchema = Type.Union(BACKEND_PLUGINS.map((p) => p.schema) as SchemasOf<typeof BACKEND_PLUGINS>);

const NAME = '^[A-Za-z0-9][A-Za-z0-9._:/@-]*$';

/** How calls to one version are governed: deadline, retries, circuit breaker. */
export const PoliciesSchema = Type.Object(
  {
    timeout_ms: Type.Integer({
      minimum: 1,
      default: 600_000,
      description:
        'Deadline of a call when the client sends no `x-request-timeout-ms`: until the answer (or, for a stream, its first byte), ' +
        'retries and fallbacks included. Expiry answers 504 `upstream_timeout` and cancels the call.',
    }),
    max_timeout_ms: Type.Integer({
      minimum: 1,
      default: 600_000,
      description: 'Largest deadline a client may ask for with `x-request-timeout-ms`; larger values are lowered to it.',
    }),
    retry: Type.Object(
      {
        attempts: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 10,
            description:
              'Tries per call, the first included, before any byte reached the client: on a refused connection, a connect time-out ' +
              'and upstream 429 and 503 (nothing ran upstream), and with `on_sent` also after the request may have reached it. ' +
              'Default: 3 for `openai` backends, 1 (no retries) for in-process ones.',
          }),
        ),
        on_sent: Type.Boolean({
          default: false,
          description:
            'Also retry when the upstream may already have received the call: a connection reset or cut after the request was ' +
            'written, an upstream 502 or 504. Off by default: generation is not idempotent, so the upstream may run (and bill) ' +
            'the call twice. Example: `true` for a self-hosted server where a duplicate generation costs only compute.',
        }),
        base_delay_ms: Type.Integer({ minimum: 0, default: 100, description: 'First back-off; it doubles per retry, with full jitter.' }),
        max_delay_ms: Type.Integer({
          minimum: 0,
          default: 5_000,
          description: 'Longest back-off, also the most of an upstream `Retry-After` honoured (beyond it, no retry).',
        }),
      },
      { ...strict, default: {} },
    ),
    breaker: Type.Object(
      {
        consecutive_failures: Type.Optional(
          Type.Integer({
            minimum: 0,
            description:
              'Failures in a row (after retries) that open the breaker; 0: no breaker. Default: 5 for `openai` backends, 0 for in-process ones.',
          }),
        ),
        failure_rate: Type.Number({
          minimum: 0,
          maximum: 1,
          default: 0,
          description:
            'Also open when this share of the calls in the last `window_ms` failed (with at least `minimum_calls`); 0: off. Example: 0.5.',
        }),
        window_ms: Type.Integer({ minimum: 100, default: 10_000, description: 'The rolling window of `failure_rate`.' }),
        minimum_calls: Type.Integer({
          minimum: 1,
          default: 20,
          description: 'Calls in the window before `failure_rate` can open the breaker.',
        }),
        half_open_after_ms: Type.Integer({
          minimum: 1,
          default: 10_000,
          description: 'How long an open breaker fails fast before it lets one probe call through (half-open).',
        }),
      },
      { ...strict, default: {} },
    ),
    admission: Type.Object(
      {
        max_concurrent: Type.Integer({
          minimum: 0,
          default: 0,
          description: 'Calls to this version running at once per worker (a bulkhead); 0: no limit. Example: 32.',
        }),
        queue_size: Type.Integer({
          minimum: 0,
          default: 64,
          description: 'Calls that may wait for a slot, served by priority; beyond it calls get 503 `overloaded` with Retry-After at once.',
        }),
        sla_ms: Type.Object(
          {
            high: Type.Integer({ minimum: 1, default: 100 }),
            normal: Type.Integer({ minimum: 1, default: 1_000 }),
            low: Type.Integer({ minimum: 1, default: 5_000 }),
          },
          {
            ...strict,
            default: {},
            description:
              'Wait per priority class (`x-priority`) after which a queued call counts as one class higher, so low priority is never starved.',
          },
        ),
      },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

/** Where a model's calls go when its own version fails or its breaker is open. */
export const FallbackSchema = Type.Object(
  {
    model: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:/@-]*$', description: 'Another model, by name or alias.' }),
    version: Type.Optional(Type.String({ description: 'A version of it; default: its usual routing.' })),
  },
  strict,
);

/** One version of a model: its share of traffic, its backend (one of `backend`'s) and the policies of its calls. */
function versionSchema<B extends TSchema>(backend: B) {
  return Type.Object(
    {
      version: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'Version label. Example: "2".' }),
      weight: Type.Number({ minimum: 0, default: 0, description: 'Share of unpinned traffic, relative to the other versions.' }),
      backend,
      policies: PoliciesSchema,
    },
    strict,
  );
}

/** One version of a model: its share of traffic, its backend and the policies of its calls. */
export const VersionSchema = versionSchema(BackendSchema);

/** A canary's gradual release: weight steps, the time and calls each step needs, and the gates it must pass against stable. */
export const RolloutPlanSchema = Type.Object(
  {
    version: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'The canary: a version of this model. Example: "2".' }),
    steps: Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 100 }), {
      minItems: 1,
      maxItems: 100,
      default: [1, 5, 25, 50, 100],
      description:
        "The canary's share of unpinned traffic at each step, in percent, ascending; the other versions share the rest in their configured proportions.",
    }),
    step_seconds: Type.Number({ minimum: 0, maximum: 86_400, default: 60, description: 'The least time a step lasts before the next.' }),
    min_calls: Type.Integer({
      minimum: 0,
      default: 100,
      description: 'The least canary calls (every replica together) a step needs before the next.',
    }),
    interval_seconds: Type.Number({
      minimum: 0.1,
      maximum: 3600,
      default: 1,
      description: 'How often the figures are read and the gates checked: a failing gate rolls the canary back within one interval.',
    }),
    gates: Type.Object(
      {
        max_error_rate: Type.Number({
          minimum: 0,
          maximum: 1,
          default: 0.01,
          description:
            "The canary's share of calls that fail by its own fault (upstream errors, time-outs, an open breaker, a failed load; not client errors or limits).",
        }),
        max_p99_ratio: Type.Number({
          exclusiveMinimum: 0,
          default: 1.5,
          description: "Canary p99 latency over stable's, once both have `min_calls` calls.",
        }),
        max_ttft_p99_ratio: Type.Number({
          exclusiveMinimum: 0,
          default: 1.5,
          description: "Canary p99 time to first token over stable's (streamed text calls), once both have `min_calls` of them.",
        }),
      },
      { ...strict, default: {} },
    ),
    webhook_url: Type.Optional(
      Type.String({ pattern: '^https?://', description: 'POSTed a JSON event at each change of state (promoted, rolled back, ...).' }),
    ),
  },
  strict,
);

/** A model clients call by name or alias: its versions (each a `version`), fallbacks and last-resort answer. */
function modelSchema<V extends TSchema>(version: V) {
  return Type.Object(
    {
      name: Type.String({ pattern: NAME, description: 'The name clients send in `model`. Example: tiny-mlp' }),
      aliases: Type.Array(Type.String({ pattern: NAME }), { default: [], description: 'Other names for this model.' }),
      default_version: Type.Optional(
        Type.String({
          description:
            'Serves unpinned requests when every weight is 0, and KServe metadata without a version. Default: the first version.',
        }),
      ),
      owned_by: Type.String({ default: 'infergate', description: 'Shown in /v1/models.' }),
      versions: Type.Array(version, { minItems: 1 }),
      fallbacks: Type.Array(FallbackSchema, {
        default: [],
        description: "Tried in order when a call fails for a reason not the client's (upstream errors, time-outs, an open breaker).",
      }),
      degraded_response: Type.Optional(
        Type.Object(
          { text: Type.String({ description: 'The answer content.' }) },
          { ...strict, description: 'A fixed chat or completion answer, the last resort after every fallback failed.' },
        ),
      ),
      rollout: Type.Optional({
        ...RolloutPlanSchema,
        description:
          'A rollout started when this config is first served with a fleet store (unless one for this version already ran): see POST /admin/models/{name}/rollouts.',
      }),
    },
    strict,
  );
}

/** A model clients call by name or alias: its versions, fallbacks and last-resort answer. */
export const ModelSchema = modelSchema(VersionSchema);

/** The HTTP server and its processes: address, workers, request limits and time-outs, TLS, logs, shutdown. */
export const ServerSchema = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1', description: 'Address to bind. Non-loopback addresses expose the API to the network.' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'HTTP port; 0 picks a free one. Env PORT overrides.' }),
    workers: Type.Union([Type.Integer({ minimum: 1, maximum: 1024 }), Type.Literal('auto')], {
      default: 1,
      description: 'Worker processes sharing the port (node:cluster). `auto`: one per CPU core.',
    }),
    accept_policy: Type.Union([Type.Literal('direct'), Type.Literal('round-robin')], {
      default: 'direct',
      description:
        'With workers > 1: `direct`, each worker accepts from the shared socket (no wait, but a few connections may split unevenly); ' +
        '`round-robin`, the primary deals connections out evenly, but a burst of new connections waits seconds while workers are busy.',
    }),
    cpu_affinity: Type.Union([Type.Literal('auto'), Type.Literal('off')], {
      default: 'auto',
      description:
        "With as many workers as the CPUs this process may use: `auto` pins each worker's event loop to a CPU of its own " +
        '(taskset, once it listens); `off` leaves them to the kernel. Fewer or more workers than CPUs are never pinned.',
    }),
    body_limit_bytes: Type.Integer({ minimum: 1024, default: 4 * 1024 * 1024, description: 'Largest request body; larger ones get 413.' }),
    max_json_depth: Type.Integer({
      minimum: 1,
      maximum: 10_000,
      default: 64,
      description: 'Deepest nesting of arrays and objects accepted in a JSON body, on every route; deeper bodies get 400 invalid_request.',
    }),
    max_connections: Type.Integer({
      minimum: 1,
      default: 10_000,
      description: 'Open client connections each worker accepts on each port (HTTP and gRPC); past it, new connections are closed at once.',
    }),
    headers_timeout_ms: Type.Integer({
      minimum: 1000,
      default: 10_000,
      description: "A request's headers must arrive within this; else the connection is closed (slowloris).",
    }),
    request_timeout_ms: Type.Integer({
      minimum: 1000,
      default: 30_000,
      description: 'A whole request, headers and body, must arrive within this; else 408 and the connection is closed.',
    }),
    tls: Type.Optional(
      Type.Object(
        {
          cert: Type.String({
            minLength: 1,
            description: 'The certificate chain: a PEM file path, or PEM text itself (e.g. ${TLS_CERT}).',
          }),
          key: Type.String({ minLength: 1, description: 'The private key: a PEM file path, or PEM text itself (e.g. ${TLS_KEY}).' }),
        },
        { ...strict, description: 'Serve HTTPS on server.port and gRPC over TLS (ALPN h2) on grpc.port. Absent: cleartext.' },
      ),
    ),
    log_level: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    access_log: Type.Boolean({
      default: false,
      description:
        'One JSON line per model call on stdout (request id, tenant, key id, model, version, status, code, duration, tokens); never prompts or completions. ' +
        'Off by default: it measured 0.88x the throughput of a mock model at 45k calls/s (negligible against real model calls).',
    }),
    keep_alive_timeout_ms: Type.Integer({ minimum: 0, default: 72_000, description: 'Idle keep-alive time-out for client connections.' }),
    watch_config: Type.Boolean({
      default: false,
      description: 'Reload the config when its file changes (as on SIGHUP or POST /admin/reload).',
    }),
    shutdown_grace_ms: Type.Integer({
      minimum: 0,
      default: 0,
      description:
        'On SIGTERM or SIGINT, how long the server keeps accepting new connections after /health/ready turns 503, ' +
        'so load balancers stop sending first. Example for Kubernetes: 5000.',
    }),
    shutdown_timeout_ms: Type.Integer({
      minimum: 0,
      default: 30_000,
      description: 'Then, how long in-flight requests and streams may take to finish before their connections are closed.',
    }),
    retry_budget: Type.Object(
      {
        ratio: Type.Number({
          minimum: 0,
          maximum: 10,
          default: 0.2,
          description:
            'Retries allowed per worker as a share of calls (0.2: one retry per five calls), so retries cannot multiply load in an outage.',
        }),
        min_per_second: Type.Number({ minimum: 0, default: 10, description: 'Retries always allowed per second, however few the calls.' }),
      },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

/** A limit per minute or month; absent: no limit. */
const optionalLimit = (description: string) => Type.Optional(Type.Integer({ minimum: 0, description }));

/** Limits of a tenant or a key; each absent one is unlimited. Also the body of the admin API's `limits`. */
export const LimitsSchema = Type.Object(
  {
    requests_per_minute: optionalLimit('Requests admitted per rolling minute. Example: 600.'),
    tokens_per_minute: optionalLimit(
      'Prompt plus completion tokens per rolling minute; a stream is cut when it runs out. Example: 100000.',
    ),
    concurrent_requests: optionalLimit('Requests (and streams) in flight at once. Example: 8.'),
    monthly_tokens: optionalLimit('Prompt plus completion tokens per calendar month (UTC). Example: 50000000.'),
  },
  strict,
);

/** A header name as HTTP and gRPC metadata allow it (RFC 9110 token characters); matched without regard to case. */
const headerName = (fallback: string, description: string) =>
  Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", default: fallback, description });

/**
 * `trusted_header` mode: who already identified the caller, and the headers that say who it is.
 * Read only in that mode; its peers are checked in any mode.
 */
export const TrustedHeaderSchema = Type.Object(
  {
    tenant_header: headerName(
      'x-tenant-id',
      'The header (gRPC: metadata) naming the tenant, which must exist (created through the admin API). Case-insensitive.',
    ),
    key_header: headerName(
      'x-key-id',
      'The header naming the key (a user or client id of the proxy, 1 to 32 of A-Z a-z 0-9 . _ : @ -) that usage records and the access log name; ' +
        "absent: `trusted`. Key limits do not apply to it; the tenant's do.",
    ),
    trusted_peers: Type.Array(Type.String(), {
      default: [],
      description:
        'The addresses the headers are taken from: IPv4 or IPv6 addresses and CIDR ranges of the proxy or mesh in front. ' +
        'Required (at least one) in `trusted_header` mode. From any other peer the headers are ignored. Example: [10.0.0.0/8, "fd00::/8"].',
    }),
  },
  { ...strict, default: {} },
);

/** Who may call: no authentication on loopback, API keys per tenant, or a trusted proxy's word. */
export const AuthSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('none'), Type.Literal('keys'), Type.Literal('trusted_header')], {
      default: 'none',
      description:
        '`none`: every caller may use every model (allowed only on a loopback host unless `allow_none_on_public_host`). ' +
        '`keys`: every API call needs `Authorization: Bearer <key>` or `x-api-key` of a tenant. ' +
        '`trusted_header`: as `keys`, and a call from one of `trusted_header.trusted_peers` may instead name its tenant in `trusted_header.tenant_header`.',
    }),
    trusted_header: TrustedHeaderSchema,
    admin_key: Type.String({
      default: '',
      description:
        'Guards /admin/* (Authorization: Bearer or x-api-key). Required in `keys` and `trusted_header` modes; in `none` mode, empty leaves /admin/* open on loopback. ' +
        'Example: ${INFERGATE_ADMIN_KEY}.',
    }),
    allow_none_on_public_host: Type.Boolean({
      default: false,
      description:
        'Let `none` mode bind a non-loopback host (anyone who reaches the port may call every model). Off: the server refuses to start.',
    }),
    refresh_interval_ms: Type.Integer({
      minimum: 100,
      default: 5000,
      description:
        'How often each process reloads tenants and keys from the database, for changes made by other replicas. ' +
        'Changes made through the admin API are in force in every worker and every Redis-connected replica when the call returns (see state.change_ack_timeout_ms).',
    }),
  },
  { ...strict, default: {} },
);

/** Where tenants, keys and the usage ledger live. */
export const StorageSchema = Type.Object(
  {
    database_url: Type.String({
      default: '',
      description:
        'postgres://user@host:5432/db for PostgreSQL, or sqlite:PATH. Empty: $DATABASE_URL when set, else sqlite:data/infergate.db (relative to the working directory).',
    }),
    pool_size: Type.Integer({ minimum: 1, maximum: 100, default: 4, description: 'PostgreSQL connections per worker process.' }),
  },
  { ...strict, default: {} },
);

/** The fleet: where replicas register, find each other and share weight overrides and rollouts. */
export const FleetSchema = Type.Object(
  {
    store: Type.Union([Type.Literal('auto'), Type.Literal('none'), Type.Literal('redis'), Type.Literal('etcd')], {
      default: 'auto',
      description:
        '`auto`: etcd when `etcd_url` (or $ETCD_URL) is set, else Redis when `state.redis_url` (or $REDIS_URL) is, else none. ' +
        '`none`: this replica alone (weight overrides apply to this process only).',
    }),
    etcd_url: Type.String({
      default: '',
      description: 'etcd endpoints, comma-separated. Example: http://etcd-0:2379,http://etcd-1:2379. Empty: $ETCD_URL when set.',
    }),
    instance_id: Type.String({
      default: '',
      pattern: '^$|^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$',
      description: 'This replica in the registry. Empty: $INFERGATE_INSTANCE_ID, else host name, port and a random suffix.',
    }),
    advertise_url: Type.String({
      default: '',
      pattern: '^$|^https?://',
      description:
        "The URL other replicas and routers reach this one at. Empty: the listening address (the host's name on a wildcard address).",
    }),
    labels: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,63}$' }), Type.String({ maxLength: 256 }), {
      additionalProperties: false,
      default: {},
      description: 'Labels of this replica, e.g. {pool: gpu, zone: eu-west-1a}; `pool` is what discovery and pool preference match.',
    }),
    lease_ms: Type.Integer({
      minimum: 1000,
      maximum: 600_000,
      default: 10_000,
      description:
        'A replica that stops renewing (killed, cut off) leaves the registry this long after its last renewal; so does a rollout driver.',
    }),
    heartbeat_ms: Type.Integer({
      minimum: 100,
      maximum: 60_000,
      default: 1000,
      description: 'How often each replica renews its record with its load and counters (what discovery and rollouts read).',
    }),
  },
  { ...strict, default: {} },
);

/** Shared state for limits across processes and replicas. */
export const StateSchema = Type.Object(
  {
    redis_url: Type.String({
      default: '',
      description:
        'redis://host:6379/0: limits are counted in Redis, shared by every replica. Empty: $REDIS_URL when set, else in memory (each process counts alone).',
    }),
    key_prefix: Type.String({
      default: 'infergate:',
      description: 'Prefix of every Redis key, so several deployments can share one Redis.',
    }),
    change_ack_timeout_ms: Type.Integer({
      minimum: 10,
      maximum: 60_000,
      default: 2000,
      description:
        'How long an admin change (a key or tenant created, revoked, rotated, updated or deleted) waits for every other live ' +
        'process (sibling workers, and every worker of every replica on the same Redis) to confirm it applies the change. ' +
        'After it, the call still succeeds and names the processes that did not confirm in `unconfirmed_replicas`. Example: 2000.',
    }),
  },
  { ...strict, default: {} },
);

/** The usage ledger: one record per finished model call. */
export const UsageSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Write a usage record for every finished model call.' }),
    flush_interval_ms: Type.Integer({
      minimum: 10,
      maximum: 60_000,
      default: 1000,
      description: 'Records are buffered and written together this often (and on shutdown); a crash loses at most this much.',
    }),
  },
  { ...strict, default: {} },
);

/** Stored Responses of the Responses API (POST /v1/responses), in the database of `storage`. */
export const ResponsesSchema = Type.Object(
  {
    store: Type.Boolean({
      default: true,
      description:
        'Whether a Responses request that leaves out `store` is stored (as OpenAI does by default), so `GET /v1/responses/{id}` and ' +
        "`previous_response_id` find it; a request's own `store` always wins. Example: false, to store only what clients ask to.",
    }),
    retention_hours: Type.Number({
      minimum: 0,
      default: 720,
      description:
        'How long a stored Response is kept, in hours (720: 30 days, as OpenAI keeps them); expired ones are never returned and are ' +
        'deleted by a sweep every few minutes. 0: kept until deleted (DELETE /v1/responses/{id}). Example: 24.',
    }),
  },
  { ...strict, default: {} },
);

/** Prometheus metrics at GET /metrics. */
export const MetricsSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Serve GET /metrics (Prometheus text format), aggregated over the worker processes.',
    }),
    tenant_label: Type.Boolean({
      default: true,
      description: 'Label request series by tenant. Turn off with very many tenants: each tenant multiplies the series.',
    }),
  },
  { ...strict, default: {} },
);

/** The gRPC transport: KServe v2's GRPCInferenceService and infergate.v1.Generate, with reflection. */
export const GrpcSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Serve gRPC next to HTTP, on server.host.' }),
    port: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: 8081,
      description: 'The gRPC port (0: any free port); --grpc-port overrides it.',
    }),
    max_concurrent_streams: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 100,
      description:
        'Calls one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); clients queue the rest. Default: 100, as RFC 9113 recommends at least.',
    }),
    max_connection_buffer_bytes: Type.Optional(
      Type.Integer({
        minimum: 1024,
        description:
          'Bytes of unfinished request messages one connection may hold, summed over its calls; a call whose message would pass it gets RESOURCE_EXHAUSTED. ' +
          'Default: 2 x server.body_limit_bytes (so one largest message always fits next to others); at least server.body_limit_bytes.',
      }),
    ),
    idle_timeout_ms: Type.Integer({
      minimum: 100,
      default: 300_000,
      description: 'A connection with no call open for this long is closed (GOAWAY NO_ERROR). Default: 300000 (5 min).',
    }),
    handshake_timeout_ms: Type.Integer({
      minimum: 100,
      default: 10_000,
      description:
        'A new connection must complete its TLS handshake (when server.tls is set) and send the HTTP/2 preface and its SETTINGS within this, or is closed. Default: 10000.',
    }),
    keepalive_ms: Type.Integer({
      minimum: 100,
      default: 30_000,
      description:
        'A connection silent this long is sent a PING, and closed if it is not answered within as long again: a dead peer, or one node:http2 stopped reading after a protocol error. Default: 30000.',
    }),
  },
  { ...strict, default: {} },
);

/** OpenTelemetry traces, exported over OTLP/HTTP when the standard OTEL_EXPORTER_OTLP_* variables name a collector. */
export const TracingSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description:
        'Trace when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (else tracing is off and costs nothing); false: never.',
    }),
    sample_ratio: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 1,
      description:
        'Share of requests without a sampled parent that are traced (OTel parentbased_traceidratio; a client traceparent decides for its own). ' +
        'OTEL_TRACES_SAMPLER_ARG overrides it.',
    }),
  },
  { ...strict, default: {} },
);

/** The whole config file, its models' entries each a `model`. */
function configSchema<M extends TSchema>(model: M) {
  return Type.Object(
    {
      $schema: Type.Optional(Type.String()),
      server: ServerSchema,
      auth: AuthSchema,
      storage: StorageSchema,
      state: StateSchema,
      fleet: FleetSchema,
      usage: UsageSchema,
      responses: ResponsesSchema,
      metrics: MetricsSchema,
      tracing: TracingSchema,
      grpc: GrpcSchema,
      models: Type.Array(model, { default: [] }),
    },
    { ...strict, $id: 'https://infergate.dev/schema/config.json', title: 'infergate configuration' },
  );
}

/** The whole config file. */
export const ConfigSchema = configSchema(ModelSchema);

/**
 * The whole config file with other backend kinds than BACKEND_PLUGINS: how a kind is tried (in
 * its tests) before its line is in the list. The same schema as ConfigSchema for the same list.
 */
export function configSchemaWith(plugins: readonly BackendPlugin[]): TSchema {
  return configSchema(modelSchema(versionSchema(backendUnion(plugins))));
}

/** A config as loadConfig returns it: defaults filled, model paths made absolute, frozen. */
export type Config = Static<typeof ConfigSchema>;
/** The `server` section, defaults filled. */
export type ServerConfig = Static<typeof ServerSchema>;
/** The `tracing` section, defaults filled. */
export type TracingConfig = Static<typeof TracingSchema>;
/** One entry of `models`, defaults filled. */
export type ModelConfig = Static<typeof ModelSchema>;
/** One entry of a model's `versions`, defaults filled. */
export type VersionConfig = Static<typeof VersionSchema>;
/** A version's `policies`, defaults filled. */
export type PoliciesConfig = Static<typeof PoliciesSchema>;
/** The `auth` section, defaults filled. */
export type AuthConfig = Static<typeof AuthSchema>;
/** The `auth.trusted_header` section, defaults filled. */
export type TrustedHeaderConfig = Static<typeof TrustedHeaderSchema>;
/** The `storage` section, defaults filled. */
export type StorageConfig = Static<typeof StorageSchema>;
/** The `state` section, defaults filled. */
export type StateConfig = Static<typeof StateSchema>;
/** The `fleet` section, defaults filled. */
export type FleetConfig = Static<typeof FleetSchema>;
/** A rollout plan (`rollout:` of a model, or the body of POST /admin/models/{name}/rollouts), defaults filled. */
export type RolloutPlan = Static<typeof RolloutPlanSchema>;
/** The `usage` section, defaults filled. */
export type UsageConfig = Static<typeof UsageSchema>;
/** The `responses` section, defaults filled. */
export type ResponsesConfig = Static<typeof ResponsesSchema>;
/** Limits of a tenant or a key; an absent one is unlimited. */
export type Limits = Static<typeof LimitsSchema>;

/** Options that were renamed or removed, with what replaced them: reported as errors with a hint. */
export const REMOVED_OPTIONS: ReadonlyArray<{ readonly path: string; readonly hint: string }> = [
  { path: 'server.listen', hint: 'use server.host and server.port' },
];
