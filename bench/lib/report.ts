/**
 * One row of the benchmark table and how it is judged. A benchmark measures its figure and its
 * baseline in the same run; the target applies to the ratio (figure ÷ baseline) or to the
 * figure itself (latencies, memory), as the issue states it.
 */
export interface BenchRow {
  /** Which of the six benchmarks (or the item cost report) the row belongs to. */
  readonly bench: string;
  /** What was measured, e.g. "review stage cost". */
  readonly metric: string;
  /** The figure; undefined when it could not be measured (then the row is a miss). */
  readonly figure: number | undefined;
  /** The baseline from the same run; undefined for rows that have none. */
  readonly baseline: number | undefined;
  /** How figure and baseline are printed, e.g. '$', 'ms', 'MB', 'tok', '%'. */
  readonly unit: Unit;
  /** What must hold; undefined for rows that only inform (the item cost breakdown). */
  readonly target?: Target;
  /** Why a row could not be measured, or what to know when reading it. */
  readonly note?: string;
}

/** How a figure is printed. */
export type Unit = '$' | 'ms' | 's' | 'MB' | 'tok' | '%';

/** A bound on the ratio (figure ÷ baseline) or on the figure. */
export interface Target {
  readonly on: 'ratio' | 'figure';
  readonly op: '<=' | '>=';
  readonly value: number;
}

/** A judged row. */
export interface JudgedRow extends BenchRow {
  readonly ratio: number | undefined;
  /** undefined: informational (no target). */
  readonly pass: boolean | undefined;
}

/** Ratio and pass/fail of a row; a row with a target that could not be measured is a miss. */
export function judge(row: BenchRow): JudgedRow {
  const ratio = row.figure !== undefined && row.baseline !== undefined && row.baseline !== 0 ? row.figure / row.baseline : undefined;
  if (!row.target) return { ...row, ratio, pass: undefined };
  const value = row.target.on === 'ratio' ? ratio : row.figure;
  const pass = value !== undefined && (row.target.op === '<=' ? value <= row.target.value : value >= row.target.value);
  return { ...row, ratio, pass };
}

/** A figure with its unit: `$0.4213`, `12.3 ms`, `118 MB`, `12,345 tok`. */
export function formatValue(value: number | undefined, unit: Unit): string {
  if (value === undefined) return '—';
  switch (unit) {
    case '$':
      return `$${value.toFixed(value < 1 ? 4 : 2)}`;
    case 'ms':
      return `${value.toFixed(value < 10 ? 2 : 1)} ms`;
    case 's':
      return `${value.toFixed(2)} s`;
    case 'MB':
      return `${value.toFixed(0)} MB`;
    case 'tok':
      return `${Math.round(value).toLocaleString('en-US')} tok`;
    case '%':
      return `${value.toFixed(1)} %`;
  }
}

function formatTarget(row: BenchRow): string {
  if (!row.target) return '';
  const { on, op, value } = row.target;
  const sign = op === '<=' ? '≤' : '≥';
  return on === 'ratio' ? `${sign} ${value}×` : `${sign} ${formatValue(value, row.unit)}`;
}

/** The table as Markdown (it is quoted in README.md as printed). */
export function formatTable(rows: readonly JudgedRow[]): string {
  const header = ['benchmark', 'metric', 'figure', 'baseline', 'ratio', 'target', 'result'];
  const body = rows.map((r) => [
    r.bench,
    r.metric,
    formatValue(r.figure, r.unit),
    formatValue(r.baseline, r.unit),
    r.ratio === undefined ? '—' : `${r.ratio.toFixed(r.ratio < 10 ? 2 : 1)}×`,
    formatTarget(r),
    r.pass === undefined ? 'info' : r.pass ? 'pass' : 'FAIL',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const notes = rows.filter((r) => r.note).map((r) => `- ${r.bench} / ${r.metric}: ${r.note}`);
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line), ...(notes.length > 0 ? ['', ...notes] : [])].join('\n');
}

/** Percentile `p` (0–100) of `samples`, nearest-rank. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}
