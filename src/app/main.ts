import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfigOrExit, SHORT_API_KEY, shortApiKeys, type Config } from '../platform/config';
import { closeContext, createContext } from './context';
import { prepareDatabase } from '../platform/prepare-database';
import { createApp } from '../http/app';
import { createWorkerMetricsApp } from '../http/worker-metrics';
import { drain, listen } from '../http/server';
import { redactUrl, resolveLocalServices } from '../platform/local-services';
import { logger, logQuietly, tolerateBrokenStdio } from '../platform/logger';
import { startWorkers, type RunningWorkers } from './workers';

type Mode = 'all' | 'api' | 'worker';

/** The address the server really has: a wildcard one is every interface, reached locally on loopback. */
function whereListening(host: string, port: number): string {
  if (host === '0.0.0.0') return `0.0.0.0:${port}, every IPv4 interface (here: http://127.0.0.1:${port})`;
  if (host === '::') return `[::]:${port}, every interface (here: http://localhost:${port})`;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function printDevKeys(config: Config): void {
  if (!config.devKeys) return;
  process.stdout.write(
    `\norderflow development API keys (set API_KEYS to replace them):\n${config.API_KEYS.map(
      (k) => `  ${k.role.padEnd(8)} ${k.key}`,
    ).join('\n')}\n\n`,
  );
}

/**
 * SIGTERM/SIGINT handling that nothing else can break. The first signal drains — stop accepting,
 * finish requests in flight, close the workers (active jobs finish or are handed back), close the
 * connections — then exits 0; each step runs even if one before it failed, and no log write can
 * stop it (logQuietly). Not done SHUTDOWN_TIMEOUT_MS + 5 s after the signal → exit 1. A second
 * signal during the drain → exit 1 at once, unless it comes within SAME_SIGNAL_MS of the first:
 * one Ctrl-C reaches the process twice, from the terminal (to the whole process group) and
 * forwarded by npm (tsx's CLI resends one too), and must not turn a drain into an abort. A signal
 * during start-up drains once start-up is done.
 */
const SAME_SIGNAL_MS = 500;
function handleSignals(timeoutMs: () => number, started: Promise<{ drain: () => Promise<void> } | undefined>): void {
  let stopping = false;
  let first = 0;
  const shutdown = async (signal: string) => {
    if (stopping) {
      if (Date.now() - first < SAME_SIGNAL_MS) return;
      logQuietly(() => logger.warn({ signal }, 'second signal during the drain; exiting now'));
      process.exit(1);
    }
    stopping = true;
    first = Date.now();
    logQuietly(() => logger.info({ signal }, 'draining'));
    const hard = setTimeout(() => {
      logQuietly(() => logger.error('shutdown took too long; exiting'));
      process.exit(1);
    }, timeoutMs() + 5000);
    hard.unref();
    let code = 0;
    try {
      const app = await started;
      if (app) await app.drain();
    } catch (err) {
      code = 1;
      logQuietly(() => logger.error({ err }, 'drain failed'));
    }
    logQuietly(() => logger.info('stopped'));
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

export async function main(mode: Mode): Promise<void> {
  let timeoutMs = 10000;
  let ready!: (app: { drain: () => Promise<void> } | undefined) => void;
  const started = new Promise<{ drain: () => Promise<void> } | undefined>((r) => (ready = r));
  handleSignals(() => timeoutMs, started);
  const base = loadConfigOrExit();
  timeoutMs = base.SHUTDOWN_TIMEOUT_MS;
  let local: Awaited<ReturnType<typeof resolveLocalServices>>;
  try {
    local = await resolveLocalServices({
      databaseUrl: base.DATABASE_URL,
      databaseDefaulted: base.databaseUrlDefaulted,
      redisUrl: base.REDIS_URL,
      redisDefaulted: base.redisUrlDefaulted && !base.REDIS_SENTINELS,
      dataDir: base.EMBEDDED_DATA_DIR,
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
  const config: Config = Object.freeze({ ...base, DATABASE_URL: local.databaseUrl, REDIS_URL: local.redisUrl });
  // Every mode migrates (under an advisory lock, so concurrent starts are safe), so any start order works.
  await prepareDatabase(config.DATABASE_URL);
  const ctx = createContext(config);
  // Which PostgreSQL and Redis this process uses, and why: with nothing configured, servers on the
  // default ports are used as they are (shared by every checkout that does the same).
  const nodes = (n: { nodes: { host: string; port: number }[] }) => n.nodes.map((x) => `${x.host}:${x.port}`).join(',');
  const redisWhere = config.redisCluster
    ? `cluster ${nodes(config.redisCluster)}`
    : config.REDIS_SENTINELS
      ? `sentinels ${nodes(config.REDIS_SENTINELS)}`
      : redactUrl(config.REDIS_URL);
  const using = `PostgreSQL ${redactUrl(config.DATABASE_URL)} (${local.origin.database}); Redis ${redisWhere} (${
    config.redisCluster || config.REDIS_SENTINELS ? 'configured' : local.origin.redis
  }), queue prefix ${config.QUEUE_PREFIX}`;

  let server: Server | undefined;
  let workers: RunningWorkers | undefined;
  if (mode !== 'worker') {
    const app = createApp(ctx);
    server = await listen(app, config.PORT, config.HOST);
    const { address: host, port } = server.address() as AddressInfo;
    logger.info({ host, port }, 'orderflow API listening');
    if (mode === 'all')
      process.stdout.write(
        `orderflow listening on ${whereListening(host, port)} (console /console, board /admin/queues, dashboard /dashboard, docs /docs)\nusing ${using}\n`,
      );
  }
  if (mode === 'worker' && config.METRICS_PORT !== undefined) {
    server = await listen(createWorkerMetricsApp(ctx), config.METRICS_PORT, config.HOST);
    const { address: host, port } = server.address() as AddressInfo;
    logger.info({ host, port }, 'orderflow worker metrics listening (/metrics)');
  }
  if (mode !== 'api') {
    workers = await startWorkers(ctx);
    logger.info('orderflow workers running');
    if (!config.NOTIFY_WEBHOOK_URL && !config.SMTP_URL) {
      logger.warn(
        "no operator notification target (NOTIFY_WEBHOOK_URL and SMTP_URL unset): customer notifications go only to customers' own webhook_url",
      );
    }
  }
  // After the listening line, the first a reader of the output sees.
  logQuietly(() => logger.info({ using }, 'services'));
  printDevKeys(config);
  const short = shortApiKeys(config);
  if (short.length)
    logQuietly(() =>
      logger.warn(
        { keys: short },
        `API_KEYS has keys shorter than ${SHORT_API_KEY} characters (${short.join(', ')}): they work, but are easy to guess; use long random keys (see docs/operations.md)`,
      ),
    );
  // After the listening line (the first a reader of the output sees). Outbox, events and
  // notifications are found through partial indexes on rows that leave them within seconds;
  // without vacuum those indexes fill with dead entries and every poll walks them.
  const autovacuum = await ctx.db
    .raw('SHOW autovacuum')
    .then((r) => String(r.rows[0]?.autovacuum))
    .catch(() => 'unknown');
  if (autovacuum === 'off')
    logQuietly(() =>
      logger.warn(
        'PostgreSQL runs with autovacuum off: the outbox relay, the event sequencer and the delivery queries slow down as dead rows pile up; turn it on (see docs/operations.md)',
      ),
    );

  // Each step is tried even when one before it failed; the first failure is what the drain reports.
  ready({
    drain: async () => {
      let failure: unknown;
      const step = async (fn: () => Promise<void>) => {
        try {
          await fn();
        } catch (err) {
          failure ??= err;
        }
      };
      // Stop accepting; in-flight requests finish; keep-alive sockets close as they go idle.
      if (server) await step(() => drain(server));
      if (workers) await step(() => workers.close());
      await step(() => closeContext(ctx));
      await step(() => local.stop());
      if (failure) throw failure;
    },
  });
}

if (require.main === module) {
  // A closed stdout or stderr (`| head -1`) must not take the process down (see logger.ts).
  tolerateBrokenStdio();
  // A stray rejection from a client library while Redis or PostgreSQL is away must not kill the API.
  process.on('unhandledRejection', (err) => logQuietly(() => logger.error({ err }, 'unhandled rejection')));
  const mode = (process.argv[2] ?? 'all') as Mode;
  if (!['all', 'api', 'worker'].includes(mode)) {
    process.stderr.write(`usage: main.ts [all|api|worker]\n`);
    process.exit(2);
  }
  main(mode).catch((err) => {
    logger.fatal({ err }, 'failed to start');
    process.stderr.write(`orderflow failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
