import type { Database } from 'better-sqlite3';
import { z } from 'zod';

/** Where a batch stands: `pending` at Anthropic, `ended` with its results stored, `failed` (the API lost it). */
export type BatchStatus = 'pending' | 'ended' | 'failed';

/** A submitted Message Batch, as persisted before anything else happens after its creation. */
export interface NewBatch {
  /** The API's batch id. */
  readonly id: string;
  /** The nonce that ends each custom id as sent (see {@link wireCustomId}); absent: sent as stored. */
  readonly nonce?: string;
  readonly itemId: number | null;
  /** Ledger stage its calls are billed to. */
  readonly stage: string;
  /** The step of the stage it is for, e.g. `round-1-reviewers`. */
  readonly step: string;
  readonly requests: ReadonlyArray<{
    readonly customId: string;
    /** The request as sent (JSON-serializable). */
    readonly request: unknown;
    /** Its worst case at the batch price, reserved against the budgets while the batch is pending. */
    readonly worstUsd: number;
  }>;
}

/** A stored batch. */
export interface Batch {
  readonly id: string;
  /** The nonce its custom ids were sent with, or null (sent as stored). */
  readonly nonce: string | null;
  readonly itemId: number | null;
  readonly stage: string;
  readonly step: string;
  readonly status: BatchStatus;
  readonly createdAt: number;
  readonly endedAt: number | null;
}

/**
 * A batch about to be submitted, persisted before the create is sent: its requests' worst cases
 * are reserved (like a pending batch's) until {@link Batches.settleIntent} or {@link Batches.dropIntent}.
 */
export interface BatchIntent {
  /** Ends every custom id sent, so this intent's batch can be told from any other. */
  readonly nonce: string;
  readonly itemId: number | null;
  readonly stage: string;
  readonly step: string;
  readonly requests: NewBatch['requests'];
  readonly createdAt: number;
}

/** A stored request of a batch, with its result once the batch has ended. */
export interface BatchRequestRow {
  readonly customId: string;
  readonly request: unknown;
  readonly worstUsd: number;
  /** The result as recorded (JSON), null until the batch has ended (and for a failed batch). */
  readonly result: unknown;
  /** When the stage took the result, or null. */
  readonly usedAt: number | null;
}

const batchRow = z.object({
  id: z.string(),
  nonce: z.string().nullable(),
  item_id: z.number().nullable(),
  stage: z.string(),
  step: z.string(),
  status: z.enum(['pending', 'ended', 'failed']),
  created_at: z.number(),
  ended_at: z.number().nullable(),
});
const requestRow = z.object({
  custom_id: z.string(),
  request: z.string(),
  worst_usd: z.number(),
  result: z.string().nullable(),
  used_at: z.number().nullable(),
});
const usdRow = z.object({ usd: z.number() });
const intentRow = z.object({
  nonce: z.string(),
  item_id: z.number().nullable(),
  stage: z.string(),
  step: z.string(),
  requests: z.string(),
  created_at: z.number(),
});
const intentRequests = z.array(z.object({ customId: z.string(), request: z.unknown(), worstUsd: z.number() }));

/** The custom id a request is sent with: its stored one, then `-<nonce>` when the batch has one. */
export function wireCustomId(customId: string, nonce: string | null | undefined): string {
  return nonce ? `${customId}-${nonce}` : customId;
}

function toIntent(row: unknown): BatchIntent {
  const r = intentRow.parse(row);
  return { nonce: r.nonce, itemId: r.item_id, stage: r.stage, step: r.step, requests: intentRequests.parse(JSON.parse(r.requests)), createdAt: r.created_at };
}

function toBatch(row: unknown): Batch {
  const r = batchRow.parse(row);
  return { id: r.id, nonce: r.nonce, itemId: r.item_id, stage: r.stage, step: r.step, status: r.status, createdAt: r.created_at, endedAt: r.ended_at };
}

function toRequest(row: unknown): BatchRequestRow {
  const r = requestRow.parse(row);
  return {
    customId: r.custom_id,
    request: JSON.parse(r.request) as unknown,
    worstUsd: r.worst_usd,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    usedAt: r.used_at,
  };
}

/** Message Batches and their requests: what is pending, what is reserved for it, what came back. */
export function createBatches(db: Database, now: () => number) {
  const insertBatch = db.prepare(`INSERT INTO batches (id, nonce, item_id, stage, step, status, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)`);
  const insertRequest = db.prepare('INSERT INTO batch_requests (batch_id, custom_id, request, worst_usd) VALUES (?, ?, ?, ?)');
  const byId = db.prepare('SELECT * FROM batches WHERE id = ?');
  const pending = db.prepare(`SELECT * FROM batches WHERE status = 'pending' ORDER BY created_at, id`);
  const pendingOfItem = db.prepare(`SELECT * FROM batches WHERE status = 'pending' AND item_id = ? ORDER BY created_at, id LIMIT 1`);
  // rowid: two batches of one step (an orphan's replacement) can share a created_at.
  const latestOfStep = db.prepare('SELECT * FROM batches WHERE item_id = ? AND step = ? ORDER BY rowid DESC LIMIT 1');
  const requestsOf = db.prepare('SELECT * FROM batch_requests WHERE batch_id = ? ORDER BY rowid');
  const setResult = db.prepare('UPDATE batch_requests SET result = ? WHERE batch_id = ? AND custom_id = ?');
  const end = db.prepare(`UPDATE batches SET status = ?, ended_at = ? WHERE id = ? AND status = 'pending'`);
  const markUsed = db.prepare('UPDATE batch_requests SET used_at = ? WHERE batch_id = ? AND custom_id = ? AND used_at IS NULL');
  // Open intents reserve like pending batches: their batch may exist and be billed.
  const reservedAll = db.prepare(
    `SELECT (SELECT coalesce(sum(r.worst_usd), 0) FROM batch_requests r JOIN batches b ON b.id = r.batch_id WHERE b.status = 'pending')
          + (SELECT coalesce(sum(worst_usd), 0) FROM batch_intents) AS usd`,
  );
  const reservedItem = db.prepare(
    `SELECT (SELECT coalesce(sum(r.worst_usd), 0) FROM batch_requests r JOIN batches b ON b.id = r.batch_id WHERE b.status = 'pending' AND b.item_id = @item)
          + (SELECT coalesce(sum(worst_usd), 0) FROM batch_intents WHERE item_id = @item) AS usd`,
  );
  const reservedStage = db.prepare(
    `SELECT (SELECT coalesce(sum(r.worst_usd), 0) FROM batch_requests r JOIN batches b ON b.id = r.batch_id
             WHERE b.status = 'pending' AND b.item_id = @item AND b.stage = @stage)
          + (SELECT coalesce(sum(worst_usd), 0) FROM batch_intents WHERE item_id = @item AND stage = @stage) AS usd`,
  );
  const insertIntent = db.prepare('INSERT INTO batch_intents (nonce, item_id, stage, step, requests, worst_usd, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const intentByNonce = db.prepare('SELECT * FROM batch_intents WHERE nonce = ?');
  const intentOfItem = db.prepare('SELECT * FROM batch_intents WHERE item_id = ? ORDER BY created_at, nonce LIMIT 1');
  const intentsBefore = db.prepare('SELECT * FROM batch_intents WHERE created_at <= ? ORDER BY created_at, nonce');
  const deleteIntent = db.prepare('DELETE FROM batch_intents WHERE nonce = ?');

  const insert = (batch: NewBatch): void => {
    insertBatch.run(batch.id, batch.nonce ?? null, batch.itemId, batch.stage, batch.step, now());
    for (const r of batch.requests) insertRequest.run(batch.id, r.customId, JSON.stringify(r.request), r.worstUsd);
  };

  return {
    /** Records a submitted batch and its requests, pending, in one transaction (nested in the caller's, if any). */
    create(batch: NewBatch): Batch {
      return db.transaction(() => {
        insert(batch);
        return toBatch(byId.get(batch.id));
      })();
    },
    /**
     * Records that a batch is about to be submitted, before the create is sent: from now on its
     * requests' worst cases are reserved, also across a restart, until the intent is settled
     * (the batch is known) or dropped (it is known not to exist).
     */
    openIntent(intent: Omit<BatchIntent, 'createdAt'>): BatchIntent {
      const worst = intent.requests.reduce((sum, r) => sum + r.worstUsd, 0);
      insertIntent.run(intent.nonce, intent.itemId, intent.stage, intent.step, JSON.stringify(intent.requests), worst, now());
      return toIntent(intentByNonce.get(intent.nonce));
    },
    /** The open intent with this nonce, or undefined. */
    intent(nonce: string): BatchIntent | undefined {
      const row = intentByNonce.get(nonce);
      return row === undefined ? undefined : toIntent(row);
    },
    /** The item's oldest open intent: a submission whose batch is not known yet. */
    intentOfItem(itemId: number): BatchIntent | undefined {
      const row = intentOfItem.get(itemId);
      return row === undefined ? undefined : toIntent(row);
    },
    /** Open intents at least `ageMs` old, oldest first: those whose submission has had time to end. */
    intentsOlderThan(ageMs: number): BatchIntent[] {
      return intentsBefore.all(now() - ageMs).map(toIntent);
    },
    /**
     * The intent's batch is known (the API answered with its id, or reconciliation found it): the
     * batch is recorded, pending, with the intent's nonce, and the intent closed, in one
     * transaction (nested in the caller's, if any). Idempotent: a batch already recorded is
     * returned as it is, and an intent already closed is no error.
     */
    settleIntent(nonce: string, batch: Omit<NewBatch, 'nonce'>): Batch {
      return db.transaction(() => {
        if (byId.get(batch.id) === undefined) insert({ ...batch, nonce });
        deleteIntent.run(nonce);
        return toBatch(byId.get(batch.id));
      })();
    },
    /** The intent's batch is known not to exist (the API refused it, or reconciliation found none): its reservation ends. False if it was not open. */
    dropIntent(nonce: string): boolean {
      return deleteIntent.run(nonce).changes === 1;
    },
    /** Whether a batch with this API id is recorded. */
    has(id: string): boolean {
      return byId.get(id) !== undefined;
    },
    /** The batch with this id, or undefined. */
    get(id: string): Batch | undefined {
      const row = byId.get(id);
      return row === undefined ? undefined : toBatch(row);
    },
    /** Every pending batch, oldest first. */
    pending(): Batch[] {
      return pending.all().map(toBatch);
    },
    /** The item's oldest pending batch, if it waits for one. */
    pendingOfItem(itemId: number): Batch | undefined {
      const row = pendingOfItem.get(itemId);
      return row === undefined ? undefined : toBatch(row);
    },
    /** The newest batch submitted for this step of the item, whatever its status. */
    latestOfStep(itemId: number, step: string): Batch | undefined {
      const row = latestOfStep.get(itemId, step);
      return row === undefined ? undefined : toBatch(row);
    },
    /** The batch's requests in submission order. */
    requests(batchId: string): BatchRequestRow[] {
      return requestsOf.all(batchId).map(toRequest);
    },
    /**
     * Ends a pending batch: stores each request's result (by custom id) and the new status,
     * which releases its reservation. False (and nothing written) when it was not pending,
     * so recording an end twice is harmless. Callers record the ledger rows in the same transaction.
     */
    end(batchId: string, status: Exclude<BatchStatus, 'pending'>, results: ReadonlyMap<string, unknown> = new Map()): boolean {
      return db.transaction(() => {
        if (end.run(status, now(), batchId).changes !== 1) return false;
        for (const [customId, result] of results) setResult.run(JSON.stringify(result), batchId, customId);
        return true;
      })();
    },
    /** Records that the stage took this request's result. */
    markUsed(batchId: string, customId: string): void {
      markUsed.run(now(), batchId, customId);
    },
    /**
     * Dollars reserved by pending batches and open intents (every request's worst case): of all
     * of them, of one item's, or of one stage of one item's.
     */
    reservedUsd(itemId?: number, stage?: string): number {
      const row = itemId === undefined ? reservedAll.get() : stage === undefined ? reservedItem.get({ item: itemId }) : reservedStage.get({ item: itemId, stage });
      return usdRow.parse(row).usd;
    },
  };
}

/** The batch part of the store. */
export type Batches = ReturnType<typeof createBatches>;
