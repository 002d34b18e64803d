import type { Database } from 'better-sqlite3';
import { z } from 'zod';
import type { TokenUsage } from '../domain/pricing.js';

/** One priced model call. */
export interface LedgerEntry extends TokenUsage {
  readonly itemId: number | null;
  readonly stage: string;
  readonly model: string;
  readonly batch: boolean;
  readonly costUsd: number;
  readonly requestId?: string | undefined;
}

/** A time range `[from, to)` in ms epoch. */
export interface Period {
  readonly from: number;
  readonly to: number;
}

/** Dollars and calls under one key (a stage group or a model). */
export interface SpendRow {
  readonly key: string;
  readonly usd: number;
  readonly calls: number;
}

/** Token sums of one model's calls, batched or not, with what they cost. */
export interface ModelTokens extends TokenUsage {
  readonly model: string;
  readonly batch: boolean;
  readonly usd: number;
}

/** A day's spend on one stage group; `day` is the index into the days asked for. */
export interface DaySpend {
  readonly day: number;
  readonly stage: string;
  readonly usd: number;
}

/**
 * The stage a ledger row counts under in reports: rounds (`fix-2`) count under their stage
 * (`fix`), so a report has a handful of stages however many rounds ran.
 */
export const STAGE_GROUP_SQL = "coalesce(nullif(rtrim(stage, '0123456789-'), ''), stage)";

const spendRow = z.object({ key: z.string(), usd: z.number(), calls: z.number().int() });
const modelTokensRow = z.object({
  model: z.string(),
  batch: z.number().int(),
  input: z.number(),
  write5m: z.number(),
  write1h: z.number(),
  read: z.number(),
  output: z.number(),
  usd: z.number(),
});
// The alias is not `stage`: SQLite resolves a GROUP BY name to a column before an alias.
const daySpendRow = z.object({ day: z.number().int(), stage_group: z.string(), usd: z.number() });
const usdRow = z.object({ usd: z.number() });

/** The usage ledger: every model call with its tokens and dollar cost. */
export function createLedger(db: Database, now: () => number) {
  const insert = db.prepare(
    `INSERT INTO llm_calls (item_id, stage, model, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
       cache_read_tokens, output_tokens, batch, cost_usd, request_id, at)
     VALUES (@itemId, @stage, @model, @inputTokens, @cacheWrite5mTokens, @cacheWrite1hTokens,
       @cacheReadTokens, @outputTokens, @batch, @costUsd, @requestId, @at)`,
  );
  const itemTotal = db.prepare('SELECT coalesce(sum(cost_usd), 0) AS usd FROM llm_calls WHERE item_id = ?');
  const stageTotal = db.prepare('SELECT coalesce(sum(cost_usd), 0) AS usd FROM llm_calls WHERE item_id = ? AND stage = ?');
  const byStage = db.prepare('SELECT stage, sum(cost_usd) AS usd FROM llm_calls WHERE item_id = ? GROUP BY stage ORDER BY min(id)');
  const since = db.prepare('SELECT coalesce(sum(cost_usd), 0) AS usd FROM llm_calls WHERE at >= ?');
  // Report reads. Ties are broken by name so a report reads the same every time.
  const periodTotal = db.prepare('SELECT coalesce(sum(cost_usd), 0) AS usd, count(*) AS calls FROM llm_calls WHERE at >= ? AND at < ?');
  const periodByStage = db.prepare(
    `SELECT ${STAGE_GROUP_SQL} AS key, sum(cost_usd) AS usd, count(*) AS calls FROM llm_calls WHERE at >= ? AND at < ?
     GROUP BY key ORDER BY usd DESC, key`,
  );
  const periodByModel = db.prepare(
    'SELECT model AS key, sum(cost_usd) AS usd, count(*) AS calls FROM llm_calls WHERE at >= ? AND at < ? GROUP BY key ORDER BY usd DESC, key',
  );
  const periodTokens = db.prepare(
    `SELECT model, batch, sum(input_tokens) AS input, sum(cache_write_5m_tokens) AS write5m, sum(cache_write_1h_tokens) AS write1h,
       sum(cache_read_tokens) AS read, sum(output_tokens) AS output, sum(cost_usd) AS usd
     FROM llm_calls WHERE at >= ? AND at < ? GROUP BY model, batch ORDER BY model, batch`,
  );
  const periodBatch = db.prepare('SELECT coalesce(sum(cost_usd), 0) AS usd FROM llm_calls WHERE batch = 1 AND at >= ? AND at < ?');
  // An item merged twice (impossible today, but the events are append-only) counts once.
  const mergedIn = `SELECT DISTINCT item_id FROM item_events WHERE to_state = 'merged' AND at >= ? AND at < ?`;
  const periodMerges = db.prepare(`SELECT count(*) AS n FROM (${mergedIn})`);
  const mergedItemsTotal = db.prepare(`SELECT coalesce(sum(cost_usd), 0) AS usd FROM llm_calls WHERE item_id IN (${mergedIn})`);
  // What sizing estimates from: every dollar each finished (merged or rejected) item of a size
  // class cost, sizing included, newest first. The class is the "class" of its size report.
  const finishedOfClass = db.prepare(
    `SELECT coalesce((SELECT sum(c.cost_usd) FROM llm_calls c WHERE c.item_id = i.id), 0) AS usd
     FROM items i WHERE i.state IN ('merged', 'rejected') AND json_extract(i.size_report, '$.class') = ?
     ORDER BY i.updated_at DESC, i.id DESC LIMIT ?`,
  );
  // The days arrive as one JSON array of [from, to) pairs, so a month of local days (23- and
  // 25-hour ones included) is one query.
  const daily = db.prepare(
    `WITH days (day, day_from, day_to) AS (
       SELECT CAST(key AS INTEGER), json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)
     )
     SELECT d.day AS day, ${STAGE_GROUP_SQL} AS stage_group, sum(c.cost_usd) AS usd
     FROM days d JOIN llm_calls c ON c.at >= d.day_from AND c.at < d.day_to
     GROUP BY d.day, stage_group ORDER BY d.day, stage_group`,
  );
  return {
    record(entry: LedgerEntry): void {
      insert.run({ ...entry, batch: entry.batch ? 1 : 0, requestId: entry.requestId ?? null, at: now() });
    },
    /** Dollars spent on an item, all stages. */
    itemUsd(itemId: number): number {
      return (itemTotal.get(itemId) as { usd: number }).usd;
    },
    /** Dollars spent on one stage of an item. */
    stageUsd(itemId: number, stage: string): number {
      return (stageTotal.get(itemId, stage) as { usd: number }).usd;
    },
    /** Dollars per stage of an item, in the order the stages first spent. */
    itemByStage(itemId: number): Array<{ stage: string; usd: number }> {
      return byStage.all(itemId) as Array<{ stage: string; usd: number }>;
    },
    /** Dollars spent since `at` (ms epoch), all items. */
    sinceUsd(at: number): number {
      return (since.get(at) as { usd: number }).usd;
    },
    /** Dollars and calls in `period`, all items. */
    periodTotal(period: Period): { usd: number; calls: number } {
      const row = z.object({ usd: z.number(), calls: z.number().int() }).parse(periodTotal.get(period.from, period.to));
      return { usd: row.usd, calls: row.calls };
    },
    /** Dollars per stage group (see `STAGE_GROUP_SQL`) in `period`, dearest first. */
    periodByStage(period: Period): SpendRow[] {
      return periodByStage.all(period.from, period.to).map((row) => spendRow.parse(row));
    },
    /** Dollars per model in `period`, dearest first. */
    periodByModel(period: Period): SpendRow[] {
      return periodByModel.all(period.from, period.to).map((row) => spendRow.parse(row));
    },
    /** Token sums and dollars per model and batch flag in `period`: what cache savings are priced from. */
    periodTokens(period: Period): ModelTokens[] {
      return periodTokens.all(period.from, period.to).map((raw) => {
        const r = modelTokensRow.parse(raw);
        return {
          model: r.model,
          batch: r.batch === 1,
          inputTokens: r.input,
          cacheWrite5mTokens: r.write5m,
          cacheWrite1hTokens: r.write1h,
          cacheReadTokens: r.read,
          outputTokens: r.output,
          usd: r.usd,
        };
      });
    },
    /** Dollars paid for batched calls in `period` (their `cost_usd` has the batch discount in it). */
    periodBatchUsd(period: Period): number {
      return usdRow.parse(periodBatch.get(period.from, period.to)).usd;
    },
    /** Items that reached `merged` in `period`. */
    periodMerges(period: Period): number {
      return z.object({ n: z.number().int() }).parse(periodMerges.get(period.from, period.to)).n;
    },
    /** Everything ever spent on the items merged in `period`, all stages, whenever it was spent. */
    mergedItemsUsd(period: Period): number {
      return usdRow.parse(mergedItemsTotal.get(period.from, period.to)).usd;
    },
    /** What each of the newest `limit` finished (merged or rejected) items of a size class cost in all, newest first. */
    finishedItemsUsd(sizeClass: string, limit: number): number[] {
      return finishedOfClass.all(sizeClass, limit).map((row) => usdRow.parse(row).usd);
    },
    /** Dollars per day and stage group; `days` are `[from, to)` ranges, rows name them by index. */
    dailyByStage(days: readonly Period[]): DaySpend[] {
      const json = JSON.stringify(days.map((d) => [d.from, d.to]));
      return daily.all(json).map((row) => {
        const r = daySpendRow.parse(row);
        return { day: r.day, stage: r.stage_group, usd: r.usd };
      });
    },
  };
}

/** The ledger part of the store. */
export type Ledger = ReturnType<typeof createLedger>;
