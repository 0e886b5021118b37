/** `server.tls`: HTTPS on the HTTP port with a self-signed certificate made here, given as files or as PEM text. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { BIN, startServer, writeConfig, type RunningServer } from '../helpers/server.js';

const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const skip = openssl.error === undefined && openssl.status === 0 ? false : 'openssl is not installed: no certificate to test with';

/** A self-signed P-256 certificate for localhost and 127.0.0.1, valid for a day, in `dir` as c.pem and k.pem. */
function makeCertificate(dir: string): { cert: string; key: string } {
  const made = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-days',
      '1',
      '-keyout',
      'k.pem',
      '-out',
      'c.pem',
    ],
    { cwd: dir, encoding: 'utf8' },
  );
  assert.equal(made.status, 0, made.stderr);
  return { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') };
}

const MODELS = `models: [{ name: m, versions: [{ version: '1', backend: { kind: mock, text: 'over tls' } }] }]\n`;

describe('HTTPS by server.tls', { skip }, () => {
  let dir: string;
  let pem: { cert: string; key: string };
  let trusting: Agent;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'infergate-tls-'));
    pem = makeCertificate(dir);
    // Trusts the test's certificate only, as a client given the CA would.
    trusting = new Agent({ connect: { ca: pem.cert } });
  });
  after(() => trusting?.close());

  const chat = (url: string) =>
    new OpenAI({
      baseURL: `${url}/v1`,
      apiKey: 'unused',
      maxRetries: 0,
      fetch: undiciFetch as unknown as typeof fetch,
      fetchOptions: { dispatcher: trusting } as Record<string, unknown>,
    }).chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });

  it('serves the OpenAI API over HTTPS with the certificate and key as files relative to the config file, and drops a silent handshake', async () => {
    const config = writeConfig(
      `server: { tls: { cert: c.pem, key: k.pem }, headers_timeout_ms: 1000, request_timeout_ms: 2000 }\ngrpc: { enabled: false }\n${MODELS}`,
    );
    // writeConfig makes its own folder: put the PEM files next to the config file.
    for (const f of ['c.pem', 'k.pem']) copyFileSync(join(dir, f), join(dirname(config), f));
    let server: RunningServer | undefined;
    try {
      server = await startServer({ config });
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.match(server.output(), /listening on https:\/\/127\.0\.0\.1:\d+/);
      const answer = await chat(server.url);
      assert.equal(answer.choices[0]?.message.content, 'over tls');
      // A client that opens a connection and never starts the TLS handshake is dropped at headers_timeout_ms.
      const { hostname, port } = new URL(server.url);
      const silent = connect(Number(port), hostname);
      silent.on('error', () => {});
      const opened = performance.now();
      const dropped = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('a silent connection was held past 4 s')), 4000);
        silent.once('close', () => {
          clearTimeout(timer);
          resolve(performance.now() - opened);
        });
      }).finally(() => silent.destroy());
      assert.ok(dropped >= 900, `dropped after ${dropped} ms, before headers_timeout_ms`);
      // A client that does not trust the certificate is refused by its own TLS check.
      await assert.rejects(fetch(`${server.url}/health/live`), (err: Error) =>
        /self[- ]signed/i.test(String((err.cause as Error)?.message)),
      );
    } finally {
      assert.equal(await server?.stop(), 0);
    }
  });

  it('takes the certificate and key as PEM text from the environment, under two workers', async () => {
    const config = writeConfig(`server: { tls: { cert: '\${TLS_CERT}', key: '\${TLS_KEY}' } }\ngrpc: { enabled: false }\n${MODELS}`);
    let server: RunningServer | undefined;
    try {
      server = await startServer({ config, args: ['--workers', '2'], env: { TLS_CERT: pem.cert, TLS_KEY: pem.key } });
      assert.match(server.url, /^https:\/\//);
      assert.match(server.output(), /"workers":2/);
      // Several connections, so both workers are likely to answer; each must speak TLS.
      const answers = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const agent = new Agent({ connect: { ca: pem.cert } });
          try {
            const res = await undiciFetch(`${server?.url}/v1/chat/completions`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
              dispatcher: agent,
            });
            return { status: res.status, body: (await res.json()) as { choices: Array<{ message: { content: string } }> } };
          } finally {
            await agent.close();
          }
        }),
      );
      for (const a of answers) {
        assert.equal(a.status, 200);
        assert.equal(a.body.choices[0]?.message.content, 'over tls');
      }
    } finally {
      assert.equal(await server?.stop(), 0);
    }
  });

  it('refuses to start on a certificate it cannot read, with one line naming server.tls.cert and no stack trace', () => {
    const config = writeConfig(`server: { tls: { cert: nowhere.pem, key: ${join(dir, 'k.pem')} } }\n${MODELS}`);
    const res = spawnSync(process.execPath, [BIN, 'serve', '--config', config, '--port', '0', '--grpc-port', '0'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(res.status, 2, res.stderr);
    const line = `${config} server.tls.cert: cannot read ${join(dirname(config), 'nowhere.pem')}: ENOENT`;
    assert.ok(res.stderr.includes(line), res.stderr);
    assert.doesNotMatch(res.stderr, /^\s+at /m);
    const validated = spawnSync(process.execPath, [BIN, 'config', 'validate', config], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(validated.status, 1);
    assert.ok(validated.stderr.includes(line), validated.stderr);
  });

  it('refuses a key that is not PEM text, naming server.tls.key', () => {
    const config = writeConfig(`server: { tls: { cert: '\${TLS_CERT}', key: '\${TLS_KEY}' } }\n${MODELS}`);
    const res = spawnSync(process.execPath, [BIN, 'serve', '--config', config, '--port', '0', '--grpc-port', '0'], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, TLS_CERT: pem.cert, TLS_KEY: '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n' },
    });
    assert.equal(res.status, 2, res.stderr);
    assert.match(res.stderr, /server\.tls\.key: not a usable PEM private key for the certificate: /);
    assert.doesNotMatch(res.stderr, /^\s+at /m);
  });
});
