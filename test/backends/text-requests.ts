/** Typed text requests for backend tests, as the transport hands them over: OpenAI's defaults filled in. */
import type { Cancellation } from '../../src/core/call.js';
import { validSampling } from '../../src/core/sampling.js';
import type { ChatMessage, ChatRequest, CompletionRequest, Prompt, Sampling, TextEvent } from '../../src/core/text.js';

/** OpenAI's defaults, as the transports' shared check fills them in. */
export const DEFAULT_SAMPLING: Sampling = validSampling('chat', {});

/** The fields both kinds share, as a transport fills them for a plain request (whole, no usage asked, no tools). */
function common(model: string, sampling: Partial<Sampling>) {
  return {
    model,
    stream: false,
    sampling: { ...DEFAULT_SAMPLING, ...sampling },
    includeUsage: false,
    reportUsage: false,
    tools: [],
    toolChoice: { type: 'none' } as const,
    parallelToolCalls: true,
    openai: null,
    anthropic: null,
  };
}

/** A chat request for `model`, whole unless `stream`. */
export function chatRequest(
  model: string,
  messages: readonly ChatMessage[],
  sampling: Partial<Sampling> = {},
  extra: Partial<ChatRequest> = {},
): ChatRequest {
  return {
    kind: 'chat',
    ...common(model, sampling),
    messages,
    ...extra,
  };
}

/** A completion request for `model`, whole unless `stream`. */
export function completionRequest(
  model: string,
  prompt: Prompt,
  sampling: Partial<Sampling> = {},
  extra: Partial<CompletionRequest> = {},
): CompletionRequest {
  return {
    kind: 'completion',
    ...common(model, sampling),
    prompt,
    ...extra,
  };
}

/** A call whose client leaves when `leave()` is called. */
export function leavingCall(): Cancellation & { leave(): void } {
  const controller = new AbortController();
  const listeners: Array<() => void> = [];
  return {
    signal: controller.signal,
    onAbort: (listener) => void listeners.push(listener),
    leave() {
      controller.abort();
      for (const listener of listeners.splice(0)) listener();
    },
  };
}

/** Every event of an answer, in order. */
export async function collect(events: AsyncIterable<TextEvent> | readonly TextEvent[]): Promise<TextEvent[]> {
  const out: TextEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}
