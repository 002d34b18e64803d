import { afterEach, describe, expect, it } from 'vitest';
import { buildCostReport, dailySpendByStage, weekStart, type PeriodCosts } from '../../src/pipeline/cost-report.js';
import { costUsd, priceFor, type TokenUsage } from '../../src/domain/pricing.js';
import type { Decider } from '../../src/store/cards.js';
import type { Store } from '../../src/store/open-store.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

const TZ = 'Europe/Amsterdam';
const ALICE: Decider = { id: 111, name: '@alice' };
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const utc = (iso: string) => Date.parse(iso);

// Wednesday 25 November 2026, 10:00 in Amsterdam (CET, UTC+1).
const NOW = utc('2026-11-25T09:00:00Z');
const TODAY = { from: utc('2026-11-24T23:00:00Z'), to: utc('2026-11-25T23:00:00Z') };
const WEEK = { from: utc('2026-11-22T23:00:00Z'), to: utc('2026-11-29T23:00:00Z') };
const MONTH = { from: utc('2026-10-31T23:00:00Z'), to: utc('2026-11-30T23:00:00Z') };

interface Row extends TokenUsage {
  at: number;
  stage: string;
  model: string;
  batch: boolean;
  itemId: number | null;
  costUsd: number;
}

function usage(u: Partial<TokenUsage>): TokenUsage {
  return { inputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 0, ...u };
}

const stores: Store[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
});

/** A store with calls, merges and decisions spread over the month, and the rows it holds. */
function seeded() {
  const { store, clock } = makeStore(utc('2026-10-01T00:00:00Z'));
  stores.push(store);
  const rows: Row[] = [];
  const call = (at: string, stage: string, model: string, u: Partial<TokenUsage>, opts: { batch?: boolean; itemId?: number } = {}) => {
    const tokens = usage(u);
    const row: Row = {
      ...tokens,
      at: utc(at),
      stage,
      model,
      batch: opts.batch ?? false,
      itemId: opts.itemId ?? null,
      costUsd: costUsd(tokens, priceFor(model)!, { batch: opts.batch ?? false }),
    };
    clock.now = row.at;
    store.ledger.record(row);
    rows.push(row);
  };
  const item = () => store.items.create(makeNewItem()).id;
  const merge = (itemId: number, at: string) => {
    clock.now = utc(at);
    for (const state of ['building', 'reviewing', 'ready', 'merged'] as const) store.items.transition(itemId, state);
  };
  const decide = (itemId: number, sentAt: string, decidedAt: string) => {
    clock.now = utc(sentAt);
    const [outboxId] = store.outbox.enqueue({ chatId: 111, text: 'card' });
    const card = store.cards.create({ kind: 'review', itemId, repo: 'me/app', chatId: 111 });
    store.cards.shown(card.id, { outboxId: outboxId!, html: 'card' });
    store.outbox.markSent(outboxId!, 1000 + card.id);
    clock.now = utc(decidedAt);
    store.cards.decide(card.id, 'approve', 'merged', ALICE);
  };

  const a = item();
  const b = item();
  const c = item();
  // Last month in Amsterdam (23:30 on 31 October), part of item A's cost all the same.
  call('2026-10-31T22:30:00Z', 'build', 'claude-opus-4-5', { inputTokens: 40_000, outputTokens: 8_000 }, { itemId: a });
  // 00:30 on 1 November in Amsterdam: this month, though still October in UTC.
  call('2026-10-31T23:30:00Z', 'fix-2', 'claude-sonnet-4-5', { inputTokens: 9_000, cacheReadTokens: 60_000, outputTokens: 1_500 }, { itemId: c });
  // 23:59 on Sunday 22 November: this month, last week.
  call('2026-11-22T22:59:59Z', 'build', 'claude-sonnet-4-5', { inputTokens: 12_000, outputTokens: 2_000 }, { itemId: b });
  // Monday: this week.
  call('2026-11-23T10:00:00Z', 'fix-1', 'claude-opus-4-5', { inputTokens: 2_000, cacheWrite1hTokens: 30_000, outputTokens: 3_000 }, { itemId: b });
  // Today.
  call('2026-11-25T07:00:00Z', 'build', 'claude-opus-4-5', { inputTokens: 10_000, cacheWrite5mTokens: 20_000, cacheReadTokens: 200_000, outputTokens: 5_000 }, { itemId: a });
  call('2026-11-25T07:30:00Z', 'review', 'claude-sonnet-4-5', { inputTokens: 50_000, cacheReadTokens: 100_000, outputTokens: 2_000 }, { itemId: a, batch: true });
  call('2026-11-25T08:00:00Z', 'drift', 'claude-opus-4-5', { inputTokens: 3_000, outputTokens: 700 });

  merge(c, '2026-10-31T22:45:00Z'); // last month
  merge(b, '2026-11-23T12:00:00Z');
  merge(a, '2026-11-25T08:45:00Z');
  decide(c, '2026-10-31T22:40:00Z', '2026-10-31T22:44:00Z'); // last month
  decide(b, '2026-11-23T11:00:00Z', '2026-11-23T11:02:00Z'); // 2 minutes
  decide(a, '2026-11-25T08:40:00Z', '2026-11-25T08:45:00Z'); // 5 minutes
  clock.now = NOW;
  return { store, rows, items: { a, b, c } };
}

// What a period should say, computed from the rows as inserted, independently of the SQL.
function expected(rows: readonly Row[], period: { from: number; to: number }) {
  const inPeriod = rows.filter((r) => r.at >= period.from && r.at < period.to);
  const sum = (xs: readonly Row[]) => xs.reduce((s, r) => s + r.costUsd, 0);
  const group = (key: (r: Row) => string) => {
    const m = new Map<string, number>();
    for (const r of inPeriod) m.set(key(r), (m.get(key(r)) ?? 0) + r.costUsd);
    return Object.fromEntries(m);
  };
  const cache = inPeriod.reduce((s, r) => {
    const plain = costUsd(usage({ inputTokens: r.inputTokens + r.cacheReadTokens + r.cacheWrite5mTokens + r.cacheWrite1hTokens, outputTokens: r.outputTokens }), priceFor(r.model)!, { batch: r.batch });
    return s + plain - r.costUsd;
  }, 0);
  const batch = inPeriod.filter((r) => r.batch).reduce((s, r) => s + costUsd(r, priceFor(r.model)!) - r.costUsd, 0);
  return { total: sum(inPeriod), calls: inPeriod.length, byStage: group((r) => r.stage.replace(/-\d+$/, '')), byModel: group((r) => r.model), cache, batch };
}

function expectMatches(period: PeriodCosts, want: ReturnType<typeof expected>): void {
  expect(period.totalUsd).toBeCloseTo(want.total, 10);
  expect(period.calls).toBe(want.calls);
  expect(Object.fromEntries(period.byStage.map((s) => [s.name, s.usd]))).toEqual(mapCloseTo(want.byStage));
  expect(Object.fromEntries(period.byModel.map((s) => [s.name, s.usd]))).toEqual(mapCloseTo(want.byModel));
  expect(period.cacheSavingsUsd).toBeCloseTo(want.cache, 10);
  expect(period.batchSavingsUsd).toBeCloseTo(want.batch, 10);
  // Dearest first.
  expect(period.byStage.map((s) => s.usd)).toEqual([...period.byStage.map((s) => s.usd)].sort((x, y) => y - x));
}

function mapCloseTo(m: Record<string, number>) {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, expect.closeTo(v, 10)]));
}

describe('buildCostReport', () => {
  it('reports today, this week from Monday and this month in local time, equal to the ledger rows', () => {
    const { store, rows } = seeded();
    const report = buildCostReport({ store, prices: {}, timeZone: TZ }, NOW);

    expect([report.today.from, report.today.to]).toEqual([TODAY.from, TODAY.to]);
    expect([report.week.from, report.week.to]).toEqual([WEEK.from, WEEK.to]);
    expect([report.month.from, report.month.to]).toEqual([MONTH.from, MONTH.to]);
    expectMatches(report.today, expected(rows, TODAY));
    expectMatches(report.week, expected(rows, WEEK));
    expectMatches(report.month, expected(rows, MONTH));
    // The row at 23:30 UTC on 31 October is this month; the one at 22:30 is not.
    expect(report.month.calls).toBe(6);
    expect(report.week.calls).toBe(4);
    expect(report.today.calls).toBe(3);
    expect(report.today.byStage.map((s) => s.name).sort()).toEqual(['build', 'drift', 'review']);
    expect(report.month.byStage.find((s) => s.name === 'fix')?.calls).toBe(2);
  });

  it('prices cache reads as saving 90 % and cache writes as costing extra, batch rows at half', () => {
    const { store } = seeded();
    const report = buildCostReport({ store, prices: {}, timeZone: TZ }, NOW);
    // Today: Opus reads 200k (save 0.9 × $5/M) and writes 20k to the 5-minute cache (0.25 × $5/M
    // extra); Sonnet reads 100k in a batch (0.9 × $3/M, halved).
    const want = (200_000 * 0.9 * 5 - 20_000 * 0.25 * 5 + (100_000 * 0.9 * 3) / 2) / 1_000_000;
    expect(report.today.cacheSavingsUsd).toBeCloseTo(want, 12);
    // The week adds Monday's 1-hour write: 30k × 1.0 × $5/M extra.
    expect(report.week.cacheSavingsUsd).toBeCloseTo(want - (30_000 * 5) / 1_000_000, 12);
    // The batched review was recorded at half price, so it saved what it cost.
    const review = (50_000 * 3 + 100_000 * 0.1 * 3 + 2_000 * 15) / 1_000_000 / 2;
    expect(report.today.batchSavingsUsd).toBeCloseTo(review, 12);
    expect(report.today.unpricedModels).toEqual([]);
  });

  it('counts merges in the period, the cost per merge, and what the merged items cost in all', () => {
    const { store, rows, items } = seeded();
    const report = buildCostReport({ store, prices: {}, timeZone: TZ }, NOW);
    const itemUsd = (id: number) => rows.filter((r) => r.itemId === id).reduce((s, r) => s + r.costUsd, 0);

    expect(report.today.merges).toBe(1);
    expect(report.today.usdPerMerge).toBeCloseTo(expected(rows, TODAY).total, 10);
    // Item A's build last month counts toward what item A cost.
    expect(report.today.mergedItemsUsd).toBeCloseTo(itemUsd(items.a), 10);
    expect(report.week.merges).toBe(2);
    expect(report.week.usdPerMerge).toBeCloseTo(expected(rows, WEEK).total / 2, 10);
    expect(report.week.mergedItemsUsd).toBeCloseTo(itemUsd(items.a) + itemUsd(items.b), 10);
    // Item C merged at 23:45 on 31 October, Amsterdam time: last month.
    expect(report.month.merges).toBe(2);
  });

  it('reports decisions and time to decide, and prices that time with an hourly rate', () => {
    const { store, rows } = seeded();
    const unpriced = buildCostReport({ store, prices: {}, timeZone: TZ }, NOW);
    expect(unpriced.week.human).toEqual({ decisions: 2, medianMs: 3.5 * MINUTE, totalMs: 7 * MINUTE, usd: undefined });
    expect(unpriced.week.allInUsdPerMerge).toBeUndefined();

    const report = buildCostReport({ store, prices: {}, timeZone: TZ, hourlyRateUsd: 60 }, NOW);
    expect(report.today.human).toEqual({ decisions: 1, medianMs: 5 * MINUTE, totalMs: 5 * MINUTE, usd: 5 });
    expect(report.week.human.usd).toBeCloseTo(7, 10);
    expect(report.week.allInUsdPerMerge).toBeCloseTo((expected(rows, WEEK).total + 7) / 2, 10);
    expect(report.month.human.decisions).toBe(2);
  });

  it('leaves out what it cannot price and divides by no merges', () => {
    const { store, clock } = makeStore(NOW - HOUR);
    stores.push(store);
    store.ledger.record({ itemId: null, stage: 'build', model: 'local-llama', ...usage({ cacheReadTokens: 1_000_000 }), batch: false, costUsd: 0.3 });
    clock.now = NOW;
    const report = buildCostReport({ store, prices: {}, timeZone: TZ, hourlyRateUsd: 50 }, NOW);
    expect(report.today.totalUsd).toBe(0.3);
    expect(report.today.cacheSavingsUsd).toBe(0);
    expect(report.today.unpricedModels).toEqual(['local-llama']);
    expect(report.today.merges).toBe(0);
    expect(report.today.usdPerMerge).toBeUndefined();
    expect(report.today.allInUsdPerMerge).toBeUndefined();
    expect(report.today.human).toEqual({ decisions: 0, medianMs: undefined, totalMs: 0, usd: 0 });
    // An override prices it.
    const priced = buildCostReport({ store, prices: { 'local-llama': { inputPerMTok: 1, outputPerMTok: 2 } }, timeZone: TZ }, NOW);
    expect(priced.today.cacheSavingsUsd).toBeCloseTo(0.9, 12);
  });
});

describe('weekStart', () => {
  it('is local Monday midnight, also in a week whose Sunday changes the clock', () => {
    expect(weekStart(NOW, TZ)).toBe(WEEK.from);
    // Monday itself, just after midnight.
    expect(weekStart(WEEK.from, TZ)).toBe(WEEK.from);
    expect(weekStart(WEEK.from - 1, TZ)).toBe(utc('2026-11-15T23:00:00Z'));
    // New York falls back on Sunday 1 November 2026: that week began on Monday at 00:00 EDT.
    expect(weekStart(utc('2026-11-01T15:00:00Z'), 'America/New_York')).toBe(utc('2026-10-26T04:00:00Z'));
    expect(weekStart(utc('2026-11-04T15:00:00Z'), 'America/New_York')).toBe(utc('2026-11-02T05:00:00Z'));
    // Amsterdam springs forward on Sunday 29 March 2026: that week began on Monday at 00:00 CET.
    expect(weekStart(utc('2026-03-29T12:00:00Z'), TZ)).toBe(utc('2026-03-22T23:00:00Z'));
  });
});

describe('dailySpendByStage', () => {
  it('has every local day of the last 30, and buckets calls by their local date', () => {
    const { store, rows } = seeded();
    const series = dailySpendByStage({ store, timeZone: TZ }, NOW);
    expect(series.days).toHaveLength(30);
    expect(series.days[0]).toBe('2026-10-27');
    expect(series.days.at(-1)).toBe('2026-11-25');
    const byDay = (day: string) => Object.fromEntries(series.rows.filter((r) => r.day === day).map((r) => [r.stage, r.usd]));
    const at = (iso: string) => rows.find((r) => r.at === utc(iso))!.costUsd;
    expect(byDay('2026-10-31')).toEqual({ build: at('2026-10-31T22:30:00Z') });
    expect(byDay('2026-11-01')).toEqual({ fix: at('2026-10-31T23:30:00Z') });
    expect(byDay('2026-11-22')).toEqual({ build: at('2026-11-22T22:59:59Z') });
    expect(byDay('2026-11-25')).toEqual({ build: at('2026-11-25T07:00:00Z'), review: at('2026-11-25T07:30:00Z'), drift: at('2026-11-25T08:00:00Z') });
    const total = series.rows.reduce((s, r) => s + r.usd, 0);
    expect(total).toBeCloseTo(rows.reduce((s, r) => s + r.costUsd, 0), 10);
    expect(new Set(series.stages)).toEqual(new Set(['build', 'fix', 'review', 'drift']));
  });

  it('steps over a DST change without skipping or doubling a day', () => {
    const { store } = seeded();
    // 25 October 2026 lasts 25 hours in Amsterdam.
    const series = dailySpendByStage({ store, timeZone: TZ }, utc('2026-10-28T12:00:00Z'), 7);
    expect(series.days).toEqual(['2026-10-22', '2026-10-23', '2026-10-24', '2026-10-25', '2026-10-26', '2026-10-27', '2026-10-28']);
  });
});
