/** The options of `kind: onnx` backends: the model file, its task, threads, batching and tokenizer. */
import { Type, type Static } from '@sinclair/typebox';
import { CacheDirOption, Sha256Option } from '../model-file-options.js';

const strict = { additionalProperties: false } as const;

/** Dynamic batching of concurrent requests into one ONNX Runtime call. */
export const BatchingSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Merge concurrent requests to this version into one model call.' }),
    max_batch_size: Type.Integer({
      minimum: 1,
      maximum: 65536,
      default: 64,
      description: 'Most rows (first dimension) in one model call. Example: 32.',
    }),
    max_queue_delay_ms: Type.Number({
      minimum: 0,
      maximum: 10_000,
      default: 1,
      description: 'Longest a request waits for others to join its batch, in milliseconds (0: next turn of the event loop).',
    }),
  },
  { ...strict, default: {} },
);

/** Turns text into token ids for an `embedding` ONNX model. */
export const TokenizerSchema = Type.Object(
  {
    kind: Type.Literal('hashed-words', {
      default: 'hashed-words',
      description: 'Lower-cased words and punctuation, each hashed (FNV-1a) into the vocabulary; id 0 is padding.',
    }),
    vocab_size: Type.Integer({ minimum: 2, default: 4096, description: 'Rows of the embedding table.' }),
    max_tokens: Type.Integer({
      minimum: 1,
      default: 512,
      description: 'Longest input in tokens; longer inputs get 400 context_length_exceeded.',
    }),
  },
  { ...strict, default: {} },
);

/** `kind: onnx`: a model run in process by ONNX Runtime. */
export const OnnxBackendSchema = Type.Object(
  {
    kind: Type.Literal('onnx'),
    path: Type.String({
      minLength: 1,
      description:
        'The .onnx file, relative to the config file, or an http(s) URL downloaded into `cache_dir` when the version loads. ' +
        'Example: models/tiny-mlp/1/model.onnx, https://models.example.com/tiny-mlp/1/model.onnx',
    }),
    sha256: Type.Optional(Sha256Option),
    cache_dir: CacheDirOption,
    task: Type.Union([Type.Literal('tensor'), Type.Literal('embedding')], {
      default: 'tensor',
      description: '`tensor`: served by the KServe v2 API. `embedding`: also serves /v1/embeddings (inputs input_ids, attention_mask).',
    }),
    threads: Type.Integer({
      minimum: 1,
      maximum: 256,
      default: 1,
      description: 'ONNX Runtime intra-op threads per worker process. 1 is fastest for small models when every core runs a worker.',
    }),
    batching: BatchingSchema,
    tokenizer: TokenizerSchema,
  },
  strict,
);

/** A `kind: onnx` backend, defaults filled. */
export type OnnxBackendConfig = Static<typeof OnnxBackendSchema>;
/** An ONNX backend's `batching`, defaults filled. */
export type BatchingConfig = Static<typeof BatchingSchema>;
/** An ONNX backend's `tokenizer`, defaults filled. */
export type TokenizerConfig = Static<typeof TokenizerSchema>;
