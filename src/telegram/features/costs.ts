import { Composer, InputFile } from 'grammy';
import type { ModelPrice } from '../../domain/pricing.js';
import { buildCostReport, CHART_DAYS, dailySpendByStage, type CostReport, type DailySpend, type PeriodCosts, type Spend } from '../../pipeline/cost-report.js';
import type { Cards } from '../../store/cards.js';
import type { Ledger } from '../../store/ledger.js';
import { renderCostChart } from '../cost-chart.js';
import type { BotContext } from '../context.js';
import { escapeHtml, formatDuration } from '../format.js';
import type { Respond } from '../respond.js';

/** What `/costs` needs. */
export interface CostsDeps {
  readonly store: { readonly ledger: Ledger; readonly cards: Pick<Cards, 'decisionTimes'> };
  readonly prices: Readonly<Record<string, ModelPrice>>;
  readonly timeZone: string;
  /** `NIGHTSHIFT_HOURLY_RATE`: prices the human's decision time; unset leaves it unpriced. */
  readonly hourlyRateUsd?: number | undefined;
  readonly respond: Respond;
  readonly now: () => number;
  /** Renders the chart. @default renderCostChart */
  readonly renderChart?: (series: DailySpend) => Promise<Buffer>;
  /** Days in the chart. @default CHART_DAYS (30) */
  readonly chartDays?: number;
}

/** The photo's file name. */
export const CHART_FILE_NAME = 'costs.png';

/**
 * Dollars as `$1.23`; amounts under a cent keep four decimals (`$0.0042`) so a cheap day does
 * not read as free, and negatives get a real minus sign.
 */
export function formatUsd(usd: number): string {
  const abs = Math.abs(usd);
  const digits = abs > 0 && abs < 0.01 ? 4 : 2;
  const text = abs.toFixed(digits);
  return `${usd < 0 && Number(text) !== 0 ? '−' : ''}$${text}`;
}

// "claude-opus-4-5-20251101" is long on a phone; the family and version are what matter.
function shortModel(model: string): string {
  return model.replace(/^claude-/, '').replace(/-\d{8}$/, '');
}

function spendList(rows: readonly Spend[], label: (name: string) => string): string {
  return rows.map((r) => `${escapeHtml(label(r.name))} ${formatUsd(r.usd)}`).join(' · ');
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function periodLines(title: string, p: PeriodCosts, hourlyRateUsd: number | undefined): string[] {
  const lines: string[] = [];
  if (p.calls === 0) {
    lines.push(`<b>${title}</b> · nothing spent`);
  } else {
    lines.push(`<b>${title}</b> · ${formatUsd(p.totalUsd)} in ${plural(p.calls, 'call')}`);
    lines.push(`Stages: ${spendList(p.byStage, (s) => s)}`);
    lines.push(`Models: ${spendList(p.byModel, shortModel)}`);
    const saved = [
      ...(p.cacheSavingsUsd !== 0 ? [`cache ${formatUsd(p.cacheSavingsUsd)}`] : []),
      ...(p.batchSavingsUsd !== 0 ? [`batch ${formatUsd(p.batchSavingsUsd)}`] : []),
    ];
    if (saved.length > 0) lines.push(`Saved: ${saved.join(' · ')}`);
    if (p.unpricedModels.length > 0) lines.push(`<i>No price for ${escapeHtml(p.unpricedModels.join(', '))}: its cache savings are left out.</i>`);
  }
  if (p.merges > 0) {
    // Per PR: the period's spend spread over its merges, and what the merged items cost over
    // their whole life (their build may predate the period).
    lines.push(`Merged: ${plural(p.merges, 'PR')} · ${formatUsd(p.usdPerMerge ?? 0)} per PR · lifetime ${formatUsd(p.mergedItemsUsd / p.merges)} per PR`);
  }
  if (p.human.decisions > 0) {
    const rate = Number.isInteger(hourlyRateUsd) ? `$${hourlyRateUsd}` : formatUsd(hourlyRateUsd ?? 0);
    const priced = p.human.usd === undefined || hourlyRateUsd === undefined ? '' : ` (${formatUsd(p.human.usd)} at ${rate}/h)`;
    lines.push(
      `You: ${plural(p.human.decisions, 'decision')} · median ${formatDuration(p.human.medianMs ?? 0)} · ${formatDuration(p.human.totalMs)} in all${priced}`,
    );
  }
  if (p.allInUsdPerMerge !== undefined) lines.push(`All-in per merged PR: ${formatUsd(p.allInUsdPerMerge)}`);
  return lines;
}

/** The `/costs` text: today, this week and this month, a few short lines each. */
export function costsText(report: CostReport): string {
  const rate = report.hourlyRateUsd;
  return [
    `<b>Costs</b> <i>(${escapeHtml(report.timeZone)})</i>`,
    '',
    ...periodLines('Today', report.today, rate),
    '',
    ...periodLines('This week', report.week, rate),
    '',
    ...periodLines('This month', report.month, rate),
  ].join('\n');
}

/**
 * `/costs`: the report as text (through `respond`, so a redelivered update answers once), then
 * the daily chart as a photo. The chart is sent directly rather than through the outbox, so it
 * may arrive before the text; when it fails the text still stands and the failure is logged.
 */
export function costsFeature(deps: CostsDeps) {
  const composer = new Composer<BotContext>();
  const renderChart = deps.renderChart ?? ((series: DailySpend) => renderCostChart(series));
  composer.command('costs', async (ctx) => {
    const now = deps.now();
    const fresh = deps.respond(ctx, () => ({ html: costsText(buildCostReport(deps, now)) }));
    if (!fresh) return;
    try {
      const series = dailySpendByStage(deps, now, deps.chartDays ?? CHART_DAYS);
      // Thirty empty days are not worth a picture.
      if (series.rows.length === 0) return;
      const png = await renderChart(series);
      await ctx.replyWithPhoto(new InputFile(png, CHART_FILE_NAME));
    } catch (err) {
      ctx.log.error({ err }, 'could not send the cost chart; the text was sent');
    }
  });
  return composer;
}
