import { dayStart, monthStart, nextDayStart, nextMonthStart } from '../domain/peak-hours.js';
import { BATCH_MULTIPLIER, CACHE_READ_MULTIPLIER, CACHE_WRITE_1H_MULTIPLIER, CACHE_WRITE_5M_MULTIPLIER, priceFor, type ModelPrice } from '../domain/pricing.js';
import { HOUR_MS, zonedParts } from '../domain/zoned-time.js';
import type { Cards } from '../store/cards.js';
import type { Ledger, ModelTokens, Period } from '../store/ledger.js';

/** What a cost report reads. */
export interface CostReportDeps {
  readonly store: { readonly ledger: Ledger; readonly cards: Pick<Cards, 'decisionTimes'> };
  /** Price overrides by exact model id (`Config.prices`); cache savings are priced with them. */
  readonly prices: Readonly<Record<string, ModelPrice>>;
  /** IANA zone whose local days, weeks (from Monday) and months the periods are. */
  readonly timeZone: string;
  /** What an hour of the human's time is worth (`NIGHTSHIFT_HOURLY_RATE`); without it human time is not priced. */
  readonly hourlyRateUsd?: number | undefined;
}

/** Dollars under one name (a stage group or a model). */
export interface Spend {
  readonly name: string;
  readonly usd: number;
  readonly calls: number;
}

/** The human side of a period: review cards a person decided. */
export interface HumanTime {
  readonly decisions: number;
  /** Median ms from a card reaching the phone to the tap; undefined without decisions. */
  readonly medianMs: number | undefined;
  readonly totalMs: number;
  /** `totalMs` at the hourly rate; undefined without a rate. */
  readonly usd: number | undefined;
}

/** One period of the report. Every dollar figure is a sum over ledger rows of the period. */
export interface PeriodCosts extends Period {
  readonly totalUsd: number;
  readonly calls: number;
  /** By stage group (`fix-2` counts as `fix`), dearest first. */
  readonly byStage: readonly Spend[];
  /** By model id, dearest first. */
  readonly byModel: readonly Spend[];
  /**
   * What the cached input would have cost as plain input minus what it cost: reads save 90 %,
   * writes cost 25 % (5-minute) or 100 % (1-hour) more, so this is negative when the cache was
   * written more than it was read.
   */
  readonly cacheSavingsUsd: number;
  /** Models in the ledger without a known price: their cache savings are left out. */
  readonly unpricedModels: readonly string[];
  /** What the batched calls would have cost at the normal price minus what they cost. */
  readonly batchSavingsUsd: number;
  /** Items that reached `merged` in the period. */
  readonly merges: number;
  /** `totalUsd / merges`; undefined without merges. */
  readonly usdPerMerge: number | undefined;
  /** Everything ever spent on the items merged in the period (their build may predate it). */
  readonly mergedItemsUsd: number;
  readonly human: HumanTime;
  /** (`totalUsd` + the human time's dollars) / merges; undefined without a rate or without merges. */
  readonly allInUsdPerMerge: number | undefined;
}

/** Today, this week (from Monday) and this month, in the report's time zone. */
export interface CostReport {
  readonly now: number;
  readonly timeZone: string;
  readonly hourlyRateUsd: number | undefined;
  readonly today: PeriodCosts;
  readonly week: PeriodCosts;
  readonly month: PeriodCosts;
}

/** Daily spend by stage group, oldest day first, for the chart. */
export interface DailySpend {
  readonly timeZone: string;
  /** Each day's local date as `YYYY-MM-DD`, oldest first, every day present (spent or not). */
  readonly days: readonly string[];
  /** Stage groups that spent anything in these days, dearest first. */
  readonly stages: readonly string[];
  /** Only the (day, stage) pairs that spent. */
  readonly rows: ReadonlyArray<{ readonly day: string; readonly stage: string; readonly usd: number }>;
}

/** Days in the chart by default. @default 30 */
export const CHART_DAYS = 30;

/** The first instant of the local Monday of `now`'s week (epoch ms). */
export function weekStart(now: number, timeZone: string): number {
  // Step back day by day: a local day may last 23 or 25 hours, so no fixed ms count is safe.
  const back = (zonedParts(now, timeZone).weekday + 6) % 7;
  let start = dayStart(now, timeZone);
  for (let i = 0; i < back; i++) start = dayStart(start - 1, timeZone);
  return start;
}

/** The first instant of the local Monday after `now`'s week (epoch ms). */
function nextWeekStart(now: number, timeZone: string): number {
  let next = weekStart(now, timeZone);
  for (let i = 0; i < 7; i++) next = nextDayStart(next, timeZone);
  return next;
}

// Cache savings of one (model, batch) group of calls at the input price: every cached token
// is compared with the same token sent as plain input.
function cacheSavings(tokens: ModelTokens, price: ModelPrice): number {
  const perToken = (price.inputPerMTok / 1_000_000) * (tokens.batch ? BATCH_MULTIPLIER : 1);
  const saved =
    tokens.cacheReadTokens * (1 - CACHE_READ_MULTIPLIER) -
    tokens.cacheWrite5mTokens * (CACHE_WRITE_5M_MULTIPLIER - 1) -
    tokens.cacheWrite1hTokens * (CACHE_WRITE_1H_MULTIPLIER - 1);
  return saved * perToken;
}

function median(sorted: readonly number[]): number | undefined {
  if (sorted.length === 0) return undefined;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function periodCosts(deps: CostReportDeps, period: Period): PeriodCosts {
  const { ledger } = deps.store;
  const total = ledger.periodTotal(period);
  const toSpend = (rows: ReturnType<Ledger['periodByStage']>): Spend[] => rows.map((r) => ({ name: r.key, usd: r.usd, calls: r.calls }));
  let cacheSavingsUsd = 0;
  const unpriced = new Set<string>();
  for (const tokens of ledger.periodTokens(period)) {
    const price = priceFor(tokens.model, deps.prices);
    if (price) cacheSavingsUsd += cacheSavings(tokens, price);
    else unpriced.add(tokens.model);
  }
  // Batched rows are recorded at the discounted price (`costUsd(…, { batch: true })`), so the
  // normal price is cost / BATCH_MULTIPLIER, and the saving needs no price list.
  const batchSavingsUsd = ledger.periodBatchUsd(period) * (1 / BATCH_MULTIPLIER - 1);
  const merges = ledger.periodMerges(period);
  const times = deps.store.cards.decisionTimes(period.from, period.to);
  const totalMs = times.reduce((a, b) => a + b, 0);
  const humanUsd = deps.hourlyRateUsd === undefined ? undefined : (totalMs / HOUR_MS) * deps.hourlyRateUsd;
  return {
    ...period,
    totalUsd: total.usd,
    calls: total.calls,
    byStage: toSpend(ledger.periodByStage(period)),
    byModel: toSpend(ledger.periodByModel(period)),
    cacheSavingsUsd,
    unpricedModels: [...unpriced],
    batchSavingsUsd,
    merges,
    usdPerMerge: merges > 0 ? total.usd / merges : undefined,
    mergedItemsUsd: ledger.mergedItemsUsd(period),
    human: { decisions: times.length, medianMs: median(times), totalMs, usd: humanUsd },
    allInUsdPerMerge: merges > 0 && humanUsd !== undefined ? (total.usd + humanUsd) / merges : undefined,
  };
}

/**
 * Spend, savings, merges and human time for today, this week (from Monday) and this month in
 * `deps.timeZone`, read from the ledger at `now`. Each period runs to its natural end (midnight,
 * next Monday, the 1st), which with a clock that only moves forward is the same as up to `now`.
 */
export function buildCostReport(deps: CostReportDeps, now: number): CostReport {
  const tz = deps.timeZone;
  return {
    now,
    timeZone: tz,
    hourlyRateUsd: deps.hourlyRateUsd,
    today: periodCosts(deps, { from: dayStart(now, tz), to: nextDayStart(now, tz) }),
    week: periodCosts(deps, { from: weekStart(now, tz), to: nextWeekStart(now, tz) }),
    month: periodCosts(deps, { from: monthStart(now, tz), to: nextMonthStart(now, tz) }),
  };
}

function isoDate(at: number, timeZone: string): string {
  const p = zonedParts(at, timeZone);
  return `${String(p.year).padStart(4, '0')}-${String(p.month).padStart(2, '0')}-${String(p.day).padStart(2, '0')}`;
}

/** Spend per local day and stage group for the last `days` days up to and including `now`'s. */
export function dailySpendByStage(deps: Pick<CostReportDeps, 'store' | 'timeZone'>, now: number, days = CHART_DAYS): DailySpend {
  const tz = deps.timeZone;
  const periods: Period[] = [];
  let to = nextDayStart(now, tz);
  for (let from = dayStart(now, tz); periods.length < days; from = dayStart(from - 1, tz)) {
    periods.unshift({ from, to });
    to = from;
  }
  const labels = periods.map((p) => isoDate(p.from, tz));
  const rows = deps.store.ledger.dailyByStage(periods).map((r) => ({ day: labels[r.day]!, stage: r.stage, usd: r.usd }));
  const byStage = new Map<string, number>();
  for (const r of rows) byStage.set(r.stage, (byStage.get(r.stage) ?? 0) + r.usd);
  const stages = [...byStage].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([stage]) => stage);
  return { timeZone: tz, days: labels, stages, rows };
}
