/** HPACK decoding against RFC 7541's own examples (Appendix C), Huffman both ways, and malformed blocks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeLiterals, HpackDecoder, HpackError, huffmanDecode, huffmanEncode } from '../../src/api/grpc/h2/hpack.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (list: string[]) => Array.from({ length: list.length / 2 }, (_, k) => [list[2 * k], list[2 * k + 1]]);

describe('HPACK', () => {
  it('decodes the requests of RFC 7541 C.3 (literals) and C.4 (Huffman), the dynamic table carried between them', () => {
    for (const blocks of [
      [
        '828684410f7777772e6578616d706c652e636f6d',
        '828684be58086e6f2d6361636865',
        '828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565',
      ],
      ['828684418cf1e3c2e5f23a6ba0ab90f4ff', '828684be5886a8eb10649cbf', '828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf'],
    ]) {
      const decoder = new HpackDecoder();
      const decoded = blocks.map((b) => pairs(decoder.decode(hex(b), 65536).list));
      assert.deepEqual(decoded, [
        [
          [':method', 'GET'],
          [':scheme', 'http'],
          [':path', '/'],
          [':authority', 'www.example.com'],
        ],
        [
          [':method', 'GET'],
          [':scheme', 'http'],
          [':path', '/'],
          [':authority', 'www.example.com'],
          ['cache-control', 'no-cache'],
        ],
        [
          [':method', 'GET'],
          [':scheme', 'https'],
          [':path', '/index.html'],
          [':authority', 'www.example.com'],
          ['custom-key', 'custom-value'],
        ],
      ]);
    }
  });

  it('Huffman-codes every octet and back, and "www.example.com" as the RFC does', () => {
    assert.equal(huffmanEncode('www.example.com').toString('hex'), 'f1e3c2e5f23a6ba0ab90f4ff');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const text = Buffer.from(bytes).toString('latin1');
        const coded = huffmanEncode(text);
        assert.equal(huffmanDecode(coded, 0, coded.length), text);
      }),
    );
  });

  it('evicts the oldest entries when the table fills, and honours size updates', () => {
    const decoder = new HpackDecoder(100);
    // Each entry costs name + value + 32 octets: two of 42 fit in 100, a third evicts the first.
    decoder.decode(
      encodeLiterals(
        [
          ['a', '123456789'],
          ['b', '123456789'],
          ['c', '123456789'],
        ],
        { index: true },
      ),
      65536,
    );
    assert.deepEqual(pairs(decoder.decode(Buffer.from([0xbe, 0xbf]), 65536).list), [
      ['c', '123456789'],
      ['b', '123456789'],
    ]);
    assert.throws(() => decoder.decode(Buffer.from([0xc0]), 65536), HpackError, 'index 64 is gone');
    // A size update to 0 empties the table; one over the advertised maximum is an error.
    decoder.decode(Buffer.from([0x20]), 65536);
    assert.throws(() => decoder.decode(Buffer.from([0xbe]), 65536), HpackError);
    assert.throws(() => decoder.decode(Buffer.from([0x3f, 0x70]), 65536), HpackError);
  });

  it('rejects malformed blocks with HpackError, never another exception', () => {
    for (const bad of ['80', 'ff', '0f', '4005', '00ff', '0085f2', '82' + '3e', 'ffffffffffff7f']) {
      assert.throws(() => new HpackDecoder().decode(hex(bad), 65536), HpackError, bad);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          new HpackDecoder().decode(Buffer.from(bytes), 4096);
        } catch (err) {
          assert.ok(err instanceof HpackError, String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes a list over the limit to keep the table in step, and reports it', () => {
    const decoder = new HpackDecoder();
    const big = decoder.decode(encodeLiterals([['x-big', 'v'.repeat(200)]], { index: true }), 100);
    assert.equal(big.oversize, true);
    assert.deepEqual(pairs(decoder.decode(Buffer.from([0xbe]), 1000).list), [['x-big', 'v'.repeat(200)]]);
  });
});
