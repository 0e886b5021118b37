/**
 * The folders of src/ are layers in the order a request meets them (../shared/DESIGN.md): a file
 * imports only from its own folder or from layers below it, and no files import each other in a
 * circle. Imports are read from the sources, static, type-only and dynamic alike.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/server.js';

/**
 * Bottom first. main.ts, the command line's entry, sits on top with cli/. config/ sits above
 * backends/: each kind owns its config schema (backends/<kind>/config.ts) and the config schema is
 * built from the list of backend plug-ins, so config reads backends and no backend reads config.
 */
const LAYERS = [
  'core',
  'protocols',
  'scheduling',
  'backends',
  'config',
  'routing',
  'policies',
  'store',
  'cluster',
  'tenancy',
  'telemetry',
  'pipeline',
  'api',
  'cli',
] as const;

const SRC = join(ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** Each source file (relative to src/) with the project files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const targets: string[] = [];
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g)) {
      const spec = (m[1] ?? m[2]) as string;
      targets.push(relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '.ts'));
    }
    graph.set(relative(SRC, file), targets);
  }
  return graph;
}

/** A file's layer: the index of its top folder; files directly in src/ (main.ts) are the top. */
function layerOf(file: string): number {
  const top = file.includes('/') ? file.slice(0, file.indexOf('/')) : null;
  if (top === null) return LAYERS.length;
  const index = (LAYERS as readonly string[]).indexOf(top);
  assert.notEqual(index, -1, `src/${top}/ is not a layer; add it to LAYERS (and to DESIGN.md) where requests meet it`);
  return index;
}

describe('layers', () => {
  const graph = importGraph();

  it('reads a graph that has every layer and resolves every import to a file', () => {
    for (const layer of LAYERS)
      assert.ok(
        [...graph.keys()].some((f) => f.startsWith(`${layer}/`)),
        `no files in src/${layer}/`,
      );
    for (const [file, targets] of graph)
      for (const t of targets) assert.ok(graph.has(t), `${file} imports ${t}, which is not a source file`);
  });

  it('imports point down the layers (or stay in their folder)', () => {
    const upward: string[] = [];
    for (const [file, targets] of graph) {
      for (const t of targets) if (layerOf(t) > layerOf(file)) upward.push(`${file} -> ${t}`);
    }
    assert.deepEqual(upward.sort(), []);
  });

  it('transports share only what is in api/ itself: api/grpc imports nothing from api/http, nor api/http from api/grpc', () => {
    const across: string[] = [];
    for (const [file, targets] of graph) {
      const transport = /^api\/(grpc|http)\//.exec(file)?.[1];
      if (transport === undefined) continue;
      for (const t of targets) if (/^api\/(grpc|http)\//.test(t) && !t.startsWith(`api/${transport}/`)) across.push(`${file} -> ${t}`);
    }
    // gRPC speaks its own protocol: it parses into the core's types, never through OpenAI's wire format.
    for (const [file, targets] of graph)
      if (file.startsWith('api/grpc/')) for (const t of targets) if (t.startsWith('protocols/openai/')) across.push(`${file} -> ${t}`);
    assert.deepEqual(across.sort(), []);
  });

  it('no files import each other in a circle', () => {
    // Tarjan's strongly connected components: any component of more than one file is a circle.
    let next = 0;
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const circles: string[][] = [];
    const visit = (v: string): void => {
      index.set(v, next);
      low.set(v, next++);
      stack.push(v);
      onStack.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!index.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
      if (low.get(v) === index.get(v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== v);
        if (component.length > 1) circles.push(component.sort());
      }
    };
    for (const v of graph.keys()) if (!index.has(v)) visit(v);
    assert.deepEqual(circles, []);
  });
});
