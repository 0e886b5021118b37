/** Generation on tiny-chat (the bundled GGUF, greedy so runs repeat): how it ends and what text it sends before it ends. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';
import { Generation } from '../../src/backends/llama/generation.js';
import { getLlama } from '../../src/backends/llama/runtime.js';
import { MODELS } from '../helpers/server.js';

const MAX_TOKENS = 12;

describe('Generation on tiny-chat', () => {
  let model: LlamaModel;
  let context: LlamaContext;
  let sequence: LlamaContextSequence;
  let prompt: Token[];
  /** The tokens tiny-chat samples greedily after `prompt`, read from node-llama-cpp directly. */
  let reference: Token[];

  before(async () => {
    const llama = await getLlama(false);
    model = await llama.loadModel({ modelPath: join(MODELS, 'tiny-chat/1/model.gguf') });
    // One thread: more made tiny-chat many times slower on a loaded machine.
    context = await model.createContext({ contextSize: 256, sequences: 1, threads: 1 });
    sequence = context.getSequence();
    prompt = [model.tokens.bos as Token, ...model.tokenize('Hello there')];
    reference = [];
    for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
      reference.push(token);
      if (reference.length === MAX_TOKENS) break;
    }
  });
  after(async () => {
    await context?.dispose();
    await model?.dispose();
  });

  async function generate(stops: readonly string[], stopTokens: readonly Token[]) {
    const generation = new Generation(sequence, model, {
      prompt,
      maxTokens: MAX_TOKENS,
      stops,
      stopTokens: new Set(stopTokens),
      logprobs: null,
      afterDispatch: () => null,
      penalties: null,
      evaluate: { temperature: 0 },
    });
    let text = '';
    for await (const piece of generation.pieces()) text += piece.text;
    return { text, finishReason: generation.finishReason, completionTokens: generation.completionTokens };
  }

  /** The first position (from 2) whose token did not come before: a stop token there ends the generation at it. */
  function firstNewToken(): number {
    const k = reference.findIndex((t, i) => i >= 2 && !reference.slice(0, i).includes(t));
    assert.ok(k !== -1, `no new token in ${reference.join(',')}`);
    return k;
  }

  it('runs to max_tokens with the reference text and says `length`', async () => {
    assert.deepEqual(await generate([], []), {
      text: model.detokenize(reference),
      finishReason: 'length',
      completionTokens: MAX_TOKENS,
    });
  });

  it('ends at a stop token with the text before it, the token itself not sent', async () => {
    const k = firstNewToken();
    assert.deepEqual(await generate([], [reference[k] as Token]), {
      text: model.detokenize(reference.slice(0, k)),
      finishReason: 'stop',
      completionTokens: k,
    });
  });

  it('sends the text held back for a possible stop sequence when a stop token ends the generation', async () => {
    const k = firstNewToken();
    const before = model.detokenize(reference.slice(0, k));
    // The last character could begin this stop sequence, so it is held back until the stop token comes.
    const stop = `${before.slice(-1)} never generated`;
    assert.deepEqual(await generate([stop], [reference[k] as Token]), { text: before, finishReason: 'stop', completionTokens: k });
  });
});
