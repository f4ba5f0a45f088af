import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
  loadConfig,
  shortApiKeys,
} from '../../src/platform/config';
import { ROOT } from '../helpers/harness';

function rejection(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('when nothing is set, then the contract defaults apply and the fixed development keys are used', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      NODE_ENV: 'development',
      DATABASE_URL: DEFAULT_DATABASE_URL,
      REDIS_URL: DEFAULT_REDIS_URL,
      PORT: 3000,
      QUEUE_PREFIX: 'orderflow',
      BACKORDER_TTL_SECONDS: 604800,
      RECONCILE_AFTER_SECONDS: 30,
      NOTIFY_MAX_ATTEMPTS: 12,
      NOTIFY_BACKOFF_MS: 10000,
      RATE_LIMIT_RPS: 0,
      devKeys: true,
      databaseUrlDefaulted: true,
      redisUrlDefaulted: true,
    });
    expect(DEFAULT_DATABASE_URL).toBe('postgres://postgres@127.0.0.1:5432/orderflow');
    expect(DEFAULT_REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(c.WEBHOOK_SECRET).toBeUndefined();
    expect(c.NOTIFY_WEBHOOK_URL).toBeUndefined();
    expect(c.SMTP_URL).toBeUndefined();
    expect(c.API_KEYS.map((k) => [k.role, k.key])).toEqual([
      ['intake', 'dev-intake-key'],
      ['feed', 'dev-feed-key'],
      ['operator', 'dev-operator-key'],
      ['viewer', 'dev-viewer-key'],
    ]);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('when every variable is set validly, then each is parsed to its type', () => {
    const c = loadConfig({
      NODE_ENV: 'production',
      DATABASE_URL: 'postgresql://u:p@db:5432/shop',
      REDIS_URL: 'rediss://cache:6380',
      PORT: '8080',
      API_KEYS: 'intake:intake-secret-1, feed:feed-secret-22 ,operator:op-secret-333',
      WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      NOTIFY_WEBHOOK_URL: 'https://hooks.example.test/orders',
      SMTP_URL: 'smtp://mail:2525',
      QUEUE_PREFIX: '{orderflow}',
      BACKORDER_TTL_SECONDS: '60',
      RECONCILE_AFTER_SECONDS: '5',
      NOTIFY_MAX_ATTEMPTS: '3',
      NOTIFY_BACKOFF_MS: '250',
      RATE_LIMIT_RPS: '20',
    });
    expect(c).toMatchObject({
      DATABASE_URL: 'postgresql://u:p@db:5432/shop',
      REDIS_URL: 'rediss://cache:6380',
      PORT: 8080,
      QUEUE_PREFIX: '{orderflow}',
      BACKORDER_TTL_SECONDS: 60,
      RECONCILE_AFTER_SECONDS: 5,
      NOTIFY_MAX_ATTEMPTS: 3,
      NOTIFY_BACKOFF_MS: 250,
      RATE_LIMIT_RPS: 20,
      NOTIFY_WEBHOOK_URL: 'https://hooks.example.test/orders',
      SMTP_URL: 'smtp://mail:2525',
      devKeys: false,
      databaseUrlDefaulted: false,
      redisUrlDefaulted: false,
    });
    expect(c.API_KEYS.map((k) => [k.role, k.key])).toEqual([
      ['intake', 'intake-secret-1'],
      ['feed', 'feed-secret-22'],
      ['operator', 'op-secret-333'],
    ]);
  });

  it('when a variable is invalid, then loading fails with one line that names it', () => {
    const cases: [string, string][] = [
      ['NODE_ENV', 'staging'],
      ['DATABASE_URL', 'mysql://localhost/db'],
      ['DATABASE_URL', 'not a url'],
      ['REDIS_URL', 'http://localhost:6379'],
      ['PORT', 'abc'],
      ['PORT', '70000'],
      ['PORT', '-1'],
      ['PORT', '80.5'],
      ['API_KEYS', 'admin:some-long-key'],
      ['API_KEYS', 'intake: '],
      ['API_KEYS', 'no-colon-here'],
      ['API_KEYS', ':missing-role-key'],
      ['WEBHOOK_SECRET', 'not-prefixed'],
      ['WEBHOOK_SECRET', 'whsec_!!!not base64!!!'],
      ['NOTIFY_WEBHOOK_URL', 'ftp://hooks.example.test'],
      ['NOTIFY_WEBHOOK_URL', 'hooks.example.test'],
      ['SMTP_URL', 'http://mail:25'],
      ['PORT', '0x10'],
      ['PORT', '1e3'],
      ['API_KEYS', 'intake:same-key-twice,operator:same-key-twice'],
      ['BACKORDER_TTL_SECONDS', '0'],
      ['BACKORDER_TTL_SECONDS', 'a week'],
      ['RECONCILE_AFTER_SECONDS', '0'],
      ['RECONCILE_AFTER_SECONDS', '1.5'],
      ['NOTIFY_MAX_ATTEMPTS', '0'],
      ['NOTIFY_MAX_ATTEMPTS', 'many'],
      ['NOTIFY_BACKOFF_MS', '0'],
      ['NOTIFY_BACKOFF_MS', 'fast'],
      ['RATE_LIMIT_RPS', '-1'],
      ['RATE_LIMIT_RPS', 'lots'],
      ['LOG_LEVEL', 'verbose'],
      ['DB_POOL_MAX', '0'],
    ];
    for (const [name, value] of cases) {
      const message = rejection({ [name]: value });
      expect(message, `${name}=${value}`).not.toMatch(/\n/);
      expect(message, `${name}=${value}`).toMatch(new RegExp(`^invalid configuration: ${name}\\b`));
    }
  });

  it('when REDIS_CLUSTER_NODES is set, then cluster mode is on and QUEUE_PREFIX must carry a hash tag', () => {
    const c = loadConfig({
      REDIS_CLUSTER_NODES: 'redis-a:7000, 10.0.0.2:7001,[::1]:7002',
      QUEUE_PREFIX: '{orderflow}',
    });
    expect(c.redisCluster).toEqual({
      nodes: [
        { host: 'redis-a', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      tls: false,
    });
    // No local redis-server is started in place of a cluster.
    expect(c.redisUrlDefaulted).toBe(false);
    const managed = loadConfig({
      REDIS_CLUSTER_NODES: 'rediss://app:s%40cret@clustercfg.example.test:6379',
      QUEUE_PREFIX: 'shop-{of}',
    });
    expect(managed.redisCluster).toEqual({
      nodes: [{ host: 'clustercfg.example.test', port: 6379 }],
      username: 'app',
      password: 's@cret',
      tls: true,
    });
    expect(loadConfig({ REDIS_CLUSTER_NODES: ' ' }).redisCluster).toBeUndefined();
    expect(loadConfig({}).redisCluster).toBeUndefined();

    for (const prefix of [undefined, 'orderflow', '{}orderflow', 'orderflow}{', '{orderflow']) {
      const env: Record<string, string> = { REDIS_CLUSTER_NODES: '127.0.0.1:7000' };
      if (prefix !== undefined) env.QUEUE_PREFIX = prefix;
      const message = rejection(env);
      expect(message, String(prefix)).toMatch(
        /^invalid configuration: QUEUE_PREFIX: must contain a Redis Cluster hash tag/,
      );
      expect(message).not.toMatch(/\n/);
    }
    for (const nodes of ['127.0.0.1', 'host:0', 'host:70000', ':7000', 'http://host:7000']) {
      expect(rejection({ REDIS_CLUSTER_NODES: nodes, QUEUE_PREFIX: '{of}' }), nodes).toMatch(
        /^invalid configuration: REDIS_CLUSTER_NODES: entry 1 must be host:port/,
      );
    }
  });

  it('when a variable is set to blanks, then it counts as unset and takes its default', () => {
    const c = loadConfig({
      PORT: '',
      QUEUE_PREFIX: '  ',
      BACKORDER_TTL_SECONDS: ' ',
      REDIS_URL: '',
      WEBHOOK_SECRET: '',
    });
    expect(c).toMatchObject({
      PORT: 3000,
      QUEUE_PREFIX: 'orderflow',
      BACKORDER_TTL_SECONDS: 604800,
      redisUrlDefaulted: true,
    });
    expect(c.WEBHOOK_SECRET).toBeUndefined();
    expect(loadConfig({ PORT: ' 8080 ' }).PORT).toBe(8080);
  });

  it('when NODE_ENV=production has no API_KEYS (unset or blank), then it refuses to start, naming API_KEYS', () => {
    const envs: Record<string, string>[] = [
      { NODE_ENV: 'production' },
      { NODE_ENV: 'production', API_KEYS: '' },
      { NODE_ENV: 'production', API_KEYS: '  ' },
    ];
    for (const env of envs) {
      const message = rejection(env);
      expect(message).toMatch(/^invalid configuration: API_KEYS\b/);
      expect(message).not.toMatch(/\n/);
    }
    expect(loadConfig({ NODE_ENV: 'production', API_KEYS: 'operator:0123456789abcdef' }).devKeys).toBe(false);
  });

  it('when HOST is not set, then the API listens on 127.0.0.1 in development and test, on 0.0.0.0 in production', () => {
    expect(loadConfig({}).HOST).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'development' }).HOST).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'test' }).HOST).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'production', API_KEYS: 'operator:0123456789abcdef' }).HOST).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '  ' }).HOST).toBe('127.0.0.1');
  });

  it('when HOST is set, then it is used as given in every environment; an unusable value is refused naming HOST', () => {
    for (const host of ['0.0.0.0', '::', '::1', '10.1.2.3', 'localhost', 'api.internal']) {
      expect(loadConfig({ HOST: host }).HOST).toBe(host);
      expect(loadConfig({ NODE_ENV: 'production', API_KEYS: 'operator:0123456789abcdef', HOST: host }).HOST).toBe(host);
    }
    expect(loadConfig({ HOST: ' 127.0.0.1 ' }).HOST).toBe('127.0.0.1');
    for (const host of ['http://0.0.0.0', '127.0.0.1:3000', 'a b', '-bad.example']) {
      const message = rejection({ HOST: host });
      expect(message, host).toMatch(/^invalid configuration: HOST: must be an IP address/);
      expect(message).not.toMatch(/\n/);
    }
  });

  it('when API_KEYS is set outside production, then only those keys work (no development keys are added)', () => {
    const c = loadConfig({ API_KEYS: 'intake:only-this-one' });
    expect(c.devKeys).toBe(false);
    expect(c.API_KEYS.map((k) => k.key)).toEqual(['only-this-one']);
  });

  it('when API_KEYS has short keys, then they are taken as given and named (never shown) for the start-up warning', () => {
    const c = loadConfig({
      NODE_ENV: 'production',
      API_KEYS: 'intake:k1, feed:fk2,alice@operator:a-long-operator-key-1',
    });
    expect(c.API_KEYS.map((k) => [k.name, k.role, k.key])).toEqual([
      ['intake', 'intake', 'k1'],
      ['feed', 'feed', 'fk2'],
      ['alice', 'operator', 'a-long-operator-key-1'],
    ]);
    expect(shortApiKeys(c)).toEqual(['intake@intake', 'feed@feed']);
    expect(shortApiKeys(loadConfig({}))).toEqual([]); // the development keys are announced as such
  });
});

function runMain(
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/app/main.ts', 'api'], {
      cwd: ROOT,
      env: env as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

describe('process start-up with an invalid environment', () => {
  const base = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', LOG_LEVEL: 'silent' };

  it('when the API starts with PORT=abc, then it exits 1 with a single stderr line naming PORT', async () => {
    const { code, stderr, stdout } = await runMain({ ...base, PORT: 'abc' });
    expect(code).toBe(1);
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^invalid configuration: PORT\b/);
    expect(stdout).not.toMatch(/listening/);
  });

  it('when LOG_LEVEL is a level pino does not know, then it exits 1 with a single line naming LOG_LEVEL (not a stack trace); blank is unset', async () => {
    const { code, stderr } = await runMain({ ...base, LOG_LEVEL: 'verbose' });
    expect(code).toBe(1);
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^invalid configuration: .*LOG_LEVEL\b/);
    // Blank: the default level, so the only complaint is the PORT given to stop the start here.
    const blank = await runMain({ ...base, LOG_LEVEL: ' ', PORT: 'abc' });
    expect(blank.code).toBe(1);
    const blankLines = blank.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(blankLines, blank.stderr).toHaveLength(1);
    expect(blankLines[0]).toMatch(/^invalid configuration: PORT\b/);
  });

  it('when the API starts in production without API_KEYS, then it exits 1 with a single line naming API_KEYS', async () => {
    const { code, stderr } = await runMain({ ...base, NODE_ENV: 'production' });
    expect(code).toBe(1);
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^invalid configuration: API_KEYS\b/);
  });
});
