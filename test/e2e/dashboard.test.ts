/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against the real
 * server's /ui/ in keys mode. A person signs in (a wrong admin key is refused), sees the models and
 * their versions, watches traffic sent with the openai SDK move the overview's figures and chart,
 * changes a weight (confirmed in a dialog) and sees the admin API and the calls' versions follow,
 * creates a tenant and a key, uses it, revokes it and sees it refused, streams a chat in the
 * playground, exports usage; every page passes axe-core (no serious or critical violation, light
 * and dark) and fits a phone's width. Each test saves screenshots under test-results/screenshots/.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT, startServer, startServers, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY, adminCall, redisAnswers, tenantWithKey } from '../helpers/tenancy.js';

const CHROMIUM = '/usr/bin/chromium';
/** The flags the machine needs: no sandbox (root in a container), no GPU, and no calls to Google's services (no network here). */
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const SHOTS = join(ROOT, 'test-results/screenshots');
const AXE = join(ROOT, 'node_modules/axe-core/axe.min.js');
const PAGES = ['overview', 'models', 'instances', 'tenants', 'usage', 'playground'] as const;
const CHAT_TEXT = 'Hello from the mock chat model, streamed in eight chunks.';

const CONFIG = `
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: tiny-mlp
    aliases: [mlp]
    default_version: '1'
    versions:
      - version: '1'
        weight: 90
        backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx }
      - version: '2'
        weight: 10
        backend: { kind: onnx, path: \${MODELS}/tiny-mlp/2/model.onnx }
  - name: tiny-embed
    versions:
      - version: '1'
        backend: { kind: onnx, path: \${MODELS}/tiny-embed/1/model.onnx, task: embedding, tokenizer: { vocab_size: 4096, max_tokens: 512 } }
  - name: chat
    versions:
      - version: '1'
        weight: 1
        backend: { kind: mock, text: '${CHAT_TEXT}', stream_chunks: 8, latency_ms: 2 }
      - version: '2'
        weight: 1
        backend: { kind: mock, text: '${CHAT_TEXT}', stream_chunks: 8, latency_ms: 2 }
`;

/** The page's globals as the functions run inside it use them (the project's types have no DOM library). */
interface PageElement {
  readonly textContent: string | null;
  readonly dataset: Readonly<Record<string, string | undefined>>;
  readonly children: ArrayLike<PageElement>;
  readonly value?: string;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
};

const skip = existsSync(CHROMIUM) ? false : `no ${CHROMIUM}: apt-get install chromium (.ci/run installs it)`;

describe('dashboard in Chromium', { skip }, () => {
  let server: RunningServer;
  let browser: Browser;
  /** A tenant key for the SDK's traffic (the admin key is not a tenant key). */
  let trafficKey: string;
  /** Messages the pages logged that a Content-Security-Policy refused something. */
  const cspViolations: string[] = [];

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    server = await startServer({ config: writeConfig(CONFIG) });
    trafficKey = (await tenantWithKey(server.url, { id: 'traffic', models: ['*'] })).key;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A fresh browser context (its own session storage) and page; `close()` checks that the CSP refused nothing. */
  async function open(options: { width?: number; height?: number; dark?: boolean } = {}): Promise<{ page: Page; context: BrowserContext }> {
    const context = await browser.newContext({
      viewport: { width: options.width ?? 1280, height: options.height ?? 900 },
      colorScheme: options.dark === true ? 'dark' : 'light',
      permissions: ['clipboard-read', 'clipboard-write'],
    });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on('pageerror', (e) => cspViolations.push(`page error: ${e.message}`));
    return { page, context };
  }

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  }

  async function signIn(page: Page, key = ADMIN_KEY): Promise<void> {
    await page.goto(`${server.url}/ui/`);
    await page.getByLabel('Admin key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Dashboard pages' }).waitFor();
  }

  async function go(page: Page, name: (typeof PAGES)[number]): Promise<void> {
    await page
      .getByRole('navigation')
      .getByRole('link', { name: new RegExp(`^${name}$`, 'i') })
      .click();
    await page.waitForURL(new RegExp(`#/${name}$`));
    await page.locator(`.page-${name} h1`).waitFor();
  }

  function sdk(apiKey: string): OpenAI {
    return new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
  }

  /** Sends chat calls with `apiKey`, `concurrency` at a time, until `stop` is set; resolves to the calls made. */
  async function traffic(apiKey: string, stop: { done: boolean }, concurrency = 4): Promise<number> {
    const client = sdk(apiKey);
    let calls = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (!stop.done) {
          await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 });
          calls += 1;
        }
      }),
    );
    return calls;
  }

  it('refuses a wrong admin key, then signs in with the right one and keeps it out of the URL', async () => {
    const { page, context } = await open();
    await page.goto(`${server.url}/ui/`);
    await page.getByLabel('Admin key').fill('not-the-admin-key-000000');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const error = page.getByRole('alert');
    await error.filter({ hasText: 'Refused' }).waitFor();
    assert.match(await error.innerText(), /^Refused: the admin key is not valid$/);
    assert.equal(await page.getByRole('navigation', { name: 'Dashboard pages' }).isVisible(), false);
    await shot(page, 'sign-in-refused');

    // A tenant's key is a key, just not this one: refused too, and says so.
    const tenant = await tenantWithKey(server.url, { id: 'not-admin', models: ['*'] });
    await page.getByLabel('Admin key').fill(tenant.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await error.filter({ hasText: 'tenant keys cannot use the admin API' }).waitFor();

    await page.getByLabel('Admin key').fill(ADMIN_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Dashboard pages' }).waitFor();
    await page.locator('#live-state[data-state="live"]').waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('infergate.adminKey')"), ADMIN_KEY);
    assert.equal(await page.evaluate('localStorage.length'), 0, 'nothing in localStorage');
    assert.ok(!page.url().includes(ADMIN_KEY), page.url());
    assert.ok(page.url().endsWith('/ui/#/overview'), page.url());
    // The server's facts.
    const facts = page.locator('.facts');
    await facts.getByText('keys', { exact: true }).waitFor();
    await shot(page, 'overview-signed-in');

    // A reload keeps the session (sessionStorage); signing out forgets the key.
    await page.reload();
    await page.getByRole('navigation', { name: 'Dashboard pages' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin key').waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('infergate.adminKey')"), null);
    await context.close();
  });

  it('lists the bundled models and their versions, with weights and readiness', async () => {
    const { page, context } = await open();
    await signIn(page);
    await go(page, 'models');
    const mlp = page.locator('section[data-model="tiny-mlp"]');
    await mlp.locator('tr[data-version="2"]').waitFor();
    assert.match(await mlp.locator('.meta').innerText(), /aliases: mlp · default version 1/);
    const row = (model: string, version: string) => page.locator(`section[data-model="${model}"] tr[data-version="${version}"]`);
    assert.match(await row('tiny-mlp', '1').innerText(), /1 \(default\)\s+ready\s+90 \(90 %\)\s+config/);
    assert.match(await row('tiny-mlp', '2').innerText(), /2\s+ready\s+10 \(10 %\)\s+config/);
    await row('tiny-embed', '1').waitFor();
    await row('chat', '1').waitFor();
    await row('chat', '2').waitFor();
    assert.equal(await page.locator('section[data-model]').count(), 3);
    // Each version's live figures, from the stream.
    await page.waitForFunction(
      () => document.querySelector('section[data-model="chat"] tr[data-version="2"] td[data-label="Requests/s"]')?.textContent === '0.0',
    );
    assert.equal(await row('chat', '2').locator('td[data-label="Backend"]').innerText(), 'mock, in process');
    await shot(page, 'models');
    await context.close();
  });

  it("moves the overview's numbers and charts with traffic sent through the openai SDK", async () => {
    const { page, context } = await open();
    await signIn(page);
    const figure = page.locator('figure[data-chart="rps"]');
    await figure.locator('canvas').waitFor();
    const image = () => figure.locator('canvas').evaluate((c) => (c as unknown as { toDataURL(): string }).toDataURL());
    const before = await image();
    const stop = { done: false };
    const sent = traffic(trafficKey, stop);
    try {
      // The total's requests per second, then the chat rows and the chart's last point.
      const figures = { timeout: 15_000 };
      await page.waitForFunction(
        () => Number(document.querySelector('[data-stat="rps"]')?.textContent?.replaceAll(',', '')) > 0,
        null,
        figures,
      );
      await page.waitForFunction(() => Number(document.querySelector('figure[data-chart="rps"]')?.dataset.last) > 0, null, figures);
      await page.waitForFunction(
        () =>
          [...document.querySelectorAll('tbody tr')].some(
            (tr) => tr.children[0]?.textContent === 'chat' && Number(tr.children[2]?.textContent) > 0,
          ),
        null,
        figures,
      );
      await page.waitForTimeout(1500); // a few points of the line
    } finally {
      stop.done = true;
    }
    const calls = await sent;
    assert.ok(calls > 0);
    assert.notEqual(await image(), before, 'the chart was redrawn with the traffic');
    assert.match(await page.locator('[data-stat="p99_ms"]').innerText(), /^[\d.,]+ m?s$/);
    await shot(page, 'overview-traffic');
    await context.close();
  });

  it('changes a weight through the UI after a confirmation, and GET /admin/models and the calls follow', async () => {
    const { page, context } = await open();
    await signIn(page);
    await go(page, 'models');
    const row = page.locator('section[data-model="chat"] tr[data-version="1"]');
    await row.waitFor();
    const input = row.getByLabel('New weight of chat@1');
    await input.fill('0');
    await row.getByRole('button', { name: 'Set the weight of chat@1' }).click();

    // Cancelled: nothing changes.
    const dialog = page.getByRole('dialog', { name: 'Change the weight of chat@1?' });
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /From 1 \(config\) to 0\.[\s\S]*Unpinned traffic then splits 1: 0\.0 %, 2: 100\.0 %/);
    await shot(page, 'models-confirm-weight');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    const untouched = (await adminCall(server.url, 'GET', '/admin/models')).body.data.find((m: any) => m.name === 'chat');
    assert.equal(untouched.versions[0].weight, 1);

    // Confirmed: the weight is set, and shown with its source.
    await row.getByRole('button', { name: 'Set the weight of chat@1' }).click();
    await dialog.getByRole('button', { name: 'Set weight' }).click();
    await page.locator('#notice', { hasText: 'chat@1: weight 0' }).waitFor();
    await row.locator('td', { hasText: /^override by admin@127\.0\.0\.1 at / }).waitFor();
    const models = (await adminCall(server.url, 'GET', '/admin/models')).body.data.find((m: any) => m.name === 'chat');
    assert.equal(models.versions[0].weight, 0);
    assert.equal(models.versions[0].weight_source.from, 'override');
    assert.equal(models.versions[1].weight, 1);

    // Every unpinned call now goes to version 2.
    const client = sdk(trafficKey);
    const versions = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const { response } = await client.chat.completions
        .create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] })
        .withResponse();
      const v = response.headers.get('x-model-version') ?? '?';
      versions.set(v, (versions.get(v) ?? 0) + 1);
    }
    assert.deepEqual([...versions], [['2', 40]]);
    await shot(page, 'models-weight-changed');

    // Cleared (confirmed again): back to the config's weight, and both versions answer again.
    await row.getByRole('button', { name: 'Clear the weight override of chat@1' }).click();
    await page.getByRole('dialog', { name: 'Clear the override of chat@1?' }).getByRole('button', { name: 'Clear override' }).click();
    await row.locator('td', { hasText: /^config$/ }).waitFor();
    const cleared = (await adminCall(server.url, 'GET', '/admin/models')).body.data.find((m: any) => m.name === 'chat');
    assert.equal(cleared.versions[0].weight, 1);
    assert.deepEqual(cleared.versions[0].weight_source, { from: 'config' });
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const { response } = await client.chat.completions
        .create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] })
        .withResponse();
      seen.add(response.headers.get('x-model-version') ?? '?');
    }
    assert.deepEqual([...seen].sort(), ['1', '2']);
    await context.close();
  });

  it('starts a rollout from the UI and pauses, resumes and aborts it, each after a confirmation', async () => {
    const { page, context } = await open();
    await signIn(page);
    await go(page, 'models');
    const card = page.locator('section[data-model="chat"]');
    await card.locator('tr[data-version="2"]').waitFor();
    await card.getByText('Start a rollout').click();
    await card.getByLabel('Canary version').selectOption('2');
    await card.getByLabel('Steps (percent)').fill('10, 50, 100');
    await card.getByLabel('Step seconds').fill('600');
    await card.getByLabel('Min calls per step').fill('1000');
    await card.getByLabel('Max error rate').fill('0.05');
    await card.getByRole('button', { name: 'Start rollout' }).click();
    await page.getByRole('dialog', { name: 'Start a rollout of chat@2?' }).getByRole('button', { name: 'Start rollout' }).click();
    const state = card.locator('dd[data-field="state"]');
    await state.filter({ hasText: /^running$/ }).waitFor();
    assert.equal(await card.locator('dd[data-field="step"]').innerText(), '1 of 3 (10, 50, 100 %)');
    // Weights are the rollout's while it runs: the editor is off.
    assert.equal(await card.getByRole('button', { name: 'Set the weight of chat@2' }).isDisabled(), true);
    const rollout = async () => (await adminCall(server.url, 'GET', '/admin/models/chat')).body.rollout;
    const started = await rollout();
    assert.deepEqual(
      { state: started.state, version: started.version, steps: started.plan.steps, min_calls: started.plan.min_calls },
      { state: 'running', version: '2', steps: [10, 50, 100], min_calls: 1000 },
    );
    assert.equal(started.plan.gates.max_error_rate, 0.05);
    await shot(page, 'models-rollout-running');

    for (const [action, after] of [
      ['Pause', 'paused'],
      ['Resume', 'running'],
      ['Abort', 'aborted'],
    ] as const) {
      await card.getByRole('button', { name: action, exact: true }).click();
      await page
        .getByRole('dialog', { name: new RegExp(`^${action} rollout ${started.id} of chat@2\\?$`) })
        .getByRole('button', { name: action })
        .click();
      await state.filter({ hasText: new RegExp(`^${after}$`) }).waitFor();
      assert.equal((await rollout()).state, after);
    }
    // Over: the form is back, and the canary is at 0.
    await card.getByText('Start a rollout').waitFor();
    assert.equal(await card.getByRole('button', { name: 'Set the weight of chat@2' }).isDisabled(), false);
    const chat = (await adminCall(server.url, 'GET', '/admin/models/chat')).body;
    assert.equal(chat.versions[1].weight, 0);
    await shot(page, 'models-rollout-aborted');
    // The rollout's overrides go, for the tests after this one.
    for (const v of ['1', '2'])
      assert.equal((await adminCall(server.url, 'DELETE', `/admin/models/chat/versions/${v}/weight`)).status, 200);
    await context.close();
  });

  it('creates a tenant and a key in the UI; the key works with the SDK until it is revoked in the UI', async () => {
    const { page, context } = await open();
    await signIn(page);
    await go(page, 'tenants');
    const create = page.locator('form', { has: page.getByRole('button', { name: 'Create tenant' }) });
    await create.getByLabel('Tenant id').fill('web-team');
    await create.getByLabel('Models').fill('chat, tiny-*');
    await create.getByLabel('Priority').selectOption('high');
    await create.getByLabel('Requests per minute').fill('600');
    await create.getByRole('button', { name: 'Create tenant' }).click();
    await page.getByRole('heading', { name: 'Tenant web-team' }).waitFor();
    const tenant = await adminCall(server.url, 'GET', '/admin/tenants/web-team');
    assert.deepEqual(
      { models: tenant.body.models, priority: tenant.body.priority, limits: tenant.body.limits },
      { models: ['chat', 'tiny-*'], priority: 'high', limits: { requests_per_minute: 600 } },
    );
    await page.locator('tr[data-tenant="web-team"]', { hasText: '600 rpm' }).waitFor();

    const detail = page.locator('.tenant-detail');
    await detail.getByLabel('Key name').fill('from-the-ui');
    await detail.getByRole('button', { name: 'Create key' }).click();
    const shown = detail.locator('[data-new-key]');
    await shown.waitFor();
    const key = await shown.innerText();
    assert.match(key, /^ig-/);
    // The copy button puts exactly the key on the clipboard.
    await detail.getByRole('button', { name: 'Copy key' }).click();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), key);
    await shot(page, 'tenants-key-created');

    const client = sdk(key);
    const answer = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(answer.choices[0]?.message.content, CHAT_TEXT);
    // Its models only: tiny-embed is allowed by `tiny-*`, nothing else is listed.
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids.sort(), ['chat', 'tiny-embed', 'tiny-mlp']);

    const refused = (c: OpenAI) =>
      assert.rejects(
        c.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }),
        (err: unknown) => err instanceof OpenAI.AuthenticationError && err.status === 401,
      );

    // Rotated: a new key is shown once; the old one is refused at once, the new one works.
    const firstId = await shown.getAttribute('data-new-key');
    await detail
      .locator(`tr[data-key="${firstId}"]`)
      .getByRole('button', { name: /^Rotate key from-the-ui/ })
      .click();
    await page.getByRole('dialog', { name: 'Rotate key from-the-ui?' }).getByRole('button', { name: 'Rotate' }).click();
    await detail.locator(`[data-new-key]:not([data-new-key="${firstId}"])`).waitFor();
    const rotated = await shown.innerText();
    assert.notEqual(rotated, key);
    await refused(client);
    const second = sdk(rotated);
    assert.equal((await second.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] })).choices.length, 1);

    // Revoked: refused from the next call on.
    const keyId = await shown.getAttribute('data-new-key');
    const keyRow = detail.locator(`tr[data-key="${keyId}"]`);
    await keyRow.getByRole('button', { name: /^Revoke key from-the-ui/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Revoke key from-the-ui?' });
    await dialog.getByRole('button', { name: 'Revoke' }).click();
    await keyRow.locator('td', { hasText: /^revoked / }).waitFor();
    await refused(second);
    await shot(page, 'tenants-key-revoked');

    // Edited (limits are replaced whole), then deleted after a confirmation.
    await detail.getByLabel('Requests per minute').first().fill('1200');
    await detail.getByLabel('Tokens per month').first().fill('5000000');
    await detail.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#notice', { hasText: 'Tenant web-team saved' }).waitFor();
    const edited = await adminCall(server.url, 'GET', '/admin/tenants/web-team');
    assert.deepEqual(edited.body.limits, { requests_per_minute: 1200, monthly_tokens: 5000000 });
    await page.locator('tr[data-tenant="web-team"] meter').waitFor();
    await detail.getByRole('button', { name: 'Delete tenant' }).click();
    await page.getByRole('dialog', { name: 'Delete tenant web-team?' }).getByRole('button', { name: 'Delete tenant' }).click();
    await page.locator('tr[data-tenant="web-team"]').waitFor({ state: 'detached' });
    assert.equal((await adminCall(server.url, 'GET', '/admin/tenants/web-team')).status, 404);
    await context.close();
  });

  it('streams a chat in the playground and shows its timings and the curl command', async () => {
    const { page, context } = await open();
    const { key } = await tenantWithKey(server.url, { id: 'playground', models: ['*'] });
    await signIn(page);
    await go(page, 'playground');
    await page.getByLabel('Tenant API key').fill(key);
    await page.getByLabel('Tenant API key').dispatchEvent('change');
    await page.getByLabel('Model').selectOption('chat');
    await page.getByLabel('User message').fill('Tell me something.');
    await page.getByLabel('Temperature').fill('0.5');
    await page.getByLabel('Max tokens').fill('32');
    const curl = await page.locator('[data-curl]').innerText();
    assert.match(curl, /^curl -sN 'http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions'/);
    assert.match(curl, /-H "Authorization: Bearer \$INFERGATE_API_KEY"/);
    assert.match(curl, /"temperature":0\.5,"max_tokens":32,"stream":true/);
    assert.ok(!curl.includes(key), 'the curl command never holds the key itself');

    await page.getByRole('button', { name: 'Send' }).click();
    const output = page.locator('[data-output="chat"]');
    await page.locator('[data-timing="total"]').waitFor();
    assert.equal(await output.innerText(), CHAT_TEXT);
    // Streamed: the answer came in several pieces, each appended as it arrived.
    assert.ok((await output.evaluate((el) => el.childNodes.length)) > 1, 'the answer was appended chunk by chunk');
    assert.match(await page.locator('[data-timing="ttft"]').innerText(), /^[\d.,]+ m?s$/);
    assert.match(await page.locator('[data-timing="total"]').innerText(), /^[\d.,]+ m?s$/);
    assert.match(await page.locator('[data-timing="tokens"]').innerText(), /^\d+$/);
    assert.match(await page.locator('[data-timing="version"]').innerText(), /^[12]$/);
    await shot(page, 'playground-chat');

    // An embedding and a KServe v2 infer (its body filled from the model's metadata).
    await page.getByLabel('Call').selectOption('embeddings');
    await page.getByLabel('Model').selectOption('tiny-embed');
    await page.getByRole('button', { name: 'Embed' }).click();
    await page.locator('[data-output="embeddings"]', { hasText: '#0: 64 dimensions' }).waitFor();
    await page.getByLabel('Call').selectOption('infer');
    await page.getByLabel('Model').selectOption('tiny-mlp');
    await page.getByRole('button', { name: 'Fill from the model’s metadata' }).click();
    await page.waitForFunction(() => document.querySelector('textarea.code')?.value?.includes('"shape": [') === true);
    await page.getByRole('button', { name: 'Infer' }).click();
    await page.locator('[data-output="infer"]', { hasText: '"model_name": "tiny-mlp"' }).waitFor();
    assert.match(await page.locator('[data-curl]').innerText(), /\/v2\/models\/tiny-mlp\/infer/);
    await shot(page, 'playground-infer');
    await context.close();
  });

  it('shows usage by day and model and exports it as CSV', async () => {
    const client = sdk(trafficKey);
    for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
    const { page, context } = await open();
    await signIn(page);
    await go(page, 'usage');
    const rows = page.locator('.page-usage tbody tr');
    await rows.filter({ hasText: 'traffic' }).first().waitFor();
    await page.getByLabel('Group by').selectOption('model');
    await page.getByLabel('Tenant').selectOption('traffic');
    await page.getByRole('button', { name: 'Show usage' }).click();
    await rows
      .filter({ has: page.locator('th', { hasText: /^traffic$/ }) })
      .filter({ has: page.locator('td', { hasText: /^chat$/ }) })
      .waitFor();
    const link = page.getByRole('link', { name: 'Export CSV' });
    assert.match((await link.getAttribute('download')) ?? '', /^infergate-usage-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d-traffic-by-model\.csv$/);
    // A real download: the Blob link works under the page's CSP.
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const csv = readFileSync(await download.path(), 'utf8');
    const lines = csv.trim().split('\r\n');
    assert.equal(lines[0], 'tenant,group,requests,errors,prompt_tokens,completion_tokens,total_tokens');
    assert.match(lines.find((l) => l.startsWith('traffic,chat,')) ?? '', /^traffic,chat,\d+,0,\d+,\d+,\d+$/);
    await page.locator('figure[data-chart="usage"] canvas').waitFor();
    await shot(page, 'usage');
    await context.close();
  });

  it('has no serious or critical accessibility violations on any page, light or dark', async () => {
    const axe = readFileSync(AXE, 'utf8');
    const found: string[] = [];
    for (const dark of [false, true]) {
      const { page, context } = await open({ dark });
      await signIn(page);
      for (const name of PAGES) {
        await go(page, name);
        await page.waitForTimeout(1200); // the first answers and figures are in
        // Runtime.evaluate is not subject to the page's CSP (an injected <script> would be).
        await page.evaluate(axe);
        const violations: string[] = await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((result) =>
          result.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => v.id + ' (' + v.impact + '): ' + v.help + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', ')))`);
        for (const v of violations) found.push(`${name} ${dark ? 'dark' : 'light'}: ${v}`);
        await shot(page, `${name}-${dark ? 'dark' : 'light'}`);
      }
      await context.close();
    }
    assert.deepEqual(found, []);
  });

  it("fits a phone's width on every page without sideways scrolling", async () => {
    const { page, context } = await open({ width: 380, height: 800 });
    await signIn(page);
    const overflowing: string[] = [];
    for (const name of PAGES) {
      await go(page, name);
      await page.waitForTimeout(800);
      const extra: number = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
      if (extra > 0) overflowing.push(`${name}: ${extra}px wider than the screen`);
      await shot(page, `${name}-phone`);
    }
    assert.deepEqual(overflowing, []);
    await context.close();
  });

  it('opens without a key on a loopback server in auth.mode none, and shows its warnings', async () => {
    const open_ = await startServer({
      config: writeConfig(`models:\n  - name: chat\n    versions: [{ version: '1', backend: { kind: mock } }]\n`),
    });
    try {
      const { page, context } = await open();
      await page.goto(`${open_.url}/ui/`);
      await page.getByRole('navigation', { name: 'Dashboard pages' }).waitFor();
      await page.locator('.page-overview h1').waitFor();
      const warnings = page.getByRole('region', { name: 'Warnings' });
      await warnings.waitFor();
      assert.match(await warnings.innerText(), /running WITHOUT authentication/);
      // Nothing to sign out of, and no key was stored.
      assert.equal(await page.getByRole('button', { name: 'Sign out' }).isVisible(), false);
      assert.equal(await page.evaluate("sessionStorage.getItem('infergate.adminKey')"), null);
      await shot(page, 'overview-auth-none');
      await context.close();
    } finally {
      await open_.stop();
    }
  });

  it('loaded every page without a Content-Security-Policy refusal or a script error', () => {
    assert.deepEqual(cspViolations, []);
  });
});

describe('dashboard in Chromium: a fleet on a shared Redis', { skip }, () => {
  const redis = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  let servers: RunningServer[] = [];
  let browser: Browser | undefined;
  let unavailable = '';

  before(async () => {
    if (!(await redisAnswers(redis))) {
      unavailable = `nothing answers at ${redis}`;
      return;
    }
    mkdirSync(SHOTS, { recursive: true });
    const prefix = `dashboard-test-${process.pid}-${Date.now()}:`;
    const config = writeConfig(
      `state: { key_prefix: '${prefix}' }\nfleet: { heartbeat_ms: 200, lease_ms: 2000, labels: { pool: gpu } }\n` +
        `models:\n  - name: chat\n    versions: [{ version: '1', backend: { kind: mock } }]\n`,
    );
    servers = await startServers([
      { config, env: { REDIS_URL: redis, ETCD_URL: '' } },
      { config, env: { REDIS_URL: redis, ETCD_URL: '' } },
    ]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  });
  after(async () => {
    await browser?.close();
    await Promise.all(servers.map((s) => s.stop()));
  });

  it("lists both replicas on Instances and sums the other replica's calls in the overview's fleet figures", async (t) => {
    if (unavailable !== '') return t.skip(unavailable);
    const [watched, other] = servers as [RunningServer, RunningServer];
    const context = await (browser as Browser).newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    // auth.mode none on loopback: open without a key.
    await page.goto(`${watched.url}/ui/#/instances`);
    const rows = page.locator('.page-instances tbody tr');
    await page.waitForFunction(() => [...document.querySelectorAll('.page-instances tbody tr')].length === 2, null, { timeout: 10_000 });
    assert.equal(await rows.filter({ hasText: '(this one)' }).count(), 1);
    assert.equal(await rows.filter({ hasText: 'pool=gpu' }).count(), 2);
    assert.equal(await page.locator('.page-instances .note').isVisible(), false, 'no "memory store" note');
    await page.screenshot({ path: join(SHOTS, 'instances-fleet.png'), fullPage: true });

    await page.getByRole('navigation').getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Fleet: 2 replicas' }).waitFor({ timeout: 10_000 });
    const client = new OpenAI({ baseURL: `${other.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const stop = { done: false };
    const sending = (async () => {
      while (!stop.done) await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
    })();
    try {
      await page.waitForFunction(
        () => Number(document.querySelector('[data-fleet-stat="rps"]')?.textContent?.replaceAll(',', '')) > 0,
        null,
        {
          timeout: 15_000,
        },
      );
      // This replica's own figures stay at zero: the calls went to the other one.
      assert.equal(await page.locator('[data-stat="rps"]').innerText(), '0.0');
    } finally {
      stop.done = true;
      await sending;
    }
    await page.screenshot({ path: join(SHOTS, 'overview-fleet.png'), fullPage: true });
    await context.close();
  });
});
