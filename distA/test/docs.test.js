/** The README's error table and the error catalogue in code must agree. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERROR_CATALOGUE } from '../src/core/errors.js';
import { ROOT } from './helpers/server.js';
describe('docs', () => {
    it('lists every error code with its status and meaning, and nothing else', () => {
        const readme = readFileSync(`${ROOT}/README.md`, 'utf8');
        const rows = [...readme.matchAll(/^\| `([a-z_]+)` +\| (\d{3}) +\| (.+?) *\|$/gm)].map((m) => [m[1], Number(m[2]), m[3]]);
        const expected = Object.entries(ERROR_CATALOGUE).map(([code, e]) => [code, e.status, e.doc]);
        assert.deepEqual(rows, expected);
    });
});
//# sourceMappingURL=docs.test.js.map