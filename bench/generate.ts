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
  /** This bench process's CPU over the measurement (user + system), % of one core; for direct it includes llama.cpp's. */
  bench_cpu_pct: number;
}

interface Sample {
  tokens: number;
  ttftMs: number[];
  seconds: number;
  /** process.cpuUsage() over the measurement, user + system, µs. */
  cpuUs: number;
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
    bench_cpu_pct: (100 * s.cpuUs) / (s.seconds * 1e6),
  };
}

/** Runs `streams` loops of `one` until `seconds` pass; each loop returns its tokens and time to first token. */
async function drive(
  streams: number,
  seconds: number,
  one: (stream: number) => Promise<{ tokens: number; ttftMs: number }>,
): Promise<Sample> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const deadline = started + seconds * 1000;
  const sample: Sample = { tokens: 0, ttftMs: [], seconds: 0, cpuUs: 0 };
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
  const used = process.cpuUsage(cpu);
  sample.cpuUs = used.user + used.system;
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
  // The server's erase policy too (see LlamaBackend.withContext): while a new request waits to erase its
  // sequence's old tail, which takes the context's lock, the others ask for their next token after it.
  let erasing = 0;
  let erased: Promise<void> | null = null;
  let resume = (): void => undefined;
  const generate = async (sequence: LlamaContextSequence): Promise<{ tokens: number; ttftMs: number }> => {
    const started = performance.now();
    const keep = Math.min(sequence.compareContextTokens(prompt).firstDifferentIndex, prompt.length - 1);
    if (keep < sequence.nextTokenIndex) {
      if (erasing++ === 0) erased = new Promise<void>((r) => (resume = r));
      try {
        await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
      } finally {
        if (--erasing === 0) {
          erased = null;
          resume();
        }
      }
    }
    let tokens = 0;
    let ttftMs = 0;
    const iterator = sequence.evaluate(prompt.slice(keep) as Token[], { temperature: 0 })[Symbol.asyncIterator]();
    try {
      for (;;) {
        if (erased !== null) await erased;
        const step = await iterator.next();
        if (step.done === true) break;
        if (tokens++ === 0) ttftMs = performance.now() - started;
        if (tokens >= SETTINGS.maxTokens) break;
      }
    } finally {
      await iterator.return?.();
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

/** One of the APIs a stream is asked for through: its path, body, first-token event and where its final usage says the tokens. */
interface TextApi {
  readonly name: string;
  readonly path: string;
  readonly body: string;
  /** Whether an SSE event's data is the first token's (the role chunk of chat completions is not). */
  readonly firstToken: (data: string, events: number) => boolean;
  readonly completionTokens: RegExp;
}

/** The same generation through each API: chat completions, the Responses API and the Anthropic Messages API. */
const APIS: readonly TextApi[] = [
  {
    name: 'chat completions',
    path: '/v1/chat/completions',
    body: JSON.stringify({
      model: 'tiny-chat',
      messages: MESSAGES,
      max_tokens: SETTINGS.maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
    firstToken: (_data, events) => events === 2,
    completionTokens: /"completion_tokens":(\d+)/,
  },
  {
    name: 'responses',
    path: '/v1/responses',
    body: JSON.stringify({
      model: 'tiny-chat',
      input: MESSAGES[0]?.content,
      max_output_tokens: SETTINGS.maxTokens,
      temperature: 0,
      stream: true,
      store: false,
    }),
    firstToken: (data) => data.startsWith('{"type":"response.output_text.delta"'),
    completionTokens: /"output_tokens":(\d+)/,
  },
  {
    name: 'anthropic messages',
    path: '/v1/messages',
    body: JSON.stringify({ model: 'tiny-chat', messages: MESSAGES, max_tokens: SETTINGS.maxTokens, temperature: 0, stream: true }),
    firstToken: (data) => data.startsWith('{"type":"content_block_delta"'),
    completionTokens: /"output_tokens":(\d+)/,
  },
];

/** One streamed request over node:http (keep-alive); time to first token is to the first event that carries text. */
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
function streamOnce(base: URL, api: TextApi): Promise<{ tokens: number; ttftMs: number }> {
  const url = new URL(api.path, base);
  const body = api.body;
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
          events++;
          if (ttftMs === 0 && api.firstToken(text.slice(i + 6, i + 6 + 64), events)) ttftMs = performance.now() - started;
        }
        tail = (tail + text).slice(-600);
      });
      res.on('end', () => {
        const usage = api.completionTokens.exec(tail);
        resolve({ tokens: usage === null ? 0 : Number(usage[1]), ttftMs });
      });
      res.on('error', reject);
    });
    req.end(body);
  });
}

/**
 * `infergate serve` of the checkout at `root` on tiny-chat, one worker, the same settings as the
 * direct side; a runner per API in `apis` (the first is chat completions), all on this one server.
 */
async function server(
  name: string,
  model: string,
  root: string,
  apis: readonly TextApi[],
): Promise<{ runs: readonly Runner[]; close: () => Promise<void> }> {
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
  const runs = apis.map(
    (api): Runner =>
      (streams, seconds) =>
        drive(streams, seconds, () => streamOnce(url, api)),
  );
  for (const run of runs) await run(1, 1); // warm-up
  return { runs, close: () => target.stop() };
}

/** The row names of this build's server and the baseline's: generateTable's `vs baseline` pairs them. */
const SERVER = 'infergate (HTTP, SSE)';
const BASELINE = 'baseline (HTTP, SSE)';
/** The rows of this build's other APIs on the same model, which `vs chat` compares with SERVER's. */
const API_ROWS = APIS.slice(1).map((api) => `infergate ${api.name} (SSE)`);

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
  const own = await server(SERVER, model, root, APIS);
  const sides: Array<{ name: string; run: Runner; close: () => Promise<void> }> = [
    { name: 'node-llama-cpp direct', ...(await direct(model)) },
    { name: SERVER, run: own.runs[0] as Runner, close: own.close },
    // The other APIs share SERVER's process: closed with it.
    ...API_ROWS.map((name, i) => ({ name, run: own.runs[i + 1] as Runner, close: () => Promise.resolve() })),
  ];
  if (baseline !== null) {
    const base = await server(BASELINE, model, baseline, APIS.slice(0, 1));
    sides.push({ name: BASELINE, run: base.runs[0] as Runner, close: base.close });
  }
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

/**
 * The scenario's table; with baseline rows, a `vs baseline` column gives this build's server over the baseline's, tokens/s.
 * `bench CPU` is this process's CPU over the measurement, % of one core: for the HTTP rows the load generator's
 * (it limits near 100 %), for direct node-llama-cpp's own (its evaluation thread included).
 */
export function generateTable(rows: readonly GenerateRow[]): string {
  const one = new Map(rows.filter((r) => r.streams === 1).map((r) => [r.target, r.tokens_per_s]));
  const direct = new Map(rows.filter((r) => r.target.startsWith('node-llama-cpp')).map((r) => [r.streams, r]));
  const base = new Map(rows.filter((r) => r.target === BASELINE).map((r) => [r.streams, r.tokens_per_s]));
  const chat = new Map(rows.filter((r) => r.target === SERVER).map((r) => [r.streams, r]));
  const head = [
    'target',
    'streams',
    'tokens/s',
    'vs 1 stream',
    'vs direct',
    'vs chat: tokens/s, TTFT',
    'TTFT p50 ms',
    'TTFT p99 ms',
    'requests',
    'bench CPU',
  ];
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
      vsChat(r, chat.get(r.streams)),
      r.ttft_p50_ms.toFixed(2),
      r.ttft_p99_ms.toFixed(2),
      String(r.requests),
      `${r.bench_cpu_pct.toFixed(0)}%`,
    ];
    if (base.size > 0) cells.splice(5, 0, r.target === SERVER && b !== undefined ? `${(r.tokens_per_s / b).toFixed(2)}x` : '-');
    return cells;
  });
  return renderTable(head, body);
}

/** An API row's tokens/s and TTFT p50 over chat completions' on the same server and streams ('-' for other rows). */
function vsChat(r: GenerateRow, chat: GenerateRow | undefined): string {
  if (chat === undefined || !API_ROWS.includes(r.target)) return '-';
  return `${(r.tokens_per_s / chat.tokens_per_s).toFixed(2)}x, ${(r.ttft_p50_ms / chat.ttft_p50_ms).toFixed(2)}x`;
}
