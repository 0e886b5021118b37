/**
 * Tenants and keys: the tenants with their models, priority, limits and this month's use against
 * them; creating, editing and deleting a tenant; its keys, created (the key shown once, with a
 * copy button), rotated and revoked. Each is one admin API call (README: Managing tenants and keys).
 */
import { admin, seg } from '../api.js';
import {
  attempt,
  confirmDialog,
  copyButton,
  field,
  fill,
  h,
  int,
  limitsText,
  notify,
  scroller,
  setText,
  table,
  uid,
  when,
} from '../dom.js';

const LIMITS = [
  ['requests_per_minute', 'Requests per minute'],
  ['tokens_per_minute', 'Tokens per minute'],
  ['concurrent_requests', 'Concurrent requests'],
  ['monthly_tokens', 'Tokens per month'],
];

/** Four limit fields; `read()` gives the limits object (empty field: no limit). */
function limitsFieldset(legend) {
  const inputs = new Map(
    LIMITS.map(([key]) => [key, h('input', { type: 'number', min: '0', step: '1', inputmode: 'numeric', placeholder: 'unlimited' })]),
  );
  return {
    el: h(
      'fieldset',
      { class: 'limits' },
      h('legend', { text: legend }),
      LIMITS.map(([key, label]) => field(label, inputs.get(key))),
    ),
    read() {
      const out = {};
      for (const [key, input] of inputs) if (input.value.trim() !== '') out[key] = Number(input.value);
      return out;
    },
    set(limits) {
      for (const [key, input] of inputs) input.value = limits?.[key] === undefined ? '' : String(limits[key]);
    },
  };
}

function priorityField(value = 'normal') {
  return h(
    'select',
    {},
    ['high', 'normal', 'low'].map((p) => h('option', { value: p, text: p, selected: p === value })),
  );
}

function modelsList(text) {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export const tenants = {
  title: 'Tenants',
  mount(root) {
    const list = table(null, ['Id', 'Priority', 'Models', 'Limits', 'Requests this month', 'Tokens this month', 'Actions']);
    const status = h('p', { class: 'muted', text: 'Loading tenants…' });
    const detail = h('section', { class: 'card tenant-detail', hidden: true, 'aria-labelledby': 'tenant-title' });
    let selected = null;

    const refresh = async () => {
      const [answer, usage] = await Promise.all([admin('GET', '/admin/tenants'), admin('GET', '/admin/usage').catch(() => ({ data: [] }))]);
      const used = new Map(usage.data.map((u) => [u.tenant, u]));
      status.hidden = answer.data.length > 0;
      status.textContent = 'No tenants yet.';
      fill(
        list.body,
        answer.data.map((t) => {
          const u = used.get(t.id);
          const tokens = u?.total_tokens ?? 0;
          const monthly = t.limits.monthly_tokens;
          const tokenCell = h('td', {}, monthly === undefined ? int(tokens) : `${int(tokens)} of ${int(monthly)}`);
          if (monthly !== undefined) {
            tokenCell.append(
              h('meter', {
                min: '0',
                max: String(monthly),
                value: String(Math.min(tokens, monthly)),
                'aria-label': `${t.id}: tokens used this month`,
              }),
            );
          }
          return h(
            'tr',
            { 'data-tenant': t.id },
            h('th', { scope: 'row', text: t.id }),
            h('td', { text: t.priority }),
            h('td', { text: t.models.join(', ') }),
            h('td', { text: limitsText(t.limits) }),
            h('td', { text: int(u?.requests ?? 0) }),
            tokenCell,
            h('td', {}, h('button', { type: 'button', text: 'Manage', 'aria-label': `Manage ${t.id}`, onclick: () => select(t.id, true) })),
          );
        }),
      );
      if (selected !== null) {
        const t = answer.data.find((x) => x.id === selected);
        if (t === undefined) {
          selected = null;
          detail.hidden = true;
        }
      }
      return answer.data;
    };

    const select = async (id, focus) => {
      selected = id;
      const t = await attempt(`Could not read tenant ${id}`, () => admin('GET', `/admin/tenants/${seg(id)}`));
      if (t === undefined) return;
      const close = () => {
        selected = null;
        detail.hidden = true;
      };
      renderDetail(detail, t, { refresh, close });
      detail.hidden = false;
      if (focus) detail.querySelector('h2')?.focus();
    };

    fill(
      root,
      h('h1', { tabindex: '-1', text: 'Tenants and keys' }),
      h(
        'section',
        { 'aria-labelledby': 'tenants-title' },
        h('h2', { id: 'tenants-title', text: 'Tenants' }),
        status,
        scroller('Tenants table', list.table),
      ),
      detail,
      createTenantForm(async (id) => {
        await refresh();
        await select(id, true);
      }),
    );
    void attempt('Could not read the tenants', refresh);
    return () => undefined;
  },
};

function createTenantForm(created) {
  const id = h('input', { type: 'text', required: true, pattern: '[a-z0-9][a-z0-9_.\\-]{0,63}', autocomplete: 'off', spellcheck: 'false' });
  const models = h('input', { type: 'text', required: true, value: '*', spellcheck: 'false' });
  const priority = priorityField();
  const limits = limitsFieldset('Limits (empty: unlimited)');
  const form = h(
    'form',
    { class: 'grid-form', 'aria-labelledby': 'create-tenant-title' },
    field('Tenant id', id, 'Lower-case letters, digits, _ . -; at most 64.'),
    field('Models', models, 'Names, aliases or patterns with *, comma separated; * alone is every model.'),
    field('Priority', priority),
    limits.el,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Create tenant' })),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { id: id.value.trim(), models: modelsList(models.value), priority: priority.value, limits: limits.read() };
    const answer = await attempt('The tenant was not created', () => admin('POST', '/admin/tenants', body));
    if (answer === undefined) return;
    notify(`Tenant ${answer.id} created`);
    form.reset();
    await created(answer.id);
  });
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'create-tenant-title' },
    h('h2', { id: 'create-tenant-title', text: 'Create a tenant' }),
    form,
  );
}

function renderDetail(section, tenant, { refresh, close }) {
  const models = h('input', { type: 'text', required: true, value: tenant.models.join(', '), spellcheck: 'false' });
  const priority = priorityField(tenant.priority);
  const limits = limitsFieldset('Limits (empty: unlimited)');
  limits.set(tenant.limits);
  const edit = h(
    'form',
    { class: 'grid-form' },
    field('Models', models, 'Comma separated; * matches any run of characters.'),
    field('Priority', priority),
    limits.el,
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', text: 'Save changes' }),
      h('button', { type: 'button', class: 'danger', text: 'Delete tenant', onclick: () => deleteTenant(tenant.id, refresh, close) }),
    ),
  );
  edit.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { models: modelsList(models.value), priority: priority.value, limits: limits.read() };
    const answer = await attempt(`Tenant ${tenant.id} was not changed`, () => admin('PATCH', `/admin/tenants/${seg(tenant.id)}`, body));
    if (answer === undefined) return;
    notify(
      `Tenant ${tenant.id} saved${answer.unconfirmed_replicas?.length ? ` (not yet confirmed by ${answer.unconfirmed_replicas.join(', ')})` : ''}`,
    );
    await refresh();
  });

  const keys = table(`Keys of ${tenant.id}`, ['Name', 'Id', 'Prefix', 'Created', 'State', 'Limits', 'Actions']);
  const issued = h('div', { class: 'new-key', hidden: true, role: 'status' });
  const showKey = (answer, what) => {
    fill(
      issued,
      h('p', {}, h('strong', { text: `${what}: copy it now, it is not shown again.` })),
      h(
        'p',
        { class: 'key-line' },
        h('code', { 'data-new-key': answer.id, text: answer.key }),
        copyButton('Copy key', () => answer.key),
      ),
      h('p', { class: 'muted', text: `Id ${answer.id}, prefix ${answer.prefix}. The server keeps only its SHA-256.` }),
    );
    issued.hidden = false;
  };
  const loadKeys = async () => {
    const answer = await admin('GET', `/admin/tenants/${seg(tenant.id)}/keys`);
    fill(
      keys.body,
      answer.data.length === 0
        ? h('tr', {}, h('td', { colspan: '7', text: 'No keys.' }))
        : answer.data.map((k) => {
            const live = k.revoked_at === null;
            return h(
              'tr',
              { 'data-key': k.id },
              h('th', { scope: 'row', text: k.name }),
              h('td', {}, h('code', { text: k.id })),
              h('td', {}, h('code', { text: k.prefix })),
              h('td', { text: when(k.created_at) }),
              h('td', { class: live ? 'good' : 'bad', text: live ? 'live' : `revoked ${when(k.revoked_at)}` }),
              h('td', { text: limitsText(k.limits) }),
              h(
                'td',
                {},
                live
                  ? h('div', { class: 'row-actions' }, [
                      h('button', {
                        type: 'button',
                        text: 'Rotate',
                        'aria-label': `Rotate key ${k.name} (${k.prefix})`,
                        onclick: async () => {
                          const ok = await confirmDialog({
                            title: `Rotate key ${k.name}?`,
                            body: `A new key replaces ${k.prefix}…: the old one stops working at once, on every replica.`,
                            confirm: 'Rotate',
                            danger: true,
                          });
                          if (!ok) return;
                          const answer = await attempt('The key was not rotated', () => admin('POST', `/admin/keys/${seg(k.id)}/rotate`));
                          if (answer === undefined) return;
                          showKey(answer, 'New key');
                          await loadKeys();
                        },
                      }),
                      h('button', {
                        type: 'button',
                        class: 'danger',
                        text: 'Revoke',
                        'aria-label': `Revoke key ${k.name} (${k.prefix})`,
                        onclick: async () => {
                          const ok = await confirmDialog({
                            title: `Revoke key ${k.name}?`,
                            body: `Calls with ${k.prefix}… get 401 from the next one on, on every replica. This cannot be undone.`,
                            confirm: 'Revoke',
                            danger: true,
                          });
                          if (!ok) return;
                          const answer = await attempt('The key was not revoked', () => admin('DELETE', `/admin/keys/${seg(k.id)}`));
                          if (answer === undefined) return;
                          notify(`Key ${k.name} (${k.prefix}) revoked`);
                          await loadKeys();
                        },
                      }),
                    ])
                  : null,
              ),
            );
          }),
    );
  };

  const keyName = h('input', { type: 'text', maxlength: '128', placeholder: 'default', autocomplete: 'off' });
  const keyLimits = limitsFieldset('Key limits (empty: only the tenant’s)');
  const createKey = h(
    'form',
    { class: 'grid-form' },
    field('Key name', keyName),
    keyLimits.el,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Create key' })),
  );
  createKey.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { limits: keyLimits.read() };
    if (keyName.value.trim() !== '') body.name = keyName.value.trim();
    const answer = await attempt('The key was not created', () => admin('POST', `/admin/tenants/${seg(tenant.id)}/keys`, body));
    if (answer === undefined) return;
    createKey.reset();
    showKey(answer, `Key ${answer.name} created`);
    await loadKeys();
  });

  const keysTitle = uid('keys');
  const createTitle = uid('create-key');
  fill(
    section,
    h('h2', { id: 'tenant-title', tabindex: '-1', text: `Tenant ${tenant.id}` }),
    h('p', { class: 'muted', text: `Created ${when(tenant.created_at)}, changed ${when(tenant.updated_at)}.` }),
    edit,
    h(
      'section',
      { 'aria-labelledby': keysTitle },
      h('h3', { id: keysTitle, text: 'Keys' }),
      issued,
      scroller(`Keys of ${tenant.id}`, keys.table),
    ),
    h('section', { 'aria-labelledby': createTitle }, h('h3', { id: createTitle, text: 'Create a key' }), createKey),
  );
  void attempt('Could not read the keys', loadKeys);
  setText(section.querySelector('h2'), `Tenant ${tenant.id}`);
}

async function deleteTenant(id, refresh, close) {
  const ok = await confirmDialog({
    title: `Delete tenant ${id}?`,
    body: 'The tenant and all its keys stop working at once, on every replica; its usage records stay.',
    confirm: 'Delete tenant',
    danger: true,
  });
  if (!ok) return;
  const done = await attempt(`Tenant ${id} was not deleted`, async () => {
    await admin('DELETE', `/admin/tenants/${seg(id)}`);
    return true;
  });
  if (done !== true) return;
  notify(`Tenant ${id} deleted`);
  close();
  await refresh();
}
