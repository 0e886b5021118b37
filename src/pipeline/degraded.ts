/**
 * The degraded answer: a model's configured `degraded_response.text`, given when the model and
 * every fallback failed. A small text answer of its own, streamed as the one text event it is.
 */
import type { TextRequest, TextStream } from '../core/text.js';

let served = 0;

/** The degraded answer to `request`: `text`, finished with `stop`; no tokens were generated, so usage is zero. */
export function degradedAnswer(request: TextRequest, text: string): TextStream {
  const created = Math.floor(Date.now() / 1000);
  return {
    type: 'events',
    id: `${request.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-degraded${created.toString(36)}${(served++).toString(36)}`,
    created,
    events: [
      { type: 'text', text, logprobs: null },
      { type: 'finish', reason: 'stop' },
      { type: 'usage', promptTokens: 0, completionTokens: 0, timings: null },
    ],
  };
}
