/** The options of `kind: mock` backends: fixed answers and their timing. */
import { Type, type Static } from '@sinclair/typebox';

const strict = { additionalProperties: false } as const;

/** `kind: mock`: a model with fixed answers, for tests and benchmarks. */
export const MockBackendSchema = Type.Object(
  {
    kind: Type.Literal('mock'),
    latency_ms: Type.Number({ minimum: 0, default: 0, description: 'Delay before each answer, in ms (for benchmarks and tests).' }),
    text: Type.String({ default: 'Hello from the mock model. This is a fixed completion of moderate length.' }),
    embedding_dim: Type.Integer({ minimum: 1, maximum: 65536, default: 16 }),
    stream_chunks: Type.Integer({ minimum: 1, default: 8, description: 'Chunks a streamed answer is split into.' }),
  },
  strict,
);

/** A `kind: mock` backend, defaults filled. */
export type MockBackendConfig = Static<typeof MockBackendSchema>;
