/** Writes config/infergate.schema.json from the schema in code (`npm run schema`); a test checks it is current. */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigSchema } from './schema.js';
export function renderJsonSchema() {
    return (JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...optionalDefaults(ConfigSchema) }, null, 2) + '\n');
}
/** A property with a default may be left out of the file: drop it from `required` so editors do not flag it. */
function optionalDefaults(node) {
    if (Array.isArray(node))
        return node.map(optionalDefaults);
    if (node === null || typeof node !== 'object')
        return node;
    const out = {};
    for (const [k, v] of Object.entries(node))
        out[k] = optionalDefaults(v);
    const props = out.properties;
    if (Array.isArray(out.required) && props !== undefined) {
        out.required = out.required.filter((name) => props[name]?.default === undefined);
    }
    return out;
}
if (process.argv[1] === fileURLToPath(import.meta.url)) {
    const file = fileURLToPath(new URL('../../../config/infergate.schema.json', import.meta.url));
    writeFileSync(file, renderJsonSchema());
    console.log(`wrote ${file}`);
}
//# sourceMappingURL=write-schema.js.map