import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './private-redis';

const run = promisify(execFile);

/** The newest PostgreSQL server binaries of the machine (Debian's /usr/lib/postgresql/<major>/bin). */
async function binDir(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const majors = (await readdir(root).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d));
  if (!majors.length) throw new Error(`no PostgreSQL server binaries under ${root}`);
  return path.join(root, majors.sort((a, b) => Number(b) - Number(a))[0], 'bin');
}

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url(database: string): string;
  port: number;
  dataDir: string;
  /** `pg_ctl stop -m <mode>`: `immediate` is a crash (no checkpoint; recovery replays the WAL at the next start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** `pg_ctl start -w`: returns once the server accepts connections (after crash recovery). */
  start(): Promise<void>;
  /** Stops the server if it runs and removes its data directory. */
  destroy(): Promise<void>;
  log(): Promise<string>;
}

/**
 * A PostgreSQL cluster of the test's own (initdb in a temp dir, on a free port, trust auth on
 * loopback only), so that a test may crash and restart it. Never the shared server. fsync stays on:
 * an acknowledged commit must survive `pg_ctl -m immediate`. As root, every command runs as the
 * `postgres` OS user (PostgreSQL refuses to run as root), which owns the data directory.
 */
export async function startPrivatePostgres(opts: { settings?: Record<string, string> } = {}): Promise<PrivatePostgres> {
  const bin = await binDir();
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'of-pg-'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dataDir, Number(stdout.trim()), Number(gid.trim()));
  }
  const pgCmd = (cmd: string, args: string[]) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args], { cwd: '/tmp' })
      : run(path.join(bin, cmd), args, { cwd: '/tmp' });
  const logFile = path.join(dataDir, 'server.log');
  await pgCmd('initdb', ['-D', path.join(dataDir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '-N']);
  const options = [
    `-p ${port}`,
    `-k ${dataDir}`,
    `-c listen_addresses=127.0.0.1`,
    `-c max_connections=100`,
    `-c shared_buffers=32MB`,
    ...Object.entries(opts.settings ?? {}).map(([k, v]) => `-c ${k}=${v}`),
  ].join(' ');
  const start = async () => {
    await pgCmd('pg_ctl', ['-D', path.join(dataDir, 'data'), '-l', logFile, '-o', options, '-w', '-t', '60', 'start']);
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    await pgCmd('pg_ctl', ['-D', path.join(dataDir, 'data'), '-m', mode, '-w', 'stop']);
  };
  try {
    await start();
  } catch (err) {
    await stop('immediate').catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    port,
    dataDir,
    start,
    stop,
    async destroy() {
      await stop('immediate').catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
    async log() {
      return readFile(logFile, 'utf8').catch(() => '');
    },
  };
}
