/**
 * Instances: the fleet's registry (GET /admin/instances): every replica, its workers merged, and
 * every registered external model server, with their models, pool labels, load and lease age.
 */
import { admin } from '../api.js';
import { age, fill, h, int, keyed, rowCells, scroller, setText, table } from '../dom.js';

const POLL_MS = 5000;

function modelsText(models) {
  if (models.length === 0) return '–';
  const byName = new Map();
  for (const m of models) {
    const list = byName.get(m.name) ?? [];
    list.push(`${m.version}${m.ready ? '' : '!'}`);
    byName.set(m.name, list);
  }
  return [...byName].map(([name, versions]) => `${name}@${versions.join(',')}`).join(' ');
}

function labelsText(labels) {
  const entries = Object.entries(labels);
  return entries.length === 0 ? '–' : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

export const instances = {
  title: 'Instances',
  mount(root) {
    const note = h('p', { class: 'note', hidden: true });
    const status = h('p', { class: 'muted', text: 'Loading instances…' });
    const headings = ['Id', 'Kind', 'URL', 'Labels', 'Workers', 'Models (! not ready)', 'In flight', 'Queued', 'Lease age'];
    const list = table('Replicas and external model servers', headings, { stack: true });
    fill(root, h('h1', { tabindex: '-1', text: 'Instances' }), note, status, scroller('Instances', list.table));

    let stopped = false;
    let timer = null;
    const refresh = async () => {
      try {
        const answer = await admin('GET', '/admin/instances');
        if (stopped) return;
        status.hidden = true;
        note.hidden = answer.store !== 'memory';
        setText(
          note,
          'The fleet store is this process’s memory: only this replica is listed, and weights and rollouts apply to it alone. ' +
            'Set state.redis_url or fleet.etcd_url to share a registry between replicas.',
        );
        keyed(
          list.body,
          answer.data,
          (i) => i.id,
          () => h('tr', {}, rowCells(headings)),
          (tr, i) => {
            const inFlight = i.models.reduce((a, m) => a + m.in_flight, 0);
            const queued = i.models.reduce((a, m) => a + m.queued, 0);
            const values = [
              i.id === answer.self ? `${i.id} (this one)` : i.id,
              i.kind,
              i.url,
              labelsText(i.labels),
              i.kind === 'external' ? '–' : int(i.workers),
              modelsText(i.models),
              i.kind === 'external' ? '–' : int(inFlight),
              i.kind === 'external' ? '–' : int(queued),
              age(i.lease_age_ms),
            ];
            values.forEach((v, n) => setText(tr.children[n], v));
          },
        );
      } catch (err) {
        if (stopped) return;
        status.hidden = false;
        status.textContent =
          err?.status === 404
            ? 'This server has no fleet registry (GET /admin/instances).'
            : `Could not read the instances: ${err.message}`;
      }
      if (!stopped) timer = setTimeout(refresh, POLL_MS);
    };
    void refresh();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  },
};
