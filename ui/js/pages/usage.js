/**
 * Usage: GET /admin/usage over a date range, by model, by day or by tenant, for one tenant or
 * all: a chart (tokens as bars, calls as a line), the table, and a CSV of the same rows built in
 * the browser (a Blob download link: nothing is sent anywhere).
 */
import { admin } from '../api.js';
import { BarChart } from '../chart.js';
import { attempt, field, fill, h, int, scroller, table } from '../dom.js';

const COLUMNS = ['tenant', 'group', 'requests', 'errors', 'prompt_tokens', 'completion_tokens', 'total_tokens'];

/** YYYY-MM-DD of a date, in UTC (the ledger's days are UTC days). */
function day(d) {
  return d.toISOString().slice(0, 10);
}

/** One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. */
function csvField(value) {
  const text = value === null || value === undefined ? '' : String(value);
  // A leading = + - @ would be a formula in a spreadsheet: quote it with a leading apostrophe.
  const safe = /^[=+\-@]/.test(text) && !/^-?\d/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export function usageCsv(rows) {
  return [COLUMNS.join(','), ...rows.map((r) => COLUMNS.map((c) => csvField(r[c])).join(','))].join('\r\n') + '\r\n';
}

export const usage = {
  title: 'Usage',
  mount(root) {
    const now = new Date();
    const from = h('input', { type: 'date', required: true, value: day(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1))) });
    const to = h('input', { type: 'date', required: true, value: day(now) });
    const tenant = h('select', {}, h('option', { value: '', text: 'every tenant' }));
    const group = h(
      'select',
      {},
      [
        ['day', 'day'],
        ['model', 'model'],
        ['', 'tenant only'],
      ].map(([value, text]) => h('option', { value, text, selected: value === 'day' })),
    );
    const form = h(
      'form',
      { class: 'grid-form inline' },
      field('From (UTC)', from),
      field('To, inclusive (UTC)', to),
      field('Tenant', tenant),
      field('Group by', group),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Show usage' })),
    );
    const summary = h('p', { class: 'muted', role: 'status' });
    const chartHost = h('div', { class: 'chart' });
    const figure = h(
      'figure',
      { 'data-chart': 'usage', 'aria-label': 'Tokens and calls per group' },
      h('figcaption', { text: 'Tokens (bars) and calls (line)' }),
      chartHost,
    );
    const chart = new BarChart(chartHost);
    const rows = table('Usage', ['Tenant', 'Group', 'Calls', 'Errors', 'Prompt tokens', 'Completion tokens', 'Total tokens']);
    const download = h('a', { class: 'button', hidden: true, text: 'Export CSV' });
    let objectUrl = null;

    fill(
      root,
      h('h1', { tabindex: '-1', text: 'Usage' }),
      h('p', { class: 'lead', text: 'From the usage ledger: one record per finished model call.' }),
      form,
      summary,
      figure,
      h('div', { class: 'actions' }, download),
      scroller('Usage rows', rows.table),
    );

    const show = async () => {
      const params = new URLSearchParams();
      params.set('from', from.value);
      // `to` is exclusive in the API: the day after the last one asked for.
      params.set('to', day(new Date(Date.parse(to.value) + 86_400_000)));
      if (tenant.value !== '') params.set('tenant', tenant.value);
      if (group.value !== '') params.set('group_by', group.value);
      const answer = await attempt('Could not read the usage', () => admin('GET', `/admin/usage?${params}`));
      if (answer === undefined) return;
      const data = answer.data;
      const totals = data.reduce((a, r) => ({ calls: a.calls + r.requests, tokens: a.tokens + r.total_tokens }), { calls: 0, tokens: 0 });
      summary.textContent = `${int(totals.calls)} calls, ${int(totals.tokens)} tokens, ${data.length} rows.`;
      fill(
        rows.body,
        data.length === 0
          ? h('tr', {}, h('td', { colspan: '7', text: 'No calls in this range.' }))
          : data.map((r) =>
              h(
                'tr',
                {},
                h('th', { scope: 'row', text: r.tenant }),
                [r.group ?? '–', int(r.requests), int(r.errors), int(r.prompt_tokens), int(r.completion_tokens), int(r.total_tokens)].map(
                  (t) => h('td', { text: t }),
                ),
              ),
            ),
      );
      // The chart sums every tenant per group (per tenant when not grouped).
      const byGroup = new Map();
      for (const r of data) {
        const key = answer.group_by === null ? r.tenant : r.group;
        const seen = byGroup.get(key) ?? { tokens: 0, calls: 0 };
        seen.tokens += r.total_tokens;
        seen.calls += r.requests;
        byGroup.set(key, seen);
      }
      const labels = [...byGroup.keys()].sort();
      figure.hidden = labels.length === 0;
      if (labels.length > 0) {
        chart.update(
          labels,
          { label: 'tokens', values: labels.map((l) => byGroup.get(l).tokens) },
          { label: 'calls', values: labels.map((l) => byGroup.get(l).calls) },
        );
      }
      if (objectUrl !== null) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(new Blob([usageCsv(data)], { type: 'text/csv;charset=utf-8' }));
      download.href = objectUrl;
      download.download = `infergate-usage-${from.value}-${to.value}${tenant.value === '' ? '' : `-${tenant.value}`}${group.value === '' ? '' : `-by-${group.value}`}.csv`;
      download.hidden = false;
    };
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void show();
    });

    void (async () => {
      const list = await admin('GET', '/admin/tenants').catch(() => ({ data: [] }));
      for (const t of list.data) tenant.append(h('option', { value: t.id, text: t.id }));
      await show();
    })();
    return () => {
      chart.destroy();
      if (objectUrl !== null) URL.revokeObjectURL(objectUrl);
    };
  },
};
