/**
 * The options every remote kind (openai, anthropic) shares, as TypeBox schemas: where the replicas
 * are (listed, or discovered), how calls are spread over them and placed by priority, passive and
 * active health, time-outs, connections and extra headers. Each kind's config puts these next to
 * its own options; they mean the same in both.
 */
import { isIP, isIPv4 } from 'node:net';
import { Type } from '@sinclair/typebox';
import type { DnsDiscovery, RegistryDiscovery } from './discovery.js';
import type { BackendProblem } from './plugin.js';

const strict = { additionalProperties: false } as const;

/** `endpoints`: several replicas of one model instead of `base_url`; `baseUrl` describes one replica's root in the kind's terms. */
export function endpointsOption(baseUrl: string) {
  return Type.Array(
    Type.Object(
      {
        base_url: Type.String({ pattern: '^https?://', description: baseUrl }),
        weight: Type.Integer({ minimum: 1, default: 1, description: 'Share of calls with `balance: weighted`.' }),
        pool: Type.Optional(
          Type.String({ minLength: 1, description: 'The pool this replica belongs to, for `pools.prefer`. Example: reserved' }),
        ),
      },
      strict,
    ),
    { minItems: 1, description: 'Several replicas of the same model, instead of `base_url`.' },
  );
}

/** `balance`: how calls are spread over `endpoints`. */
export const BalanceOption = Type.Union(
  [Type.Literal('least-outstanding'), Type.Literal('round-robin'), Type.Literal('weighted'), Type.Literal('p2c-ewma')],
  {
    default: 'least-outstanding',
    description:
      'How calls are spread over the endpoints: fewest calls in flight, round robin, smooth weighted round robin, or ' +
      'p2c-ewma (the cheaper of two at random, by latency EWMA times calls in flight).',
  },
);

const DISCOVERY_PATH = Type.String({
  default: '',
  pattern: '^(/.*)?$',
  description: "Appended to each discovered instance's address to make its base URL. Example: /v1",
});

/** `discovery`: the replicas found at run time instead of listed; exactly one of `registry` and `dns`. */
export const DiscoveryOption = Type.Object(
  {
    registry: Type.Optional(
      Type.Object(
        {
          model: Type.String({ minLength: 1, description: 'The model the instances registered as serving.' }),
          version: Type.Optional(Type.String({ minLength: 1, description: 'Only instances of this version; default: any.' })),
          pool: Type.Optional(Type.String({ minLength: 1, description: 'Only instances in this pool; default: any.' })),
          path: DISCOVERY_PATH,
        },
        { ...strict, description: 'Instances in the fleet registry (needs `state.redis_url` or `fleet.etcd_url`).' },
      ),
    ),
    dns: Type.Optional(
      Type.Object(
        {
          name: Type.String({ minLength: 1, description: 'The name to resolve. Example: vllm.default.svc.cluster.local' }),
          type: Type.Union([Type.Literal('A'), Type.Literal('AAAA'), Type.Literal('SRV')], {
            default: 'A',
            description: 'Record type: A or AAAA (addresses, on `port`), or SRV (targets with their ports and weights).',
          }),
          scheme: Type.Union([Type.Literal('http'), Type.Literal('https')], { default: 'http' }),
          port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_535, description: "The upstreams' port; required for A and AAAA." })),
          path: DISCOVERY_PATH,
          servers: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), {
              minItems: 1,
              description: "DNS servers as 'ip' or 'ip:port' ('[ipv6]:port'); default: the system's. Example: ['10.96.0.10:53']",
            }),
          ),
          refresh_ms: Type.Integer({
            minimum: 100,
            default: 30_000,
            description:
              'Longest time between lookups, in ms. A and AAAA are looked up again when their TTL ends if sooner ' +
              '(but not within 1 s unless this is lower); SRV every refresh_ms.',
          }),
        },
        { ...strict, description: 'The records of one DNS name, looked up again as their TTL says.' },
      ),
    ),
  },
  { ...strict, description: 'Replicas found at run time instead of `base_url` or `endpoints`: exactly one of `registry` and `dns`.' },
);

/** `pools`: which endpoints each priority prefers, and when a preferred endpoint is too busy to take more. */
export const PoolsOption = Type.Object(
  {
    prefer: Type.Object(
      {
        high: Type.Optional(Type.String({ minLength: 1 })),
        normal: Type.Optional(Type.String({ minLength: 1 })),
        low: Type.Optional(Type.String({ minLength: 1 })),
      },
      { ...strict, default: {}, description: 'The pool calls of each priority try first. Example: { high: reserved, low: spot }' },
    ),
    saturation: Type.Integer({
      minimum: 1,
      default: 64,
      description: 'Calls in flight at which an endpoint is saturated: then calls spill over to endpoints of other pools.',
    }),
  },
  { ...strict, description: 'Place calls by priority on pools of endpoints (`endpoints[].pool`, or the pool an instance registered in).' },
);

/** Where a remote config says its replicas are, as the shared check reads it. */
interface Placement {
  readonly base_url?: string | undefined;
  readonly endpoints?: readonly unknown[] | undefined;
  readonly discovery?: { readonly registry?: RegistryDiscovery | undefined; readonly dns?: DnsDiscovery | undefined } | undefined;
}

/**
 * The rules of the shared options that a schema cannot state in words a user reads: exactly one of
 * `base_url`, `endpoints` and `discovery`; in `discovery`, exactly one of `registry` and `dns`;
 * and a `port` for A and AAAA records. `kind` names the backend in the messages.
 */
export function placementProblems(config: Placement, kind: string): BackendProblem[] {
  const given = [config.base_url, config.endpoints, config.discovery].filter((o) => o !== undefined).length;
  if (given !== 1) return [{ path: [], message: `an ${kind} backend needs exactly one of \`base_url\`, \`endpoints\` and \`discovery\`` }];
  const discovery = config.discovery;
  if (discovery === undefined) return [];
  if ((discovery.registry === undefined) === (discovery.dns === undefined)) {
    return [{ path: ['discovery'], message: 'needs exactly one of `registry` and `dns`' }];
  }
  const dns = discovery.dns;
  if (dns === undefined) return [];
  const problems: BackendProblem[] = [];
  if (dns.type !== 'SRV' && dns.port === undefined) {
    problems.push({ path: ['discovery', 'dns', 'port'], message: `is required for ${dns.type} records (SRV records give theirs)` });
  }
  dns.servers?.forEach((server, i) => {
    if (!isDnsServer(server)) {
      problems.push({
        path: ['discovery', 'dns', 'servers', i],
        message: `must be an IP address with an optional port (10.96.0.10, 10.96.0.10:53, [fd00::10]:53), got "${server}"`,
      });
    }
  });
  return problems;
}

/** Whether `server` is what Node's resolver takes as a server: an IP address, with a port as `ip:port` or `[ipv6]:port`. */
function isDnsServer(server: string): boolean {
  if (isIP(server) !== 0) return true;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(server) ?? /^([^:]+):(\d+)$/.exec(server);
  if (m === null) return false;
  const [, host = '', port] = m;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535)) return false;
  return server.startsWith('[') ? isIP(host) === 6 : isIPv4(host);
}

/** `passive_health`: an endpoint that fails this many calls in a row gets none for a while. */
export const PassiveHealthOption = Type.Object(
  {
    consecutive_failures: Type.Integer({
      minimum: 0,
      default: 3,
      description: 'Failures in a row (unreachable or 5xx) that eject an endpoint; 0: never.',
    }),
    ejection_ms: Type.Integer({ minimum: 1, default: 10_000, description: 'How long an ejected endpoint gets no calls.' }),
  },
  { ...strict, default: {} },
);

/** `health_check`: active checks of each endpoint; `path` is the kind's default path below the base URL. */
export function healthCheckOption(path: string) {
  return Type.Object(
    {
      interval_ms: Type.Integer({ minimum: 0, default: 0, description: 'Active checks of each endpoint (GET `path`); 0: none.' }),
      path: Type.String({ default: path, description: "Checked below each endpoint's base URL; any 2xx passes." }),
      timeout_ms: Type.Integer({ minimum: 1, default: 2_000 }),
    },
    { ...strict, default: {} },
  );
}

/** `timeout_ms`: the longest silence from the upstream, in ms. */
export const TimeoutOption = Type.Integer({
  minimum: 1,
  default: 600_000,
  description: 'Longest wait for the upstream response headers (time to first byte), and between two body chunks, in ms.',
});

/** `connect_timeout_ms`: the longest wait for a connection, in ms. */
export const ConnectTimeoutOption = Type.Integer({
  minimum: 1,
  default: 10_000,
  description: 'Longest wait for a TCP (and TLS) connection upstream, in ms.',
});

/** `connections`: keep-alive connections per worker and endpoint. */
export const ConnectionsOption = Type.Integer({
  minimum: 1,
  default: 256,
  description: 'Keep-alive connections per worker to this upstream.',
});

/** `headers`: extra headers sent with every upstream request. */
export const HeadersOption = Type.Record(Type.String(), Type.String(), { default: {}, description: 'Extra headers sent upstream.' });
