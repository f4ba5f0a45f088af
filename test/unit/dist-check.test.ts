import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const dir = mkdtempSync(path.join(tmpdir(), 'orderflow-dist-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run start:api / start:worker before a build', () => {
  it('when dist/ has not been built, then the pre-script says to run npm run build in one line and exits 1; once built it passes', () => {
    // The script resolves dist/ beside its own folder: a copy in an empty tree is a fresh checkout.
    mkdirSync(path.join(dir, 'scripts'));
    copyFileSync(path.join(ROOT, 'scripts', 'dist.cjs'), path.join(dir, 'scripts', 'dist.cjs'));
    const check = () =>
      spawnSync(process.execPath, [path.join(dir, 'scripts', 'dist.cjs'), 'check'], { encoding: 'utf8' });
    const missing = check();
    expect(missing.status).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr.trim().split('\n')).toEqual([expect.stringContaining('run `npm run build` first')]);
    mkdirSync(path.join(dir, 'dist', 'src', 'app'), { recursive: true });
    writeFileSync(path.join(dir, 'dist', 'src', 'app', 'main.js'), '');
    const built = check();
    expect(built.status).toBe(0);
    expect(built.stderr).toBe('');
    // npm runs it before each: the scripts are wired.
    const { scripts } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(scripts['prestart:api']).toBe('node scripts/dist.cjs check');
    expect(scripts['prestart:worker']).toBe('node scripts/dist.cjs check');
  });
});
