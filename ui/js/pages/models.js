/**
 * Models: every model with its aliases and versions (readiness, weight and where it comes from,
 * breaker, admission, live rate, p99 and errors side by side), a weight editor per version, and
 * the model's rollout: its state and figures, a person's pause, resume, abort and promote, and a
 * form to start one. Every change is confirmed in a dialog, then made through the admin API.
 */
import { admin, seg } from '../api.js';
import {
  attempt,
  confirmDialog,
  field,
  fill,
  h,
  int,
  keyed,
  ms,
  notify,
  num,
  percent,
  rowCells,
  scroller,
  setText,
  table,
  uid,
  when,
} from '../dom.js';

const POLL_MS = 3000;
/** The columns of a version's row, but its weight editor (at EDITOR_AT). */
const VERSION_HEADINGS = [
  'Version',
  'Ready',
  'Weight',
  'Source',
  'Breaker',
  'In flight / queued',
  'Requests/s',
  'p99',
  'Error rate',
  'Replicas ready',
  'Backend',
];
/** Where the weight editor's column goes: after the weight and its source. */
const EDITOR_AT = 4;
const ACTIVE = new Set(['running', 'paused']);

/** The parts of a model's card that are updated in place. */
const cards = new WeakMap();

function unconfirmedText(answer) {
  const left = answer?.unconfirmed_replicas ?? [];
  return left.length === 0 ? '' : ` (not yet confirmed by ${left.join(', ')})`;
}

function sourceText(source) {
  if (source.from !== 'override') return 'config';
  return `override by ${source.by} at ${when(source.at)}`;
}

/** Each version's share of unpinned traffic with `weights` (version → weight), as text. */
function splitText(weights) {
  const sum = [...weights.values()].reduce((a, b) => a + b, 0);
  if (sum === 0) return 'no version has weight: unpinned calls go to the default version';
  return [...weights].map(([v, w]) => `${v}: ${percent(w / sum, 1)}`).join(', ');
}

export const models = {
  title: 'Models',
  mount(root, ctx) {
    const list = h('div', { class: 'model-list' });
    const status = h('p', { class: 'muted', text: 'Loading models…' });
    fill(
      root,
      h('h1', { tabindex: '-1', text: 'Models' }),
      h('p', {
        class: 'lead',
        text: 'Weights set here apply to every replica (the same call as `infergate weight`); figures are live, over the last second.',
      }),
      status,
      list,
    );

    let stopped = false;
    let timer = null;
    let breakers = new Map();

    const refresh = async () => {
      clearTimeout(timer);
      try {
        const [answer, b] = await Promise.all([
          admin('GET', '/admin/models'),
          admin('GET', '/admin/breakers').catch(() => ({ breakers: [] })),
        ]);
        if (stopped) return;
        breakers = new Map(b.breakers.map((x) => [`${x.model}@${x.version}`, x]));
        status.hidden = true;
        keyed(
          list,
          answer.data,
          (m) => m.name,
          (m) => modelCard(m, refresh),
          (el, m) => updateCard(el, m, breakers, ctx),
        );
      } catch (err) {
        if (stopped) return;
        status.hidden = false;
        status.textContent =
          err?.status === 404 ? 'This server has no fleet admin API (GET /admin/models).' : `Could not read the models: ${err.message}`;
      }
      if (!stopped) timer = setTimeout(refresh, POLL_MS);
    };
    void refresh();

    const unsubscribe = ctx.live.subscribe((sample) => {
      if (sample === null) return;
      for (const card of list.children) liveCells(card, sample);
    });
    return () => {
      stopped = true;
      clearTimeout(timer);
      unsubscribe();
    };
  },
};

function modelCard(model, refresh) {
  const titleId = uid('model');
  const meta = h('p', { class: 'meta' });
  // The weight editor comes right after the weight, where a laptop's screen shows it without scrolling.
  const versions = table(null, [...VERSION_HEADINGS.slice(0, EDITOR_AT), 'Change weight', ...VERSION_HEADINGS.slice(EDITOR_AT)], {
    stack: true,
  });
  versions.table.classList.add('versions');
  const rollout = rolloutPanel(model.name, titleId, refresh);
  const start = startForm(model.name, refresh);
  const card = h(
    'section',
    { class: 'card model', 'aria-labelledby': titleId, 'data-model': model.name },
    h('h2', { id: titleId, text: model.name }),
    meta,
    scroller(`Versions of ${model.name}`, versions.table),
    rollout.el,
    start.el,
  );
  cards.set(card, { meta, versions: versions.body, rollout, start, model, refresh, rows: new Map() });
  return card;
}

function updateCard(card, model, breakers, ctx) {
  const parts = cards.get(card);
  parts.model = model;
  const aliases = model.aliases.length === 0 ? 'no aliases' : `aliases: ${model.aliases.join(', ')}`;
  setText(parts.meta, `${aliases} · default version ${model.default_version}`);
  const active = model.rollout !== null && ACTIVE.has(model.rollout.state);
  keyed(
    parts.versions,
    model.versions,
    (v) => v.version,
    (v) => versionRow(card, v),
    (tr, v) => updateRow(tr, model, v, breakers.get(`${model.name}@${v.version}`), active),
  );
  parts.rollout.update(model.rollout);
  parts.start.update(model, active);
  if (ctx.live.latest !== null) liveCells(card, ctx.live.latest);
}

/** A version's row; its cells are kept in `rowParts` for updates. */
const rowParts = new WeakMap();

function versionRow(card, v) {
  const cells = rowCells(VERSION_HEADINGS);
  cells[3].classList.add('wrap'); // the source: "override by <who> at <when>"
  const { model } = cards.get(card);
  const label = `${model.name}@${v.version}`;
  const input = h('input', {
    type: 'number',
    min: '0',
    max: '1000000',
    step: 'any',
    inputmode: 'decimal',
    class: 'weight-input',
    'aria-label': `New weight of ${label}`,
    value: String(v.weight),
    oninput: () => (input.dataset.dirty = '1'),
  });
  const set = h('button', {
    type: 'button',
    text: 'Set',
    'aria-label': `Set the weight of ${label}`,
    onclick: () => setWeight(card, v.version, input),
  });
  const clear = h('button', {
    type: 'button',
    text: 'Clear',
    'aria-label': `Clear the weight override of ${label}`,
    onclick: () => clearWeight(card, v.version),
  });
  const editor = h('td', { 'data-label': 'Change weight' }, h('div', { class: 'weight-editor' }, input, set, clear));
  const tr = h('tr', { 'data-version': v.version }, cells.slice(0, EDITOR_AT), editor, cells.slice(EDITOR_AT));
  rowParts.set(tr, { cells, input, set, clear, weight: v.weight });
  return tr;
}

function updateRow(tr, model, v, breaker, active) {
  const p = rowParts.get(tr);
  const sum = model.versions.reduce((a, x) => a + x.weight, 0);
  const [version, ready, weight, source, breakerCell, , , , , replicas, endpoints] = p.cells;
  setText(version, v.version === model.default_version ? `${v.version} (default)` : v.version);
  setText(ready, v.ready ? 'ready' : 'not ready');
  ready.className = v.ready ? 'good' : 'bad';
  // No weight anywhere: unpinned calls go to the default version.
  const share = sum === 0 ? (v.version === model.default_version ? 1 : 0) : v.weight / sum;
  setText(weight, `${num(v.weight, v.weight % 1 === 0 ? 0 : 2)} (${percent(share, 0)})`);
  weight.dataset.weight = String(v.weight);
  setText(source, sourceText(v.weight_source));
  const state = breaker?.state ?? v.breaker ?? 'disabled';
  setText(breakerCell, state === 'open' && breaker?.opened_at ? `open since ${when(breaker.opened_at)}` : state);
  breakerCell.className = state === 'open' ? 'bad' : state === 'half_open' ? 'warn' : '';
  const readyReplicas = v.replicas.filter((r) => r.ready).length;
  setText(replicas, v.replicas.length === 0 ? '–' : `${readyReplicas} of ${v.replicas.length}`);
  // Remote versions list their upstream endpoints (GET /admin/breakers); in-process ones have none.
  const list = breaker?.endpoints;
  const ejected = list?.filter((e) => e.ejected).length ?? 0;
  const where =
    list === undefined
      ? 'in process'
      : `${list.length} endpoint${list.length === 1 ? '' : 's'}${ejected === 0 ? '' : ` (${ejected} ejected)`}`;
  setText(endpoints, v.backend === undefined ? where : `${v.backend}, ${where}`);
  endpoints.title = list === undefined ? '' : list.map((e) => `${e.url}${e.ejected ? ' (ejected)' : ''}`).join('\n');
  // The input follows the weight in force unless the person is editing it.
  if (p.weight !== v.weight && p.input.dataset.dirty !== '1' && document.activeElement !== p.input) p.input.value = String(v.weight);
  p.weight = v.weight;
  p.input.disabled = active;
  p.set.disabled = active;
  p.clear.disabled = active || v.weight_source.from !== 'override';
  p.set.title = active ? 'A rollout owns the weights: pause, abort or promote it first' : '';
}

function liveCells(card, sample) {
  const parts = cards.get(card);
  if (parts === undefined) return;
  for (const tr of parts.versions.children) {
    const p = rowParts.get(tr);
    const row = sample.models.find((m) => m.model === parts.model.name && m.version === tr.dataset.version);
    const [, , , , , admission, rps, p99, errors] = p.cells;
    setText(admission, row === undefined ? '–' : `${int(row.in_flight)} / ${int(row.queued)}`);
    setText(rps, row === undefined ? '–' : num(row.rps, 1));
    setText(p99, row === undefined ? '–' : ms(row.p99_ms));
    setText(errors, row === undefined ? '–' : percent(row.error_rate));
    errors.className = row !== undefined && row.error_rate > 0 ? 'bad' : '';
  }
}

async function setWeight(card, version, input) {
  const { model, refresh } = cards.get(card);
  const weight = Number(input.value);
  if (input.value.trim() === '' || !Number.isFinite(weight) || weight < 0 || weight > 1_000_000) {
    notify(`The weight of ${model.name}@${version} must be a number from 0 to 1000000, got "${input.value}"`, 'error');
    input.focus();
    return;
  }
  const now = model.versions.find((v) => v.version === version);
  const after = new Map(model.versions.map((v) => [v.version, v.version === version ? weight : v.weight]));
  const ok = await confirmDialog({
    title: `Change the weight of ${model.name}@${version}?`,
    body: [
      h('p', { text: `From ${now?.weight ?? '–'} (${now === undefined ? '–' : sourceText(now.weight_source)}) to ${weight}.` }),
      h('p', { text: `Unpinned traffic then splits ${splitText(after)}.` }),
      h('p', { class: 'muted', text: 'Every replica applies it; it stays until the override is cleared.' }),
    ],
    confirm: 'Set weight',
  });
  if (!ok) return;
  const answer = await attempt(`The weight of ${model.name}@${version} was not changed`, () =>
    admin('PATCH', `/admin/models/${seg(model.name)}/versions/${seg(version)}`, { weight }),
  );
  if (answer === undefined) return;
  delete input.dataset.dirty;
  notify(`${model.name}@${version}: weight ${answer.weight}${unconfirmedText(answer)}`);
  await refresh();
}

async function clearWeight(card, version) {
  const { model, refresh } = cards.get(card);
  const v = model.versions.find((x) => x.version === version);
  const ok = await confirmDialog({
    title: `Clear the override of ${model.name}@${version}?`,
    body: `Its weight goes back to the config's (${v?.config_weight ?? '–'}) on every replica.`,
    confirm: 'Clear override',
  });
  if (!ok) return;
  const answer = await attempt(`The override of ${model.name}@${version} was not cleared`, () =>
    admin('DELETE', `/admin/models/${seg(model.name)}/versions/${seg(version)}/weight`),
  );
  if (answer === undefined) return;
  notify(`${model.name}@${version}: back to the config's weight ${answer.weight}${unconfirmedText(answer)}`);
  await refresh();
}

const ACTIONS = {
  pause: { label: 'Pause', when: ['running'], says: 'Weights stay as they are; the gates stop being checked until it is resumed.' },
  resume: { label: 'Resume', when: ['paused'], says: 'The current step starts over.' },
  abort: { label: 'Abort', when: ['running', 'paused'], says: "The canary's weight goes to 0 on every replica.", danger: true },
  promote: {
    label: 'Promote',
    when: ['running', 'paused'],
    says: 'The canary gets all unpinned traffic (weight 100, the others 0).',
    danger: true,
  },
};

function rolloutPanel(name, modelTitleId, refresh) {
  const titleId = uid('rollout');
  const none = h('p', { class: 'muted', text: 'No rollout.' });
  const facts = h('dl', { class: 'facts' });
  const figures = table('Figures of the current step', [
    'Side',
    'Calls',
    'Faults',
    'Error rate',
    'p99',
    'Streamed calls',
    'p99 to first token',
  ]);
  const elapsed = h('p', { class: 'muted' });
  let record = null;
  const buttons = Object.entries(ACTIONS).map(([action, a]) =>
    h('button', {
      type: 'button',
      class: a.danger ? 'danger' : '',
      text: a.label,
      'data-action': action,
      onclick: async () => {
        if (record === null) return;
        const ok = await confirmDialog({
          title: `${a.label} rollout ${record.id} of ${name}@${record.version}?`,
          body: a.says,
          confirm: a.label,
          danger: a.danger === true,
        });
        if (!ok) return;
        const answer = await attempt(`Could not ${action} the rollout`, () =>
          admin('POST', `/admin/models/${seg(name)}/rollouts/${seg(record.id)}/${action}`),
        );
        if (answer === undefined) return;
        notify(`Rollout ${answer.id}: ${answer.state}`);
        await refresh();
      },
    }),
  );
  const current = h(
    'div',
    { hidden: true },
    facts,
    scroller(`Rollout figures of ${name}`, figures.table),
    elapsed,
    h('div', { class: 'actions' }, buttons),
  );
  // Named "<model> Rollout": each model's panel is a region of its own.
  const el = h(
    'section',
    { class: 'rollout', 'aria-labelledby': `${modelTitleId} ${titleId}` },
    h('h3', { id: titleId, text: 'Rollout' }),
    none,
    current,
  );
  return {
    el,
    update(r) {
      record = r;
      none.hidden = r !== null;
      current.hidden = r === null;
      if (r === null) return;
      const steps = r.plan?.steps ?? [];
      const rows = [
        ['Id', r.id],
        ['Canary', r.version],
        ['State', r.state],
        ['Step', `${r.step} of ${steps.length} (${steps.join(', ')} %)`],
        ['Canary weight', `${num(r.weight, 1)} % of unpinned traffic`],
        ['Reason', r.reason ?? '–'],
        ['Started', `${when(r.started_at)} by ${r.by}`],
        ['Driver', r.driver ?? '–'],
      ];
      fill(
        facts,
        rows.map(([k, v]) => h('div', {}, h('dt', { text: k }), h('dd', { text: v, 'data-field': k.toLowerCase() }))),
      );
      const f = r.figures;
      fill(
        figures.body,
        f === null
          ? h('tr', {}, h('td', { colspan: '7', text: 'No figures yet.' }))
          : ['canary', 'stable'].map((side) => {
              const s = f[side];
              return h(
                'tr',
                {},
                h('th', { scope: 'row', text: side }),
                [int(s.calls), int(s.faults), percent(s.error_rate, 2), ms(s.p99_ms), int(s.ttft_calls), ms(s.ttft_p99_ms)].map((t) =>
                  h('td', { text: t }),
                ),
              );
            }),
      );
      const over = !ACTIVE.has(r.state);
      setText(elapsed, f === null ? '' : `${over ? 'The last step ran' : 'This step has run'} for ${num(f.elapsed_s, 0)} s.`);
      for (const b of buttons) b.hidden = !ACTIONS[b.dataset.action].when.includes(r.state);
    },
  };
}

/** The form that starts a rollout; fields left empty take the server's defaults. */
function startForm(name, refresh) {
  const version = h('select', { required: true });
  const steps = h('input', {
    type: 'text',
    placeholder: '1, 5, 25, 50, 100',
    pattern: '^\\s*\\d+(\\.\\d+)?(\\s*,\\s*\\d+(\\.\\d+)?)*\\s*$',
  });
  const number = (placeholder, step = 'any') => h('input', { type: 'number', min: '0', step, placeholder });
  const stepSeconds = number('60');
  const minCalls = number('100', '1');
  const interval = number('1');
  const maxError = number('0.01');
  const maxP99 = number('1.5');
  const maxTtft = number('1.5');
  const form = h(
    'form',
    { class: 'grid-form' },
    field('Canary version', version),
    field('Steps (percent)', steps, 'Ascending, comma separated.'),
    field('Step seconds', stepSeconds),
    field('Min calls per step', minCalls),
    field('Check interval (s)', interval),
    h(
      'fieldset',
      {},
      h('legend', { text: 'Gates' }),
      field('Max error rate', maxError),
      field('Max p99 ratio', maxP99),
      field('Max p99 to first token ratio', maxTtft),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Start rollout' })),
  );
  const el = h('details', { class: 'start-rollout' }, h('summary', { text: 'Start a rollout' }), form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { version: version.value };
    if (steps.value.trim() !== '') body.steps = steps.value.split(',').map((s) => Number(s.trim()));
    const put = (key, input, target = body) => {
      if (input.value.trim() !== '') target[key] = Number(input.value);
    };
    put('step_seconds', stepSeconds);
    put('min_calls', minCalls);
    put('interval_seconds', interval);
    const gates = {};
    put('max_error_rate', maxError, gates);
    put('max_p99_ratio', maxP99, gates);
    put('max_ttft_p99_ratio', maxTtft, gates);
    if (Object.keys(gates).length > 0) body.gates = gates;
    const ok = await confirmDialog({
      title: `Start a rollout of ${name}@${body.version}?`,
      body: [
        h('p', { text: `Steps: ${(body.steps ?? [1, 5, 25, 50, 100]).join(', ')} % of unpinned traffic.` }),
        h('p', { text: 'The canary goes back to 0 on every replica when a gate fails; weights are the rollout’s until it ends.' }),
      ],
      confirm: 'Start rollout',
    });
    if (!ok) return;
    const answer = await attempt('The rollout did not start', () => admin('POST', `/admin/models/${seg(name)}/rollouts`, body));
    if (answer === undefined) return;
    notify(`Rollout ${answer.id} of ${name}@${answer.version}: ${answer.state}, step ${answer.step}`);
    el.open = false;
    await refresh();
  });
  let versionsSeen = '';
  return {
    el,
    update(model, active) {
      el.hidden = active;
      const names = model.versions.map((v) => v.version);
      if (names.join('\n') === versionsSeen) return;
      versionsSeen = names.join('\n');
      const keep = version.value;
      fill(
        version,
        names.map((v) => h('option', { value: v, text: v === model.default_version ? `${v} (default)` : v })),
      );
      version.value = names.includes(keep) ? keep : (names.find((v) => v !== model.default_version) ?? names[0] ?? '');
    },
  };
}
