/**
 * The anthropic backend against a real server on loopback that answers as the Anthropic API does:
 * the path, headers and body of each call, count_tokens, the active health check's path, the
 * mapping of Anthropic's error answers (529 overloaded among them), and the config's own rules.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AnthropicBackend } from '../../src/backends/anthropic/anthropic-backend.js';
import { createBackend } from '../../src/backends/index.js';
import { ApiError } from '../../src/core/errors.js';
import { textStream } from '../../src/core/text.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { MODELS } from '../helpers/server.js';
import { chatRequest, collect, completionRequest, leavingCall } from './text-requests.js';

interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Record<string, unknown> | null;
}

/** What the next POST answers: a status, headers and a body (Anthropic's error JSON, say). */
interface Answer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body: string;
}

const MESSAGE = JSON.stringify({
  id: 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5',
  content: [{ type: 'text', text: 'Hi! My name is Claude.' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 10, output_tokens: 8 },
});

const error = (type: string, message: string): string => JSON.stringify({ type: 'error', error: { type, message } });

/** The backend's config as the schema fills it, pointed at `url`. */
function backendAt(url: string, extra = ''): AnthropicBackend {
  const config = parseConfig(
    `models: [{ name: claude, versions: [{ version: '1', backend: { kind: anthropic, base_url: '${url}', ${extra} } }] }]`,
    `${MODELS}/config.yaml`,
  );
  const backend = createBackend(config.models[0]!.versions[0]!.backend, { modelName: 'claude' });
  assert.ok(backend instanceof AnthropicBackend);
  return backend;
}

/** The problems of a rejected anthropic backend config, as `path: message`. */
function problems(backend: string): string[] {
  try {
    parseConfig(`models: [{ name: m, versions: [{ version: '1', backend: ${backend} }] }]`, `${MODELS}/config.yaml`);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail('expected the config to be rejected');
}

describe('an anthropic backend on a loopback Messages API', () => {
  let server: Server;
  let url: string;
  const seen: Seen[] = [];
  const answers: Answer[] = [];

  before(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (raw += d));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: raw === '' ? null : JSON.parse(raw) });
        if (req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[],"has_more":false}');
          return;
        }
        const answer = answers.shift() ?? { status: 200, body: MESSAGE };
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers }).end(answer.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(typeof address === 'object' && address !== null);
    url = `http://127.0.0.1:${address.port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('posts /v1/messages with x-api-key, anthropic-version and the configured headers, and the model the upstream knows', async () => {
    const backend = backendAt(url, "api_key: sk-ant-test, model: claude-sonnet-4-5, headers: { anthropic-beta: 'tools-2024-04-04' }");
    await backend.load();
    try {
      seen.length = 0;
      const answer = await backend.generate(chatRequest('claude', [{ role: 'user', content: 'Hello' }]), leavingCall());
      assert.equal(answer.protocol, 'anthropic');
      const stream = await textStream(answer);
      assert.equal(stream.id, 'msg_013Zva2CMHLNnXjNJJKqJ2EF');
      assert.deepEqual(await collect(stream.events), [
        { type: 'text', text: 'Hi! My name is Claude.', logprobs: null },
        { type: 'finish', reason: 'stop' },
        { type: 'usage', promptTokens: 10, completionTokens: 8, timings: null },
      ]);
      const call = seen[0] as Seen;
      assert.equal(call.path, '/v1/messages');
      assert.equal(call.headers['x-api-key'], 'sk-ant-test');
      assert.equal(call.headers['anthropic-version'], '2023-06-01');
      assert.equal(call.headers['anthropic-beta'], 'tools-2024-04-04');
      assert.equal(call.headers.authorization, undefined, 'the key goes as x-api-key only');
      assert.deepEqual(call.body, { model: 'claude-sonnet-4-5', max_tokens: 4096, messages: [{ role: 'user', content: 'Hello' }] });
    } finally {
      await backend.unload();
    }
  });

  it('serves chat only: completions and embeddings are unsupported', async () => {
    const backend = backendAt(url);
    await backend.load();
    try {
      assert.deepEqual([...backend.tasks], ['chat']);
      await assert.rejects(backend.generate(completionRequest('claude', 'Hi'), leavingCall()), { code: 'unsupported_operation' });
      await assert.rejects(backend.embed(), { code: 'unsupported_operation' });
    } finally {
      await backend.unload();
    }
  });

  it('counts tokens by POST /v1/messages/count_tokens, sending the prompt without max_tokens', async () => {
    const backend = backendAt(url, 'anthropic_version: 2024-01-01');
    await backend.load();
    try {
      seen.length = 0;
      answers.push({ status: 200, body: '{"input_tokens": 14}' });
      const request = chatRequest('claude', [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello' },
      ]);
      assert.equal(await backend.countTokens(request, leavingCall()), 14);
      assert.equal(seen[0]?.path, '/v1/messages/count_tokens');
      assert.equal(seen[0]?.headers['anthropic-version'], '2024-01-01');
      assert.deepEqual(seen[0]?.body, { model: 'claude', system: 'Be brief.', messages: [{ role: 'user', content: 'Hello' }] });
      answers.push({ status: 200, body: '{"tokens": 3}' });
      await assert.rejects(backend.countTokens(request, leavingCall()), { code: 'upstream_error' });
    } finally {
      await backend.unload();
    }
  });

  it('does not eject an endpoint whose count_tokens fails (a server without it), while /v1/messages failures still do', async () => {
    const backend = backendAt(url, 'passive_health: { consecutive_failures: 2, ejection_ms: 60000 }');
    await backend.load();
    const hi = chatRequest('claude', [{ role: 'user', content: 'Hello' }]);
    try {
      for (let i = 0; i < 4; i++) {
        answers.push({ status: 501, body: error('api_error', 'count_tokens is not implemented') });
        await assert.rejects(backend.countTokens(hi, leavingCall()), { code: 'upstream_error' });
      }
      assert.deepEqual(backend.endpointStatus(), [{ url, outstanding: 0, ejected: false }]);
      seen.length = 0;
      const stream = await textStream(await backend.generate(hi, leavingCall()));
      assert.equal(stream.id, 'msg_013Zva2CMHLNnXjNJJKqJ2EF');
      assert.equal(seen[0]?.path, '/v1/messages');
      for (let i = 0; i < 2; i++) {
        answers.push({ status: 500, body: error('api_error', 'Internal server error') });
        await assert.rejects(backend.generate(hi, leavingCall()), { code: 'upstream_error' });
      }
      assert.deepEqual(backend.endpointStatus(), [{ url, outstanding: 0, ejected: true }]);
    } finally {
      await backend.unload();
    }
  });

  it("maps Anthropic's error answers: the request's fault keeps the message, the upstream's are retryable as they say", async () => {
    const backend = backendAt(url);
    await backend.load();
    const hi = chatRequest('claude', [{ role: 'user', content: 'Hello' }]);
    const failure = async (answer: Answer): Promise<ApiError> => {
      answers.push(answer);
      try {
        await backend.generate(hi, leavingCall());
      } catch (err) {
        assert.ok(err instanceof ApiError, String(err));
        return err;
      }
      assert.fail('expected the call to fail');
    };
    try {
      const invalid = await failure({ status: 400, body: error('invalid_request_error', 'messages: roles must alternate') });
      assert.equal(invalid.code, 'invalid_request');
      assert.match(invalid.message, /roles must alternate/);
      assert.equal(invalid.retryable, false);
      const missing = await failure({ status: 404, body: error('not_found_error', 'model: claude-nope') });
      assert.equal(missing.code, 'invalid_request');
      const key = await failure({ status: 401, body: error('authentication_error', 'invalid x-api-key') });
      assert.equal(key.code, 'upstream_error');
      assert.match(key.message, /401: invalid x-api-key/);
      const limited = await failure({ status: 429, headers: { 'retry-after': '7' }, body: error('rate_limit_error', 'slow down') });
      assert.equal(limited.code, 'upstream_rate_limited');
      assert.equal(limited.retryAfterS, 7);
      const overloaded = await failure({ status: 529, headers: { 'retry-after': '3' }, body: error('overloaded_error', 'Overloaded') });
      assert.equal(overloaded.code, 'upstream_error');
      assert.match(overloaded.message, /overloaded \(529\): Overloaded/);
      assert.equal(overloaded.retryable, true);
      assert.equal(overloaded.mayHaveRun, false, 'an overloaded upstream did not run the call');
      assert.equal(overloaded.retryAfterS, 3);
      const broken = await failure({ status: 500, body: error('api_error', 'Internal server error') });
      assert.equal(broken.code, 'upstream_error');
      assert.equal(broken.retryable, false);
    } finally {
      await backend.unload();
    }
  });

  it('checks health with GET /v1/models below the base URL by default', async () => {
    const backend = backendAt(url, 'api_key: k, health_check: { interval_ms: 20 }');
    await backend.load();
    try {
      seen.length = 0;
      // Bounded: the check runs every 20 ms.
      for (let i = 0; i < 100 && !seen.some((s) => s.method === 'GET'); i++) await sleep(20);
      const check = seen.find((s) => s.method === 'GET');
      assert.ok(check !== undefined, 'a health check came');
      assert.equal(check.path, '/v1/models');
      assert.equal(check.headers['x-api-key'], 'k');
      assert.deepEqual(backend.endpointStatus(), [{ url, outstanding: 0, ejected: false }]);
    } finally {
      await backend.unload();
    }
  });
});

describe('the anthropic backend config', () => {
  it('fills its defaults: the API version, max_tokens and the health check path', () => {
    const config = parseConfig(
      "models: [{ name: m, versions: [{ version: '1', backend: { kind: anthropic, base_url: 'https://api.anthropic.com' } }] }]",
      `${MODELS}/config.yaml`,
    );
    const backend = config.models[0]?.versions[0]?.backend as Record<string, unknown>;
    assert.equal(backend.anthropic_version, '2023-06-01');
    assert.equal(backend.max_tokens, 4096);
    assert.deepEqual(backend.health_check, { interval_ms: 0, path: '/v1/models', timeout_ms: 2000 });
    assert.equal(backend.timeout_ms, 600_000);
  });

  it('needs exactly one of base_url and endpoints, each an API root without /v1', () => {
    const at = 'models[0].versions[0].backend';
    assert.deepEqual(problems('{ kind: anthropic }'), [
      `${at}: an anthropic backend needs exactly one of \`base_url\`, \`endpoints\` and \`discovery\``,
    ]);
    assert.deepEqual(problems("{ kind: anthropic, base_url: 'https://api.anthropic.com/v1' }"), [
      `${at}.base_url: must be the API root without /v1 (calls go to its /v1/messages), got "https://api.anthropic.com/v1"; e.g. https://api.anthropic.com`,
    ]);
    assert.deepEqual(
      problems("{ kind: anthropic, endpoints: [{ base_url: 'http://10.0.0.6:8080' }, { base_url: 'http://10.0.0.7:8080/v1/' }] }"),
      [
        `${at}.endpoints[1].base_url: must be the API root without /v1 (calls go to its /v1/messages), got "http://10.0.0.7:8080/v1/"; e.g. https://api.anthropic.com`,
      ],
    );
    assert.deepEqual(problems("{ kind: anthropic, base_url: 'http://x', max_tokens: 0 }"), [`${at}.max_tokens: must be >= 1, got 0`]);
  });
});
