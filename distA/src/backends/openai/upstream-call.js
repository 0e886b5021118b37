/**
 * One HTTP call to an upstream over undici's dispatch API. Measured cheaper than `pool.request`
 * on the proxy path (no Readable per response unless the caller streams, no AbortController):
 * a whole body is gathered into one Buffer; a stream is a Readable whose backpressure pauses
 * the upstream socket, and whose destruction (client gone) aborts the upstream request.
 */
import { Readable } from 'node:stream';
export function upstreamCall(dispatcher, options, call, stream) {
    return new Promise((resolve, reject) => {
        let chunks = [];
        let readable = null;
        let status = 0;
        let headers = {};
        let settled = false;
        let ended = false;
        const handler = {
            onRequestStart(controller) {
                call.onAbort(() => ended || controller.abort(new Error('the client went away')));
            },
            onResponseStart(controller, statusCode, responseHeaders) {
                status = statusCode;
                headers = responseHeaders;
                if (!stream || statusCode >= 400)
                    return;
                readable = new Readable({
                    read: () => controller.resume(),
                    destroy: (err, done) => {
                        if (!ended)
                            controller.abort(err ?? new Error('the client went away'));
                        done(err);
                    },
                });
                settled = true;
                resolve({ status, headers, body: readable });
            },
            onResponseData(controller, chunk) {
                if (readable === null)
                    chunks.push(chunk);
                else if (!readable.push(chunk))
                    controller.pause();
            },
            onResponseEnd() {
                ended = true;
                if (readable !== null)
                    return void readable.push(null);
                settled = true;
                const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
                chunks = [];
                resolve({ status, headers, body });
            },
            onResponseError(_controller, error) {
                ended = true;
                if (!settled) {
                    settled = true;
                    reject(error);
                }
                else
                    readable?.destroy(error);
            },
        };
        dispatcher.dispatch(options, handler);
    });
}
//# sourceMappingURL=upstream-call.js.map