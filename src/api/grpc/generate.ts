/**
 * infergate.v1.Generate: chat completions streamed as they are generated, and embeddings, through
 * the same gateway as the OpenAI endpoints. A ChatRequest is parsed straight into the core's
 * ChatRequest (sampling checked by the same rules as over HTTP, errors worded alike), and the
 * answer's typed events become ChatChunks: gRPC speaks its own protocol, not OpenAI's.
 */
import { NO_TOOL_CHOICE, NO_TOOLS } from '../../core/tools.js';
import { fastError } from '../../core/errors.js';
import { validSampling } from '../../core/sampling.js';
import { ROLES, textStream, type ChatMessage, type ChatRequest, type Role } from '../../core/text.js';
import type { Gateway } from '../../pipeline/gateway.js';
import { preview } from '../errors.js';
import type { GrpcContext } from './context.js';

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

const KNOWN_ROLES: ReadonlySet<string> = new Set<Role>(ROLES);

/**
 * The core chat request a ChatRequest stands for: streamed, usage always reported (the last chunk
 * carries it), no tools. Refused with `invalid_request` naming the field, in the words the HTTP
 * endpoint's schema uses for the same mistake, so both transports refuse alike.
 */
export function chatRequest(req: ChatRequestIn): ChatRequest {
  // proto3 has no absent string: an unset model is an empty one, as the client's stub would send it.
  const model: unknown = req.model ?? '';
  if (typeof model !== 'string') throw fastError('invalid_request', `\`model\` must be string, got ${preview(model)}`, 'model');
  if (model === '') throw fastError('invalid_request', '`model` must NOT have fewer than 1 characters, got ""', 'model');
  const input: readonly ChatMessageIn[] = req.messages ?? [];
  if (input.length === 0)
    throw fastError('invalid_request', `\`messages\` must NOT have fewer than 1 items, got ${preview(input)}`, 'messages');
  const messages = input.map((m, i): ChatMessage => {
    const role: unknown = m.role ?? '';
    if (typeof role !== 'string' || !KNOWN_ROLES.has(role))
      throw fastError('invalid_request', `\`messages[${i}].role\` must be one of ${ROLES.join(', ')}`, `messages[${i}].role`);
    const content: unknown = m.content ?? '';
    if (typeof content !== 'string')
      throw fastError('invalid_request', `\`messages[${i}].content\` must be string, got ${preview(content)}`, `messages[${i}].content`);
    return { role: role as Role, content };
  });
  const sampling = validSampling('chat', {
    max_tokens: req.max_tokens,
    temperature: req.temperature,
    top_p: req.top_p,
    // A repeated field cannot be unset: no stop texts is the default, not a request for none.
    stop: req.stop !== undefined && req.stop.length > 0 ? req.stop : undefined,
    // An int64 comes as its decimal text; the range check is the sampling rules'.
    seed: req.seed === undefined ? undefined : Number(req.seed),
    presence_penalty: req.presence_penalty,
    frequency_penalty: req.frequency_penalty,
  });
  return {
    kind: 'chat',
    model,
    stream: true,
    sampling,
    includeUsage: true,
    reportUsage: true,
    tools: NO_TOOLS,
    toolChoice: NO_TOOL_CHOICE,
    parallelToolCalls: true,
    openai: null,
    anthropic: null,
    messages,
  };
}

/** The chunks of a chat answer, in order: one per piece of text, the last with the finish reason and usage. */
export async function* chatChunks(gateway: Gateway, req: ChatRequestIn, ctx: GrpcContext): AsyncGenerator<ChatChunkOut> {
  const served = await gateway.generate(chatRequest(req), ctx);
  const stream = await textStream(served.result);
  const model = served.version.model.name;
  const version = served.version.version;
  // The finish reason waits for the usage that follows it, so the last chunk carries both.
  let finish = '';
  let ended = false;
  for await (const event of stream.events) {
    if (event.type === 'text') {
      if (event.text !== '') yield { id: stream.id, model, model_version: version, delta: event.text, finish_reason: '' };
    } else if (event.type === 'finish') {
      finish = event.reason;
    } else if (event.type === 'usage') {
      const usage = {
        prompt_tokens: event.promptTokens,
        completion_tokens: event.completionTokens,
        total_tokens: event.promptTokens + event.completionTokens,
      };
      ended = true;
      yield { id: stream.id, model, model_version: version, delta: '', finish_reason: finish, usage };
    }
    // Tool calls cannot be asked for over gRPC (the request has no tools), and a ChatChunk has no field for one.
  }
  if (!ended && finish !== '') yield { id: stream.id, model, model_version: version, delta: '', finish_reason: finish };
}
