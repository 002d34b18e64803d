import type { Logger } from 'pino';
import type { ModelPrice } from '../domain/pricing.js';
import { BATCH_RECONCILE_AFTER_MS, isUnknownBatch, type BatchClient } from '../llm/batch-client.js';
import { reconcileBatchIntent, recordEndedBatch, recordLostBatch } from '../llm/metered-batch.js';
import type { Store } from '../store/open-store.js';

/** How often each pending batch is polled (`NIGHTSHIFT_BATCH_POLL_SECONDS`). @default 60000 */
export const BATCH_POLL_MS = 60_000;

/** What the batch poller needs. */
export interface BatchPollerDeps {
  readonly store: Store;
  readonly client: Pick<BatchClient, 'poll' | 'find'>;
  readonly prices: Readonly<Record<string, ModelPrice>>;
  /** Resumes the stage of an item whose batch ended (the runner's `resume`: a no-op for an item that ended or is paused). */
  readonly resume: (itemId: number) => void;
  readonly log: Logger;
}

/**
 * Polls the pending Message Batches in SQLite, also those a previous process submitted. When
 * one has ended, its results and their ledger rows (at the batch price) are recorded in one
 * transaction, and the item's stage is resumed to take them. The batch of an item cancelled
 * meanwhile is still recorded (it was paid); nothing resumes. A poll that fails is logged and
 * tried again at the next tick (the SDK has retried the transport already); a batch the API no
 * longer knows is marked failed, and the stage falls back to normal calls.
 *
 * Before that, each submission whose outcome was unclear (an open intent at least
 * `BATCH_RECONCILE_AFTER_MS` old, so its create can no longer be in flight) is reconciled: its
 * batch, once found ended, is adopted and recorded like one polled; when none can be it, the
 * intent is dropped and the item resumed to submit again; while candidates still run, it stays.
 *
 * Resuming after the end is recorded never loses a wake-up: a stage checks for a pending batch
 * and returns `waiting` with no await in between, so it has settled before a poll answer (I/O)
 * can be handled, and a run that starts later sees the batch ended.
 */
export function createBatchPoller(deps: BatchPollerDeps) {
  const { store, log } = deps;
  return {
    /** Polls every pending batch once, oldest first. Never rejects. */
    async tick(): Promise<void> {
      let intents;
      let pending;
      try {
        intents = store.batches.intentsOlderThan(BATCH_RECONCILE_AFTER_MS);
        pending = store.batches.pending();
      } catch (err) {
        log.error({ err }, 'could not read the pending batches; the next poll tries again');
        return;
      }
      for (const intent of intents) {
        const ilog = log.child({ nonce: intent.nonce, itemId: intent.itemId, step: intent.step });
        try {
          const reconciled = await reconcileBatchIntent({ store, prices: deps.prices, batches: deps.client }, intent);
          if (reconciled.kind === 'undecided') {
            ilog.info({ running: reconciled.running }, 'an unclear batch submission may be one of these running batches; looking again when they end');
            continue;
          }
          if (reconciled.kind === 'adopted') {
            ilog.warn({ batchId: reconciled.batchId, ...reconciled.recorded, usd: Number(reconciled.recorded.usd.toFixed(6)) }, 'found the batch of an unclear submission; results recorded');
          } else if (reconciled.kind === 'absent') {
            ilog.warn('an unclear batch submission created no batch; the step will be submitted again');
          }
          if (intent.itemId !== null) {
            clearWait(store, intent.itemId);
            deps.resume(intent.itemId);
          }
        } catch (err) {
          ilog.warn({ err }, 'could not look for the batch of an unclear submission; the next poll tries again');
        }
      }
      for (const batch of pending) {
        const blog = log.child({ batchId: batch.id, itemId: batch.itemId, step: batch.step });
        try {
          let state;
          try {
            state = await deps.client.poll(batch.id);
          } catch (error) {
            if (!isUnknownBatch(error)) throw error;
            // Wrong key, or archived: polling again will not help; the stage asks by normal calls.
            const lost = store.transaction(() => {
              const ended = recordLostBatch(store, batch.id);
              if (ended) clearWait(store, batch.itemId);
              return ended;
            });
            if (lost) blog.error({ err: error }, 'Anthropic does not know this batch; its requests will be made as normal calls');
            if (batch.itemId !== null) deps.resume(batch.itemId);
            continue;
          }
          if (state.kind === 'pending') continue;
          const recorded = store.transaction(() => {
            const written = recordEndedBatch(store, deps.prices, batch.id, state.results);
            if (written) clearWait(store, batch.itemId);
            return written;
          });
          if (recorded) blog.info({ ...recorded, usd: Number(recorded.usd.toFixed(6)) }, 'batch ended; results recorded');
          if (batch.itemId !== null) deps.resume(batch.itemId);
        } catch (err) {
          blog.warn({ err }, 'could not poll the batch; the next poll tries again');
        }
      }
    },
  };
}

/** The batch poller. */
export type BatchPoller = ReturnType<typeof createBatchPoller>;

/** The item no longer waits by the clock: its results are in (see the runner's `waiting`). */
function clearWait(store: Store, itemId: number | null): void {
  if (itemId !== null) store.items.setNotBefore(itemId, null);
}
