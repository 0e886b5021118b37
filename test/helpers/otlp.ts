/**
 * A loopback OTLP/HTTP trace receiver (JSON encoding), as a collector would be: what the server's
 * OpenTelemetry exporter sends (OTEL_EXPORTER_OTLP_ENDPOINT), its spans flattened for assertions.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };

/** A span as received, its attributes flattened. */
export interface Received {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly status: number;
  readonly attributes: Record<string, string | number | boolean>;
  readonly resource: Record<string, string | number | boolean>;
}

/** OTLP/JSON ids are hex strings (the OTel JS exporter's JSON encoding); base64 is accepted too. */
function hex(id: string | undefined): string {
  if (id === undefined || id === '') return '';
  return /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');
}

function flatten(list: Array<{ key: string; value: AnyValue }> | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    out[key] = value.stringValue ?? value.boolValue ?? value.doubleValue ?? Number(value.intValue);
  }
  return out;
}

/** A loopback OTLP/HTTP trace receiver (JSON encoding), as a collector would be. */
export async function startReceiver(): Promise<{ url: string; spans: Received[]; server: Server }> {
  const spans: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      assert.equal(req.url, '/v1/traces');
      assert.match(req.headers['content-type'] ?? '', /application\/json/);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: Array<{
          resource: { attributes: Array<{ key: string; value: AnyValue }> };
          scopeSpans: Array<{ spans: Array<Record<string, unknown>> }>;
        }>;
      };
      for (const rs of body.resourceSpans) {
        const resource = flatten(rs.resource.attributes);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              traceId: hex(s.traceId as string),
              spanId: hex(s.spanId as string),
              parentSpanId: hex(s.parentSpanId as string | undefined),
              name: s.name as string,
              kind: s.kind as number,
              status: (s.status as { code?: number } | undefined)?.code ?? 0,
              attributes: flatten(s.attributes as Array<{ key: string; value: AnyValue }>),
              resource,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, spans, server };
}

/** The spans of one trace once its root (the server span) has arrived (waits up to 10 s). */
export async function traceOf(spans: Received[], match: (root: Received) => boolean, count: number): Promise<Received[]> {
  for (let i = 0; i < 100; i++) {
    const root = spans.find((s) => s.kind === 2 && match(s));
    if (root !== undefined) {
      const all = spans.filter((s) => s.traceId === root.traceId);
      if (all.length >= count) return all;
    }
    await sleep(100);
  }
  assert.fail(`no trace with ${count} spans arrived; received: ${JSON.stringify(spans.map((s) => s.name))}`);
}

export const SPAN_KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 };
