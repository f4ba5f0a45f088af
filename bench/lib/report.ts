export interface Figure {
  value: number | null;
  unit: string;
  ceiling_name?: string;
  ceiling?: number | null;
  /** ours / ceiling */
  ratio?: number | null;
  target: string;
  met: boolean | null;
  note?: string;
}

export type Figures = Record<string, Figure>;

const fmt = (v: number | null | undefined, unit = ''): string => {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (unit === 'ratio' || unit === 'share') return v.toFixed(2);
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(Math.abs(v) >= 10 ? 1 : 2);
};

/** A figure measured against a ceiling from the same run. */
export function againstCeiling(
  value: number | null,
  unit: string,
  ceilingName: string,
  ceiling: number | null,
  minRatio: number,
  note?: string,
): Figure {
  const ratio = value !== null && ceiling ? value / ceiling : null;
  return {
    value,
    unit,
    ceiling_name: ceilingName,
    ceiling,
    ratio,
    target: `ratio >= ${minRatio}`,
    met: ratio === null ? null : ratio >= minRatio,
    note,
  };
}

export function atMost(value: number | null, unit: string, max: number, note?: string): Figure {
  return {
    value,
    unit,
    target: `<= ${max}${unit === 'share' ? '' : ` ${unit}`}`,
    met: value === null ? null : value <= max,
    note,
  };
}

/** A figure shown beside a ceiling from the same run, with no target of its own. */
export function beside(
  value: number | null,
  unit: string,
  ceilingName: string,
  ceiling: number | null,
  note?: string,
): Figure {
  return { ...againstCeiling(value, unit, ceilingName, ceiling, 0, note), target: '(reported)', met: null };
}

/** ours / ceiling within ±tolerance of 1 (the same load on two databases). */
export function near(
  value: number | null,
  unit: string,
  ceilingName: string,
  ceiling: number | null,
  tolerance: number,
  note?: string,
): Figure {
  const f = againstCeiling(value, unit, ceilingName, ceiling, 0, note);
  return {
    ...f,
    target: `ratio within 1 ± ${tolerance}`,
    met: f.ratio === null || f.ratio === undefined ? null : Math.abs(f.ratio - 1) <= tolerance,
  };
}

export function info(value: number | null, unit: string, note?: string): Figure {
  return { value, unit, target: '(reported)', met: null, note };
}

/** The table printed to stdout and pasted into docs/benchmarks.md between the bench:table markers. */
export function markdownTable(figures: Figures): string {
  const rows = ['| figure | ours | ceiling (same run) | ratio | target | met |', '|---|---:|---|---:|---|:---:|'];
  for (const [name, f] of Object.entries(figures)) {
    const ceiling = f.ceiling_name ? `${f.ceiling_name} = ${fmt(f.ceiling)}` : '—';
    const value =
      f.value === null ? 'not run' : `${fmt(f.value, f.unit)}${f.unit && f.unit !== 'share' ? ` ${f.unit}` : ''}`;
    rows.push(
      `| ${name} | ${value} | ${ceiling} | ${fmt(f.ratio, 'ratio')} | ${f.target} | ${f.met === null ? '—' : f.met ? 'yes' : 'NO'} |`,
    );
  }
  return rows.join('\n');
}
