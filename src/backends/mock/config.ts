/** The options of `kind: mock` backends: fixed answers and their timing. */
import { Type, type Static } from '@sinclair/typebox';
import { DATATYPES } from '../../core/tensor.js';

const strict = { additionalProperties: false } as const;

/** One input or output of a mock tensor model, as KServe metadata reports it. */
const MockTensorSpecSchema = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    datatype: Type.Union(
      Object.keys(DATATYPES).map((d) => Type.Literal(d)),
      { description: `One of ${Object.keys(DATATYPES).join(', ')}.` },
    ),
    shape: Type.Array(Type.Integer({ minimum: -1 }), {
      description: 'Dimensions; -1: any size. In an output, -1 is allowed first only and is answered as the batch size.',
    }),
  },
  strict,
);

/**
 * `tensor`: the mock also serves KServe v2 infer requests, at no cost. Requests are checked against
 * `inputs` like any tensor model's; the answer is every output (or those asked for) filled with
 * zeros (BYTES: empty strings), a leading -1 of an output's shape being the first dimension of the
 * request's first input.
 */
export const MockTensorSchema = Type.Object(
  {
    inputs: Type.Array(MockTensorSpecSchema, {
      minItems: 1,
      description: 'The inputs a request must give. Example: [{ name: input, datatype: FP32, shape: [-1, 32] }]',
    }),
    outputs: Type.Array(MockTensorSpecSchema, {
      minItems: 1,
      description: 'The outputs answered. Example: [{ name: output, datatype: FP32, shape: [-1, 8] }]',
    }),
  },
  { ...strict, description: "A tensor signature: the mock also answers KServe v2 infer requests, with zeros of the outputs' shapes." },
);

/** `kind: mock`: a model with fixed answers, for tests and benchmarks. */
export const MockBackendSchema = Type.Object(
  {
    kind: Type.Literal('mock'),
    latency_ms: Type.Number({ minimum: 0, default: 0, description: 'Delay before each answer, in ms (for benchmarks and tests).' }),
    text: Type.String({ default: 'Hello from the mock model. This is a fixed completion of moderate length.' }),
    embedding_dim: Type.Integer({ minimum: 1, maximum: 65536, default: 16 }),
    stream_chunks: Type.Integer({ minimum: 1, default: 8, description: 'Chunks a streamed answer is split into.' }),
    tensor: Type.Optional(MockTensorSchema),
  },
  strict,
);

/** A `kind: mock` backend, defaults filled. */
export type MockBackendConfig = Static<typeof MockBackendSchema>;
/** A mock backend's `tensor` signature. */
export type MockTensorConfig = Static<typeof MockTensorSchema>;
