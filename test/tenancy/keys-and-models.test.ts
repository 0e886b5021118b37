/** API keys and model patterns: pure logic behind authenticate and authorize. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateKey, hashKey, presentedKey, sameSecret } from '../../src/tenancy/keys.js';
import { modelMatcher } from '../../src/tenancy/models.js';
import { duration } from '../../src/api/http/rate-limit.js';

describe('API keys', () => {
  it('are random, prefixed, and stored only as a SHA-256 hash', () => {
    const a = generateKey();
    const b = generateKey();
    assert.notEqual(a.secret, b.secret);
    assert.match(a.secret, /^ig-[A-Za-z0-9_-]{43}$/);
    assert.equal(a.hash, hashKey(a.secret));
    assert.equal(a.hash.length, 64);
    assert.ok(!a.hash.includes(a.secret) && a.secret.startsWith(a.prefix));
  });

  it('are read from Authorization: Bearer or x-api-key; a malformed Authorization is an empty key', () => {
    assert.equal(presentedKey('Bearer ig-abc', undefined), 'ig-abc');
    assert.equal(presentedKey('bearer   ig-abc ', undefined), 'ig-abc');
    assert.equal(presentedKey(undefined, 'ig-xyz'), 'ig-xyz');
    assert.equal(presentedKey('Basic dXNlcg==', undefined), '');
    assert.equal(presentedKey(undefined, undefined), null);
    assert.equal(presentedKey(undefined, ['a', 'b']), null);
  });

  it('compare secrets of any length', () => {
    assert.equal(sameSecret('admin-key-123456', 'admin-key-123456'), true);
    assert.equal(sameSecret('admin-key-12345', 'admin-key-123456'), false);
  });
});

describe('model patterns', () => {
  it('match exact names, globs, and * for every model', () => {
    const m = modelMatcher(['gpt-4o', 'llama-*', 'org/*-chat']);
    assert.equal(m('gpt-4o'), true);
    assert.equal(m('gpt-4o-mini'), false);
    assert.equal(m('llama-3-8b'), true);
    assert.equal(m('org/big-chat'), true);
    assert.equal(m('org/big-chat2'), false);
    assert.equal(modelMatcher(['*'])('anything'), true);
    assert.equal(modelMatcher([])('anything'), false);
    // Regular-expression characters in names are literal.
    assert.equal(modelMatcher(['a.b'])('axb'), false);
  });
});

describe('reset durations', () => {
  it('are written as OpenAI writes them', () => {
    assert.equal(duration(20), '20ms');
    assert.equal(duration(1500), '1.5s');
    assert.equal(duration(360_000), '6m0s');
    assert.equal(duration(62_500), '1m2.5s');
  });
});
