/** The depth scan in front of JSON.parse agrees with the depth of the parsed value, whatever the strings hold. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { nestsDeeperThan, parseJsonBody } from '../../src/core/json.js';
import { ApiError } from '../../src/core/errors.js';

/** Levels of arrays and objects: `[]` is 1, a number 0. */
function depth(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + children.reduce((max: number, c) => Math.max(max, depth(c)), 0);
}

/** Strings full of what could fool a scanner: brackets, quotes, backslashes. */
const tricky = fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', '\\', 'a', ' ', '\u00e9'), maxLength: 12 });
const value = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: 'small' },
    tricky,
    fc.integer(),
    fc.constant(null),
    fc.array(tie('node'), { maxLength: 4 }),
    fc.dictionary(tricky, tie('node'), { maxKeys: 3 }),
  ),
})).node;

describe('nestsDeeperThan', () => {
  it('agrees with the depth of the parsed value', () => {
    fc.assert(
      fc.property(value, fc.integer({ min: 1, max: 8 }), fc.boolean(), (v, limit, pretty) => {
        const text = JSON.stringify(v, null, pretty ? 2 : undefined);
        assert.equal(nestsDeeperThan(text, limit), depth(v) > limit, text);
      }),
      { seed: 15, numRuns: 3000 },
    );
  });

  it('counts the issue’s 6,000 levels, and stops at the limit', () => {
    assert.equal(nestsDeeperThan('['.repeat(6000) + ']'.repeat(6000), 64), true);
    assert.equal(nestsDeeperThan('['.repeat(64) + ']'.repeat(64), 64), false);
    assert.equal(nestsDeeperThan('['.repeat(65) + ']'.repeat(65), 64), true);
    // Unbalanced openers only: the parser refuses it, but the scan still says too deep.
    assert.equal(nestsDeeperThan('['.repeat(100_000), 64), true);
  });

  it('skips brackets inside strings, escaped quotes included', () => {
    assert.equal(nestsDeeperThan(JSON.stringify({ a: '"\\' + '[{'.repeat(100) }), 2), false);
    assert.equal(nestsDeeperThan(`{"a":"\\\\"${',"b":[[[]]]'}}`, 3), true);
    assert.equal(nestsDeeperThan(`{"a":"\\\\\\"[[[["}`, 2), false);
  });
});

describe('parseJsonBody', () => {
  const options = { maxDepth: 4, constructorAction: 'error' } as const;
  it('refuses deep bodies with invalid_request naming the limit, before parsing', () => {
    assert.throws(
      () => parseJsonBody('[[[[[1]]]]]', options),
      (e: unknown) =>
        e instanceof ApiError && e.code === 'invalid_request' && /deeper than 4 levels \(server\.max_json_depth\)/.test(e.message),
    );
    assert.deepEqual(parseJsonBody('[[[[1]]]]', options), [[[[1]]]]);
  });
  it('refuses prototype poisoning and malformed JSON with invalid_json', () => {
    for (const text of ['{"__proto__": {"x": 1}}', '{"constructor": {"prototype": {"x": 1}}}', '{"a":', '\u0000'])
      assert.throws(
        () => parseJsonBody(text, options),
        (e: unknown) => e instanceof ApiError && e.code === 'invalid_json',
        text,
      );
  });
});
