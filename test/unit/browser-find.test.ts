import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findChromium, NO_BROWSER } from '../helpers/browser';

const dir = mkdtempSync(path.join(os.tmpdir(), 'orderflow-find-browser-'));
const file = (name: string, mode: number) => {
  const f = path.join(dir, name);
  writeFileSync(f, '#!/bin/sh\n');
  chmodSync(f, mode);
  return f;
};
const chrome = file('google-chrome', 0o755);
const notExecutable = file('chromium', 0o644);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the browser the browser tests drive', () => {
  it('when CHROMIUM_PATH is set, then it is used before anything on the PATH', async () => {
    const b = await findChromium({ env: { CHROMIUM_PATH: chrome, PATH: '/usr/bin:/bin' }, bundled: false });
    expect(b).toMatchObject({ executablePath: chrome, source: 'CHROMIUM_PATH' });
  });

  it('when CHROMIUM_PATH names no executable, then it fails saying so instead of falling back', async () => {
    await expect(findChromium({ env: { CHROMIUM_PATH: notExecutable, PATH: dir } })).rejects.toThrow(
      `CHROMIUM_PATH=${notExecutable} is not an executable file`,
    );
  });

  it('when CHROMIUM_PATH is unset, then the first executable chromium/chrome on the PATH is used (a non-executable one is skipped)', async () => {
    const b = await findChromium({ env: { PATH: `/nonexistent${path.delimiter}${dir}` }, bundled: false });
    expect(b).toMatchObject({ executablePath: chrome, source: 'PATH' });
  });

  it('when there is no browser at all, then it fails with one line saying how to get one', async () => {
    const err = await findChromium({ env: { PATH: '/nonexistent' }, bundled: false }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(NO_BROWSER);
    expect((err as Error).message).not.toContain('\n');
    expect(NO_BROWSER).toMatch(/CHROMIUM_PATH.*apt-get install chromium.*@sparticuz\/chromium/);
  });
});
