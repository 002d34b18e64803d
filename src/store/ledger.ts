import type { Database } from 'better-sqlite3';
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
  };
}

/** The ledger part of the store. */
export type Ledger = ReturnType<typeof createLedger>;
