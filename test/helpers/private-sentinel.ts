import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { portAnswers } from '../../src/platform/local-services';
import { promisify } from 'node:util';
import { freePort } from './private-redis';

const run = promisify(execFile);

/** PEM files of a throw-away certificate authority and a server certificate it signed for 127.0.0.1 / localhost. */
export interface TestCertificates {
  ca: string;
  cert: string;
  key: string;
}

/** A private CA and a server certificate (openssl), in `dir`: what a self-hosted TLS Redis runs with. */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  const f = (name: string) => path.join(dir, name);
  const subj = (cn: string) => ['-subj', `/CN=${cn}`];
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    ...subj('orderflow test CA'),
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
  ]);
  await run('openssl', [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    ...subj('localhost'),
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
  ]);
  await writeFile(f('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await run('openssl', [
    'x509',
    '-req',
    '-days',
    '2',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-extfile',
    f('server.ext'),
    '-out',
    f('server.crt'),
  ]);
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') };
}

export interface SentinelSecurity {
  /** requirepass of the primary and the replica (and masterauth between them). */
  password?: string;
  /** requirepass of the sentinels (and sentinel-pass between them). */
  sentinelPassword?: string;
  /** TLS only, everywhere: clients, replication and the sentinels' own links. */
  tls?: boolean;
}

export interface SentinelGroup {
  name: string;
  primaryPort: number;
  replicaPort: number;
  sentinelPorts: number[];
  /** `host:port,host:port,…` as REDIS_SENTINELS takes it. */
  sentinelList: string;
  /** REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_NAME (and REDIS_TLS_CA_FILE with TLS) for this group. */
  env: Record<string, string>;
  /** With TLS: the certificate files (the CA is what clients must trust). */
  certificates?: TestCertificates;
  /**
   * Cuts replication: the replica is pointed at a port where nothing listens, so what the primary
   * acknowledges from now on never reaches it (asynchronous replication losing writes, made
   * certain). The replica keeps its data and stays a replica the sentinels may promote; they would
   * point it back only after failover-timeout (3 s) with the primary healthy.
   */
  cutReplication(): Promise<void>;
  /** SIGKILL the primary (no shutdown, no last sync). */
  killPrimary(): Promise<void>;
  /** The master's port as the first answering sentinel says. */
  masterPort(): Promise<number | undefined>;
  stop(): Promise<void>;
}

async function waitUntil(fn: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A private Redis primary, one replica (whose replication a test can cut, to make asynchronous
 * replication lose writes) and `count` sentinels watching them: down after 1 s,
 * failover timeout 3 s, quorum a majority. Never the shared Redis.
 */
export async function startSentinelGroup(
  opts: { sentinels?: number; name?: string } & SentinelSecurity = {},
): Promise<SentinelGroup> {
  const name = opts.name ?? 'ofmaster';
  const count = opts.sentinels ?? 3;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'of-sentinel-'));
  const certificates = opts.tls ? await makeCertificates(dir) : undefined;
  const ca = certificates ? await readFile(certificates.ca, 'utf8') : undefined;
  /** The settings that make a server (or a sentinel) speak TLS only, on `port`, and use it for its own links. */
  const tlsSettings = (port: number): [string, string][] =>
    certificates
      ? [
          ['port', '0'],
          ['tls-port', String(port)],
          ['tls-cert-file', certificates.cert],
          ['tls-key-file', certificates.key],
          ['tls-ca-cert-file', certificates.ca],
          ['tls-auth-clients', 'no'],
          ['tls-replication', 'yes'],
        ]
      : [['port', String(port)]];
  const asArgs = (kv: [string, string][]) => kv.flatMap(([k, v]) => [`--${k}`, v]);
  const auth = (password: string | undefined): [string, string][] =>
    password
      ? [
          ['requirepass', password],
          ['masterauth', password],
        ]
      : [];
  const children: ChildProcess[] = [];
  const serve = (args: string[]) => {
    const c = spawn('redis-server', args, { stdio: 'ignore', cwd: dir });
    children.push(c);
    return c;
  };
  const stop = async () => {
    await Promise.all(
      children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await gone;
      }),
    );
    await rm(dir, { recursive: true, force: true });
  };
  // Whatever fails on the way up, nothing started is left running.
  try {
    // --dir: a replica's full sync goes through an RDB file on disk; it belongs in the temp dir.
    const plain = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'];
    plain.push('--dir', dir);
    const primaryPort = await freePort();
    const primary = serve([...asArgs(tlsSettings(primaryPort)), ...plain, ...asArgs(auth(opts.password))]);
    await waitUntil(() => portAnswers(primaryPort), 'the primary');
    const replicaPort = await freePort();
    serve([
      ...asArgs(tlsSettings(replicaPort)),
      ...plain,
      ...asArgs(auth(opts.password)),
      '--replicaof',
      '127.0.0.1',
      String(primaryPort),
    ]);
    const sentinelPorts: number[] = [];
    /** One command on a fresh connection (a server still starting refuses it: the caller polls). */
    const ask = async <T>(port: number, ...args: string[]): Promise<T> => {
      const r = new Redis({
        port,
        host: '127.0.0.1',
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        password: sentinelPorts.includes(port) ? opts.sentinelPassword : opts.password,
        tls: ca ? { ca } : undefined,
      });
      r.on('error', () => undefined);
      try {
        return (await r.call(args[0], ...args.slice(1))) as T;
      } finally {
        r.disconnect();
      }
    };
    await waitUntil(
      async () => /master_link_status:up/.test(await ask<string>(replicaPort, 'INFO', 'replication')),
      'the replica in sync',
    );

    const quorum = Math.floor(count / 2) + 1;
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const conf = path.join(dir, `sentinel-${i}.conf`);
      // Sentinel rewrites its configuration file (what it learnt), so it must be a writable file of its own.
      await writeFile(
        conf,
        [
          ...tlsSettings(port).map(([k, v]) => `${k} ${v}`),
          'bind 127.0.0.1',
          `dir ${dir}`,
          ...(opts.sentinelPassword
            ? [`requirepass ${opts.sentinelPassword}`, `sentinel sentinel-pass ${opts.sentinelPassword}`]
            : []),
          `sentinel monitor ${name} 127.0.0.1 ${primaryPort} ${quorum}`,
          ...(opts.password ? [`sentinel auth-pass ${name} ${opts.password}`] : []),
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 3000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      sentinelPorts.push(port);
      serve([conf, '--sentinel']);
    }
    // Every sentinel must know the replica and the other sentinels before the primary can be failed over.
    for (const port of sentinelPorts) {
      await waitUntil(async () => {
        const replicas = await ask<unknown[]>(port, 'SENTINEL', 'REPLICAS', name);
        const others = await ask<unknown[]>(port, 'SENTINEL', 'SENTINELS', name);
        return replicas.length === 1 && others.length === count - 1;
      }, `sentinel ${port} to discover the replica and its peers`);
    }

    return {
      name,
      primaryPort,
      replicaPort,
      sentinelPorts,
      sentinelList: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      env: {
        REDIS_URL: `${ca ? 'rediss' : 'redis'}://${opts.password ? `:${encodeURIComponent(opts.password)}@` : ''}127.0.0.1:${primaryPort}`,
        REDIS_SENTINELS: sentinelPorts
          .map((p, i) =>
            i === 0 && (ca || opts.sentinelPassword)
              ? `${ca ? 'rediss' : 'redis'}://${opts.sentinelPassword ? `:${encodeURIComponent(opts.sentinelPassword)}@` : ''}127.0.0.1:${p}`
              : `127.0.0.1:${p}`,
          )
          .join(','),
        REDIS_SENTINEL_NAME: name,
        ...(certificates ? { REDIS_TLS_CA_FILE: certificates.ca } : {}),
      },
      certificates,
      async cutReplication() {
        const nowhere = await freePort();
        await ask(replicaPort, 'REPLICAOF', '127.0.0.1', String(nowhere));
        await waitUntil(
          async () => /master_link_status:down/.test(await ask<string>(replicaPort, 'INFO', 'replication')),
          'the replica cut off',
        );
      },
      async killPrimary() {
        if (primary.exitCode !== null) return;
        const gone = new Promise((r) => primary.once('exit', r));
        primary.kill('SIGKILL');
        await gone;
      },
      async masterPort() {
        for (const port of sentinelPorts) {
          const addr = await ask<string[] | null>(port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name).catch(() => null);
          if (addr) return Number(addr[1]);
        }
        return undefined;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
