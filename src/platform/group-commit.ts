import { isDatabaseUnavailable } from './errors';

/**
 * Group commit, the one batching engine of intake and processing. Items that arrive while groups
 * are being committed wait and are committed together by the next group: one statement or one
 * transaction for many requests or jobs, so the commit cost is shared. Modes:
 * - up to `maxInFlight` groups commit at once, each of at most `maxBatch` items;
 * - `select` picks the next group from the waiting items (default: the first `maxBatch`, in arrival
 *   order); it may pick fewer, or none to wait for a running group to end (processing uses this so
 *   that two groups in flight never share a SKU); `onStart`/`onEnd` bracket each group;
 * - with `lingerMs`, a group that would start with fewer than `maxBatch` items waits until its
 *   oldest item has waited that long, so that what arrives meanwhile shares it: at an even rate
 *   groups otherwise hold one item each, and every statement and commit is paid per item. Under
 *   load the oldest item has already waited longer, so nothing is added there;
 * - a failed group is committed again item by item (items with the same `key` together), so one bad
 *   item answers for itself alone; unless the database is unreachable: then every item of the group
 *   fails at once and its caller backs off.
 * Each item's promise settles with its own result or error.
 */
export interface GroupCommitOptions<I, O> {
  maxBatch: number;
  maxInFlight: number;
  /** Commits a group; returns one result per item, in the group's order. */
  commit(group: I[]): Promise<O[]>;
  select?(waiting: readonly I[], limit: number, running: number): I[] | Promise<I[]>;
  onStart?(group: I[]): void;
  onEnd?(group: I[]): void;
  /** Items with the same key are retried together after a group failed (default: each alone). */
  key?(item: I): string;
  /** How long a group that is not full may wait for its oldest item's company (default 0: not at all). */
  lingerMs?: number;
}

interface Waiter<I, O> {
  item: I;
  at: number;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit<I, O> {
  private waiting: Waiter<I, O>[] = [];
  private running = 0;
  private planning = false;
  private again = false;
  private lingering: NodeJS.Timeout | undefined;
  constructor(private readonly opts: GroupCommitOptions<I, O>) {}

  /** Resolves once the item's group has committed. */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, at: Date.now(), resolve, reject });
      void this.pump();
    });
  }

  /** Items waiting for a group. */
  get backlog(): number {
    return this.waiting.length;
  }

  private async pump(): Promise<void> {
    if (this.planning) {
      this.again = true;
      return;
    }
    this.planning = true;
    try {
      do {
        this.again = false;
        while (this.running < this.opts.maxInFlight && this.waiting.length > 0) {
          if (this.linger()) break; // the timer pumps again
          const group = await this.next();
          if (group.length === 0) break; // what waits must wait for a running group: its end pumps again
          this.start(group);
        }
      } while (this.again);
    } finally {
      this.planning = false;
    }
  }

  /** True while the next group should wait for company (a timer is then set to pump again). */
  private linger(): boolean {
    const ms = this.opts.lingerMs ?? 0;
    if (ms <= 0 || this.waiting.length >= this.opts.maxBatch) return false;
    const left = this.waiting[0].at + ms - Date.now();
    if (left <= 0) return false;
    this.lingering ??= setTimeout(() => {
      this.lingering = undefined;
      void this.pump();
    }, left);
    return true;
  }

  private async next(): Promise<Waiter<I, O>[]> {
    const { select, maxBatch } = this.opts;
    if (!select) return this.waiting.splice(0, maxBatch);
    const chosen = new Set(
      await select(
        this.waiting.map((w) => w.item),
        maxBatch,
        this.running,
      ),
    );
    const group: Waiter<I, O>[] = [];
    this.waiting = this.waiting.filter((w) =>
      chosen.has(w.item) && group.length < maxBatch ? (group.push(w), false) : true,
    );
    return group;
  }

  private start(group: Waiter<I, O>[]): void {
    const items = group.map((w) => w.item);
    this.opts.onStart?.(items);
    this.running++;
    void this.flush(group).finally(() => {
      this.opts.onEnd?.(items);
      this.running--;
      void this.pump();
    });
  }

  private async flush(group: Waiter<I, O>[]): Promise<void> {
    try {
      const results = await this.opts.commit(group.map((w) => w.item));
      group.forEach((w, i) => w.resolve(results[i]));
    } catch (err) {
      const key = this.opts.key ?? ((_: I) => Symbol('alone'));
      const parts = new Map<unknown, Waiter<I, O>[]>();
      for (const w of group) {
        const k = key(w.item);
        parts.set(k, [...(parts.get(k) ?? []), w]);
      }
      if (parts.size === 1 || isDatabaseUnavailable(err)) {
        for (const w of group) w.reject(err);
        return;
      }
      for (const part of parts.values()) {
        try {
          const results = await this.opts.commit(part.map((w) => w.item));
          part.forEach((w, i) => w.resolve(results[i]));
        } catch (e) {
          for (const w of part) w.reject(e);
        }
      }
    }
  }
}
