/** The official `openai` SDK against the real server: models, embeddings, chat and completions, local and proxied. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startServer, writeConfig } from '../helpers/server.js';
import { startUpstream } from '../helpers/upstream.js';
describe('OpenAI API through the openai SDK', () => {
    let server;
    let upstream;
    let client;
    before(async () => {
        upstream = await startUpstream();
        const config = writeConfig(`
models:
  - name: tiny-embed
    versions:
      - version: '1'
        backend: { kind: onnx, path: \${MODELS}/tiny-embed/1/model.onnx, task: embedding, tokenizer: { max_tokens: 16 } }
  - name: mock-chat
    versions:
      - version: '1'
        backend: { kind: mock, text: 'one two three four', stream_chunks: 4 }
  - name: remote
    aliases: [remote-alias]
    versions:
      - version: '7'
        backend:
          kind: openai
          base_url: '${upstream.url}'
          api_key: \${UPSTREAM_KEY}
          model: upstream-model
          headers: { x-extra: 'yes' }
  - name: tiny-mlp
    versions:
      - version: '1'
        backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx }
`);
        server = await startServer({ config, env: { UPSTREAM_KEY: 'sk-upstream-secret' } });
        client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    });
    after(async () => {
        await server?.stop();
        await upstream?.close();
    });
    it('lists every model', async () => {
        const ids = [];
        for await (const m of client.models.list())
            ids.push(m.id);
        assert.deepEqual(ids.sort(), ['mock-chat', 'remote', 'tiny-embed', 'tiny-mlp']);
        const one = await client.models.retrieve('tiny-embed');
        assert.equal(one.object, 'model');
    });
    it('embeds a string and a list, as floats and as base64, with usage', async () => {
        const single = await client.embeddings.create({ model: 'tiny-embed', input: 'hello world', encoding_format: 'float' });
        const vector = single.data[0]?.embedding;
        assert.equal(vector.length, 64);
        const norm = Math.sqrt(vector.reduce((s, x) => s + x * x, 0));
        assert.ok(Math.abs(norm - 1) < 1e-4, `unit length, got ${norm}`);
        assert.equal(single.usage.prompt_tokens, 2);
        // The SDK asks for base64 by default and decodes it: the same text must give the same vector.
        const batch = await client.embeddings.create({ model: 'tiny-embed', input: ['hello world', 'something else entirely'] });
        assert.equal(batch.data.length, 2);
        assert.deepEqual(batch.data.map((d) => d.index), [0, 1]);
        const decoded = batch.data[0]?.embedding;
        decoded.forEach((x, i) => assert.ok(Math.abs(x - vector[i]) < 1e-6));
        assert.notDeepEqual(batch.data[1]?.embedding, decoded);
        assert.equal(batch.usage.prompt_tokens, 5);
    });
    it("accepts `dimensions` equal to the model's and refuses others", async () => {
        const same = await client.embeddings.create({ model: 'tiny-embed', input: 'x', dimensions: 64, encoding_format: 'float' });
        assert.equal(same.data[0]?.embedding.length, 64);
        await assert.rejects(client.embeddings.create({ model: 'tiny-embed', input: 'x', dimensions: 8 }), (err) => {
            assert.equal(err.param, 'dimensions');
            assert.match(err.message, /must be 64 for this model/);
            return true;
        });
    });
    it('rejects inputs longer than the model accepts, naming the limit', async () => {
        const long = Array.from({ length: 20 }, (_, i) => `w${i}`).join(' ');
        await assert.rejects(client.embeddings.create({ model: 'tiny-embed', input: ['ok', long] }), (err) => {
            assert.equal(err.status, 400);
            assert.equal(err.code, 'context_length_exceeded');
            assert.equal(err.param, 'input[1]');
            assert.match(err.message, /20 tokens; this model accepts at most 16/);
            return true;
        });
    });
    it('answers chat completions from a local model, whole and streamed', async () => {
        const whole = await client.chat.completions.create({ model: 'mock-chat', messages: [{ role: 'user', content: 'hi there' }] });
        assert.equal(whole.choices[0]?.message.content, 'one two three four');
        assert.equal(whole.choices[0]?.finish_reason, 'stop');
        assert.equal(whole.usage?.completion_tokens, 4);
        const stream = await client.chat.completions.create({
            model: 'mock-chat',
            messages: [{ role: 'user', content: 'hi' }],
            stream: true,
            stream_options: { include_usage: true },
        });
        let text = '';
        let finish = null;
        let usage = null;
        for await (const chunk of stream) {
            text += chunk.choices[0]?.delta.content ?? '';
            finish = chunk.choices[0]?.finish_reason ?? finish;
            usage = chunk.usage ?? usage;
        }
        assert.equal(text, 'one two three four');
        assert.equal(finish, 'stop');
        assert.equal(usage?.total_tokens, 5);
    });
    it('answers legacy completions', async () => {
        const res = await client.completions.create({ model: 'mock-chat', prompt: 'say something' });
        assert.equal(res.choices[0]?.text, 'one two three four');
    });
    it('proxies chat to an OpenAI-compatible upstream with its model name, key and headers', async () => {
        const before = upstream.received.length;
        const res = await client.chat.completions
            .create({ model: 'remote-alias', messages: [{ role: 'user', content: 'hello' }], temperature: 0.5 })
            .withResponse();
        assert.equal(res.data.choices[0]?.message.content, 'upstream says hi');
        assert.equal(res.response.headers.get('x-model-version'), '7');
        const seen = upstream.received[before];
        assert.equal(seen?.path, '/v1/chat/completions');
        assert.equal(seen?.body.model, 'upstream-model');
        assert.equal(seen?.body.temperature, 0.5);
        assert.equal(seen?.headers.authorization, 'Bearer sk-upstream-secret');
        assert.equal(seen?.headers['x-extra'], 'yes');
    });
    it('passes an upstream stream through chunk by chunk', async () => {
        upstream.streamChunks = 5;
        upstream.streamDelayMs = 20;
        const stream = await client.chat.completions.create({ model: 'remote', messages: [{ role: 'user', content: 'hi' }], stream: true });
        const arrivals = [];
        let text = '';
        for await (const chunk of stream) {
            arrivals.push(performance.now());
            text += chunk.choices[0]?.delta.content ?? '';
        }
        assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ');
        // Chunks arrive spread over time, not all at once at the end.
        assert.ok(arrivals.at(-1) - arrivals[0] >= 60, `chunks spread over ${arrivals.at(-1) - arrivals[0]} ms`);
    });
    it('cancels the upstream request when the client disconnects mid-stream', async () => {
        upstream.streamChunks = 200;
        upstream.streamDelayMs = 10;
        const aborted = upstream.abortedStreams;
        const controller = new AbortController();
        const stream = await client.chat.completions.create({ model: 'remote', messages: [{ role: 'user', content: 'hi' }], stream: true }, { signal: controller.signal });
        let n = 0;
        try {
            for await (const _ of stream) {
                if (++n === 3)
                    controller.abort();
            }
        }
        catch (err) {
            assert.equal(err.name, 'APIUserAbortError');
        }
        assert.ok(n >= 3 && n < 200, `read ${n} chunks before leaving`);
        const deadline = Date.now() + 2000;
        while (upstream.abortedStreams === aborted && Date.now() < deadline)
            await new Promise((r) => setTimeout(r, 20));
        assert.equal(upstream.abortedStreams, aborted + 1, 'the upstream saw its stream end early');
    });
    it('holds the upstream back while a client reads slowly (backpressure), not buffering the stream', async () => {
        upstream.firehoseBytes = 64 * 1024 * 1024;
        try {
            const res = await fetch(`${server.url}/v1/chat/completions`, {
                method: 'POST',
                body: JSON.stringify({ model: 'remote', messages: [{ role: 'user', content: 'x' }], stream: true }),
            });
            const reader = res.body.getReader();
            try {
                await reader.read(); // the stream has started; now stop reading
                await new Promise((r) => setTimeout(r, 500));
                // Socket buffers on both hops hold a few MB at most; without backpressure all 64 MB would be sent by now.
                assert.ok(upstream.firehoseSent < 32 * 1024 * 1024, `upstream sent ${upstream.firehoseSent} bytes to a client that stopped reading`);
            }
            finally {
                await reader.cancel();
            }
        }
        finally {
            upstream.firehoseBytes = 0;
        }
    });
    it('proxies completions and embeddings', async () => {
        const c = await client.completions.create({ model: 'remote', prompt: 'x' });
        assert.equal(c.choices[0]?.text, 'upstream says hi');
        const e = await client.embeddings.create({ model: 'remote', input: ['a', 'b'], encoding_format: 'float' });
        assert.deepEqual(e.data.map((d) => d.embedding[0]), [0, 1]);
    });
    it('relays an upstream 400 as the client error it is', async () => {
        upstream.failWith = { status: 400, message: 'temperature is too high' };
        try {
            await assert.rejects(client.chat.completions.create({ model: 'remote', messages: [{ role: 'user', content: 'x' }] }), (err) => {
                assert.equal(err.status, 400);
                assert.match(err.message, /temperature is too high/);
                assert.equal(err.param, 'temperature');
                return true;
            });
            upstream.failWith = { status: 500, message: 'boom' };
            await assert.rejects(client.chat.completions.create({ model: 'remote', messages: [{ role: 'user', content: 'x' }] }), (err) => {
                assert.equal(err.status, 502);
                assert.equal(err.code, 'upstream_error');
                return true;
            });
        }
        finally {
            upstream.failWith = null;
        }
    });
    it('throws NotFoundError with code model_not_found for an unknown model', async () => {
        await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), (err) => {
            assert.ok(err instanceof OpenAI.NotFoundError);
            assert.equal(err.code, 'model_not_found');
            assert.equal(err.param, 'model');
            return true;
        });
    });
    it('refuses chat on a tensor model and embeddings on a chat-only model with a clear 400', async () => {
        await assert.rejects(client.chat.completions.create({ model: 'tiny-mlp', messages: [{ role: 'user', content: 'x' }] }), (err) => {
            assert.equal(err.status, 400);
            assert.equal(err.code, 'unsupported_operation');
            assert.match(err.message, /does not serve chat/);
            return true;
        });
    });
    it('answers 502 upstream_unavailable when the upstream is down', async () => {
        const dead = writeConfig(`
models:
  - name: gone
    versions:
      - version: '1'
        backend: { kind: openai, base_url: 'http://127.0.0.1:1/v1' }
`);
        const s = await startServer({ config: dead });
        try {
            const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 });
            await assert.rejects(c.chat.completions.create({ model: 'gone', messages: [{ role: 'user', content: 'x' }] }), (err) => {
                assert.equal(err.status, 502);
                assert.equal(err.code, 'upstream_unavailable');
                return true;
            });
        }
        finally {
            await s.stop();
        }
    });
});
//# sourceMappingURL=openai-sdk.test.js.map