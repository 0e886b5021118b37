/**
 * A real OpenAI-compatible server on loopback, standing in for vLLM or OpenAI: answers chat,
 * completions and embeddings, streams chunk by chunk at a pace the test sets, records what it
 * received, and notices when a client goes away mid-stream.
 */
import { createServer } from 'node:http';
export async function startUpstream() {
    const state = {
        received: [],
        abortedStreams: 0,
        streamChunks: 3,
        streamDelayMs: 0,
        failWith: null,
        firehoseBytes: 0,
        firehoseSent: 0,
    };
    const server = createServer((req, res) => {
        let raw = '';
        req.setEncoding('utf8');
        req.on('data', (d) => (raw += d));
        req.on('end', () => handle(req, res, JSON.parse(raw || '{}')));
    });
    function handle(req, res, body) {
        state.received.push({ path: req.url ?? '', headers: req.headers, body });
        if (state.failWith !== null) {
            res.writeHead(state.failWith.status, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { message: state.failWith.message, type: 'invalid_request_error', param: 'temperature', code: null } }));
            return;
        }
        const model = String(body.model);
        if (req.url === '/v1/embeddings') {
            const input = Array.isArray(body.input) ? body.input : [body.input];
            const data = input.map((_, index) => ({ object: 'embedding', index, embedding: [index, 0.5, -0.5] }));
            return json(res, { object: 'list', data, model, usage: { prompt_tokens: 3, total_tokens: 3 } });
        }
        const chat = req.url === '/v1/chat/completions';
        if (body.stream !== true) {
            const choice = chat
                ? { index: 0, message: { role: 'assistant', content: 'upstream says hi' }, finish_reason: 'stop' }
                : { index: 0, text: 'upstream says hi', finish_reason: 'stop' };
            return json(res, {
                id: 'up-1',
                object: chat ? 'chat.completion' : 'text_completion',
                created: 1,
                model,
                choices: [choice],
                usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
            });
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        if (state.firehoseBytes > 0)
            return firehose(res);
        let i = 0;
        let finished = false;
        res.on('close', () => {
            if (!finished)
                state.abortedStreams++;
        });
        const tick = () => {
            if (res.destroyed)
                return;
            if (i < state.streamChunks) {
                const chunk = {
                    id: 'up-s',
                    object: 'chat.completion.chunk',
                    created: 1,
                    model,
                    choices: [{ index: 0, delta: { content: `tok${i} ` }, finish_reason: null }],
                };
                res.write(`data: ${JSON.stringify(chunk)}\n\n`);
                i++;
                setTimeout(tick, state.streamDelayMs);
                return;
            }
            finished = true;
            res.end(`data: ${JSON.stringify({ id: 'up-s', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
        };
        tick();
    }
    function firehose(res) {
        const chunk = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'x'.repeat(16 * 1024) } }] })}\n\n`;
        state.firehoseSent = 0;
        const pump = () => {
            while (state.firehoseSent < state.firehoseBytes && !res.destroyed) {
                state.firehoseSent += chunk.length;
                if (!res.write(chunk))
                    return void res.once('drain', pump);
            }
            if (!res.destroyed)
                res.end('data: [DONE]\n\n');
        };
        res.on('close', () => state.abortedStreams++);
        pump();
    }
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = server.address().port;
    const upstream = Object.assign(state, {
        url: `http://127.0.0.1:${port}/v1`,
        close: () => new Promise((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
        }),
    });
    return upstream;
}
function json(res, body) {
    const text = JSON.stringify(body);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
}
//# sourceMappingURL=upstream.js.map