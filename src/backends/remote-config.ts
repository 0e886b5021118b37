/**
 * The options every remote kind (openai, anthropic) shares, as TypeBox schemas: where the replicas
 * are, how calls are spread over them, passive and active health, time-outs, connections and extra
 * headers. Each kind's config puts these next to its own options; they mean the same in both.
 */
import { Type } from '@sinclair/typebox';

const strict = { additionalProperties: false } as const;

/** `endpoints`: several replicas of one model instead of `base_url`; `baseUrl` describes one replica's root in the kind's terms. */
export function endpointsOption(baseUrl: string) {
  return Type.Array(
    Type.Object(
      {
        base_url: Type.String({ pattern: '^https?://', description: baseUrl }),
        weight: Type.Integer({ minimum: 1, default: 1, description: 'Share of calls with `balance: weighted`.' }),
      },
      strict,
    ),
    { minItems: 1, description: 'Several replicas of the same model, instead of `base_url`.' },
  );
}

/** `balance`: how calls are spread over `endpoints`. */
export const BalanceOption = Type.Union([Type.Literal('least-outstanding'), Type.Literal('round-robin'), Type.Literal('weighted')], {
  default: 'least-outstanding',
  description: 'How calls are spread over `endpoints`.',
});

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
