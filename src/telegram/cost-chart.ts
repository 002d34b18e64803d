import type { TopLevelSpec } from 'vega-lite';
import type { DailySpend } from '../pipeline/cost-report.js';

// vega, vega-lite and resvg (a native addon) are imported when a chart is drawn, not when the
// bot starts: a platform without resvg's binary loses the chart, never the bot or the text.

/** Width of the plot area in CSS pixels (axes, title and legend come on top). @default 720 */
export const CHART_WIDTH_PX = 720;
/** Height of the plot area in CSS pixels. @default 360 */
export const CHART_HEIGHT_PX = 360;
/** Device pixels per CSS pixel of the PNG, so it stays sharp on a phone screen. @default 2 */
export const CHART_SCALE = 2;
/** The font axis text asks for; resvg falls back to the first system font without it. */
export const CHART_FONT = 'DejaVu Sans';

/** Options of `renderCostChart`. */
export interface ChartOptions {
  /** Use the fonts installed on the machine; without any, the chart is drawn without text. @default true */
  readonly loadSystemFonts?: boolean;
}

/** The vega-lite spec of the chart: one bar per local day, stacked by stage group. */
export function costChartSpec(series: DailySpend): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `Spend per day by stage, last ${series.days.length} days`, subtitle: series.timeZone, anchor: 'start' },
    width: CHART_WIDTH_PX,
    height: CHART_HEIGHT_PX,
    background: 'white',
    data: { values: series.rows.map((r) => ({ ...r })) },
    mark: { type: 'bar' },
    encoding: {
      x: {
        field: 'day',
        type: 'ordinal',
        // Every day is on the axis, also those without spend.
        scale: { domain: [...series.days] },
        // Date-only ISO strings parse as UTC midnight, so UTC formatting shows the local date.
        axis: { title: null, labelAngle: -60, labelExpr: "utcFormat(toDate(datum.value), '%d %b')" },
      },
      y: { aggregate: 'sum', field: 'usd', type: 'quantitative', stack: 'zero', axis: { title: 'USD', format: '$.2f' } },
      color: { field: 'stage', type: 'nominal', scale: { domain: [...series.stages] }, legend: { title: 'Stage' } },
    },
    config: { font: CHART_FONT, view: { stroke: null } },
  };
}

/** The chart as SVG text (vega in process, no browser and no canvas). */
export async function costChartSvg(series: DailySpend): Promise<string> {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vegaLite.compile(costChartSpec(series)).spec), { renderer: 'none', logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * A PNG of daily spend stacked by stage: vega-lite → vega → SVG → PNG with resvg, off the main
 * thread. Axis text needs a system font (`fonts-dejavu-core` on Debian); without one the bars
 * are still drawn.
 */
export async function renderCostChart(series: DailySpend, options: ChartOptions = {}): Promise<Buffer> {
  const svg = await costChartSvg(series);
  const { renderAsync } = await import('@resvg/resvg-js');
  const image = await renderAsync(svg, {
    font: { loadSystemFonts: options.loadSystemFonts ?? true, defaultFontFamily: CHART_FONT, sansSerifFamily: CHART_FONT },
    fitTo: { mode: 'zoom', value: CHART_SCALE },
    background: 'white',
  });
  return image.asPng();
}
