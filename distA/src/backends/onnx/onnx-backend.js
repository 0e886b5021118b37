import { fastError } from '../../core/errors.js';
import { datatypeFromOrt } from '../../core/tensor.js';
import { Batcher } from '../../scheduling/batcher.js';
import { checkDimensions, unsupported, } from '../backend.js';
import { concatRows, fromOrt, splitRows, toOrt } from './tensors.js';
import { loadOrt } from './runtime.js';
import { createTokenizer } from './tokenizer.js';
export class OnnxBackend {
    kind = 'onnx';
    tasks;
    #config;
    #onBatch;
    #tokenize;
    #ort = null;
    #session = null;
    #signature = null;
    #error = null;
    /** One batcher per shape of the non-batch dimensions; null when batching is off or impossible. */
    #batchers = null;
    #embedBatcher = null;
    constructor(config, onBatch) {
        this.#config = config;
        this.#onBatch = onBatch;
        this.#tokenize = createTokenizer(config.tokenizer);
        this.tasks = new Set(config.task === 'embedding' ? ['tensor', 'embedding'] : ['tensor']);
    }
    async load() {
        try {
            const ort = (this.#ort = await loadOrt());
            this.#session = await ort.InferenceSession.create(this.#config.path, {
                intraOpNumThreads: this.#config.threads,
                interOpNumThreads: 1,
                executionMode: 'sequential',
                graphOptimizationLevel: 'all',
            });
            this.#signature = readSignature(this.#session);
            if (this.#config.task === 'embedding')
                checkEmbeddingSignature(this.#signature);
        }
        catch (err) {
            this.#error = err.message;
            throw err;
        }
        const { batching } = this.#config;
        const sig = this.#signature;
        const batchable = batching.enabled && [...sig.inputs, ...sig.outputs].every((t) => t.shape[0] === -1);
        if (!batchable)
            return;
        this.#batchers = new Map();
        if (this.#config.task === 'embedding') {
            this.#embedBatcher = new Batcher({
                maxBatchSize: batching.max_batch_size,
                maxQueueDelayMs: batching.max_queue_delay_ms,
                rows: (rows) => rows.length,
                execute: (items) => this.#embedBatch(items),
                onBatch: this.#onBatch,
            });
        }
    }
    async unload() {
        const session = this.#session;
        this.#session = null;
        await session?.release();
    }
    health() {
        return { ready: this.#session !== null, error: this.#error };
    }
    signature() {
        return this.#signature;
    }
    contextLength() {
        return this.#config.task === 'embedding' ? this.#config.tokenizer.max_tokens : null;
    }
    infer(request) {
        if (this.#batchers === null)
            return this.#run(request);
        let key = '';
        for (const t of request.inputs)
            key += `${t.name}:${t.shape.slice(1).join('x')};`;
        if (request.outputs !== null)
            key += `>${request.outputs.join(',')}`;
        let batcher = this.#batchers.get(key);
        if (batcher === undefined) {
            batcher = new Batcher({
                maxBatchSize: this.#config.batching.max_batch_size,
                maxQueueDelayMs: this.#config.batching.max_queue_delay_ms,
                rows: (r) => r.inputs[0]?.shape[0] ?? 1,
                execute: (items) => this.#inferBatch(items),
                onBatch: this.#onBatch,
            });
            this.#batchers.set(key, batcher);
        }
        return batcher.submit(request);
    }
    async embed(request) {
        checkDimensions(request, this.#signature?.outputs[0]?.shape[1]);
        const max = this.#config.tokenizer.max_tokens;
        let promptTokens = 0;
        const rows = request.input.map((text, i) => {
            const ids = this.#tokenize(text);
            if (ids.length === 0)
                throw fastError('invalid_request', 'input must contain at least one word or symbol', `input[${i}]`);
            if (ids.length > max) {
                throw fastError('context_length_exceeded', `input[${i}] has ${ids.length} tokens; this model accepts at most ${max}`, `input[${i}]`);
            }
            promptTokens += ids.length;
            return ids;
        });
        const vectors = this.#embedBatcher === null
            ? await this.#embedBatch([rows]).then((r) => r[0])
            : await this.#embedBatcher.submit(rows);
        return { vectors, promptTokens };
    }
    generate() {
        return unsupported(this.kind, 'chat');
    }
    async #run(request) {
        const session = this.#ready();
        const ort = this.#ort;
        const feeds = {};
        for (const t of request.inputs)
            feeds[t.name] = toOrt(ort, t);
        const names = request.outputs ?? session.outputNames;
        const results = await session.run(feeds, names);
        return { outputs: names.map((name) => fromOrt(name, results[name])) };
    }
    async #inferBatch(items) {
        if (items.length === 1)
            return [await this.#run(items[0])];
        const first = items[0];
        const inputs = first.inputs.map((_, k) => concatRows(items.map((item) => item.inputs[k])));
        const merged = await this.#run({ inputs, outputs: first.outputs });
        const rows = items.map((item) => item.inputs[0]?.shape[0]);
        const split = merged.outputs.map((t) => splitRows(t, rows));
        return items.map((_, i) => ({ outputs: split.map((pieces) => pieces[i]) }));
    }
    /** Embeds every text of every item in one call, padding token ids to the longest text. */
    async #embedBatch(items) {
        const texts = items.flat();
        const width = texts.reduce((w, ids) => Math.max(w, ids.length), 0);
        const ids = new BigInt64Array(texts.length * width);
        const mask = new BigInt64Array(texts.length * width);
        texts.forEach((row, r) => {
            for (let k = 0; k < row.length; k++) {
                ids[r * width + k] = BigInt(row[k]);
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
        const out = outputs[0];
        const dim = out.shape[1];
        const data = out.data;
        let row = 0;
        return items.map((item) => item.map(() => data.slice(dim * row, dim * ++row)));
    }
    #ready() {
        if (this.#session === null)
            throw fastError('model_not_ready', 'the model is not loaded');
        return this.#session;
    }
}
function readSignature(session) {
    const spec = (meta) => {
        if (!meta.isTensor)
            throw new Error(`"${meta.name}" is not a tensor; only tensor inputs and outputs are served`);
        const datatype = datatypeFromOrt(meta.type);
        if (datatype === null)
            throw new Error(`"${meta.name}" has unsupported type ${meta.type}`);
        return { name: meta.name, datatype, shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
    };
    return { inputs: session.inputMetadata.map(spec), outputs: session.outputMetadata.map(spec) };
}
function checkEmbeddingSignature(sig) {
    const names = sig.inputs.map((i) => `${i.name}:${i.datatype}`).sort();
    if (names.join() !== 'attention_mask:INT64,input_ids:INT64' || sig.outputs.length !== 1 || sig.outputs[0]?.shape.length !== 2) {
        throw new Error('an embedding model must take input_ids and attention_mask (INT64, [batch, sequence]) and return one [batch, dim] output');
    }
}
//# sourceMappingURL=onnx-backend.js.map