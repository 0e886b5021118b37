/** Fifo: the ring buffer behaves as an array used as a queue, through growth and wrap-around. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Fifo } from '../../src/scheduling/fifo.js';

describe('Fifo', () => {
  it('answers every push, shift and peek as an array queue does', () => {
    const op = fc.oneof(fc.record({ push: fc.integer() }), fc.constant('shift' as const), fc.constant('peek' as const));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.array(op, { maxLength: 300 }), (capacity, ops) => {
        const fifo = new Fifo<number>(capacity);
        const model: number[] = [];
        for (const o of ops) {
          if (o === 'shift') assert.equal(fifo.shift(), model.shift());
          else if (o === 'peek') assert.equal(fifo.peek(), model[0]);
          else {
            fifo.push(o.push);
            model.push(o.push);
          }
          assert.equal(fifo.length, model.length);
        }
      }),
      { seed: 20261201, numRuns: 300 },
    );
  });

  it('keeps order across wrap-around and growth', () => {
    const fifo = new Fifo<number>(4);
    for (let i = 0; i < 3; i++) fifo.push(i);
    assert.equal(fifo.shift(), 0);
    for (let i = 3; i < 10; i++) fifo.push(i); // wraps, then doubles twice
    const out: number[] = [];
    while (fifo.length > 0) out.push(fifo.shift() as number);
    assert.deepEqual(out, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(fifo.shift(), undefined);
  });
});
