/** Version selection: pins, weighted canary splits, and the default when every weight is zero. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { Registry } from '../../src/routing/registry.js';
function registry(versions, extra = '') {
    return new Registry(parseConfig(`models:\n  - name: m\n    aliases: [alias]\n${extra}    versions:\n${versions}`, 'x.yaml'));
}
const v = (name, weight) => `      - { version: '${name}', weight: ${weight}, backend: { kind: mock } }\n`;
describe('model registry', () => {
    it('finds models by name and alias, and answers model_not_found otherwise', () => {
        const r = registry(v('1', 1));
        assert.equal(r.get('alias'), r.get('m'));
        assert.throws(() => r.get('x'), (e) => e.code === 'model_not_found' && e.status === 404);
    });
    it('splits by weight: a 90/10 canary', () => {
        const m = registry(v('1', 90) + v('2', 10)).get('m');
        assert.equal(m.select(undefined, () => 0).version, '1');
        assert.equal(m.select(undefined, () => 0.8999).version, '1');
        assert.equal(m.select(undefined, () => 0.9).version, '2');
        assert.equal(m.select(undefined, () => 0.9999).version, '2');
    });
    it('never routes unpinned traffic to a version of weight 0', () => {
        const m = registry(v('1', 0) + v('2', 3) + v('3', 1)).get('m');
        const seen = new Set();
        for (let i = 0; i < 100; i++)
            seen.add(m.select(undefined, () => i / 100).version);
        assert.deepEqual([...seen].sort(), ['2', '3']);
    });
    it('uses default_version when every weight is 0, else the first version', () => {
        assert.equal(registry(v('1', 0) + v('2', 0), "    default_version: '2'\n")
            .get('m')
            .select(undefined).version, '2');
        assert.equal(registry(v('a', 0) + v('b', 0))
            .get('m')
            .select(undefined).version, 'a');
    });
    it('serves a pinned version whatever its weight, and 404 version_not_found for an unknown one', () => {
        const m = registry(v('1', 100) + v('2', 0)).get('m');
        assert.equal(m.select('2').version, '2');
        assert.throws(() => m.select('3'), (e) => e.code === 'version_not_found' && /has 1, 2/.test(e.message));
    });
});
//# sourceMappingURL=registry.test.js.map