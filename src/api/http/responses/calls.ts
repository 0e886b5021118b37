/**
 * POST /v1/responses, the Responses API's model call (served by model-calls.ts): the body parsed
 * (protocols/responses/request.ts), the conversation a `previous_response_id` continues and the
 * items `item_reference`s name read from the store, the chat request generated through the
 * gateway like every other call, and the answer encoded as a Response or its event stream
 * (protocols/responses/encode.ts), stored before the client reads its last event.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiError, fastError } from '../../../core/errors.js';
import { textStream, type TextEvent, type TextStream } from '../../../core/text.js';
import type { RequestContext } from '../../../pipeline/context.js';
import type { Gateway } from '../../../pipeline/gateway.js';
import { ResponseBuilder, sseEvent, type ResponseStreamEvent } from '../../../protocols/responses/encode.js';
import { chatRequest, responsesCall, withIds, type Item, type ItemReference } from '../../../protocols/responses/request.js';
import { ResponsesRequest } from '../../../protocols/responses/schemas.js';
import type { ResponseStore } from '../../../store/responses.js';
import { ANONYMOUS } from '../../../tenancy/tenancy.js';
import { toApiError } from '../errors.js';
import { eventStreamHeaders, servedHeaders, type HttpResult, type ModelCall } from '../model-calls.js';

/** What the Responses API serves from: `store` null (no database) stores nothing and finds nothing. */
export interface ResponsesDeps {
  readonly gateway: Gateway;
  readonly log: Logger;
  readonly store: ResponseStore | null;
  /** Whether a request that leaves out `store` is stored (`responses.store`). */
  readonly storeByDefault: boolean;
}

/** The Responses API's model call, by path. */
export function responsesCalls(deps: ResponsesDeps) {
  const create: ModelCall<ResponsesRequest> = {
    schema: ResponsesRequest,
    protocol: 'openai',
    handle: (body, ctx) => createResponse(body, ctx, deps),
  };
  return { '/v1/responses': create } as const;
}

/** The tenant that owns what a call stores: its key's, or the anonymous one without authentication. */
export function ownerOf(caller: { readonly principal: { readonly tenant: { readonly id: string } } | null }): string {
  return caller.principal?.tenant.id ?? ANONYMOUS;
}

/** The 404 for a Response that is not stored, not the caller's, or expired (the same words for each, so ids do not leak). */
export function responseNotFound(id: string, param: string | null = null): never {
  throw fastError('not_found', `${param === 'previous_response_id' ? 'Previous response' : 'Response'} with id '${id}' not found.`, param);
}

/** Where a stored item's id says which Response made it: `msg_<hex>_<n>` belongs to `resp_<hex>`. */
const ITEM_ID = /^(?:msg|fc|fco)_([0-9a-f]{48})_\d+$/;

async function createResponse(body: ResponsesRequest, ctx: RequestContext, deps: ResponsesDeps): Promise<HttpResult> {
  const { gateway, store } = deps;
  const call = responsesCall(body, deps.storeByDefault && store !== null);
  const tenant = ownerOf(ctx);
  const hex = randomBytes(24).toString('hex');
  let n = 0;
  const newId = (prefix: string): string => `${prefix}_${hex}_${n++}`;
  const history = call.previousResponseId === null ? [] : await previous(store, call.previousResponseId, tenant);
  const input = await resolved(withIds(call.input, newId), store, tenant);
  const request = chatRequest(call, history.length === 0 ? input : [...history, ...input]);
  const served = await gateway.generate(request, ctx).catch(inResponsesTerms);
  const answer = await textStream(served.result);
  const builder = new ResponseBuilder({ id: `resp_${hex}`, createdAt: seconds(), model: call.model, echo: call.echo }, newId, call.stream);
  const save =
    call.store && store !== null
      ? () =>
          store
            .save({
              id: `resp_${hex}`,
              tenant,
              createdAt: Date.now(),
              input,
              conversation: [...history, ...input, ...builder.items()],
              response: builder.response(),
            })
            // The answer is finished and paid for: a database that cannot store it costs the client
            // its later GET or continuation, not the answer itself.
            .catch((err: unknown) =>
              deps.log.error({ err, reqId: ctx.id, response: `resp_${hex}` }, 'storing a response failed; answered unstored'),
            )
      : null;
  if (!call.stream) {
    await gather(builder, answer);
    builder.end(seconds());
    await save?.();
    return { status: 200, headers: servedHeaders(served, 'application/json'), body: JSON.stringify(builder.response()) };
  }
  return { status: 200, headers: eventStreamHeaders(served), body: { chunks: events(builder, answer, save, ctx, deps.log) } };
}

/** The conversation of the stored Response `id` a request continues; 404 naming `previous_response_id` when there is none. */
async function previous(store: ResponseStore | null, id: string, tenant: string): Promise<readonly Item[]> {
  const stored = store === null ? null : await store.get(id, tenant);
  return stored === null ? responseNotFound(id, 'previous_response_id') : stored.conversation;
}

/** The items, each reference replaced by the stored item it names (one read per Response named); 404 naming the reference when none. */
async function resolved(items: ReadonlyArray<Item | ItemReference>, store: ResponseStore | null, tenant: string): Promise<Item[]> {
  if (!items.some((item) => item.type === 'item_reference')) return items as Item[];
  const read = new Map<string, Promise<readonly Item[]>>();
  const out: Item[] = [];
  for (const [i, item] of items.entries()) {
    if (item.type !== 'item_reference') {
      out.push(item);
      continue;
    }
    const hex = ITEM_ID.exec(item.id)?.[1];
    const owner = `resp_${hex ?? ''}`;
    let conversation = read.get(owner);
    if (conversation === undefined) {
      conversation =
        hex === undefined || store === null ? Promise.resolve([]) : store.get(owner, tenant).then((s) => s?.conversation ?? []);
      read.set(owner, conversation);
    }
    const found = (await conversation).find((c) => c.id === item.id);
    if (found === undefined) throw fastError('not_found', `Item with id '${item.id}' not found.`, `input[${i}].id`);
    out.push(found);
  }
  return out;
}

/** Chat fields a backend's error may name, and what the Responses API calls them. */
const RESPONSES_FIELDS: Readonly<Record<string, string>> = {
  max_tokens: 'max_output_tokens',
  response_format: 'text.format',
  'response_format.json_schema.schema': 'text.format.schema',
};

/** A backend's error about a chat field, re-worded with the field the client sent (`max_output_tokens` for `max_tokens`). */
function inResponsesTerms(error: unknown): never {
  const field = error instanceof ApiError && error.param !== null ? RESPONSES_FIELDS[error.param] : undefined;
  if (field === undefined) throw error;
  const e = error as ApiError;
  throw new ApiError(e.code, e.message.replaceAll(e.param as string, field), field, { cause: e });
}

/** Reads a whole answer's events into `builder`: an array (an answer complete when it came) without an await each. */
async function gather(builder: ResponseBuilder, answer: TextStream): Promise<void> {
  const events = answer.events;
  if (Array.isArray(events)) for (const event of events as readonly TextEvent[]) builder.add(event);
  else for await (const event of events) builder.add(event);
}

/**
 * The stream, as Server-Sent Events. `response.created` and `response.in_progress` go out with the
 * first token's events (a stream's first byte is its first token, as chat's is); the Response is
 * stored before its last event, so a client that reads it can retrieve it at once. A failure after
 * the headers went out is a `response.failed` event, and the stream ends.
 */
async function* events(
  builder: ResponseBuilder,
  answer: TextStream,
  save: (() => Promise<void>) | null,
  ctx: RequestContext,
  log: Logger,
): AsyncGenerator<string> {
  let pending = encoded(builder.start());
  try {
    for await (const event of answer.events) {
      const out = builder.add(event);
      if (out.length === 0) continue;
      yield pending + encoded(out);
      pending = '';
    }
    const last = builder.end(seconds());
    await save?.();
    yield pending + encoded(last);
  } catch (error) {
    const e = toApiError(error, ctx, log);
    yield pending + sseEvent(builder.fail({ code: e.code, message: e.message }));
  }
}

function encoded(events: readonly ResponseStreamEvent[]): string {
  if (events.length === 1) return sseEvent(events[0] as ResponseStreamEvent);
  let text = '';
  for (const event of events) text += sseEvent(event);
  return text;
}

function seconds(): number {
  return Math.floor(Date.now() / 1000);
}
