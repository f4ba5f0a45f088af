/**
 * Is a soak flat? For each numeric column of the per-minute rows after the warm-up: the median,
 * the range, the largest deviation of one minute from the median, and the drift, which is the
 * median of the last third of the minutes against the median of the first third (relative to the
 * median of all). A column may swing from one minute to the next and still have no trend; a leak,
 * a growing queue or a slowing database shows as drift. Both are reported; neither hides the other.
 */
export interface Flatness {
  column: string;
  median: number;
  min: number;
  max: number;
  /** max |x − median| / median, over the minutes (0 when every value is 0). */
  maxDeviation: number;
  /** (median of the last third − median of the first third) / median. */
  drift: number;
}

export interface FlatnessOptions {
  /** Rows (minutes) left out at the start. */
  warmup: number;
  /** Columns that grow by design (a database size): judged by their growth per row instead. */
  growth?: string[];
  /** Columns not judged (the minute's number, a counter of kills). */
  skip?: string[];
}

export const median = (xs: number[]): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/** The 99th percentile (nearest rank); 0 for no values. */
export const p99 = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] : 0;
};

const relative = (d: number, m: number) => (m === 0 ? (d === 0 ? 0 : Infinity) : d / Math.abs(m));

/** Flatness of one series of values. */
export function flatnessOf(column: string, values: number[]): Flatness {
  const m = median(values);
  const third = Math.max(1, Math.floor(values.length / 3));
  const first = median(values.slice(0, third));
  const last = median(values.slice(values.length - third));
  return {
    column,
    median: m,
    min: Math.min(...values),
    max: Math.max(...values),
    maxDeviation: values.length ? Math.max(...values.map((x) => relative(Math.abs(x - m), m))) : 0,
    drift: relative(last - first, m),
  };
}

/** Flatness of every numeric column of the rows, after the warm-up. */
export function flatness(rows: Record<string, unknown>[], opts: FlatnessOptions): Flatness[] {
  const skip = new Set(opts.skip ?? []);
  const growth = new Set(opts.growth ?? []);
  const columns = Object.keys(rows[0] ?? {}).filter((c) => !skip.has(c) && rows.every((r) => typeof r[c] === 'number'));
  const out: Flatness[] = [];
  for (const c of columns) {
    const all = rows.map((r) => r[c] as number);
    if (growth.has(c)) {
      // Growth per row: from the last warm-up row on (or from the first row without a warm-up).
      const from = Math.max(0, opts.warmup - 1);
      const steps = all.slice(from + 1).map((x, i) => +(x - all[from + i]).toFixed(3));
      if (steps.length) out.push(flatnessOf(`${c} growth per minute`, steps));
    } else {
      const kept = all.slice(opts.warmup);
      if (kept.length) out.push(flatnessOf(c, kept));
    }
  }
  return out;
}

const pct = (x: number) => (Number.isFinite(x) ? `${Math.round(x * 100)} %` : '∞');
const fmt = (x: number) => String(+x.toFixed(1));

/** The flatness as a markdown table, with a yes/no for each test at the tolerance (0.1: ±10 %). */
export function flatnessTable(items: Flatness[], tolerance = 0.1): string {
  const yes = (x: number) => (Math.abs(x) <= tolerance ? 'yes' : 'no');
  const head = `| column | median | range | max deviation of a minute | within ±${Math.round(tolerance * 100)} %? | drift, last third vs first | within ±${Math.round(tolerance * 100)} %? |\n|---|---:|---|---:|---|---:|---|`;
  const body = items
    .map(
      (f) =>
        `| ${f.column} | ${fmt(f.median)} | ${fmt(f.min)}–${fmt(f.max)} | ${pct(f.maxDeviation)} | ${yes(f.maxDeviation)} | ${f.drift > 0 ? '+' : ''}${pct(f.drift)} | ${yes(f.drift)} |`,
    )
    .join('\n');
  return `${head}\n${body}\n`;
}
