/**
 * The gRPC port's limits through the real server: memory one connection can pin (unfinished
 * messages with and without a key, the server's RSS measured), time-outs for silent and idle
 * connections, the per-worker connection cap, and TLS with ALPN h2 (a certificate made here).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, Metadata } from '@grpc/grpc-js';
import { startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { grpcServices } from '../helpers/grpc.js';
import { ADMIN_KEY, tenantWithKey } from '../helpers/tenancy.js';

const { Inference } = grpcServices();
const INFER_PATH = '/inference.GRPCInferenceService/ModelInfer';
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

/** The server process's resident memory, in bytes (Linux). */
function rss(server: RunningServer): number {
  const status = readFileSync(`/proc/${server.process.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

/** The client queues 300 MB of unsent DATA: past its own session memory limit node:http2 would ignore the answers. */
const CLIENT = { maxSessionMemory: 1000 };

const portOf = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));

/**
 * Opens `streams` calls on one connection, each sending the start of a message of `declared` bytes
 * (`sent` of them) and never finishing it; resolves with each call's gRPC status once all have one,
 * or null for those still open after `waitMs`.
 */
async function unfinished(session: ClientHttp2Session, streams: number, key: string | null, waitMs: number): Promise<Array<number | null>> {
  const declared = 3_900_000;
  const head = Buffer.from([0, 0, 0, 0, 0]);
  head.writeUInt32BE(declared, 1);
  const body = Buffer.alloc(3_000_000, 7); // one buffer, written to every stream
  const headers = { ':method': 'POST', ':path': INFER_PATH, 'content-type': 'application/grpc', te: 'trailers' };
  return Promise.all(
    Array.from({ length: streams }, () => {
      const req = session.request(key === null ? headers : { ...headers, authorization: `Bearer ${key}` });
      req.on('error', () => {});
      req.write(head);
      req.write(body);
      return new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), waitMs);
        const status = (h: Record<string, unknown>) => {
          if (h['grpc-status'] === undefined) return;
          clearTimeout(timer);
          resolve(Number(h['grpc-status']));
        };
        req.on('response', status);
        req.on('trailers', status);
      });
    }),
  );
}

describe('gRPC connection limits', { timeout: 90_000 }, () => {
  let server: RunningServer;
  let key: string;

  before(async () => {
    const config = writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
server: { body_limit_bytes: 4194304 }
grpc: { idle_timeout_ms: 600, handshake_timeout_ms: 400, keepalive_ms: 60000 }
models:
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }]
`);
    server = await startServer({ config });
    key = (await tenantWithKey(server.url, { id: 'acme', models: ['*'] })).key;
  });

  after(async () => {
    await server?.stop();
  });

  it('refuses calls without a key from their headers, before reading their messages, and pins no memory', async () => {
    const before = rss(server);
    const session = http2Connect(`http://${server.grpc}`, CLIENT);
    try {
      const statuses = await unfinished(session, 100, null, 10_000);
      assert.deepEqual(new Set(statuses), new Set([16]), 'every call UNAUTHENTICATED, though its message never ended');
    } finally {
      session.destroy();
    }
    const grown = rss(server) - before;
    assert.ok(grown < 48 * 2 ** 20, `the server's RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
  });

  it('holds at most grpc.max_connection_buffer_bytes of unfinished messages per connection, with a key: RESOURCE_EXHAUSTED past it', async () => {
    const before = rss(server);
    const session = http2Connect(`http://${server.grpc}`, CLIENT);
    try {
      // 100 calls of 3 MB each, unfinished: 300 MB offered; the default budget is 2 x 4 MiB.
      const statuses = await unfinished(session, 100, key, 5_000);
      const exhausted = statuses.filter((s) => s === 8).length;
      const open = statuses.filter((s) => s === null).length;
      assert.ok(exhausted >= 97, `${exhausted} calls RESOURCE_EXHAUSTED`);
      assert.equal(exhausted + open, 100, `statuses: ${[...new Set(statuses)].join(', ')}`);
      const grown = rss(server) - before;
      assert.ok(grown < 64 * 2 ** 20, `the server's RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
    } finally {
      session.destroy();
    }
  });

  it('closes a connection that sends nothing, or the magic without SETTINGS, after grpc.handshake_timeout_ms', async () => {
    for (const bytes of [Buffer.alloc(0), PREFACE]) {
      const started = Date.now();
      await new Promise<void>((resolve, reject) => {
        const socket = tcpConnect(portOf(server.grpc as string), '127.0.0.1', () => socket.write(bytes));
        const timer = setTimeout(() => reject(new Error('still open after 3 s')), 3000);
        socket.on('error', () => {});
        socket.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.resume();
      });
      assert.ok(Date.now() - started >= 300, `closed after ${Date.now() - started} ms`);
    }
  });

  it('closes a connection with no calls after grpc.idle_timeout_ms, with GOAWAY NO_ERROR', async () => {
    const started = Date.now();
    const got = await new Promise<Buffer>((resolve, reject) => {
      const socket = tcpConnect(portOf(server.grpc as string), '127.0.0.1', () => socket.write(Buffer.concat([PREFACE, EMPTY_SETTINGS])));
      const timer = setTimeout(() => reject(new Error('still open after 4 s')), 4000);
      let data = Buffer.alloc(0);
      socket.on('data', (d) => (data = Buffer.concat([data, d])));
      socket.on('error', () => {});
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(data);
      });
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 500, `closed after ${elapsed} ms`);
    const goAway = got.indexOf(Buffer.from([0, 0, 8, 7]));
    assert.ok(goAway >= 0, 'a GOAWAY came');
    assert.equal(got.readUInt32BE(goAway + 9 + 4), 0, 'NO_ERROR');
  });
});

describe('gRPC connections per worker', { timeout: 60_000 }, () => {
  it('closes connections past server.max_connections at once, and takes new ones when others close', async () => {
    const config = writeConfig(`
server: { max_connections: 3 }
models: [{ name: m, versions: [{ version: '1', backend: { kind: mock } }] }]
`);
    const server = await startServer({ config });
    const open = (): Promise<{ closed: Promise<void>; destroy: () => void; settings: Promise<void> }> =>
      new Promise((resolve) => {
        const socket = tcpConnect(portOf(server.grpc as string), '127.0.0.1', () => {
          socket.write(Buffer.concat([PREFACE, EMPTY_SETTINGS]));
          resolve({
            closed: new Promise((r) => socket.once('close', () => r())),
            destroy: () => socket.destroy(),
            settings: new Promise((r) => socket.once('data', () => r())),
          });
        });
        socket.on('error', () => {});
      });
    try {
      const held = [await open(), await open(), await open()];
      await Promise.all(held.map((c) => c.settings)); // each has a session
      const fourth = await open();
      const closedAtOnce = await Promise.race([fourth.closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 2000))]);
      assert.ok(closedAtOnce, 'a fourth connection is closed');
      held[0]!.destroy();
      await held[0]!.closed;
      // The server sees the close a moment later; a fresh connection gets its SETTINGS once it does.
      let served = false;
      for (let i = 0; i < 20 && !served; i++) {
        const next = await open();
        served = await Promise.race([next.settings.then(() => true), next.closed.then(() => false)]);
        next.destroy();
      }
      assert.ok(served, 'a connection is taken again once one closed');
      for (const c of held) c.destroy();
    } finally {
      await server.stop();
    }
  });
});

/** A self-signed certificate for localhost and 127.0.0.1; null when openssl is missing. */
function selfSigned(): { cert: string; key: string; dir: string } | null {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost'],
        ...[
          '-addext',
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
          '-days',
          '1',
          '-keyout',
          join(dir, 'k.pem'),
          '-out',
          join(dir, 'c.pem'),
        ],
      ],
      { stdio: 'ignore' },
    );
  } catch {
    return null;
  }
  return { cert: join(dir, 'c.pem'), key: join(dir, 'k.pem'), dir };
}

describe('gRPC over TLS', { timeout: 90_000 }, () => {
  const tls = selfSigned();
  const request = {
    model_name: 'tiny-mlp',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 32], contents: { fp32_contents: Array.from({ length: 32 }, (_, i) => i) } }],
  };

  /** ModelInfer with a client that trusts the test's certificate. */
  function inferOverTls(address: string): Promise<any> {
    const client = new Inference(`localhost:${portOf(address)}`, credentials.createSsl(readFileSync(tls!.cert)));
    return new Promise((resolve, reject) =>
      (client as any).ModelInfer(request, new Metadata(), (err: Error | null, res: unknown) => {
        client.close();
        if (err === null) resolve(res);
        else reject(err);
      }),
    ).finally(() => client.close());
  }

  for (const workers of ['1', '2']) {
    it(`serves gRPC over TLS with ALPN h2 when server.tls is set (${workers} worker${workers === '1' ? '' : 's'})`, async (t) => {
      if (tls === null) return t.skip('openssl is not installed');
      const config = writeConfig(`
server: { tls: { cert: '${tls.cert}', key: '${tls.key}' } }
models:
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }]
`);
      const server = await startServer({ config, args: ['--workers', workers] });
      try {
        const answer = await inferOverTls(server.grpc as string);
        assert.equal(answer.model_name, 'tiny-mlp');
        assert.equal(answer.outputs.length, 1);
      } finally {
        await server.stop();
      }
    });
  }
});
