/**
 * infergate.v1.Generate: chat completions streamed as they are generated, and embeddings, through
 * the same gateway as the OpenAI endpoints. A chat request becomes the OpenAI body it stands for
 * and is validated by the same schema, so both transports accept and refuse the same things.
 */
import type { Readable } from 'node:stream';
import { Ajv } from 'ajv';
import type { TextResponse } from '../../core/call.js';
import { ERROR_CATALOGUE, fastError, type ApiError, type ErrorCode } from '../../core/errors.js';
import type { Gateway } from '../../pipeline/gateway.js';
import { validationError, type AjvError } from '../errors.js';
import { ChatRequest } from '../http/openai/schemas.js';
import type { GrpcContext } from './context.js';
import { SseParser } from '../../core/sse.js';

/** One message of an infergate.v1.ChatRequest, as proto-loader gives it. */
export interface ChatMessageIn {
  role?: string;
  content?: string;
}

/** infergate.v1.ChatRequest as proto-loader gives it (unset optional fields are undefined; `seed` is an int64 string). */
export interface ChatRequestIn {
  model?: string;
  messages?: ChatMessageIn[];
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  stop?: string[];
  seed?: string;
  presence_penalty?: number;
  frequency_penalty?: number;
  model_version?: string;
}

/** infergate.v1.EmbedRequest as proto-loader gives it; `dimensions` unset or 0: the model's own size. */
export interface EmbedRequestIn {
  model?: string;
  input?: string[];
  dimensions?: number;
  model_version?: string;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** infergate.v1.ChatChunk as sent: `finish_reason` is empty and `usage` unset except on the last chunk. */
export interface ChatChunkOut {
  id: string;
  model: string;
  model_version: string;
  delta: string;
  finish_reason: string;
  usage?: Usage;
}

const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, verbose: true, strict: false });
const validateChat = ajv.compile(ChatRequest);

/** The OpenAI chat body a ChatRequest stands for, streamed and asking for usage; 400 as the HTTP endpoint would answer it. */
export function chatBody(req: ChatRequestIn): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: req.model ?? '',
    messages: (req.messages ?? []).map((m) => ({ role: m.role ?? '', content: m.content ?? '' })),
    stream: true,
    stream_options: { include_usage: true },
  };
  if (req.max_tokens !== undefined) body.max_tokens = req.max_tokens;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.top_p !== undefined) body.top_p = req.top_p;
  if (req.stop !== undefined && req.stop.length > 0) body.stop = req.stop;
  if (req.seed !== undefined) body.seed = Number(req.seed);
  if (req.presence_penalty !== undefined) body.presence_penalty = req.presence_penalty;
  if (req.frequency_penalty !== undefined) body.frequency_penalty = req.frequency_penalty;
  if (!validateChat(body)) throw validationError(validateChat.errors as AjvError[]);
  return body;
}

/** An OpenAI stream chunk, as it comes from a backend. */
interface OpenAIChunk {
  id?: string;
  choices?: Array<{ delta?: { content?: string | null }; text?: string; finish_reason?: string | null }>;
  usage?: Usage | null;
  error?: { message?: string; code?: string };
}

/** The chunks of a chat answer, in order: one per piece of text, the last with the finish reason and usage. */
export async function* chatChunks(gateway: Gateway, req: ChatRequestIn, ctx: GrpcContext): AsyncGenerator<ChatChunkOut> {
  const body = chatBody(req);
  const served = await gateway.generate({ kind: 'chat', model: body.model as string, stream: true, body }, ctx);
  const model = served.version.model.name;
  const version = served.version.version;
  let held: ChatChunkOut | null = null;
  for await (const chunk of openaiChunks(served.result)) {
    if (chunk.error !== undefined) throw streamError(chunk.error);
    const id = chunk.id ?? '';
    if (chunk.usage != null && (chunk.choices?.length ?? 0) === 0) {
      const last: ChatChunkOut = held ?? { id, model, model_version: version, delta: '', finish_reason: '' };
      held = null;
      yield { ...last, usage: chunk.usage };
      continue;
    }
    const choice = chunk.choices?.[0];
    const delta = choice?.delta?.content ?? choice?.text ?? '';
    const finish = choice?.finish_reason ?? '';
    if (held !== null) yield held;
    held = null;
    const out: ChatChunkOut = { id, model, model_version: version, delta, finish_reason: finish };
    // The finish chunk waits for the usage that follows it, so the last chunk carries both.
    if (finish !== '') held = out;
    else if (delta !== '') yield out;
  }
  if (held !== null) yield held;
}

/** The OpenAI chunks of a streamed answer: objects from an in-process model, or Server-Sent Events from a remote one. */
async function* openaiChunks(result: TextResponse): AsyncGenerator<OpenAIChunk> {
  if (result.type === 'events') {
    yield* result.events as AsyncIterable<OpenAIChunk>;
    return;
  }
  if (result.type === 'json') {
    yield result.body as OpenAIChunk;
    return;
  }
  if (Buffer.isBuffer(result.body)) {
    yield* sseChunks([result.body.toString('utf8')]);
    return;
  }
  const body = result.body as Readable;
  body.setEncoding('utf8');
  try {
    yield* sseChunks(body as AsyncIterable<string>);
  } finally {
    body.destroy(); // a client that left cancels the upstream request
  }
}

async function* sseChunks(text: AsyncIterable<string> | Iterable<string>): AsyncGenerator<OpenAIChunk> {
  const parser = new SseParser();
  for await (const piece of text) {
    for (const event of parser.push(piece)) {
      const payload = event.data.trim();
      if (payload === '[DONE]') return;
      let chunk: OpenAIChunk;
      try {
        chunk = JSON.parse(payload) as OpenAIChunk;
      } catch {
        throw fastError('upstream_error', `the upstream's stream sent an event that is not JSON: ${payload.slice(0, 80)}`);
      }
      yield chunk;
    }
  }
}

/** An error event inside a stream (a limit that cut it, an upstream failure) as the error the gRPC stream ends with. */
function streamError(error: { message?: string; code?: string }): ApiError {
  const code = typeof error.code === 'string' && Object.hasOwn(ERROR_CATALOGUE, error.code) ? (error.code as ErrorCode) : 'upstream_error';
  return fastError(code, error.message ?? 'the stream failed');
}
