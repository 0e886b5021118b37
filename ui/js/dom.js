/**
 * A few DOM helpers in place of a framework: `h()` builds elements (text only through text
 * nodes, never innerHTML, so no server value can become markup), `keyed()` updates a list in
 * place (focus and form state survive a refresh), and the confirmation dialog every change goes
 * through. Nothing sets a `style` attribute: the CSP (`style-src 'self'`) forbids inline styles.
 */

/** An element: `attrs` holds properties and attributes (`class`, `for`, `aria-*`, `data-*`, `on<event>` handlers). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = value;
    else if (name === 'for') el.htmlFor = value;
    else if (name === 'value' || name === 'checked' || name === 'selected') {
      // The default too, so that form.reset() goes back to it.
      const initial = { value: 'defaultValue', checked: 'defaultChecked', selected: 'defaultSelected' }[name];
      if (initial in el) el[initial] = value;
      el[name] = value;
    } else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces every child of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Sets text only when it differs (no needless layout work each second). */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

const rows = new WeakMap();

/**
 * Keeps one child of `parent` per item, in the items' order: `make(item)` creates a missing
 * one, `update(el, item)` refreshes each, and children whose key is gone are removed.
 */
export function keyed(parent, items, keyOf, make, update) {
  let known = rows.get(parent);
  if (known === undefined) rows.set(parent, (known = new Map()));
  const seen = new Set();
  let before = parent.firstChild;
  for (const item of items) {
    const key = keyOf(item);
    seen.add(key);
    let el = known.get(key);
    if (el === undefined) known.set(key, (el = make(item)));
    update(el, item);
    if (el !== before) parent.insertBefore(el, before);
    else before = before.nextSibling;
  }
  for (const [key, el] of known) {
    if (!seen.has(key)) {
      el.remove();
      known.delete(key);
    }
  }
}

/** A labelled form field: `<label>` then the control, wrapped for layout. */
export function field(label, control, hint) {
  const id = control.id || (control.id = uid('f'));
  const hintEl = hint === undefined ? null : h('small', { class: 'hint', id: `${id}-hint`, text: hint });
  if (hintEl !== null) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), control, hintEl);
}

let counter = 0;
/** An id unique in this page. */
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A region that scrolls sideways on narrow screens, reachable by keyboard (axe: scrollable-region-focusable). */
export function scroller(label, child) {
  return h('div', { class: 'scroller', role: 'region', 'aria-label': label, tabindex: '0' }, child);
}

/**
 * A table with `headings` (strings); returns the table and its tbody. `stack`: on a phone each row
 * becomes a block of "heading: value" lines (cells made by rowCells carry their heading).
 */
export function table(caption, headings, { stack = false } = {}) {
  const body = h('tbody');
  const t = h(
    'table',
    { class: stack ? 'stack' : null },
    caption === null ? null : h('caption', { text: caption }),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headings.map((name) => h('th', { scope: 'col', text: name })),
      ),
    ),
    body,
  );
  return { table: t, body };
}

/** Empty cells of a row under `headings`, the first a row header, each labelled with its heading for the stacked layout. */
export function rowCells(headings) {
  return headings.map((name, i) =>
    h(i === 0 ? 'th' : 'td', i === 0 ? { scope: 'row', 'data-label': name, text: '–' } : { 'data-label': name, text: '–' }),
  );
}

/**
 * Asks for confirmation in a modal `<dialog>`: resolves true when the person confirms. `body` is
 * text or nodes; Escape and Cancel resolve false. The dialog is removed after.
 */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary', text: confirm, onclick: () => dialog.close('ok') });
    const cancel = h('button', { type: 'button', text: 'Cancel', onclick: () => dialog.close('cancel') });
    const dialog = h(
      'dialog',
      { 'aria-labelledby': titleId, class: 'confirm' },
      h('h2', { id: titleId, text: title }),
      h('div', { class: 'dialog-body' }, typeof body === 'string' ? h('p', { text: body }) : body),
      h('div', { class: 'actions' }, cancel, ok),
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** The page's message line: success or error, announced politely. */
export function notify(message, kind = 'ok') {
  const el = document.getElementById('notice');
  if (el === null) return;
  el.className = `notice ${kind}`;
  el.textContent = message;
  el.hidden = false;
}

/** Clears the page's message line. */
export function clearNotice() {
  const el = document.getElementById('notice');
  if (el !== null) {
    el.hidden = true;
    el.textContent = '';
  }
}

/** Runs an action, reporting its failure (the server's message) on the message line; resolves to its result or undefined. */
export async function attempt(what, action) {
  try {
    return await action();
  } catch (err) {
    notify(`${what}: ${err instanceof Error ? err.message : String(err)}`, 'error');
    return undefined;
  }
}

/** A button that copies `text()` to the clipboard and says so. */
export function copyButton(label, text) {
  const button = h('button', {
    type: 'button',
    class: 'copy',
    text: label,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text());
        button.textContent = 'Copied';
      } catch {
        button.textContent = 'Copy failed: select and copy by hand';
      }
      setTimeout(() => (button.textContent = label), 2000);
    },
  });
  return button;
}

// Formatting. `null` is "no value" and shows as a dash.
const DASH = '–';

export function num(x, digits = 1) {
  if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function int(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
  return Math.round(x).toLocaleString('en-US');
}

export function ms(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
  return x < 10 ? `${num(x, 2)} ms` : x < 1000 ? `${num(x, 0)} ms` : `${num(x / 1000, 2)} s`;
}

export function percent(x, digits = 1) {
  if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
  return `${num(x * 100, digits)} %`;
}

export function when(t) {
  if (t === null || t === undefined) return DASH;
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? DASH : d.toLocaleString();
}

export function age(msAgo) {
  if (msAgo === null || msAgo === undefined || !Number.isFinite(msAgo)) return DASH;
  if (msAgo < 60_000) return `${num(msAgo / 1000, 1)} s`;
  if (msAgo < 3_600_000) return `${num(msAgo / 60_000, 0)} min`;
  if (msAgo < 86_400_000) return `${num(msAgo / 3_600_000, 1)} h`;
  return `${num(msAgo / 86_400_000, 1)} d`;
}

/** Limits as short text: `600 rpm, 16 concurrent`; none: unlimited. */
export function limitsText(limits) {
  const parts = [];
  if (limits?.requests_per_minute !== undefined) parts.push(`${int(limits.requests_per_minute)} rpm`);
  if (limits?.tokens_per_minute !== undefined) parts.push(`${int(limits.tokens_per_minute)} tpm`);
  if (limits?.concurrent_requests !== undefined) parts.push(`${int(limits.concurrent_requests)} concurrent`);
  if (limits?.monthly_tokens !== undefined) parts.push(`${int(limits.monthly_tokens)} tokens/month`);
  return parts.length === 0 ? 'unlimited' : parts.join(', ');
}
