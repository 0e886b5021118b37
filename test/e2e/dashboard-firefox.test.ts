/**
 * The dashboard in Firefox: Debian's firefox-esr driven over WebDriver BiDi by puppeteer-core (which
 * speaks BiDi to a stock Firefox; Playwright needs its own patched build) against the real server in
 * keys mode. A wrong admin key is refused, the right one signs in, every page renders its heading
 * without a script error or a CSP refusal, the models are listed and the overview's live figures
 * arrive from the stream. The full walk-through runs in Chromium (dashboard.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { ROOT, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY } from '../helpers/tenancy.js';

const FIREFOX = '/usr/bin/firefox-esr';
const SHOTS = join(ROOT, 'test-results/screenshots');
const PAGES = ['overview', 'models', 'instances', 'tenants', 'usage', 'playground'] as const;

const CONFIG = `
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: chat
    versions:
      - { version: '1', weight: 1, backend: { kind: mock } }
      - { version: '2', weight: 1, backend: { kind: mock } }
`;

/** What the functions run inside the page read of it (the project's types have no DOM library). */
declare const document: {
  querySelector(selector: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): ArrayLike<unknown>;
};

const skip = existsSync(FIREFOX) ? false : `no ${FIREFOX}: apt-get install firefox-esr (.ci/run installs it)`;

describe('dashboard in Firefox', { skip, timeout: 120_000 }, () => {
  let server: RunningServer;
  let browser: Browser;
  const problems: string[] = [];

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    server = await startServer({ config: writeConfig(CONFIG) });
    browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: FIREFOX,
      headless: true,
      // No network here: Firefox must not try to reach Mozilla's services.
      extraPrefsFirefox: {
        'app.update.enabled': false,
        'browser.safebrowsing.malware.enabled': false,
        'browser.safebrowsing.phishing.enabled': false,
        'datareporting.policy.dataSubmissionEnabled': false,
        'network.captive-portal-service.enabled': false,
        'network.connectivity-service.enabled': false,
      },
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function page(): Promise<Page> {
    const p = await browser.newPage();
    await p.setViewport({ width: 1280, height: 900 });
    p.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    p.on('pageerror', (e) => problems.push(String(e)));
    return p;
  }

  async function signIn(p: Page, key: string): Promise<void> {
    await p.goto(`${server.url}/ui/`);
    await p.waitForSelector('form.sign-in input');
    await p.type('form.sign-in input', key);
    await p.click('form.sign-in button');
  }

  it('refuses a wrong admin key, then signs in and renders every page', async () => {
    const p = await page();
    await signIn(p, 'not-the-admin-key-0123456789');
    await p.waitForFunction(() => /Refused: the admin key is not valid/.test(document.querySelector('#page')?.textContent ?? ''));
    await p.screenshot({ path: join(SHOTS, 'firefox-sign-in-refused.png') });

    // The refused key is selected: typing replaces it.
    await p.type('form.sign-in input', ADMIN_KEY);
    await p.click('form.sign-in button');
    await p.waitForSelector('#nav:not([hidden])');
    for (const name of PAGES) {
      await p.goto(`${server.url}/ui/#/${name}`);
      await p.waitForSelector(`.page-${name} h1`);
      await p.screenshot({ path: join(SHOTS, `firefox-${name}.png`) });
    }
    // Models lists both versions of the mock model; the overview's figures come from the stream.
    await p.goto(`${server.url}/ui/#/models`);
    await p.waitForSelector('section[data-model="chat"] tr[data-version="2"]');
    await p.goto(`${server.url}/ui/#/overview`);
    await p.waitForFunction(() => document.querySelector('#live-state')?.textContent?.includes('live') === true, { timeout: 10_000 });
    assert.deepEqual(problems, [], 'no script error or CSP refusal in Firefox');
  });
});
