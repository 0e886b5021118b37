/**
 * One scrape, every worker: a worker asked for /metrics asks the cluster primary, which gathers
 * every worker's registry (prom-client's AggregatorRegistry: counters and histograms summed,
 * gauges as each declares) and answers with the whole. Without workers, the registry answers alone.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

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
  if (message.type !== 'metrics-scrape' || message.id === undefined) return false;
  const id = message.id;
  aggregator ??= new AggregatorRegistry();
  aggregator.clusterMetrics().then(
    (text: string) => worker.send({ type: 'metrics', id, text } satisfies ScrapeAnswer),
    (err: Error) => worker.send({ type: 'metrics', id, error: err.message } satisfies ScrapeAnswer),
  );
  return true;
}
