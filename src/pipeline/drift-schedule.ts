import type { Logger } from 'pino';
import type { Checkpoint } from '../store/checkpoints.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import type { DriftOutcome, DriftReport } from './drift-checkpoint.js';

/** Least time between two attempts at a checkpoint whose model call said "retry later". @default 10 minutes */
export const DRIFT_RETRY_MS = 10 * 60_000;

/**
 * Counts merges per repo and, every `every` merges, takes a drift checkpoint. A checkpoint is
 * a row before it is a model call, so one a crash or an outage interrupted is taken on a later
 * tick; checkpoints run one at a time, beside the item runs.
 */
export function createDriftSchedule(deps: {
  store: Store;
  /** Merges per checkpoint; 0 turns checkpoints off. */
  every: number;
  run: (checkpoint: Checkpoint, signal: AbortSignal) => Promise<DriftOutcome>;
  present: (checkpoint: Checkpoint, report: DriftReport) => void;
  failed: (checkpoint: Checkpoint, reason: string) => void;
  now: () => number;
  log: Logger;
}) {
  const { store, log } = deps;
  const abort = new AbortController();
  const lastTry = new Map<number, number>();
  let chain: Promise<void> = Promise.resolve();
  const inFlight = new Set<number>();

  function take(checkpoint: Checkpoint): void {
    if (inFlight.has(checkpoint.id) || abort.signal.aborted) return;
    inFlight.add(checkpoint.id);
    chain = chain.then(async () => {
      try {
        lastTry.set(checkpoint.id, deps.now());
        const outcome = await deps.run(checkpoint, abort.signal);
        if (abort.signal.aborted) return;
        switch (outcome.kind) {
          case 'done':
            // The card is written with the checkpoint's end, so a crash cannot lose it.
            store.transaction(() => {
              store.checkpoints.finish(checkpoint.id, 'done', outcome.report);
              deps.present(checkpoint, outcome.report);
            });
            log.info({ repo: checkpoint.repo, checkpointId: checkpoint.id, onTrack: outcome.report.onTrack }, 'drift checkpoint taken');
            return;
          case 'retry-later':
            log.warn({ checkpointId: checkpoint.id, reason: outcome.reason }, 'drift checkpoint will be retried');
            return;
          case 'failed':
            store.transaction(() => {
              store.checkpoints.finish(checkpoint.id, 'failed', { reason: outcome.reason });
              deps.failed(checkpoint, outcome.reason);
            });
            log.warn({ checkpointId: checkpoint.id, reason: outcome.reason }, 'drift checkpoint failed');
            return;
        }
      } catch (err) {
        log.error({ err, checkpointId: checkpoint.id }, 'drift checkpoint crashed; will retry');
      } finally {
        inFlight.delete(checkpoint.id);
      }
    });
  }

  return {
    /** Counts a merge; starts a checkpoint when the repo reached its next multiple. */
    afterMerge(item: Item): void {
      if (deps.every <= 0) return;
      const total = store.checkpoints.mergedCount(item.repo);
      const last = store.checkpoints.last(item.repo);
      if (total - (last?.mergesTotal ?? 0) < deps.every) return;
      take(store.checkpoints.create(item.repo, total));
    },
    /** Takes checkpoints left pending (after a restart, or a retry-later whose wait is over). */
    tick(): void {
      for (const checkpoint of store.checkpoints.pending()) {
        if (deps.now() - (lastTry.get(checkpoint.id) ?? 0) >= DRIFT_RETRY_MS) take(checkpoint);
      }
    },
    /** Settles when the checkpoints in hand are done; for tests and shutdown. */
    idle(): Promise<void> {
      return chain;
    },
    async stop(): Promise<void> {
      abort.abort();
      await chain;
    },
  };
}

/** The drift schedule. */
export type DriftSchedule = ReturnType<typeof createDriftSchedule>;
