import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { DailySpend } from '../../src/pipeline/cost-report.js';
import { CHART_HEIGHT_PX, CHART_SCALE, CHART_WIDTH_PX, costChartSvg, renderCostChart } from '../../src/telegram/cost-chart.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The PNG's size from its IHDR chunk; throws when the bytes are not a PNG. */
function pngSize(png: Buffer): { width: number; height: number } {
  if (!png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG: wrong signature');
  if (png.subarray(12, 16).toString('latin1') !== 'IHDR') throw new Error('not a PNG: IHDR is not the first chunk');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** A month of days ending on 25 November 2026, with spend on most of them. */
function makeSeries(overrides: Partial<DailySpend> = {}): DailySpend {
  const days = Array.from({ length: 30 }, (_, i) => new Date(Date.UTC(2026, 9, 27 + i)).toISOString().slice(0, 10));
  const rows = days.flatMap((day, i) =>
    i % 3 === 0
      ? []
      : [
          { day, stage: 'build', usd: 1 + (i % 5) * 0.4 },
          { day, stage: 'review', usd: 0.3 + (i % 4) * 0.2 },
        ],
  );
  return { timeZone: 'Europe/Amsterdam', days, stages: ['build', 'review'], rows, ...overrides };
}

// Debian's fonts-dejavu-core; the chart names this family first.
const hasDejaVu = existsSync('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf');

describe('renderCostChart', () => {
  it('renders a PNG of a sane size, at twice the chart size', async () => {
    const png = await renderCostChart(makeSeries());
    const { width, height } = pngSize(png);
    // The plot area plus axes, title and legend around it.
    expect(width).toBeGreaterThan(CHART_WIDTH_PX * CHART_SCALE);
    expect(width).toBeLessThan(CHART_WIDTH_PX * CHART_SCALE * 1.5);
    expect(height).toBeGreaterThan(CHART_HEIGHT_PX * CHART_SCALE);
    expect(height).toBeLessThan(CHART_HEIGHT_PX * CHART_SCALE * 1.8);
  });

  it('still renders the bars when the machine has no font at all', async () => {
    const png = await renderCostChart(makeSeries(), { loadSystemFonts: false });
    expect(pngSize(png).width).toBeGreaterThan(CHART_WIDTH_PX * CHART_SCALE);
    const empty = await renderCostChart(makeSeries({ rows: [], stages: [] }), { loadSystemFonts: false });
    // Bars are drawn: the image carries more than the empty frame does.
    expect(png.length).toBeGreaterThan(empty.length + 1000);
  });

  it.skipIf(!hasDejaVu)('draws the axis text with a system font', async () => {
    const withText = await renderCostChart(makeSeries());
    const withoutText = await renderCostChart(makeSeries(), { loadSystemFonts: false });
    expect(withText.equals(withoutText)).toBe(false);
    expect(withText.length).toBeGreaterThan(withoutText.length);
  });

  it('labels every day, the dollar axis and each stage', async () => {
    const svg = await costChartSvg(makeSeries());
    expect(svg.startsWith('<svg')).toBe(true);
    // A day without spend (27 October) is on the axis too.
    for (const label of ['27 Oct', '01 Nov', '25 Nov', 'build', 'review', 'Europe/Amsterdam', '$0.00']) expect(svg).toContain(label);
  });
});
