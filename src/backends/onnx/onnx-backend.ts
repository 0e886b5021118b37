/**
 * In-process ONNX Runtime (CPU by default). Tensor requests to one version are merged by a
 * {@link Batcher} when every input and output has a dynamic first dimension; `embedding` models
 * also serve text through the tokenizer, padded to the longest input of the batch.
 */
import type { OnnxBackendConfig } from './config.js';
import { fastError } from '../../core/errors.js';
import { datatypeFromOrt, type Tensor, type TensorSpec } from '../../core/tensor.js';
import { Batcher } from '../../scheduling/batcher.js';
import { NO_OBSERVER, type DeploymentObserver } from '../../core/observer.js';
import { checkDimensions, unsupported, type Backend, type BackendHealth, type Occupancy } from '../backend.js';
import {
  type EmbedRequest,
  type EmbedResult,
  type InferRequest,
  type InferResult,
  type Cancellation,
  type TraceScope,
  type Signature,
  type Task,
} from '../../core/call.js';
import type { TextResponse } from '../../core/text.js';
import { concatRows, fromOrt, splitRows, toOrt } from './tensors.js';
import { loadOrt, type OrtModule, type OrtSession, type OrtTensor, type OrtValueMetadata } from './runtime.js';
import { createTokenizer } from './tokenizer.js';
import { resolveModelFile } from '../model-file.js';

/** Submits to a batcher; a traced call gets a `batch` span: its wait for the batch, the batch's size, and its run. */
function submitTraced<Item, Result>(batcher: Batcher<Item, Result>, item: Item, scope: TraceScope | undefined): Promise<Result> {
  if (scope === undefined) return batcher.submit(item);
  const queued = performance.now();
  return batcher.submit(item, (rows, requests, started) =>
    scope.stage('batch', queued, performance.now(), {
      'infergate.batch.rows': rows,
      'infergate.batch.requests': requests,
      'infergate.batch.queue_ms': Math.round((started - queued) * 1000) / 1000,
    }),
  );
}

/** A model run in process by ONNX Runtime: `tensor` calls, and for `task: embedding` also text embeddings. */
export class OnnxBackend implements Backend {
  readonly kind = 'onnx';
  readonly tasks: ReadonlySet<Task>;
  readonly #config: OnnxBackendConfig;
  readonly #observer: DeploymentObserver;
  readonly #tokenize: (text: string) => number[];
  #ort: OrtModule | null = null;
  #session: OrtSession | null = null;
  #signature: Signature | null = null;
  #error: string | null = null;
  /** One batcher per shape of the non-batch dimensions; null when batching is off or impossible. */
  #batchers: Map<string, Batcher<InferRequest, InferResult>> | null = null;
  #embedBatcher: Batcher<number[][], Float32Array[]> | null = null;

  constructor(config: OnnxBackendConfig, observer: DeploymentObserver = NO_OBSERVER) {
    this.#config = config;
    this.#observer = observer;
    this.#tokenize = createTokenizer(config.tokenizer);
    this.tasks = new Set<Task>(config.task === 'embedding' ? ['tensor', 'embedding'] : ['tensor']);
  }

  async load(): Promise<void> {
    try {
      const { path, sha256, cache_dir } = this.#config;
      const file = await resolveModelFile({ path, sha256, cacheDir: cache_dir });
      const ort = (this.#ort = await loadOrt());
      const session = await ort.InferenceSession.create(file, {
        intraOpNumThreads: this.#config.threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
      try {
        const signature = readSignature(session);
        if (this.#config.task === 'embedding') checkEmbeddingSignature(signature);
        this.#signature = signature;
      } catch (err) {
        // A model that cannot serve as configured is not loaded: its session is not kept (nor reported ready).
        await session.release();
        throw err;
      }
      this.#session = session;
    } catch (err) {
      this.#error = (err as Error).message;
      throw err;
    }
    const { batching } = this.#config;
    const sig = this.#signature;
    const batchable = batching.enabled && [...sig.inputs, ...sig.outputs].every((t) => t.shape[0] === -1);
    if (!batchable) return;
    this.#batchers = new Map();
    if (this.#config.task === 'embedding') {
      this.#embedBatcher = new Batcher<number[][], Float32Array[]>({
        maxBatchSize: batching.max_batch_size,
        maxQueueDelayMs: batching.max_queue_delay_ms,
        rows: (rows) => rows.length,
        execute: (items) => this.#embedBatch(items),
        onBatch: (rows, requests) => this.#observer.executed(rows, requests),
      });
    }
  }

  async unload(): Promise<void> {
    const session = this.#session;
    this.#session = null;
    await session?.release();
  }

  health(): BackendHealth {
    return { ready: this.#session !== null, error: this.#error };
  }

  /** Requests waiting for a batch (those in the running one are not counted). */
  occupancy(): Occupancy | null {
    if (this.#session === null) return null;
    let waiting = this.#embedBatcher?.queued ?? 0;
    for (const b of this.#batchers?.values() ?? []) waiting += b.queued;
    return { running: 0, waiting };
  }

  signature(): Signature | null {
    return this.#signature;
  }

  infer(request: InferRequest, call?: Cancellation): Promise<InferResult> {
    if (this.#batchers === null) {
      this.#observer.executed((request.inputs[0]?.shape[0] as number | undefined) ?? 1, 1);
      return this.#run(request);
    }
    let key = '';
    for (const t of request.inputs) key += `${t.name}:${t.shape.slice(1).join('x')};`;
    if (request.outputs !== null) key += `>${request.outputs.join(',')}`;
    let batcher = this.#batchers.get(key);
    if (batcher === undefined) {
      batcher = new Batcher<InferRequest, InferResult>({
        maxBatchSize: this.#config.batching.max_batch_size,
        maxQueueDelayMs: this.#config.batching.max_queue_delay_ms,
        rows: (r) => (r.inputs[0]?.shape[0] as number | undefined) ?? 1,
        execute: (items) => this.#inferBatch(items),
        onBatch: (rows, requests) => this.#observer.executed(rows, requests),
      });
      this.#batchers.set(key, batcher);
    }
    return submitTraced(batcher, request, call?.traceScope);
  }

  async embed(request: EmbedRequest, call?: Cancellation): Promise<EmbedResult> {
    checkDimensions(request, this.#signature?.outputs[0]?.shape[1] as number);
    const max = this.#config.tokenizer.max_tokens;
    let promptTokens = 0;
    const rows = request.input.map((text, i) => {
      const ids = this.#tokenize(text);
      if (ids.length === 0) throw fastError('invalid_request', 'input must contain at least one word or symbol', `input[${i}]`);
      if (ids.length > max) {
        throw fastError(
          'context_length_exceeded',
          `input[${i}] has ${ids.length} tokens; this model accepts at most ${max}`,
          `input[${i}]`,
        );
      }
      promptTokens += ids.length;
      return ids;
    });
    if (this.#embedBatcher === null) this.#observer.executed(rows.length, 1);
    const vectors =
      this.#embedBatcher === null
        ? await this.#embedBatch([rows]).then((r) => r[0] as Float32Array[])
        : await submitTraced(this.#embedBatcher, rows, call?.traceScope);
    return { vectors, promptTokens };
  }

  generate(): Promise<TextResponse> {
    return unsupported(this.kind, 'chat');
  }

  async #run(request: InferRequest): Promise<InferResult> {
    const session = this.#ready();
    const ort = this.#ort as OrtModule;
    const feeds: Record<string, OrtTensor> = {};
    for (const t of request.inputs) feeds[t.name] = toOrt(ort, t);
    const names = request.outputs ?? session.outputNames;
    const results = await session.run(feeds, names as string[]);
    return { outputs: names.map((name) => fromOrt(name, results[name] as OrtTensor)) };
  }

  async #inferBatch(items: InferRequest[]): Promise<InferResult[]> {
    if (items.length === 1) return [await this.#run(items[0] as InferRequest)];
    const first = items[0] as InferRequest;
    const inputs = first.inputs.map((_, k) => concatRows(items.map((item) => item.inputs[k] as Tensor)));
    const merged = await this.#run({ inputs, outputs: first.outputs });
    const rows = items.map((item) => item.inputs[0]?.shape[0] as number);
    const split = merged.outputs.map((t) => splitRows(t, rows));
    return items.map((_, i) => ({ outputs: split.map((pieces) => pieces[i] as Tensor) }));
  }

  /** Embeds every text of every item in one call, padding token ids to the longest text. */
  async #embedBatch(items: number[][][]): Promise<Float32Array[][]> {
    const texts = items.flat();
    const width = texts.reduce((w, ids) => Math.max(w, ids.length), 0);
    const ids = new BigInt64Array(texts.length * width);
    const mask = new BigInt64Array(texts.length * width);
    texts.forEach((row, r) => {
      for (let k = 0; k < row.length; k++) {
        ids[r * width + k] = BigInt(row[k] as number);
        mask[r * width + k] = 1n;
      }
    });
    const shape = [texts.length, width];
    const { outputs } = await this.#run({
      inputs: [
        { name: 'input_ids', datatype: 'INT64', shape, data: ids },
        { name: 'attention_mask', datatype: 'INT64', shape, data: mask },
      ],
      outputs: null,
    });
    const out = outputs[0] as Tensor;
    const dim = out.shape[1] as number;
    const data = out.data as Float32Array;
    let row = 0;
    return items.map((item) => item.map(() => data.slice(dim * row, dim * ++row)));
  }

  #ready(): OrtSession {
    if (this.#session === null) throw fastError('model_not_ready', 'the model is not loaded');
    return this.#session;
  }
}

function readSignature(session: OrtSession): Signature {
  const spec = (meta: OrtValueMetadata): TensorSpec => {
    if (!meta.isTensor) throw new Error(`"${meta.name}" is not a tensor; only tensor inputs and outputs are served`);
    const datatype = datatypeFromOrt(meta.type);
    if (datatype === null) throw new Error(`"${meta.name}" has unsupported type ${meta.type}`);
    return { name: meta.name, datatype, shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
  };
  return { inputs: session.inputMetadata.map(spec), outputs: session.outputMetadata.map(spec) };
}

function checkEmbeddingSignature(sig: Signature): void {
  const names = sig.inputs.map((i) => `${i.name}:${i.datatype}`).sort();
  if (names.join() !== 'attention_mask:INT64,input_ids:INT64' || sig.outputs.length !== 1 || sig.outputs[0]?.shape.length !== 2) {
    throw new Error(
      'an embedding model must take input_ids and attention_mask (INT64, [batch, sequence]) and return one [batch, dim] output',
    );
  }
}
