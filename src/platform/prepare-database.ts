import { ensureDatabase, migrateLatestLocked } from './db';
import { isDatabaseUnavailable } from './errors';
import { logger } from './logger';

/**
 * Creates the database if missing and runs migrations to latest, each step under a PostgreSQL
 * advisory lock so that processes starting at the same moment (docker compose up) take turns.
 * A process that starts while PostgreSQL is briefly unreachable waits for it (backing off, up to
 * `waitMs`) instead of exiting: a worker restarted during an outage must still come up and drain
 * the backlog.
 */
export async function prepareDatabase(url: string, waitMs = 120_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 0; ; attempt++) {
    try {
      // Advisory locks make processes starting together take turns (creating, then migrating).
      await ensureDatabase(url, () => logger.info('another process is creating the database; waiting for it'));
      await migrateLatestLocked(url, () => logger.info('another process is migrating the database; waiting for it'));
      return;
    } catch (err) {
      if (!isDatabaseUnavailable(err) || Date.now() > deadline) throw err;
      const delay = Math.min(250 * 2 ** attempt, 5000);
      logger.warn(
        { err: (err as Error).message, retryInMs: delay },
        'PostgreSQL unreachable at start-up; waiting for it',
      );
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
