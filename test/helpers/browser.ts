import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { ROOT } from './harness';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Names of a Chromium or Chrome binary looked for on the PATH, in this order. */
export const PATH_NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];

export const NO_BROWSER =
  'no browser for the browser tests: set CHROMIUM_PATH to a Chromium or Chrome binary, ' +
  'put chromium on the PATH (Debian: apt-get install chromium), or run `npm ci` on linux-x64 to get the devDependency @sparticuz/chromium';

export interface FoundBrowser {
  executablePath: string;
  source: 'CHROMIUM_PATH' | 'PATH' | '@sparticuz/chromium';
  note: string;
}

export interface FindOptions {
  env?: NodeJS.ProcessEnv;
  /** Whether the npm package @sparticuz/chromium may be used as the last resort (default true). */
  bundled?: boolean;
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The browser the tests drive: CHROMIUM_PATH, else a chromium / chromium-browser / google-chrome /
 * google-chrome-stable on the PATH, else the headless Chromium shipped by @sparticuz/chromium
 * (unpacked once into the temp directory). Throws one line saying how to get a browser if none is found.
 */
export async function findChromium(opts: FindOptions = {}): Promise<FoundBrowser> {
  const env = opts.env ?? process.env;
  if (env.CHROMIUM_PATH) {
    if (!executable(env.CHROMIUM_PATH))
      throw new Error(`CHROMIUM_PATH=${env.CHROMIUM_PATH} is not an executable file; ${NO_BROWSER}`);
    return { executablePath: env.CHROMIUM_PATH, source: 'CHROMIUM_PATH', note: `CHROMIUM_PATH ${env.CHROMIUM_PATH}` };
  }
  for (const name of PATH_NAMES) {
    for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
      const file = path.join(dir, name);
      if (executable(file)) return { executablePath: file, source: 'PATH', note: `${file} (on the PATH)` };
    }
  }
  if (opts.bundled !== false) {
    const bundled = await bundledChromium();
    if (bundled) return bundled;
  }
  throw new Error(NO_BROWSER);
}

/**
 * @sparticuz/chromium's binary, unpacked into <tmp>/orderflow-sparticuz-chromium-<version>.
 * The package unpacks into os.tmpdir(); it is pointed at a fresh staging directory (TMPDIR) which
 * is then renamed into place, so test files starting in parallel never run a half-written binary.
 * Undefined when the package is not installed (or this is not linux-x64, the only build it ships).
 */
async function bundledChromium(): Promise<FoundBrowser | undefined> {
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined;
  const req = createRequire(path.join(ROOT, 'package.json'));
  let pkgDir: string;
  try {
    pkgDir = path.resolve(path.dirname(req.resolve('@sparticuz/chromium')), '..', '..');
  } catch {
    return undefined;
  }
  const version = (JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const dir = path.join(os.tmpdir(), `orderflow-sparticuz-chromium-${version}`);
  const bin = path.join(dir, 'chromium');
  const note = `@sparticuz/chromium ${version}, ${bin}`;
  if (executable(bin)) return { executablePath: bin, source: '@sparticuz/chromium', note };

  const started = Date.now();
  const staging = await mkdtemp(path.join(os.tmpdir(), 'orderflow-sparticuz-unpack-'));
  const { default: sparticuz } = await import('@sparticuz/chromium');
  const tmpdir = process.env.TMPDIR;
  process.env.TMPDIR = staging;
  try {
    const unpacked = await sparticuz.executablePath();
    if (path.dirname(unpacked) !== staging)
      throw new Error(`@sparticuz/chromium unpacked to ${unpacked}, not into ${staging}`);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  } finally {
    if (tmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmpdir;
  }
  try {
    renameSync(staging, dir);
  } catch (err) {
    // Another test process finished first: keep its copy.
    await rm(staging, { recursive: true, force: true });
    if (!existsSync(bin)) throw err;
  }
  return {
    executablePath: bin,
    source: '@sparticuz/chromium',
    note: `${note} (unpacked in ${((Date.now() - started) / 1000).toFixed(1)} s)`,
  };
}

let found: Promise<FoundBrowser> | undefined;
/** findChromium() once per test process; says on stderr which browser it is. */
export function theBrowser(): Promise<FoundBrowser> {
  found ??= findChromium().then((b) => {
    process.stderr.write(`browser tests use ${b.note}\n`);
    return b;
  });
  return found;
}

export interface OpenBrowser {
  context: BrowserContext;
  page: Page;
  errors: string[];
  close(): Promise<void>;
}

/** A headless Chromium on a fresh profile; `errors` collects console errors and uncaught page errors. */
export async function openBrowser(opts: BrowserContextOptions = {}): Promise<OpenBrowser> {
  const browser = await theBrowser();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'orderflow-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(dir, {
      executablePath: browser.executablePath,
      headless: true,
      args: ARGS,
      viewport: { width: 1400, height: 900 },
      ...opts,
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`could not launch ${browser.note}: ${(err as Error).message}`);
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return {
    context,
    page,
    errors,
    async close() {
      await context.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Screenshots go to docs/screenshots when UPDATE_SCREENSHOTS=1 (for the docs), else to test-results/. */
export function screenshotPath(name: string): string {
  const dir =
    process.env.UPDATE_SCREENSHOTS === '1'
      ? path.join(ROOT, 'docs', 'screenshots')
      : path.join(ROOT, 'test-results', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}
