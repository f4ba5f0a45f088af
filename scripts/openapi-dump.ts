/**
 * Writes the OpenAPI document (the one GET /docs/openapi.json serves) to a file, for linters and
 * client generators: `tsx scripts/openapi-dump.ts [out.json]` (default: stdout).
 */
import { writeFileSync } from 'node:fs';
import { buildOpenApiDocument } from '../src/http/openapi';

const text = `${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`;
const out = process.argv[2];
if (out) writeFileSync(out, text);
else process.stdout.write(text);
