/**
 * The dashboard's entry: sign-in, the hash router (#/overview, #/models, ...) and the live
 * stream shared by the pages. Plain DOM and ES modules: nothing to build.
 */
import { admin, ApiFailure, onRefused, session } from './js/api.js';
import { clearNotice, fill, h, field } from './js/dom.js';
import { Live } from './js/live.js';
import { instances } from './js/pages/instances.js';
import { models } from './js/pages/models.js';
import { overview } from './js/pages/overview.js';
import { playground } from './js/pages/playground.js';
import { tenants } from './js/pages/tenants.js';
import { usage } from './js/pages/usage.js';

const PAGES = { overview, models, instances, tenants, usage, playground };

const page = document.getElementById('page');
const nav = document.getElementById('nav');
const liveState = document.getElementById('live-state');
const signOutButton = document.getElementById('sign-out');

/** What the pages share: the server's facts (/admin/ui/info, null if it has none) and the live stream. */
const ctx = { info: null, live: null };
let current = null;
let routed = false;

/** Whether `key` opens the admin API: the server's facts, or the refusal. */
async function probe(key) {
  try {
    return { ok: true, info: await admin('GET', '/admin/ui/info', undefined, { key, quiet: true }) };
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 404) {
      // A server without /admin/ui/info: any other admin call tells whether the key opens it.
      try {
        await admin('GET', '/admin/breakers', undefined, { key, quiet: true });
        return { ok: true, info: null };
      } catch (inner) {
        return { ok: false, failure: inner };
      }
    }
    return { ok: false, failure: err };
  }
}

function refusal(failure) {
  if (failure instanceof ApiFailure && (failure.status === 401 || failure.status === 403)) return `Refused: ${failure.message}`;
  return `Could not reach the admin API: ${failure instanceof Error ? failure.message : String(failure)}`;
}

function showSignIn(message) {
  current?.unmount();
  current = null;
  nav.hidden = true;
  signOutButton.hidden = true;
  liveState.textContent = '';
  document.title = 'Sign in · infergate';
  const input = h('input', { type: 'password', name: 'admin-key', autocomplete: 'off', spellcheck: 'false', required: true });
  const error = h('p', { class: 'error', role: 'alert', id: 'sign-in-error', text: message });
  error.hidden = message === '';
  const button = h('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const form = h(
    'form',
    { class: 'sign-in', 'aria-labelledby': 'sign-in-title' },
    field('Admin key', input, 'The server’s auth.admin_key. Kept in this tab’s session storage and sent only as an Authorization header.'),
    h('div', { class: 'actions' }, button),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    const result = await probe(input.value);
    button.disabled = false;
    if (!result.ok) {
      error.textContent = refusal(result.failure);
      error.hidden = false;
      input.select();
      return;
    }
    session.key = input.value;
    signedIn(result.info);
  });
  fill(page, h('section', { class: 'card narrow' }, h('h1', { id: 'sign-in-title', text: 'Sign in to infergate' }), error, form));
  input.focus();
}

function signedIn(info) {
  ctx.info = info;
  ctx.live?.stop();
  ctx.live = new Live((failure) => signOut(refusal(failure)));
  ctx.live.subscribe((sample) => {
    if (sample === null) showLiveState();
  });
  ctx.live.start();
  showLiveState();
  nav.hidden = false;
  signOutButton.hidden = session.key === '';
  routed = false;
  if (!location.hash.startsWith('#/')) history.replaceState(null, '', '#/overview');
  route();
}

function showLiveState() {
  const state = ctx.live?.state ?? 'stopped';
  const text = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', stopped: '' }[state];
  liveState.textContent = text;
  liveState.dataset.state = state;
}

function signOut(message = '') {
  ctx.live?.stop();
  ctx.live = null;
  ctx.info = null;
  session.key = '';
  showSignIn(message);
}

function route() {
  if (ctx.live === null) return;
  const hash = location.hash;
  if (!hash.startsWith('#/')) return; // an in-page link (the skip link), not a page
  const name = hash.slice(2).split(/[/?]/)[0] || 'overview';
  // Own keys only: `#/constructor` must not find an inherited function.
  const next = Object.hasOwn(PAGES, name) ? PAGES[name] : overview;
  current?.unmount();
  clearNotice();
  const el = h('div', { class: `page page-${name}` });
  fill(page, el);
  current = { name, unmount: next.mount(el, ctx) ?? (() => undefined) };
  document.title = `${next.title} · infergate`;
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  // Moving to another page moves the focus to its heading (as a page load would), not on the first one.
  if (routed) el.querySelector('h1')?.focus();
  routed = true;
}

window.addEventListener('hashchange', route);
signOutButton.addEventListener('click', () => signOut());
onRefused((failure) => signOut(refusal(failure)));

async function boot() {
  const key = session.key;
  const result = await probe(key);
  if (result.ok) signedIn(result.info);
  else if (key === '' && result.failure instanceof ApiFailure && result.failure.status === 401) showSignIn('');
  else showSignIn(refusal(result.failure));
}

void boot();
