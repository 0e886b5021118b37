/** The README's error table and the error catalogue in code must agree, and every export of src/ says what it is. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
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

  it('gives every export of src/ a doc comment', () => {
    const sources = (dir: string): string[] =>
      readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) return sources(path);
        return path.endsWith('.ts') ? [path] : [];
      });
    const bare: string[] = [];
    for (const file of sources(join(ROOT, 'src'))) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (!/^export (?:async |abstract |declare )*(?:function|class|interface|type|const|let|enum)\b/.test(line)) return;
        let j = i - 1;
        while (j >= 0 && lines[j]!.trim().startsWith('@')) j--;
        if (j < 0 || !lines[j]!.trim().endsWith('*/')) bare.push(`${relative(ROOT, file)}:${i + 1}: ${line.slice(0, 80)}`);
      });
    }
    assert.deepEqual(bare, []);
  });
});
