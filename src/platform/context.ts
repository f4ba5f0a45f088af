import type { Cluster, Redis } from 'ioredis';
import type { Config } from './config';
import type { Db } from './db';
import type { JobPublisher } from './outbox';

/**
 * Work that a unit of work asks for and another module does, after commit. Wired by the process
 * (app/context.ts), so that the module asking need not import the one doing it.
 */
export interface AfterCommitHandlers {
  /** Serve the waiting lines of these SKUs (stock was freed or arrived, or a queue was unblocked). */
  serveSkus(skus: string[]): Promise<unknown>;
}

/** What domain code may use: configuration, the record, Redis for short leases, and after-commit work. */
export interface Context {
  config: Config;
  db: Db;
  /**
   * Connections for the intake group commit alone (INTAKE_IN_FLIGHT of them): accepting an order
   * never waits for a connection behind other requests, such as writes blocked on a stock row that
   * a worker's batch holds. Absent (a context built by hand): `db`.
   */
  intakeDb?: Db;
  /** A single Redis or a Redis Cluster (keys built with redisKey share QUEUE_PREFIX's hash tag). */
  redis: Redis | Cluster;
  jobs: JobPublisher;
  afterCommit: AfterCommitHandlers;
}
