/** Graceful shutdown: on SIGTERM readiness turns false at once, admitted requests finish, new connections are refused after the grace period, and the process exits 0. */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { get, post, startServer, writeConfig } from '../helpers/server.js';

describe('graceful shutdown', () => {
  it('drains under load: no admitted request fails, readiness is 503 during the grace period, then exit 0', async () => {
    const config = writeConfig(`
server: { shutdown_grace_ms: 400, shutdown_timeout_ms: 10000 }
models:
  - name: slow
    versions:
      - version: '1'
        backend: { kind: mock, latency_ms: 600, stream_chunks: 4 }
`);
    const server = await startServer({ config });
    const body = { model: 'slow', messages: [{ role: 'user', content: 'hi' }] };
    // Requests and streams in flight when the signal arrives.
    const inFlight = [
      ...Array.from({ length: 10 }, () => post(`${server.url}/v1/chat/completions`, body)),
      ...Array.from({ length: 5 }, async () => {
        const res = await fetch(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ...body, stream: true }),
        });
        return { status: res.status, text: await res.text() };
      }),
    ];
    await sleep(100);
    const signalled = performance.now();
    server.process.kill('SIGTERM');
    await sleep(50);
    const ready = await get(`${server.url}/health/ready`);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.status, 'draining');
    // Still accepting during the grace period: a request sent now is admitted and served.
    const late = post(`${server.url}/v1/chat/completions`, body);
    const results = await Promise.all([...inFlight, late]);
    for (const r of results) assert.equal(r.status, 200);
    for (const r of results.slice(10, 15)) assert.ok((r as { text: string }).text.endsWith('data: [DONE]\n\n'));
    // After the grace period new connections are refused.
    await sleep(Math.max(0, 450 - (performance.now() - signalled)));
    const refused = await new Promise<string>((resolve) => {
      const req = request(`${server.url}/health/live`, { agent: false }, () => resolve('answered'));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      req.end();
    });
    assert.equal(refused, 'ECONNREFUSED');
    const code = await server.stop();
    assert.equal(code, 0);
    assert.ok(performance.now() - signalled < 5000, 'exited without waiting for the force time-out');
  });
});
