/** FP16 conversion, which the KServe JSON path does by hand (ONNX Runtime takes raw half bits). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromHalf, toHalf } from '../../src/core/tensor.js';
describe('FP16 conversion', () => {
    it('encodes exact values to their IEEE 754 half bits', () => {
        assert.equal(toHalf(1), 0x3c00);
        assert.equal(toHalf(-2), 0xc000);
        assert.equal(toHalf(0.5), 0x3800);
        assert.equal(toHalf(65504), 0x7bff);
        assert.equal(toHalf(0), 0);
        assert.equal(toHalf(2 ** -24), 1); // smallest subnormal
    });
    it('rounds to nearest even, overflows to infinity, keeps NaN', () => {
        assert.equal(toHalf(1 + 2 ** -11), 0x3c00); // halfway: rounds to even
        assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02);
        assert.equal(toHalf(1e6), 0x7c00);
        assert.ok(Number.isNaN(fromHalf(toHalf(NaN))));
    });
    it('round-trips every finite half value', () => {
        for (let h = 0; h < 0x10000; h++) {
            if ((h & 0x7c00) === 0x7c00)
                continue; // infinities and NaNs
            const x = fromHalf(h);
            assert.equal(toHalf(x), Object.is(x, -0) ? 0x8000 : h, `bits ${h.toString(16)}`);
        }
    });
});
//# sourceMappingURL=tensor.test.js.map