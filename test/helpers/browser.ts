import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { ROOT } from './harness';

/** Debian's Chromium (installed by .ci/run), never a downloaded browser. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface OpenBrowser { context: BrowserContext; page: Page; errors: string[]; close(): Promise<void> }

/** A headless Chromium on a fresh profile; `errors` collects console errors and uncaught page errors. */
export async function openBrowser(opts: BrowserContextOptions = {}): Promise<OpenBrowser> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'orderflow-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1400, height: 900 }, ...opts,
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  return {
    context, page, errors,
    async close() { await context.close(); await rm(dir, { recursive: true, force: true }); },
  };
}

/** Screenshots go to docs/screenshots when UPDATE_SCREENSHOTS=1 (for the README), else to test-results/. */
export function screenshotPath(name: string): string {
  const dir = process.env.UPDATE_SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'screenshots') : path.join(ROOT, 'test-results', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}
