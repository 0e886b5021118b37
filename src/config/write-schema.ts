/** Writes config/infergate.schema.json from the schema in code (`npm run schema`); a test checks it is current. */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigSchema } from './schema.js';

/** The config's JSON Schema (draft-07) as the file's text: indented, ending in a newline. */
export function renderJsonSchema(): string {
  return (
    JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...(optionalDefaults(ConfigSchema) as object) }, null, 2) + '\n'
  );
}

/** A property with a default may be left out of the file: drop it from `required` so editors do not flag it. */
function optionalDefaults(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(optionalDefaults);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = optionalDefaults(v);
  const props = out.properties as Record<string, { default?: unknown }> | undefined;
  if (Array.isArray(out.required) && props !== undefined) {
    out.required = (out.required as string[]).filter((name) => props[name]?.default === undefined);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = fileURLToPath(new URL('../../../config/infergate.schema.json', import.meta.url));
  writeFileSync(file, renderJsonSchema());
  console.log(`wrote ${file}`);
}
