import { systemActor, type Actor } from './actor';
import type { Context } from './context';
import type { Trx } from './db';
import { isRetryableTxError, OptimisticConflict } from './errors';
import { logger } from './logger';
import { countStat, metrics } from './metrics';
import { insertOutboxRows, type OutboxRow } from './outbox';

/**
 * A unit of work: one transaction, and what must happen once it has committed. Writers say what
 * they need (jobs, SKUs to serve) on the unit while they write; the runner does it exactly once
 * after the commit, never after a rollback. No writer publishes jobs or serves SKUs itself.
 */
export interface AfterCommitSink {
  /** Outbox rows the caller's own statement inserted: their jobs are added after commit. */
  jobsWritten(rows: OutboxRow[]): void;
  /** Once committed, serve the waiting lines of these SKUs (see AfterCommitHandlers.serveSkus). */
  serveSkus(skus: Iterable<string>): void;
}

export interface UnitOfWork extends AfterCommitSink {
  readonly trx: Trx;
  /** Who this unit acts for: recorded on the history, movements, shipments and returns it writes. */
  readonly actor: Actor;
  /** 1 on the first run of the unit, 2 on its first retry, and so on. */
  readonly attempt: number;
  /** Stores outbox rows in this transaction; their jobs are added after commit. */
  addJobs(rows: OutboxRow[]): Promise<void>;
  /**
   * Runs `fn` in this transaction once the unit's body has returned, just before the commit (in the
   * order added; a step may add more). For what is decided on the unit's net effect, not on each
   * write: a failure rolls the unit back like one in the body.
   */
  beforeCommit(fn: () => Promise<void>): void;
  /**
   * Runs `fn` in a savepoint of this transaction. If it throws, the database is rolled back to the
   * savepoint and so is what the unit was told inside it (jobs, SKUs to serve, steps before commit,
   * and what `keep` holds), then the error is rethrown: as if `fn` had never run.
   */
  savepoint<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * State a writer holds for this unit outside its tables (the availability noted for events):
   * `snapshot` is taken as each savepoint starts and returns how to restore it if that savepoint
   * rolls back; `discard` is called when the savepoint in which this was kept rolls back.
   */
  keep(state: KeptState): void;
}

export interface KeptState {
  snapshot(): () => void;
  discard(): void;
}

/**
 * The same unit (its transaction, jobs and SKUs to serve) acting for another actor: what is written
 * through it records `actor`. For a unit that does something on the system's behalf beside what its
 * caller asked for (a count's revocations are the system's, the count is the key's).
 */
export function actingAs(uow: UnitOfWork, actor: Actor): UnitOfWork {
  return {
    get trx() {
      return uow.trx;
    },
    actor,
    attempt: uow.attempt,
    addJobs: (rows) => uow.addJobs(rows),
    jobsWritten: (rows) => uow.jobsWritten(rows),
    serveSkus: (skus) => uow.serveSkus(skus),
    beforeCommit: (fn) => uow.beforeCommit(fn),
    savepoint: (fn) => uow.savepoint(fn),
    keep: (state) => uow.keep(state),
  };
}

class Work implements UnitOfWork {
  readonly jobs: OutboxRow[] = [];
  skus = new Set<string>();
  private readonly finals: (() => Promise<void>)[] = [];
  private readonly kept: KeptState[] = [];
  private savepoints = 0;
  constructor(
    readonly actor: Actor,
    private readonly tx?: Trx,
    readonly attempt = 1,
  ) {}
  get trx(): Trx {
    if (!this.tx) throw new Error('a statement unit has no transaction');
    return this.tx;
  }
  async addJobs(rows: OutboxRow[]): Promise<void> {
    this.jobs.push(...(await insertOutboxRows(this.trx, rows)));
  }
  jobsWritten(rows: OutboxRow[]): void {
    this.jobs.push(...rows);
  }
  serveSkus(skus: Iterable<string>): void {
    for (const s of skus) this.skus.add(s);
  }
  beforeCommit(fn: () => Promise<void>): void {
    this.finals.push(fn);
  }
  keep(state: KeptState): void {
    this.kept.push(state);
  }
  async savepoint<T>(fn: () => Promise<T>): Promise<T> {
    const name = `uow_${++this.savepoints}`;
    const jobs = this.jobs.length;
    const skus = new Set(this.skus);
    const finals = this.finals.length;
    const kept = this.kept.length;
    const restores = this.kept.map((k) => k.snapshot());
    await this.trx.raw(`SAVEPOINT ${name}`);
    try {
      const out = await fn();
      await this.trx.raw(`RELEASE SAVEPOINT ${name}`);
      return out;
    } catch (err) {
      await this.trx.raw(`ROLLBACK TO SAVEPOINT ${name}`);
      this.jobs.length = jobs;
      this.skus = skus;
      this.finals.length = finals;
      for (const k of this.kept.splice(kept)) k.discard();
      for (const restore of restores) restore();
      throw err;
    }
  }
  async finish(): Promise<void> {
    for (let i = 0; i < this.finals.length; i++) await this.finals[i]();
  }
}

export interface UnitOfWorkOptions {
  /** Retry the whole unit on an optimistic conflict, serialization failure or deadlock (default true). */
  retry?: boolean;
  /** 'await' (default): jobs are added before the runner returns; 'background': the caller answers at once. */
  publish?: 'await' | 'background';
  /** Bound on attempts when retrying (default 30). */
  maxAttempts?: number;
  /** Who the unit acts for (default: the system component named by `op`). */
  actor?: Actor;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** After commit: jobs first (bounded, never throws), then SKUs served; a failure there is repaired by the sweep. */
async function afterCommit(ctx: Context, work: Work, publish: 'await' | 'background'): Promise<void> {
  if (publish === 'background') ctx.jobs.publishSoon(work.jobs);
  else await ctx.jobs.publish(work.jobs);
  if (work.skus.size === 0) return;
  const skus = [...work.skus].sort();
  try {
    await ctx.afterCommit.serveSkus(skus);
  } catch (err) {
    // The unit has committed and stands: the maintenance sweep serves SKUs left with free stock and waiting lines.
    logger.warn({ err, skus }, 'serving SKUs after commit failed; the maintenance sweep will serve them');
  }
}

/**
 * Runs `fn` in a transaction; on an optimistic conflict, serialization failure or deadlock it rolls
 * back and runs again (from scratch, with a fresh unit) after a full-jitter exponential backoff,
 * bounded and counted per `op`. After the commit, the unit's jobs and SKUs are handled once.
 */
export async function runUnitOfWork<T>(
  ctx: Context,
  op: string,
  fn: (uow: UnitOfWork) => Promise<T>,
  opts: UnitOfWorkOptions = {},
): Promise<T> {
  const maxAttempts = opts.retry === false ? 1 : (opts.maxAttempts ?? 30);
  for (let attempt = 1; ; attempt++) {
    let work: Work | undefined;
    let result: T;
    try {
      result = await ctx.db.transaction(async (trx) => {
        const out = await fn((work = new Work(opts.actor ?? systemActor(op), trx, attempt)));
        await work.finish();
        return out;
      });
    } catch (err) {
      if (err instanceof OptimisticConflict) {
        metrics.optimisticConflicts.inc({ op });
        countStat('optimistic_conflicts');
      }
      if (!isRetryableTxError(err) || attempt >= maxAttempts) throw err;
      metrics.optimisticRetries.inc({ op });
      countStat('optimistic_retries');
      await sleep(Math.random() * Math.min(2 * 2 ** attempt, 200));
      continue;
    }
    await afterCommit(ctx, work!, opts.publish ?? 'await');
    return result;
  }
}

/**
 * A unit of work of one statement on the pool, for the hot intake path: the statement is atomic by
 * itself and stores its own outbox rows (reported with `jobsWritten`); no BEGIN/COMMIT round trips.
 */
export async function runStatement<T>(
  ctx: Context,
  fn: (sink: AfterCommitSink) => Promise<T>,
  opts: Pick<UnitOfWorkOptions, 'publish'> = {},
): Promise<T> {
  const work = new Work(systemActor('intake'));
  const result = await fn(work);
  await afterCommit(ctx, work, opts.publish ?? 'await');
  return result;
}
