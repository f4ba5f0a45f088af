import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/platform/group-commit';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('group commit', () => {
  it('when items arrive while a group commits, then they are committed together by the next group, each answered with its own result', async () => {
    const groups: number[][] = [];
    let release!: () => void;
    const first = new Promise<void>((r) => {
      release = r;
    });
    const g = new GroupCommit<number, string>({
      maxBatch: 10,
      maxInFlight: 1,
      commit: async (items) => {
        groups.push(items);
        if (groups.length === 1) await first;
        return items.map((i) => `r${i}`);
      },
    });
    const a = g.submit(1);
    await tick();
    const rest = [2, 3, 4].map((i) => g.submit(i));
    await tick();
    expect(g.backlog).toBe(3);
    release();
    expect(await Promise.all([a, ...rest])).toEqual(['r1', 'r2', 'r3', 'r4']);
    expect(groups).toEqual([[1], [2, 3, 4]]);
  });

  it('when a group fails, then each item is committed alone and only the bad one fails (same keys together)', async () => {
    const commits: string[][] = [];
    const g = new GroupCommit<string, string>({
      maxBatch: 10,
      maxInFlight: 1,
      key: (s) => s,
      commit: async (items) => {
        commits.push(items);
        if (items.includes('bad')) throw new Error('bad item');
        return items.map((s) => s.toUpperCase());
      },
    });
    const hold = g.submit('first'); // occupies the only slot so the next four form one group
    const results = await Promise.allSettled(['x', 'bad', 'y', 'x'].map((s) => g.submit(s)));
    await hold;
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      'X',
      'bad item',
      'Y',
      'X',
    ]);
    expect(commits.slice(1)).toEqual([['x', 'bad', 'y', 'x'], ['x', 'x'], ['bad'], ['y']]);
  });

  it('when the database is unreachable, then the whole group fails at once without item-by-item retries', async () => {
    let calls = 0;
    const g = new GroupCommit<number, number>({
      maxBatch: 10,
      maxInFlight: 1,
      commit: async () => {
        calls++;
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      },
    });
    const hold = g.submit(0).catch(() => undefined);
    const results = await Promise.allSettled([1, 2, 3].map((i) => g.submit(i)));
    await hold;
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(calls).toBe(2); // the holder's group and the three's group, nothing item by item
  });

  it('when select holds items back for a running group, then they go once it ends, and groups in flight never overlap', async () => {
    const busy = new Set<string>();
    let overlap = false;
    const g = new GroupCommit<string, string>({
      maxBatch: 2,
      maxInFlight: 3,
      select: (waiting, limit) => waiting.filter((s) => !busy.has(s[0])).slice(0, limit),
      onStart: (items) => {
        if (items.some((s) => busy.has(s[0]))) overlap = true;
        for (const s of items) busy.add(s[0]);
      },
      onEnd: (items) => {
        for (const s of items) busy.delete(s[0]);
      },
      commit: async (items) => {
        await tick();
        return items;
      },
    });
    const all = ['a1', 'a2', 'b1', 'a3', 'c1', 'b2', 'a4'];
    expect(await Promise.all(all.map((s) => g.submit(s)))).toEqual(all);
    expect(overlap).toBe(false);
  });

  describe('linger', () => {
    const recorder = (lingerMs: number, maxBatch = 10) => {
      const groups: { items: number[]; at: number }[] = [];
      const g = new GroupCommit<number, number>({
        maxBatch,
        maxInFlight: 2,
        lingerMs,
        commit: async (items) => {
          groups.push({ items, at: Date.now() });
          await tick();
          return items;
        },
      });
      return { g, groups };
    };

    it('when items trickle in, then a group waits for its oldest item to have waited lingerMs and takes what came meanwhile', async () => {
      const { g, groups } = recorder(60);
      const t0 = Date.now();
      const done = [g.submit(1)];
      await new Promise((r) => setTimeout(r, 20));
      done.push(g.submit(2));
      await new Promise((r) => setTimeout(r, 20));
      done.push(g.submit(3));
      expect(await Promise.all(done)).toEqual([1, 2, 3]);
      expect(groups.map((x) => x.items)).toEqual([[1, 2, 3]]);
      expect(groups[0].at - t0).toBeGreaterThanOrEqual(55);
    });

    it('when a group is full, then it starts at once', async () => {
      const { g, groups } = recorder(10_000, 3);
      const t0 = Date.now();
      expect(await Promise.all([1, 2, 3].map((i) => g.submit(i)))).toEqual([1, 2, 3]);
      expect(groups.map((x) => x.items)).toEqual([[1, 2, 3]]);
      expect(groups[0].at - t0).toBeLessThan(1000);
    });

    it('when the oldest item has already waited lingerMs behind running groups, then the next group starts without waiting more', async () => {
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const groups: { items: number[]; at: number }[] = [];
      const g = new GroupCommit<number, number>({
        maxBatch: 10,
        maxInFlight: 1,
        lingerMs: 50,
        commit: async (items) => {
          groups.push({ items, at: Date.now() });
          if (groups.length === 1) await gate;
          return items;
        },
      });
      const first = g.submit(1);
      await new Promise((r) => setTimeout(r, 70)); // the first group has started and holds the slot
      const second = g.submit(2);
      await new Promise((r) => setTimeout(r, 80)); // 2 has waited longer than lingerMs
      const released = Date.now();
      release();
      expect(await Promise.all([first, second])).toEqual([1, 2]);
      expect(groups.map((x) => x.items)).toEqual([[1], [2]]);
      expect(groups[1].at - released).toBeLessThan(30);
    });
  });
});
