import { loadConfigOrExit } from '../platform/config';
import { resolveLocalServices } from '../platform/local-services';
import { prepareDatabase } from '../platform/prepare-database';

/** `npm run migrate`: create the database if missing and migrate to latest. */
async function run(): Promise<void> {
  const c = loadConfigOrExit();
  const local = await resolveLocalServices({
    databaseUrl: c.DATABASE_URL,
    databaseDefaulted: c.databaseUrlDefaulted,
    redisUrl: c.REDIS_URL,
    redisDefaulted: false,
    dataDir: c.EMBEDDED_DATA_DIR,
  });
  await prepareDatabase(local.databaseUrl);
  process.stdout.write('migrations are up to date\n');
  await local.stop();
}
run().catch((err) => {
  process.stderr.write(`migrate failed: ${(err as Error).message}\n`);
  process.exit(1);
});
