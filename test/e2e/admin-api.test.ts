/**
 * The admin API as the README shows it: refusals name the field (`param` and message, one per
 * problem), and bodies sent as `curl -d` sends them (form content type, or none) are read as JSON.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startServer, type RunningServer } from '../helpers/server.js';
import { ADMIN, ADMIN_KEY, adminCall, keysConfig } from '../helpers/tenancy.js';

const run = promisify(execFile);

/** Whether a `curl` binary can be run here. */
async function haveCurl(): Promise<boolean> {
  try {
    await run('curl', ['--version'], { timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

describe('admin API', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ config: keysConfig() });
  });
  after(() => server?.stop());

  for (const [name, method, path, body, param, message] of [
    [
      'an unknown field',
      'POST',
      '/admin/tenants',
      { id: 'a1', models: ['*'], foo: 1 },
      'foo',
      /^unknown field `foo`; the fields are id, models, priority, limits$/,
    ],
    [
      'an unknown nested field',
      'POST',
      '/admin/tenants',
      { id: 'a2', models: ['*'], limits: { rpm: 5 } },
      'limits.rpm',
      /^unknown field `limits\.rpm`; the fields are requests_per_minute, tokens_per_minute, concurrent_requests, monthly_tokens$/,
    ],
    [
      'a value outside a union of constants',
      'POST',
      '/admin/tenants',
      { id: 'a3', models: ['*'], priority: 'urgent' },
      'priority',
      /^`priority` must be one of high, normal, low, got "urgent"$/,
    ],
    ['a missing field', 'POST', '/admin/tenants', { id: 'a4' }, 'models', /^`models` is required$/],
    [
      'a negative limit',
      'PATCH',
      '/admin/tenants/t',
      { limits: { requests_per_minute: -1 } },
      'limits.requests_per_minute',
      /^`limits\.requests_per_minute` must be >= 0, got -1$/,
    ],
    [
      'a wrong type',
      'PATCH',
      '/admin/tenants/t',
      { limits: { requests_per_minute: '60' } },
      'limits.requests_per_minute',
      /^`limits\.requests_per_minute` must be an integer, got "60"$/,
    ],
    ['a bad id', 'POST', '/admin/tenants', { id: 'Not Valid', models: ['*'] }, 'id', /^`id` must match .*, got "Not Valid"$/],
    [
      'the reserved anonymous id',
      'POST',
      '/admin/tenants',
      { id: 'anonymous', models: ['*'] },
      'id',
      /^tenant id "anonymous" is reserved for calls made without authentication$/,
    ],
    ['a bad model entry', 'POST', '/admin/tenants', { id: 'a5', models: ['ok', ''] }, 'models[1]', /^`models\[1\]` must NOT have fewer/],
    [
      'an unknown field of a key',
      'POST',
      '/admin/tenants/t/keys',
      { name: 'ci', scope: 'all' },
      'scope',
      /^unknown field `scope`; the fields are name, limits$/,
    ],
    ['a body of the wrong type', 'POST', '/admin/tenants/t/keys', '"ci"', null, /^the body must be an object or null, got "ci"$/],
    ['no body where one is required', 'POST', '/admin/tenants', undefined, null, /^the body must be an object, got null$/],
  ] as const) {
    it(`answers 400 invalid_request naming the field for ${name}`, async () => {
      const res = await fetch(server.url + path, {
        method,
        headers: { ...ADMIN, 'content-type': 'application/json' },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const answer = (await res.json()) as { error: Record<string, unknown> };
      assert.equal(res.status, 400, JSON.stringify(answer));
      assert.deepEqual(Object.keys(answer.error).sort(), ['code', 'message', 'param', 'type']);
      assert.equal(answer.error.code, 'invalid_request');
      assert.equal(answer.error.type, 'invalid_request_error');
      assert.equal(answer.error.param, param, JSON.stringify(answer));
      assert.match(String(answer.error.message), message);
    });
  }

  it('reads JSON bodies sent with a form content type or none, as `curl -d` sends them', async () => {
    for (const [id, type] of [
      ['form', 'application/x-www-form-urlencoded'],
      ['none', null],
      ['text', 'text/plain'],
    ] as const) {
      const headers: Record<string, string> = { ...ADMIN };
      if (type !== null) headers['content-type'] = type;
      const res = await fetch(`${server.url}/admin/tenants`, { method: 'POST', headers, body: JSON.stringify({ id, models: ['*'] }) });
      if (type === null) assert.equal(res.headers.get('content-type')?.startsWith('application/json'), true);
      assert.equal(res.status, 201, `${type}: ${await res.text()}`);
    }
    assert.equal((await adminCall(server.url, 'GET', '/admin/tenants/form')).body.id, 'form');
  });

  it('answers 413 body_too_large as soon as an admin body declares more than server.body_limit_bytes', async () => {
    // Only the headers go out: the answer comes before any of the 5 MiB would be read.
    const answer = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request(`${server.url}/admin/tenants`, {
        method: 'POST',
        headers: { ...ADMIN, 'content-type': 'application/json', 'content-length': String(5 * 1024 * 1024) },
        timeout: 10_000,
      });
      req.once('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.once('timeout', () => req.destroy(new Error('no answer in 10 s')));
      req.once('error', reject);
      req.flushHeaders();
    });
    assert.equal(answer.status, 413, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'body_too_large');
  });

  it('runs the README’s curl examples as written', async (t) => {
    if (!(await haveCurl())) return t.skip('no curl here');
    const base = server.url.replace('http://', '');
    const A = `Authorization: Bearer ${ADMIN_KEY}`;
    const curl = async (...args: string[]): Promise<any> => {
      const { stdout } = await run('curl', ['-s', '--max-time', '10', ...args.map((a) => a.replace('localhost:8080', base))], {
        timeout: 15_000,
      });
      return stdout === '' ? null : JSON.parse(stdout);
    };
    const created = await curl(
      'localhost:8080/admin/tenants',
      '-H',
      A,
      '-d',
      `{"id": "search", "models": ["tiny-*", "llama-3-8b"], "priority": "high",
  "limits": {"requests_per_minute": 600, "tokens_per_minute": 200000, "concurrent_requests": 16, "monthly_tokens": 50000000}}`,
    );
    assert.equal(created.id, 'search', JSON.stringify(created));
    assert.equal(created.priority, 'high');
    const patched = await curl(
      '-X',
      'PATCH',
      'localhost:8080/admin/tenants/search',
      '-H',
      A,
      '-d',
      '{"limits": {"requests_per_minute": 1200}}',
    );
    assert.deepEqual(patched.limits, { requests_per_minute: 1200 }, JSON.stringify(patched));
    const key = await curl(
      'localhost:8080/admin/tenants/search/keys',
      '-H',
      A,
      '-d',
      '{"name": "ci", "limits": {"requests_per_minute": 60}}',
    );
    assert.match(key.key, /^ig-/, JSON.stringify(key));
    assert.equal(key.name, 'ci');
    const rotated = await curl('-X', 'POST', `localhost:8080/admin/keys/${key.id}/rotate`, '-H', A);
    assert.match(rotated.key, /^ig-/, JSON.stringify(rotated));
    const bad = await curl('localhost:8080/admin/tenants', '-H', A, '-d', '{"id": "x", "models": ["*"], "priority": "urgent"}');
    assert.equal(bad.error.param, 'priority', JSON.stringify(bad));
  });
});
