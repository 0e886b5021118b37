/**
 * The `generate` scenario: text generation on tiny-chat, one stream and several at once, through
 * infergate (streamed over HTTP, as clients use it) and through node-llama-cpp driven directly in
 * this process with the same settings: the limit the server can approach. Reports aggregate
 * tokens per second and time to first token. With a baseline (another checkout, built), that
 * build's server is a third side, doing the same requests over HTTP in the same rounds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LlamaContextSequence, Token } from 'node-llama-cpp';
import { startInfergate } from './targets.js';
import { renderTable } from './table.js';

/** The settings both sides use. */
const SETTINGS = { contextSize: 2048, sequences: 4, threads: 1, flashAttention: false, maxTokens: 128 } as const;
const MESSAGES = [{ role: 'user', content: 'Hello' }];

export interface GenerateRow {
  scenario: 'generate';
  target: string;
  streams: number;
  tokens_per_s: number;
  requests: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
}

interface Sample {
  tokens: number;
  ttftMs: number[];
  seconds: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function row(target: string, streams: number, s: Sample): GenerateRow {
  const ttft = [...s.ttftMs].sort((a, b) => a - b);
  return {
    scenario: 'generate',
    target,
    streams,
    tokens_per_s: s.tokens / s.seconds,
    requests: s.ttftMs.length,
    ttft_p50_ms: percentile(ttft, 50),
    ttft_p99_ms: percentile(ttft, 99),
  };
}

/** Runs `streams` loops of `one` until `seconds` pass; each loop returns its tokens and time to first token. */
async function drive(
  streams: number,
  seconds: number,
  one: (stream: number) => Promise<{ tokens: number; ttftMs: number }>,
): Promise<Sample> {
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const sample: Sample = { tokens: 0, ttftMs: [], seconds: 0 };
  await Promise.all(
    Array.from({ length: streams }, async (_, stream) => {
      while (performance.now() < deadline) {
        const r = await one(stream);
        sample.tokens += r.tokens;
        sample.ttftMs.push(r.ttftMs);
      }
    }),
  );
  sample.seconds = (performance.now() - started) / 1000;
  return sample;
}

type Runner = (streams: number, seconds: number) => Promise<Sample>;

/** node-llama-cpp alone: the same prompt, settings and prefix reuse as the server, no HTTP. */
async function direct(model: string): Promise<{ run: Runner; close: () => Promise<void> }> {
  const lib = await import('node-llama-cpp');
  const llama = await lib.getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: lib.LlamaLogLevel.error });
  const m = await llama.loadModel({ modelPath: model });
  const context = await m.createContext({
    contextSize: SETTINGS.contextSize,
    sequences: SETTINGS.sequences,
    threads: SETTINGS.threads,
    flashAttention: SETTINGS.flashAttention,
    // The server's policy (see LlamaBackend#dispatch): at once when alone, next turn when several run.
    batching: { dispatchSchedule: (dispatch) => (active <= 1 ? queueMicrotask(dispatch) : setImmediate(dispatch)) },
  });
  const sequences = Array.from({ length: SETTINGS.sequences }, () => context.getSequence());
  let active = 0;
  const history = [
    { type: 'user' as const, text: MESSAGES[0]?.content ?? '' },
    { type: 'model' as const, response: [] },
  ];
  const prompt = lib.resolveChatWrapper(m).generateContextState({ chatHistory: history }).contextText.tokenize(m.tokenizer);
  const generate = async (sequence: LlamaContextSequence): Promise<{ tokens: number; ttftMs: number }> => {
    const started = performance.now();
    const keep = Math.min(sequence.compareContextTokens(prompt).firstDifferentIndex, prompt.length - 1);
    if (keep < sequence.nextTokenIndex) await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
    let tokens = 0;
    let ttftMs = 0;
    for await (const token of sequence.evaluate(prompt.slice(keep) as Token[], { temperature: 0 })) {
      void token;
      if (tokens++ === 0) ttftMs = performance.now() - started;
      if (tokens >= SETTINGS.maxTokens) break;
    }
    return { tokens, ttftMs };
  };
  const run: Runner = async (streams, seconds) => {
    active = streams;
    return drive(streams, seconds, (s) => generate(sequences[s] as LlamaContextSequence));
  };
  await run(1, 1); // warm-up
  return {
    run,
    close: async () => {
      await context.dispose();
      await m.dispose();
    },
  };
}

/** One streamed chat request over node:http (keep-alive); time to first token is to the first content chunk, after the role chunk. */
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
function streamOnce(url: URL): Promise<{ tokens: number; ttftMs: number }> {
  const body = JSON.stringify({
    model: 'tiny-chat',
    messages: MESSAGES,
    max_tokens: SETTINGS.maxTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
      res.setEncoding('utf8');
      let events = 0;
      let ttftMs = 0;
      let tail = '';
      res.on('data', (text: string) => {
        for (let i = text.indexOf('data: '); i !== -1; i = text.indexOf('data: ', i + 6)) {
          if (++events === 2) ttftMs = performance.now() - started;
        }
        tail = (tail + text).slice(-600);
      });
      res.on('end', () => {
        const usage = /"completion_tokens":(\d+)/.exec(tail);
        resolve({ tokens: usage === null ? 0 : Number(usage[1]), ttftMs });
      });
      res.on('error', reject);
    });
    req.end(body);
  });
}

/** `infergate serve` of the checkout at `root` on tiny-chat, one worker, the same settings as the direct side. */
async function server(name: string, model: string, root: string): Promise<{ run: Runner; close: () => Promise<void> }> {
  const dir = join(tmpdir(), 'infergate-bench');
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'llama.yaml');
  writeFileSync(
    config,
    `server: { workers: 1, log_level: warn }
models:
  - name: tiny-chat
    versions:
      - version: '1'
        backend:
          kind: llama
          path: '${model}'
          gpu: false
          context_size: ${SETTINGS.contextSize}
          sequences: ${SETTINGS.sequences}
          threads: ${SETTINGS.threads}
          flash_attention: ${SETTINGS.flashAttention}
`,
  );
  const target = await startInfergate(name, config, '/v1/chat/completions', 1, {}, root);
  const url = new URL(target.url);
  const run: Runner = (streams, seconds) => drive(streams, seconds, () => streamOnce(url));
  await run(1, 1); // warm-up
  return { run, close: () => target.stop() };
}

/** The row names of this build's server and the baseline's: generateTable's `vs baseline` pairs them. */
const SERVER = 'infergate (HTTP, SSE)';
const BASELINE = 'baseline (HTTP, SSE)';

/**
 * The sides one at a time (never at once: they share the CPU), interleaved round by round so
 * that the machine's drift hits them alike; each cell reports the median round by tokens/s.
 * `baseline` (another checkout, built) adds its server as a side; both servers use this
 * checkout's model file and config, so they differ only in their build.
 */
export async function generateScenario(
  levels: readonly number[],
  seconds: number,
  rounds: number,
  root: string,
  baseline: string | null = null,
): Promise<GenerateRow[]> {
  const model = join(root, 'models/tiny-chat/1/model.gguf');
  const sides = [
    { name: 'node-llama-cpp direct', ...(await direct(model)) },
    { name: SERVER, ...(await server(SERVER, model, root)) },
  ];
  if (baseline !== null) sides.push({ name: BASELINE, ...(await server(BASELINE, model, baseline)) });
  const cells = new Map<string, Sample[]>();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const streams of levels) {
        // Each round starts one side later, so that none is always measured first (or right after another).
        for (const side of [...sides.slice(round % sides.length), ...sides.slice(0, round % sides.length)]) {
          const sample = await side.run(streams, seconds);
          const key = `${side.name}\t${streams}`;
          cells.set(key, [...(cells.get(key) ?? []), sample]);
          const rate = (sample.tokens / sample.seconds).toFixed(0);
          console.log(`  ${side.name}, ${streams} stream(s)${rounds > 1 ? ` (round ${round + 1}/${rounds})` : ''}: ${rate} tokens/s`);
        }
      }
    }
  } finally {
    for (const side of sides) await side.close();
  }
  const rows: GenerateRow[] = [];
  for (const side of sides) {
    for (const streams of levels) {
      const samples = (cells.get(`${side.name}\t${streams}`) ?? []).sort((a, b) => a.tokens / a.seconds - b.tokens / b.seconds);
      rows.push(row(side.name, streams, samples[Math.floor(samples.length / 2)] as Sample));
    }
  }
  console.log(`\n${generateTable(rows)}`);
  return rows;
}

/** The scenario's table; with baseline rows, a `vs baseline` column gives this build's server over the baseline's, tokens/s. */
export function generateTable(rows: readonly GenerateRow[]): string {
  const one = new Map(rows.filter((r) => r.streams === 1).map((r) => [r.target, r.tokens_per_s]));
  const direct = new Map(rows.filter((r) => r.target.startsWith('node-llama-cpp')).map((r) => [r.streams, r]));
  const base = new Map(rows.filter((r) => r.target === BASELINE).map((r) => [r.streams, r.tokens_per_s]));
  const head = ['target', 'streams', 'tokens/s', 'vs 1 stream', 'vs direct', 'TTFT p50 ms', 'TTFT p99 ms', 'requests'];
  if (base.size > 0) head.splice(5, 0, 'vs baseline');
  const body = rows.map((r) => {
    const d = direct.get(r.streams);
    const b = base.get(r.streams);
    const cells = [
      r.target,
      String(r.streams),
      r.tokens_per_s.toFixed(0),
      one.has(r.target) ? `${(r.tokens_per_s / (one.get(r.target) as number)).toFixed(2)}x` : '-',
      d === undefined ? '-' : `${((100 * r.tokens_per_s) / d.tokens_per_s).toFixed(0)}%`,
      r.ttft_p50_ms.toFixed(2),
      r.ttft_p99_ms.toFixed(2),
      String(r.requests),
    ];
    if (base.size > 0) cells.splice(5, 0, r.target === SERVER && b !== undefined ? `${(r.tokens_per_s / b).toFixed(2)}x` : '-');
    return cells;
  });
  return renderTable(head, body);
}
