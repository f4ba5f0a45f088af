/**
 * npm run lint:openapi — writes the OpenAPI document (as GET /docs/openapi.json serves it) to a
 * temporary file and lints it with Redocly CLI under redocly.yaml; exits with Redocly's status.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildOpenApiDocument } from '../src/http/openapi';

const root = path.resolve(__dirname, '..');
const dir = mkdtempSync(path.join(tmpdir(), 'orderflow-openapi-'));
const file = path.join(dir, 'openapi.json');
writeFileSync(file, `${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`);
const cli = require.resolve('@redocly/cli/bin/cli.js', { paths: [root] });
const run = spawnSync(
  process.execPath,
  [cli, 'lint', file, '--config', path.join(root, 'redocly.yaml'), '--format', 'codeframe'],
  {
    stdio: 'inherit',
    cwd: root,
    // No telemetry and no update check: lint runs offline, in CI too.
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  },
);
rmSync(dir, { recursive: true, force: true });
process.exit(run.status ?? 1);
