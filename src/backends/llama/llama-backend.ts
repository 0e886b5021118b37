/**
 * GGUF chat and completion models in-process, through llama.cpp (node-llama-cpp). One loaded model
 * and one context per version; the context's sequences are the slots that concurrent requests
 * run in, evaluated together in shared batches (continuous batching). Requests beyond the free
 * sequences wait in a bounded queue; beyond that they are refused with 503, so load never loads
 * a second copy or grows memory.
 */
import { availableParallelism } from 'node:os';
import type {
  ChatWrapper,
  Llama,
  LlamaContext,
  LlamaContextSequence,
  LlamaGrammar,
  LlamaModel,
  SequenceEvaluateOptions,
  Token,
} from 'node-llama-cpp';
import type { LlamaBackendConfig } from './config.js';
import { fastError, overloadedError } from '../../core/errors.js';
import { QueueFullError, Slots } from '../../scheduling/slots.js';
import { NO_OBSERVER, type DeploymentObserver, type GenerationObserver } from '../../core/observer.js';
import { TextBackend, unsupported, type BackendHealth, type Occupancy } from '../backend.js';
import { ClientGoneError, type Cancellation, type EmbedResult, type Task } from '../../core/call.js';
import type {
  ChatRequest,
  FunctionTool,
  Prompt as PromptInput,
  ResponseFormat,
  TextRequest,
  TextStream,
  Timings,
} from '../../core/text.js';
import { Generation, timings } from './generation.js';
import { answer, HeldEvents } from './answer.js';
import { availableFunctions, boundedSchema, CallSyntax, chatHistory, namesGrammar, parametersOf } from './tools.js';
import { GenerationChain, toolAnswer, type CallPlan, type StartGeneration } from './tool-answer.js';
import { samplingParams, type SamplingParams } from './params.js';
import { getLlama, loadNodeLlamaCpp, type NodeLlamaCpp } from './runtime.js';
import { resolveModelFile } from '../model-file.js';

/** A prompt ready to evaluate, with what ends its generation besides the client's `stop`. */
interface Prompt {
  readonly tokens: Token[];
  readonly stopTokens: ReadonlySet<Token>;
  readonly stops: readonly string[];
}

/** Context size when the config names none: the model's own, capped so a 128k-context model does not reserve 128k per sequence. */
const DEFAULT_MAX_CONTEXT = 4096;
const NO_STOP_TOKENS: ReadonlySet<Token> = new Set();
/** Grammars kept per model version. */
const GRAMMAR_CACHE = 128;
/** Tokens kept for a call's name and the syntax around it, out of the arguments' budget. */
const NAME_ROOM = 32;

/** A budget rounded down to a multiple of 16, so calls with nearly the same budget share a grammar. */
function budgetBucket(budget: number): number {
  return Math.max(16, budget - (budget % 16));
}

/**
 * The llama backend of one model version: chat and completions (no embeddings) on `sequences`
 * slots with a bounded queue. `load()` before use; `workers` divides the cores for `threads: auto`.
 */
export class LlamaBackend extends TextBackend {
  readonly kind = 'llama';
  override readonly tasks: ReadonlySet<Task> = new Set<Task>(['chat', 'completion']);
  readonly #config: LlamaBackendConfig;
  readonly #workers: number;
  readonly #onGeneration: GenerationObserver | undefined;
  readonly #observer: DeploymentObserver;
  #lib: NodeLlamaCpp | null = null;
  #llama: Llama | null = null;
  #model: LlamaModel | null = null;
  #context: LlamaContext | null = null;
  #slots: Slots<LlamaContextSequence> | null = null;
  #wrapper: ChatWrapper | null = null;
  #callSyntax: CallSyntax | null = null;
  #vocabSize = 0;
  /** Grammars of response formats and tool calls, by what they are made from (see #cachedGrammar). */
  readonly #grammars = new Map<string, Promise<LlamaGrammar>>();
  #afterDispatch: Array<() => void> = [];
  /** Erases waiting for the context and what resolves when the last is done (see withContext); null: none. */
  #pause: { readonly done: Promise<void>; readonly resolve: () => void; waiting: number } | null = null;
  #error: string | null = null;
  #ids = 0;

  constructor(config: LlamaBackendConfig, workers = 1, onGeneration?: GenerationObserver, observer: DeploymentObserver = NO_OBSERVER) {
    super();
    this.#config = config;
    this.#workers = workers;
    this.#onGeneration = onGeneration;
    this.#observer = observer;
  }

  /** Sequences generating, and requests waiting for one. */
  occupancy(): Occupancy | null {
    const slots = this.#slots;
    return slots === null ? null : { running: slots.busy, waiting: slots.queued };
  }

  async load(): Promise<void> {
    const config = this.#config;
    try {
      const modelPath = await resolveModelFile({ path: config.path, sha256: config.sha256, cacheDir: config.cache_dir });
      const lib = (this.#lib = await loadNodeLlamaCpp());
      const llama = (this.#llama = await getLlama(config.gpu));
      const model = (this.#model = await llama.loadModel({ modelPath, gpuLayers: config.gpu_layers }));
      this.#wrapper = this.#chatWrapper(lib, model);
      this.#callSyntax = new CallSyntax(lib, this.#wrapper, model);
      this.#vocabSize = vocabularySize(model);
      this.#context = await model.createContext({
        contextSize: config.context_size ?? Math.min(model.trainContextSize, DEFAULT_MAX_CONTEXT),
        sequences: config.sequences,
        threads: this.threads,
        batchSize: config.batch_size,
        flashAttention: config.flash_attention === 'auto' ? llama.gpu !== false : config.flash_attention,
        batching: { dispatchSchedule: (dispatch) => this.#dispatch(dispatch) },
      });
      const sequences = Array.from({ length: config.sequences }, () => (this.#context as LlamaContext).getSequence());
      this.#slots = new Slots(sequences, config.queue_size);
    } catch (err) {
      this.#error = (err as Error).message;
      throw err;
    }
  }

  async unload(): Promise<void> {
    await this.#context?.dispose();
    await this.#model?.dispose();
    this.#context = null;
    this.#model = null;
    this.#slots = null;
  }

  health(): BackendHealth {
    return { ready: this.#slots !== null, error: this.#error };
  }

  /**
   * When node-llama-cpp evaluates the tokens queued by its sequences. Alone, a generation's next
   * token is dispatched at once (a microtask), so it evaluates while the previous one is
   * detokenized and written: one stream through the server went from 71 % to 85-99 % of node-llama-cpp
   * driven directly (npm run bench -- --scenario generate). With others running, it
   * waits for the next turn of the event loop (the default), so their tokens share one batch.
   */
  #dispatch(dispatch: () => void): void {
    const run = (): void => {
      dispatch();
      const waiting = this.#afterDispatch;
      this.#afterDispatch = [];
      for (const resolve of waiting) resolve();
    };
    if ((this.#slots?.busy ?? 0) <= 1) queueMicrotask(run);
    else setImmediate(run);
  }

  /**
   * For a generation running alone: resolves right after its next evaluation is dispatched, so it
   * detokenizes and sends its last token while llama.cpp computes the next one (the caller also
   * stops waiting if its evaluation ends without one: the model ended its turn). With others running, null: batches
   * are then also dispatched from inside node-llama-cpp, where this hook would not see them.
   */
  afterDispatch(): Promise<void> | null {
    if ((this.#slots?.busy ?? 0) > 1) return null;
    return new Promise((resolve) => this.#afterDispatch.push(resolve));
  }

  /**
   * Runs `erase` (of a sequence's old tail, before a new prompt on it) with the other generations
   * paused: erasing takes the context's lock, which node-llama-cpp's batch loop holds for as long
   * as some sequence has a decode queued when a batch ends, and a running generation queues its
   * next one within microtasks. So with others generating, a new request's erase waited for the
   * loop to run dry: ~190 batches, 125-180 ms, a whole generation of 128 tokens (4 streams,
   * tiny-chat, node-llama-cpp driven directly: TTFT p50 3 ms, p99 171 ms; through the server p99
   * 282-362 ms). While an erase waits, generations ask for their next token only after it (see
   * paused), so the loop ends after the batch in flight, the erase runs, and the new prompt joins
   * the next batch with the others' next tokens.
   */
  async withContext(erase: () => Promise<void>): Promise<void> {
    let pause = this.#pause;
    if (pause === null) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      pause = this.#pause = { done, resolve, waiting: 0 };
    }
    pause.waiting++;
    try {
      await erase();
    } finally {
      if (--pause.waiting === 0) {
        this.#pause = null;
        pause.resolve();
      }
    }
  }

  /** Resolves when no erase waits for the context (see withContext); null when none does. */
  paused(): Promise<void> | null {
    return this.#pause?.done ?? null;
  }

  /** Threads per evaluation: `auto` leaves one core of this worker's share to the event loop. */
  get threads(): number {
    const t = this.#config.threads;
    return t === 'auto' ? Math.max(1, Math.floor(availableParallelism() / this.#workers) - 1) : t;
  }

  /** Tokens one request can hold, prompt and completion together; null until loaded. */
  contextLength(): number | null {
    return this.#context?.contextSize ?? null;
  }

  embed(): Promise<EmbedResult> {
    return unsupported(this.kind, 'embedding');
  }

  async generate(request: TextRequest, call: Cancellation): Promise<TextStream> {
    const model = this.#model;
    const slots = this.#slots;
    const context = this.#context;
    if (model === null || slots === null || context === null) throw fastError('model_not_ready', 'the model is not loaded');
    const arrived = performance.now();
    const sampling = request.sampling;
    const params = samplingParams(request, this.#vocabSize);
    const prompt = request.kind === 'chat' ? this.#chatPrompt(model, request) : this.#completionPrompt(model, request.prompt);
    const maxTokens = checkLength(prompt.tokens.length, sampling.maxTokens, context.contextSize, request.kind);
    const grammar = await this.#grammar(sampling.responseFormat);
    // Made (and the token biases checked) before a sequence is taken, so a bad bias is a 400 that holds nothing.
    const evaluate = this.#evaluateOptions(model, params, grammar);
    // Every grammar and schema a call needs is ready before a sequence is taken: a schema no grammar can express is a 400 first.
    const plan =
      request.kind === 'chat' && request.tools.length > 0 && request.toolChoice.type !== 'none'
        ? await this.#callPlan(request, prompt, maxTokens, context.contextSize)
        : null;

    let sequence: LlamaContextSequence;
    try {
      sequence = await slots.acquire(call, () => new ClientGoneError());
    } catch (err) {
      if (!(err instanceof QueueFullError)) throw err;
      this.#observer.shed('queue_full');
      throw overloadedError(`model "${request.model}" is busy: ${err.message}; retry shortly`);
    }
    const queuedMs = performance.now() - arrived;
    const start: StartGeneration = (tokens, budget, stops, g, stopTokens = []) => {
      // A grammar may end in trailing whitespace forever; its triggers (e.g. four newlines) end it, as node-llama-cpp's chat does.
      const hidden = g === null ? stops : [...stops, ...g.stopGenerationTriggers.map((t) => t.toString())];
      return new Generation(sequence, model, {
        prompt: tokens,
        maxTokens: budget,
        stops: hidden,
        stopTokens: stopTokens.length === 0 ? prompt.stopTokens : new Set([...prompt.stopTokens, ...stopTokens]),
        logprobs: sampling.logprobs,
        afterDispatch: () => this.afterDispatch(),
        withContext: (erase) => this.withContext(erase),
        paused: () => this.paused(),
        penalties: params.penalties,
        evaluate: g === grammar ? evaluate : this.#evaluateOptions(model, params, g),
      });
    };
    const generation =
      plan === null ? start(prompt.tokens, maxTokens, [...sampling.stop, ...prompt.stops], grammar) : new GenerationChain();
    let reported: Timings | null = null;
    /** Reports the generation once: when it finished, or when its answer is released unfinished (cancelled). */
    const finished = (): Timings => {
      if (reported !== null) return reported;
      const t = (reported = timings(queuedMs, generation.timings, generation.completionTokens));
      this.#onGeneration?.({
        promptTokens: prompt.tokens.length,
        completionTokens: generation.completionTokens,
        queuedMs,
        timeToFirstTokenMs: queuedMs + t.prompt_ms,
        tokensPerSecond: t.predicted_per_second,
        finishReason: generation.finishReason ?? 'cancelled',
      });
      return t;
    };
    // A whole answer under a grammar that may end in whitespace loses it, as node-llama-cpp's chat trims it.
    const trim = !request.stream && grammar?.trimWhitespaceSuffix === true;
    const events = new HeldEvents(
      (release) =>
        generation instanceof Generation
          ? answer(generation, prompt.tokens.length, trim, release, finished, sampling.stop)
          : toolAnswer(plan as CallPlan, start, generation, release, finished),
      () => {
        finished();
        slots.release(sequence);
      },
    );
    call.onAbort(() => {
      generation.abort();
      events.abandon();
    });
    const chat = request.kind === 'chat';
    return {
      type: 'events',
      id: `${chat ? 'chatcmpl' : 'cmpl'}-${Date.now().toString(36)}${(this.#ids++).toString(36)}`,
      created: Math.floor(Date.now() / 1000),
      events,
    };
  }

  /** The prompt tokens of a chat, its tools included, as a generation would evaluate them (Anthropic's count_tokens). */
  async countTokens(request: ChatRequest): Promise<number> {
    const model = this.#model;
    if (model === null) throw fastError('model_not_ready', 'the model is not loaded');
    return this.#chatPrompt(model, request).tokens.length;
  }

  /** What a call takes: the grammars of the names and of each function's arguments; 400 naming a tool whose schema no grammar expresses. */
  async #callPlan(request: ChatRequest, prompt: Prompt, maxTokens: number, contextSize: number): Promise<CallPlan> {
    const llama = this.#llama as Llama;
    const choice = request.toolChoice;
    const tools = choice.type === 'function' ? request.tools.filter((t) => t.name === choice.name) : request.tools;
    const names = tools.map((t) => t.name);
    const grammarOf = (name: string, budget: number): Promise<LlamaGrammar> => {
      const tool = request.tools.find((t) => t.name === name) as FunctionTool;
      return this.#schemaGrammar(parametersOf(tool), budgetBucket(budget), request.tools.indexOf(tool), name);
    };
    // Each schema is turned into a grammar now (cached), so one no grammar can express is a 400 before anything
    // runs. The call's own is the one made now unless fewer tokens are left when it starts (text came first).
    const full = budgetBucket(maxTokens - NAME_ROOM);
    const ready = new Map(await Promise.all(names.map(async (n) => [n, await grammarOf(n, full)] as const)));
    const argumentsGrammar = (name: string, budget: number): Promise<LlamaGrammar> =>
      budget >= full ? Promise.resolve(ready.get(name) as LlamaGrammar) : grammarOf(name, budget);
    return {
      auto: choice.type === 'auto',
      names,
      nameGrammar:
        names.length > 1
          ? await this.#cachedGrammar(`names\0${names.join('\0')}`, () => llama.createGrammar({ grammar: namesGrammar(names) }))
          : null,
      argumentsGrammar,
      syntax: this.#callSyntax as CallSyntax,
      stops: prompt.stops,
      clientStops: request.sampling.stop,
      prompt: prompt.tokens,
      maxTokens,
      contextSize,
    };
  }

  /**
   * The grammar of a function's arguments, its open strings and arrays bounded to fit `budget`;
   * 400 at `tools[i]` when its schema has what no grammar can express. Cached: agents send the same
   * tools every turn.
   */
  async #schemaGrammar(schema: object, budget: number, i: number, name: string): Promise<LlamaGrammar> {
    const llama = this.#llama as Llama;
    try {
      return await this.#cachedGrammar(`${budget}\0${JSON.stringify(schema)}`, async () => {
        const bounded = boundedSchema(schema, budget) as Parameters<Llama['createGrammarForJsonSchema']>[0];
        const json = await llama.createGrammarForJsonSchema(bounded);
        return llama.createGrammar({
          grammar: finiteNumbers(json.grammar),
          stopGenerationTriggers: json.stopGenerationTriggers,
          trimWhitespaceSuffix: json.trimWhitespaceSuffix,
        });
      });
    } catch (err) {
      throw fastError(
        'invalid_request',
        `the parameters schema of function "${name}" cannot be turned into a grammar for llama models: ${(err as Error).message}`,
        `tools[${i}]`,
      );
    }
  }

  /** The grammar under `key`, made by `make` on first use; the least recently used goes beyond GRAMMAR_CACHE. A failed one is not kept. */
  #cachedGrammar(key: string, make: () => Promise<LlamaGrammar>): Promise<LlamaGrammar> {
    const cache = this.#grammars;
    let grammar = cache.get(key);
    if (grammar !== undefined) cache.delete(key);
    else {
      grammar = make();
      grammar.catch(() => cache.delete(key));
      if (cache.size >= GRAMMAR_CACHE) cache.delete(cache.keys().next().value as string);
    }
    cache.set(key, grammar);
    return grammar;
  }

  /** The chat template of the config, else the one in the GGUF metadata (node-llama-cpp picks a matching wrapper). */
  #chatWrapper(lib: NodeLlamaCpp, model: LlamaModel): ChatWrapper {
    const template = this.#config.chat_template;
    if (template.includes('{{') || template.includes('{%')) return new lib.JinjaTemplateChatWrapper({ template });
    if (template === 'auto') return lib.resolveChatWrapper(model);
    const names: readonly string[] = lib.specializedChatWrapperTypeNames;
    if (!names.includes(template)) {
      throw new Error(`chat_template "${template}" is not a Jinja template, "auto", or one of ${names.join(', ')}`);
    }
    return lib.resolveChatWrapper(model, { type: template as (typeof lib.specializedChatWrapperTypeNames)[number] });
  }

  /** A chat's prompt through the model's template, with its tools (the template documents them) and its earlier calls and results. */
  #chatPrompt(model: LlamaModel, request: ChatRequest): Prompt {
    // `none`: the tools are left out of the prompt, so the model does not write calls as text.
    const tools = request.toolChoice.type === 'none' ? [] : request.tools;
    const state = (this.#wrapper as ChatWrapper).generateContextState({
      chatHistory: chatHistory(request.messages),
      ...(tools.length === 0 ? {} : { availableFunctions: availableFunctions(tools), documentFunctionParams: true }),
    });
    const stopTokens = new Set<Token>();
    const stops: string[] = [];
    for (const trigger of state.stopGenerationTriggers) {
      const tokens = trigger.tokenize(model.tokenizer);
      if (tokens.length === 1) stopTokens.add(tokens[0] as Token);
      else stops.push(trigger.toString());
    }
    return { tokens: state.contextText.tokenize(model.tokenizer), stopTokens, stops };
  }

  #completionPrompt(model: LlamaModel, prompt: PromptInput): Prompt {
    let tokens: Token[];
    if (typeof prompt === 'string') tokens = model.tokenize(prompt);
    else {
      if (prompt.length > 1 && typeof prompt[0] !== 'number') {
        throw fastError('invalid_request', `\`prompt\` must be one prompt for llama models, got ${prompt.length}`, 'prompt');
      }
      const one = typeof prompt[0] === 'number' ? (prompt as readonly number[]) : (prompt[0] as string | readonly number[]);
      if (typeof one === 'string') tokens = model.tokenize(one);
      else {
        tokens = [...one] as Token[];
        const bad = tokens.findIndex((t) => (t as number) >= this.#vocabSize);
        if (bad !== -1) {
          throw fastError(
            'invalid_request',
            `\`prompt\` token ids must be in [0, ${this.#vocabSize - 1}], got ${tokens[bad]}`,
            `prompt[${bad}]`,
          );
        }
        return { tokens, stopTokens: NO_STOP_TOKENS, stops: [] };
      }
    }
    const bos = model.tokens.bos;
    if (model.tokens.shouldPrependBosToken && bos !== null) tokens.unshift(bos);
    return { tokens, stopTokens: NO_STOP_TOKENS, stops: [] };
  }

  #evaluateOptions(model: LlamaModel, p: SamplingParams, grammar: LlamaGrammar | null): SequenceEvaluateOptions {
    const lib = this.#lib as NodeLlamaCpp;
    const options: SequenceEvaluateOptions = { temperature: p.temperature, topP: p.topP, topK: p.topK, minP: p.minP, seed: p.seed };
    if (p.logitBias.length > 0) {
      const bias = new lib.TokenBias(model.tokenizer);
      for (const [token, value] of p.logitBias) {
        // node-llama-cpp ignores biases of end-of-generation tokens; refuse rather than ignore.
        if (model.isEogToken(token as Token)) {
          throw fastError('invalid_request', `token ${token} ends generation; llama models cannot bias it`, `logit_bias.${token}`);
        }
        bias.set(token as Token, { logit: value });
      }
      options.tokenBias = bias;
    }
    if (grammar !== null) options.grammarEvaluationState = new lib.LlamaGrammarEvaluationState({ model, grammar });
    return options;
  }

  /** `json_object`: llama.cpp's JSON grammar. `json_schema`: a grammar from the schema, or a 400 naming what it cannot express. Both cached. */
  async #grammar(format: ResponseFormat): Promise<LlamaGrammar | null> {
    const llama = this.#llama as Llama;
    if (format.type === 'json_object') return this.#cachedGrammar('json', () => llama.getGrammarFor('json'));
    if (format.type !== 'json_schema') return null;
    const schema = format.schema as Parameters<Llama['createGrammarForJsonSchema']>[0];
    try {
      return await this.#cachedGrammar(`schema\0${JSON.stringify(schema)}`, () => llama.createGrammarForJsonSchema(schema));
    } catch (err) {
      throw fastError(
        'invalid_request',
        `\`response_format.json_schema.schema\` cannot be turned into a grammar: ${(err as Error).message}`,
        'response_format.json_schema.schema',
      );
    }
  }
}

/**
 * A JSON grammar whose numbers always parse to what their schema says: node-llama-cpp's lets an
 * integer carry an exponent and any number one of 16 digits, so a model may write `2e73` for an
 * integer or `1e999` (Infinity once parsed) for a number. Integers get no exponent (16 digits stay
 * below 2^53), other numbers one of at most two digits.
 */
function finiteNumbers(grammar: string): string {
  const exponent = '([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?';
  return grammar
    .split('\n')
    .map((line) =>
      line.startsWith('integer-number-rule ::=')
        ? line.replace(exponent, '')
        : line.startsWith('fractional-number-rule ::=')
          ? line.replace(exponent, '([eE] [-+]? [1-9] [0-9]?)?')
          : line,
    )
    .join('\n');
}

/** The completion budget: the request's `max_tokens`, else the rest of the context; 400 if the prompt and budget do not fit. */
function checkLength(promptTokens: number, maxTokens: number | null, contextSize: number, kind: 'chat' | 'completion'): number {
  const param = kind === 'chat' ? 'messages' : 'prompt';
  if (promptTokens >= contextSize) {
    throw fastError(
      'context_length_exceeded',
      `this model's context is ${contextSize} tokens, and the ${param} alone has ${promptTokens}; shorten it`,
      param,
    );
  }
  if (maxTokens === null) return contextSize - promptTokens;
  if (promptTokens + maxTokens > contextSize) {
    throw fastError(
      'context_length_exceeded',
      `this model's context is ${contextSize} tokens, but ${promptTokens + maxTokens} were requested ` +
        `(${promptTokens} in the ${param}, ${maxTokens} for the completion); lower max_tokens or shorten the ${param}`,
      'max_tokens',
    );
  }
  return maxTokens;
}

function vocabularySize(model: LlamaModel): number {
  const tokens: unknown = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
  if (!Array.isArray(tokens)) throw new Error('the GGUF file has no tokenizer.ggml.tokens');
  return tokens.length;
}
