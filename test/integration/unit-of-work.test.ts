import { describe, expect, it } from 'vitest';
import { noteAvailability } from '../../src/inventory/availability';
import { OptimisticConflict } from '../../src/platform/errors';
import { QUEUES } from '../../src/platform/job-catalog';
import type { OutboxRow } from '../../src/platform/outbox';
import { runUnitOfWork } from '../../src/platform/unit-of-work';
import { useHarness } from '../helpers/harness';

const h = useHarness({ workers: false });

/** The real context, with its after-commit ports recording what they are asked (and still doing it). */
function recording() {
  const ctx = h().ctx;
  const published: OutboxRow[][] = [];
  const served: string[][] = [];
  const real = ctx.jobs;
  return {
    ctx: {
      ...ctx,
      jobs: {
        ...real,
        publish: async (rows: OutboxRow[]) => {
          published.push(rows);
          await real.publish(rows);
        },
      },
      afterCommit: {
        serveSkus: async (skus: string[]) => {
          served.push(skus);
        },
      },
    },
    published,
    served,
  };
}

const job = (id: string): OutboxRow => ({ queue: QUEUES.maintenance, job_name: 'noop', job_id: id, data: {} });

describe('unit of work', () => {
  it('when a unit commits, then its jobs are stored in its transaction and published once, and its SKUs served once, after commit', async () => {
    const r = recording();
    let seenInside: number | undefined;
    await runUnitOfWork(r.ctx, 'test', async (uow) => {
      await uow.addJobs([job('uow-a'), job('uow-b')]);
      uow.serveSkus(['B', 'A']);
      uow.serveSkus(['A']);
      seenInside = r.published.length; // nothing published while the transaction is open
    });
    expect(seenInside).toBe(0);
    expect(r.published.map((rows) => rows.map((x) => x.job_id))).toEqual([['uow-a', 'uow-b']]);
    expect(r.served).toEqual([['A', 'B']]);
    expect(await h().ctx.db('outbox').whereIn('job_id', ['uow-a', 'uow-b']).count({ n: '*' }).first()).toEqual({
      n: 2,
    });
    expect(await h().ctx.queues.maintenance.getJob('uow-a')).toBeDefined();
  });

  it('when a unit throws, then nothing it asked for happens: no outbox row, no publish, no serving', async () => {
    const r = recording();
    await expect(
      runUnitOfWork(r.ctx, 'test', async (uow) => {
        await uow.addJobs([job('uow-rolled-back')]);
        uow.serveSkus(['A']);
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(r.published).toEqual([]);
    expect(r.served).toEqual([]);
    expect(await h().ctx.db('outbox').where({ job_id: 'uow-rolled-back' }).first()).toBeUndefined();
  });

  it('when a unit loses an optimistic check, then it runs again from scratch and only the committed attempt has effects', async () => {
    const r = recording();
    let attempts = 0;
    const result = await runUnitOfWork(r.ctx, 'test', async (uow) => {
      attempts++;
      await uow.addJobs([job(`uow-try-${attempts}`)]);
      uow.serveSkus([`SKU-${attempts}`]);
      if (attempts < 3) throw new OptimisticConflict('X');
      return attempts;
    });
    expect(result).toBe(3);
    expect(r.published.map((rows) => rows.map((x) => x.job_id))).toEqual([['uow-try-3']]);
    expect(r.served).toEqual([['SKU-3']]);
    expect(await h().ctx.db('outbox').where('job_id', 'like', 'uow-try-%').pluck('job_id')).toEqual(['uow-try-3']);
  });

  it('when serving after commit fails, then the committed unit stands and the caller gets its result', async () => {
    const ctx = {
      ...h().ctx,
      afterCommit: {
        serveSkus: async () => {
          throw new Error('PostgreSQL went away');
        },
      },
    };
    const out = await runUnitOfWork(ctx, 'test', async (uow) => {
      await uow.addJobs([job('uow-stands')]);
      uow.serveSkus(['A']);
      return 'done';
    });
    expect(out).toBe('done');
    expect(await h().ctx.db('outbox').where({ job_id: 'uow-stands' }).first()).toBeDefined();
  });

  it('when a savepoint throws, then what was asked inside it is undone with its rows and what was asked around it stands', async () => {
    const r = recording();
    const [a, b, c] = ['SP-A', 'SP-B', 'SP-C'].map((x) => `${x}-${Date.now()}`);
    await runUnitOfWork(r.ctx, 'test', async (uow) => {
      // The first note of the unit is made inside a savepoint that rolls back: its step before commit goes too.
      await expect(
        uow.savepoint(async () => {
          noteAvailability(uow, [{ sku: c, before: 0, after: 4, threshold: null }]);
          throw new Error('first');
        }),
      ).rejects.toThrow('first');
      await uow.addJobs([job('sp-kept')]);
      noteAvailability(uow, [{ sku: a, before: 10, after: 2, threshold: 5 }]);
      await expect(
        uow.savepoint(async () => {
          await uow.addJobs([job('sp-undone')]);
          uow.serveSkus(['SP-X']);
          noteAvailability(uow, [
            { sku: a, before: 2, after: 0, threshold: 5 },
            { sku: b, before: 0, after: 3, threshold: null },
          ]);
          // A savepoint inside it that stands stands only as long as its parent.
          await uow.savepoint(async () => uow.addJobs([job('sp-inner')]));
          throw new Error('second');
        }),
      ).rejects.toThrow('second');
      await uow.savepoint(async () => {
        uow.serveSkus(['SP-Y']);
        noteAvailability(uow, [{ sku: b, before: 0, after: 1, threshold: null }]);
      });
    });
    const events = await h()
      .ctx.db('events')
      .whereIn('subject_id', [a, b, c])
      .orderBy(['subject_id', 'type'])
      .select('id', 'subject_id', 'type', 'payload');
    expect(events.map((e) => [e.subject_id, e.type, e.payload.data.available])).toEqual([
      [a, 'inventory.low_stock', 2],
      [b, 'inventory.back_in_stock', 1],
    ]);
    // Published once: the job kept and the deliveries of the two events, nothing asked inside a rolled-back savepoint.
    expect(r.published.map((rows) => rows.map((x) => x.job_id).sort())).toEqual([
      ['sp-kept', ...events.map((e) => e.id)].sort(),
    ]);
    expect(r.served).toEqual([['SP-Y']]);
    expect(await h().ctx.db('outbox').where('job_id', 'like', 'sp-%').pluck('job_id')).toEqual(['sp-kept']);
  });
});
