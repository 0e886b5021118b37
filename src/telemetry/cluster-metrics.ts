/**
 * One scrape, every worker: a worker asked for /metrics asks the cluster primary, which gathers
 * every worker's registry (prom-client's AggregatorRegistry: counters and histograms summed,
 * gauges as each declares) and answers with the whole. Without workers, the registry answers alone.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AggregatorRegistry, Registry } from 'prom-client';
import { lazyModule } from '../core/lazy-module.js';
import { addPacked, packReading, readingOf, type PackedReading, type Reading } from './live-stats.js';

/**
 * prom-client, loaded on first use: the cluster primary imports this module to answer scrapes, and
 * loading prom-client there at start cost about 3 MiB of its RSS though most primaries are never
 * scraped.
 */
const promClient = lazyModule<typeof import('prom-client')>('prom-client');

interface ScrapeRequest {
  readonly type: 'metrics-scrape';
  readonly id: number;
}

interface ScrapeAnswer {
  readonly type: 'metrics';
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

/** In a worker: how /metrics reads the metrics of every worker. */
export function scrapeFor(registry: Registry): () => Promise<string> {
  if (!cluster.isWorker) return () => registry.metrics();
  const { AggregatorRegistry } = promClient();
  AggregatorRegistry.setRegistries(registry);
  // Constructing one installs prom-client's listener that answers the primary's requests.
  new AggregatorRegistry();
  const pending = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  let next = 0;
  process.on('message', (m: Partial<ScrapeAnswer>) => {
    if (m?.type !== 'metrics' || m.id === undefined) return;
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error !== undefined) p?.reject(new Error(m.error));
    else p?.resolve(m.text ?? '');
  });
  return () =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      process.send?.({ type: 'metrics-scrape', id } satisfies ScrapeRequest);
    });
}

let aggregator: AggregatorRegistry<'text/plain; version=0.0.4; charset=utf-8'> | null = null;

/** In the primary: answers a worker's scrape request with every worker's metrics. Returns false for other messages. */
export function answerScrape(worker: Worker, message: { type?: string; id?: number }): boolean {
  if (answerLive(worker, message)) return true;
  if (message.type !== 'metrics-scrape' || message.id === undefined) return false;
  const id = message.id;
  aggregator ??= new (promClient().AggregatorRegistry)();
  aggregator.clusterMetrics().then(
    (text: string) => worker.send({ type: 'metrics', id, text } satisfies ScrapeAnswer),
    (err: Error) => worker.send({ type: 'metrics', id, error: err.message } satisfies ScrapeAnswer),
  );
  return true;
}

// ---- the dashboard's live reading -------------------------------------------------------------
// A lighter path than the scrape above, taken once a second while a dashboard streams: each worker
// sends only the few series the dashboard shows, already summed per deployment, and the primary adds
// them up. A worker asks the primary (`live-read`), the primary asks every worker (`live-collect`),
// each answers its part (`live-part`), and the primary answers the sum (`live`).

interface LiveMessage {
  readonly type?: string;
  readonly id?: number;
  readonly token?: number;
  readonly reading?: PackedReading;
}

/** How long the primary waits for a worker's part; one that has not answered counts with its last part. */
const LIVE_PART_TIMEOUT_MS = 800;

/** In a worker: how the dashboard reads every worker's live series, summed. Call once per process. */
export function liveReadingFor(registry: Registry): () => Promise<Reading> {
  if (!cluster.isWorker) return () => readingOf(registry);
  const pending = new Map<number, (reading: Reading) => void>();
  let next = 0;
  process.on('message', (m: LiveMessage) => {
    if (m?.type === 'live-collect' && m.token !== undefined) {
      const token = m.token;
      readingOf(registry).then(
        (r) => process.send?.({ type: 'live-part', token, reading: packReading(r) } satisfies LiveMessage),
        () => process.send?.({ type: 'live-part', token, reading: [] } satisfies LiveMessage),
      );
    } else if (m?.type === 'live' && m.id !== undefined) {
      const resolve = pending.get(m.id);
      pending.delete(m.id);
      resolve?.(addPacked(new Map(), m.reading ?? []));
    }
  });
  return () =>
    new Promise((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      process.send?.({ type: 'live-read', id } satisfies LiveMessage);
    });
}

interface Collecting {
  readonly requester: Worker;
  readonly id: number;
  readonly waiting: Set<number>;
  readonly sum: Reading;
  readonly timer: NodeJS.Timeout;
}

const collecting = new Map<number, Collecting>();
/** Each worker's last part: what stands in for it when it is slow to answer, so its counters never seem to drop. */
const lastParts = new Map<number, PackedReading>();
let nextToken = 0;

/** In the primary: the live-reading messages; false for others. */
function answerLive(worker: Worker, message: LiveMessage): boolean {
  if (message.type === 'live-read' && message.id !== undefined) {
    collectLive(worker, message.id);
    return true;
  }
  if (message.type !== 'live-part' || message.token === undefined) return false;
  const part = message.reading ?? [];
  lastParts.set(worker.id, part);
  const c = collecting.get(message.token);
  if (c !== undefined && c.waiting.delete(worker.id)) {
    addPacked(c.sum, part);
    if (c.waiting.size === 0) finishLive(message.token);
  }
  return true;
}

function collectLive(requester: Worker, id: number): void {
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  const ids = new Set(workers.map((w) => w.id));
  for (const known of lastParts.keys()) if (!ids.has(known)) lastParts.delete(known);
  const token = nextToken++;
  const timer = setTimeout(() => finishLive(token), LIVE_PART_TIMEOUT_MS);
  timer.unref();
  collecting.set(token, { requester, id, waiting: ids, sum: new Map(), timer });
  for (const w of workers) w.send({ type: 'live-collect', token } satisfies LiveMessage);
  if (workers.length === 0) finishLive(token);
}

function finishLive(token: number): void {
  const c = collecting.get(token);
  if (c === undefined) return;
  collecting.delete(token);
  clearTimeout(c.timer);
  for (const w of c.waiting) addPacked(c.sum, lastParts.get(w) ?? []);
  if (c.requester.isConnected()) c.requester.send({ type: 'live', id: c.id, reading: packReading(c.sum) } satisfies LiveMessage);
}
