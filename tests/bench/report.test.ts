import { describe, expect, it } from 'vitest';
import { formatTable, judge, percentile } from '../../bench/lib/report.js';

// The benchmark table decides `npm run bench`'s exit code: a wrong judgement hides a miss.
describe('bench report', () => {
  it('judges a ratio target on figure ÷ baseline and a figure target on the figure', () => {
    expect(judge({ bench: 'b', metric: 'm', figure: 0.44, baseline: 1, unit: '$', target: { on: 'ratio', op: '<=', value: 0.45 } }).pass).toBe(true);
    expect(judge({ bench: 'b', metric: 'm', figure: 0.46, baseline: 1, unit: '$', target: { on: 'ratio', op: '<=', value: 0.45 } }).pass).toBe(false);
    expect(judge({ bench: 'b', metric: 'm', figure: 99, baseline: 100, unit: '%', target: { on: 'figure', op: '>=', value: 100 } }).pass).toBe(false);
    expect(judge({ bench: 'b', metric: 'm', figure: 21, baseline: 5, unit: 'ms', target: { on: 'figure', op: '<=', value: 20 } })).toMatchObject({ pass: false, ratio: 4.2 });
  });

  it('counts a row that could not be measured as a miss, and a row without a target as information', () => {
    expect(judge({ bench: 'b', metric: 'm', figure: undefined, baseline: 1, unit: '$', target: { on: 'ratio', op: '<=', value: 0.55 } }).pass).toBe(false);
    expect(judge({ bench: 'b', metric: 'm', figure: 3, baseline: undefined, unit: '$' }).pass).toBeUndefined();
  });

  it('takes nearest-rank percentiles', () => {
    const samples = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(samples, 50)).toBe(50);
    expect(percentile(samples, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
  });

  it('prints one Markdown row per result with FAIL for a miss, and the notes below', () => {
    const table = formatTable([
      judge({ bench: '1 review cost', metric: 'm', figure: 0.3, baseline: 1, unit: '$', target: { on: 'ratio', op: '<=', value: 0.45 } }),
      judge({ bench: '3 batch', metric: 'm', figure: undefined, baseline: 1, unit: '$', target: { on: 'ratio', op: '<=', value: 0.55 }, note: 'not available yet' }),
    ]);
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^\| benchmark +\| metric +\| figure +\| baseline +\| ratio +\| target +\| result +\|$/);
    expect(lines[2]).toMatch(/\| \$0\.3000 +\| \$1\.00 +\| 0\.30× +\| ≤ 0\.45× +\| pass +\|$/);
    expect(lines[3]).toMatch(/\| — +\| \$1\.00 +\| — +\| ≤ 0\.55× +\| FAIL +\|$/);
    expect(table).toContain('- 3 batch / m: not available yet');
  });
});
