/** The options of `kind: llama` backends: the GGUF file, context, sequences, queue, threads and GPU. */
import { Type, type Static } from '@sinclair/typebox';
import { CacheDirOption, Sha256Option } from '../model-file-options.js';

const strict = { additionalProperties: false } as const;

/** `kind: llama`: a GGUF model run in process by node-llama-cpp. */
export const LlamaBackendSchema = Type.Object(
  {
    kind: Type.Literal('llama'),
    path: Type.String({
      minLength: 1,
      description:
        'The .gguf file, relative to the config file, or an http(s) URL downloaded into `cache_dir` when the version loads. ' +
        'Example: models/tiny-chat/1/model.gguf, https://models.example.com/tiny-chat/1/model.gguf',
    }),
    sha256: Type.Optional(Sha256Option),
    cache_dir: CacheDirOption,
    context_size: Type.Optional(
      Type.Integer({
        minimum: 32,
        maximum: 1_048_576,
        description:
          'Tokens one sequence can hold (prompt plus completion). Default: the context the model was trained with, at most 4096.',
      }),
    ),
    sequences: Type.Integer({
      minimum: 1,
      maximum: 256,
      default: 4,
      description: 'Requests generated at once, as parallel sequences of one context (each costs its own KV cache). Example: 8.',
    }),
    queue_size: Type.Integer({
      minimum: 0,
      default: 64,
      description: 'Requests that may wait for a free sequence; beyond it requests get 503 `overloaded` with Retry-After.',
    }),
    threads: Type.Union([Type.Integer({ minimum: 1, maximum: 1024 }), Type.Literal('auto')], {
      default: 'auto',
      description:
        'CPU threads for evaluation. `auto`: the cores per worker process minus one for the event loop, at least 1 ' +
        '(1 on a 2-core machine, where 2 threads made generation ~10x slower).',
    }),
    batch_size: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'Most tokens evaluated in one step (prompt chunks). Default: min(512, context_size x sequences).',
      }),
    ),
    gpu: Type.Union([Type.Literal('auto'), Type.Literal('cuda'), Type.Literal('vulkan'), Type.Literal('metal'), Type.Literal(false)], {
      default: 'auto',
      description:
        '`auto`: the best GPU backend with prebuilt binaries (CUDA, Vulkan, Metal), else CPU. `false`: CPU. `cuda`, `vulkan`, `metal`: that one or fail.',
    }),
    gpu_layers: Type.Union([Type.Integer({ minimum: 0 }), Type.Literal('auto'), Type.Literal('max')], {
      default: 'auto',
      description: 'Layers offloaded to the GPU: a number, `max`, or `auto` (as many as fit). Ignored on CPU.',
    }),
    flash_attention: Type.Union([Type.Literal('auto'), Type.Boolean()], {
      default: 'auto',
      description: '`auto`: on with a GPU, off on CPU (off made tiny-chat decode 2x faster on CPU).',
    }),
    chat_template: Type.String({
      minLength: 1,
      default: 'auto',
      description:
        '`auto`: the template in the GGUF metadata. Or a node-llama-cpp chat wrapper name (chatML, llama3.1, mistral, gemma, qwen, ...), ' +
        'or a Jinja template (any text containing `{{` or `{%`).',
    }),
  },
  strict,
);

/** A `kind: llama` backend, defaults filled. */
export type LlamaBackendConfig = Static<typeof LlamaBackendSchema>;
