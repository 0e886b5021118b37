/** Creates the AbortController (about 1 µs and a listener) only when a backend reads `signal`. */
class HttpContext {
    id;
    pinnedVersion;
    #res;
    #signal = null;
    constructor(id, pinnedVersion, res) {
        this.id = id;
        this.pinnedVersion = pinnedVersion;
        this.#res = res;
    }
    get signal() {
        if (this.#signal !== null)
            return this.#signal;
        const controller = new AbortController();
        this.onAbort(() => controller.abort());
        return (this.#signal = controller.signal);
    }
    onAbort(listener) {
        const res = this.#res;
        if (res.closed) {
            if (!res.writableFinished)
                listener();
            return;
        }
        res.once('close', () => res.writableFinished || listener());
    }
}
export function httpContext(request, reply, pinnedVersion) {
    const header = request.headers['x-model-version'];
    const pinned = pinnedVersion ?? (typeof header === 'string' && header !== '' ? header : undefined);
    return new HttpContext(request.id, pinned, reply.raw);
}
//# sourceMappingURL=context.js.map