/**
 * The bundled embedding models' tokenizer: lower-cased words, numbers and single punctuation
 * marks, each hashed (32-bit FNV-1a) into ids 1..vocab_size-1; id 0 is padding.
 */
import type { TokenizerConfig } from './config.js';

const TOKEN = /[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu;

/** A tokenizer for `config.vocab_size`: text in, ids (never 0) out; it does not truncate, callers check `max_tokens`. */
export function createTokenizer(config: TokenizerConfig): (text: string) => number[] {
  const buckets = config.vocab_size - 1;
  return function tokenize(text: string): number[] {
    const ids: number[] = [];
    for (const match of text.toLowerCase().matchAll(TOKEN)) ids.push(1 + (fnv1a(match[0]) % buckets));
    return ids;
  };
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
