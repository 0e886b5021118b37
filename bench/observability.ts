/**
 * The `observability` scenario's targets: the mock chat model with metrics, tracing (at 1 % and
 * 100 % sampling) and the access log on and off, so the table shows what each costs per request.
 * Spans go over OTLP/HTTP to a sink in this process that reads and drops them, standing in for a
 * collector (on another machine in production; here it shares the cores).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startInfergate, type Target } from './targets.js';

function config(options: { metrics: boolean; accessLog: boolean }): string {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-bench-observability-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    `server: { host: 127.0.0.1, workers: auto, log_level: warn, access_log: ${options.accessLog} }
usage: { enabled: false }
metrics: { enabled: ${options.metrics} }
models:
  - name: mock-chat
    aliases: [lab]
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 0 } }]
`,
  );
  return file;
}

/** An OTLP/HTTP endpoint that takes every export and keeps nothing; closed with the last target. */
async function otlpSink(): Promise<{ url: string; close: () => void; bytes: () => number }> {
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => res.end('{}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, close: () => server.close(), bytes: () => bytes };
}

export async function observabilityTargets(workers: number | undefined): Promise<Target[]> {
  const path = '/v1/chat/completions';
  const sink = await otlpSink();
  const traced = (ratio: number) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_TRACES_SAMPLER_ARG: String(ratio) });
  const metrics = config({ metrics: true, accessLog: false });
  const targets = [
    await startInfergate('metrics off', config({ metrics: false, accessLog: false }), path, workers),
    await startInfergate('metrics on (default)', metrics, path, workers),
    await startInfergate('metrics + tracing 1%', metrics, path, workers, traced(0.01)),
    await startInfergate('metrics + tracing 100%', metrics, path, workers, traced(1)),
    await startInfergate('metrics + access log', config({ metrics: true, accessLog: true }), path, workers),
  ];
  const last = targets[targets.length - 1] as Target;
  targets[targets.length - 1] = {
    ...last,
    async stop() {
      await last.stop();
      console.log(`  (the OTLP sink received ${(sink.bytes() / 2 ** 20).toFixed(1)} MiB of spans)`);
      sink.close();
    },
  };
  return targets;
}
