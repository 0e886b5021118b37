/**
 * Dynamic batching: concurrent requests are merged into one model call of up to `maxBatchSize`
 * rows. A request waits at most `maxQueueDelayMs` for others to join; while a call runs, new
 * requests queue and go together as soon as it returns, so batches grow with load by themselves.
 *
 * The batcher owns its queue and is driven only through `submit`; `execute` runs one batch and
 * returns one result per item, in order.
 */
export class Batcher {
    #options;
    #queue = [];
    #queuedRows = 0;
    #running = false;
    #timer = null;
    constructor(options) {
        this.#options = options;
    }
    /** Items waiting for a batch. */
    get queued() {
        return this.#queue.length;
    }
    submit(item) {
        return new Promise((resolve, reject) => {
            const rows = this.#options.rows(item);
            this.#queue.push({ item, rows, resolve, reject });
            this.#queuedRows += rows;
            if (this.#running)
                return; // the running batch flushes the queue when it returns
            if (this.#queuedRows >= this.#options.maxBatchSize)
                this.#flush();
            else
                this.#arm();
        });
    }
    #arm() {
        if (this.#timer !== null)
            return;
        const delay = this.#options.maxQueueDelayMs;
        this.#timer = delay > 0 ? setTimeout(this.#onTimer, delay) : setImmediate(this.#onTimer);
    }
    #onTimer = () => {
        this.#timer = null;
        if (!this.#running)
            this.#flush();
    };
    #flush() {
        if (this.#timer !== null) {
            clearTimeout(this.#timer);
            clearImmediate(this.#timer);
            this.#timer = null;
        }
        if (this.#queue.length === 0)
            return;
        const batch = this.#take();
        this.#running = true;
        this.#run(batch).finally(() => {
            this.#running = false;
            if (this.#queue.length > 0)
                this.#flush();
        });
    }
    /** Takes items from the front up to maxBatchSize rows (always at least one item). */
    #take() {
        const max = this.#options.maxBatchSize;
        if (this.#queuedRows <= max) {
            const all = this.#queue;
            this.#queue = [];
            this.#queuedRows = 0;
            return all;
        }
        let rows = 0;
        let n = 0;
        while (n < this.#queue.length) {
            const next = this.#queue[n].rows;
            if (n > 0 && rows + next > max)
                break;
            rows += next;
            n++;
        }
        const batch = this.#queue.slice(0, n);
        this.#queue = this.#queue.slice(n);
        this.#queuedRows -= rows;
        return batch;
    }
    async #run(batch) {
        try {
            const results = await this.#options.execute(batch.map((p) => p.item));
            this.#options.onBatch?.(batch.reduce((n, p) => n + p.rows, 0), batch.length);
            for (let i = 0; i < batch.length; i++)
                batch[i].resolve(results[i]);
        }
        catch (error) {
            for (const p of batch)
                p.reject(error);
        }
    }
}
//# sourceMappingURL=batcher.js.map