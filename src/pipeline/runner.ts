import type { Logger } from 'pino';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import type { StageOutcome } from './build-stage.js';
import type { ItemNotifier } from './item-events.js';

/** First wait before an item whose stage said "retry later" runs again; doubles each time. @default 60000 */
export const RETRY_LATER_BASE_MS = 60_000;
/** Longest such wait. @default 30 minutes */
export const RETRY_LATER_MAX_MS = 30 * 60_000;

/** The answer to /run. */
export type StartResult =
  | { readonly kind: 'started'; readonly item: Item }
  | { readonly kind: 'busy'; readonly item: Item }
  | { readonly kind: 'empty' };

/** Runs items through their stages, one at a time. */
export interface Runner {
  /** Claims the oldest queued item and starts it (synchronously claims; the work runs after). */
  startNext(): StartResult;
  /** Starts items a crash left in a working state, from their last checkpoint. */
  resumeInterrupted(): void;
  /** Runs the review of an item sent back to `reviewing` (its PR head moved): now, or after the run in hand. */
  resume(itemId: number): void;
  /** The item ended outside the runner (/cancel): abort its run if it is the one in hand, and clean up its workspace. */
  itemEnded(itemId: number): void;
  /** Aborts the run in hand (it stays resumable) and waits for it to wind down. */
  stop(): Promise<void>;
  /** Settles when the current run (if any) has finished; for tests and shutdown. */
  idle(): Promise<void>;
}

/**
 * The pipeline runner. A stage's outcome decides the item's next state: `done` moves it on,
 * `retry-later` (rate limits, overload, broken connections) puts it back in the queue without
 * counting against it, `failed` ends in `failed` with the reason told to the user.
 */
export function createRunner(deps: {
  store: Store;
  build: (item: Item, signal: AbortSignal) => Promise<StageOutcome>;
  /** Review → triage → fix; runs on items in `reviewing` or `fixing`. */
  review: (item: Item, signal: AbortSignal) => Promise<StageOutcome>;
  notifier: ItemNotifier;
  /** Removes what an ended item left behind (its worktree). Must not throw. */
  cleanup: (itemId: number) => Promise<void>;
  log: Logger;
}): Runner {
  const { store, notifier, log } = deps;
  let current: { item: Item; done: Promise<void>; abort: AbortController } | undefined;
  const abort = new AbortController();
  const retryTimers = new Set<NodeJS.Timeout>();
  const retryCounts = new Map<number, number>();
  // Interrupted reviews waiting for the one run slot.
  const pendingResumes: number[] = [];

  function start(item: Item): void {
    const itemAbort = new AbortController();
    const signal = AbortSignal.any([abort.signal, itemAbort.signal]);
    const done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => run(item, signal));
    current = { item, done, abort: itemAbort };
    void done.finally(() => {
      if (current?.item.id === item.id) current = undefined;
      // The next interrupted review still waiting (items cancelled meanwhile are skipped).
      while (!abort.signal.aborted && !current && pendingResumes.length > 0) {
        const resumed = store.items.get(pendingResumes.shift()!);
        if (resumed && (resumed.state === 'reviewing' || resumed.state === 'fixing')) start(resumed);
      }
    });
  }

  async function run(item: Item, signal: AbortSignal): Promise<void> {
    const ilog = log.child({ itemId: item.id });
    // building → (PR) → reviewing ⇄ fixing → ready, one stage after the other in one run.
    for (let state = item.state; ; state = store.items.get(item.id)?.state ?? 'cancelled') {
      const stage = state === 'building' ? 'build' : state === 'reviewing' || state === 'fixing' ? 'review' : undefined;
      if (!stage) return;
      notifier.notify(item, { kind: 'started', stage });
      let outcome: StageOutcome;
      try {
        outcome = await (stage === 'build' ? deps.build : deps.review)(item, signal);
      } catch (error) {
        ilog.error({ err: error, stage }, 'stage crashed');
        outcome = { kind: 'failed', reason: error instanceof Error ? error.message : String(error) };
      }
      // Shutting down: the item keeps its state and resumes from its checkpoint on the next start.
      if (abort.signal.aborted) return;
      try {
        if (!settle(item, stage, state, outcome, ilog)) return;
      } catch (error) {
        ilog.error({ err: error }, 'could not record the outcome of the stage; the item resumes on the next start');
        return;
      }
    }
  }

  /** Applies a stage's outcome; true when the item should go on to its next stage now. */
  function settle(item: Item, stage: 'build' | 'review', from: Item['state'], outcome: StageOutcome, ilog: Logger): boolean {
    const now = store.items.get(item.id)?.state;
    if (now !== from && !(stage === 'review' && (now === 'reviewing' || now === 'fixing'))) {
      // Cancelled (or otherwise moved) while it ran: its new state stands.
      ilog.info({ outcome: outcome.kind }, 'the item left its stage while it ran; outcome not applied');
      void deps.cleanup(item.id);
      return false;
    }
    switch (outcome.kind) {
      case 'done': {
        retryCounts.delete(item.id);
        if (stage === 'build') {
          store.items.transition(item.id, 'reviewing', 'pull request opened');
          ilog.info('item built; reviewing');
          return true;
        }
        if (now === 'fixing') store.items.transition(item.id, 'reviewing', 'fix reviewed');
        store.items.transition(item.id, 'ready', 'reviewed, triaged and fixed');
        ilog.info('item reviewed; ready for the human');
        notifier.notify(store.items.get(item.id)!, { kind: 'ready', itemUsd: store.ledger.itemUsd(item.id) });
        return false;
      }
      case 'retry-later': {
        // A build goes back to the queue; a review keeps its state and is resumed in place.
        if (now === 'building') store.items.transition(item.id, 'queued', outcome.reason);
        const count = (retryCounts.get(item.id) ?? 0) + 1;
        retryCounts.set(item.id, count);
        const delay = Math.min(RETRY_LATER_MAX_MS, RETRY_LATER_BASE_MS * 2 ** (count - 1));
        ilog.warn({ reason: outcome.reason, retryInMs: delay }, 'will retry the item later');
        notifier.notify(store.items.get(item.id)!, { kind: 'retry-later', reason: outcome.reason, retryInMs: delay });
        const fire = (): void => {
          retryTimers.delete(timer);
          // Busy with another item: try again once that one has had its turn.
          if (current) {
            timer = setTimeout(fire, RETRY_LATER_BASE_MS);
            timer.unref();
            retryTimers.add(timer);
            return;
          }
          const again = store.items.get(item.id);
          if (again && (again.state === 'reviewing' || again.state === 'fixing')) start(again);
          else startNext();
        };
        let timer = setTimeout(fire, delay);
        timer.unref();
        retryTimers.add(timer);
        return false;
      }
      case 'failed': {
        retryCounts.delete(item.id);
        const failed = store.items.transition(item.id, 'failed', outcome.reason);
        ilog.warn({ reason: outcome.reason }, 'item failed');
        notifier.notify(failed, { kind: 'failed', reason: outcome.reason, itemUsd: store.ledger.itemUsd(item.id) });
        return false;
      }
    }
  }

  function startNext(): StartResult {
    if (abort.signal.aborted) return { kind: 'empty' };
    if (current) return { kind: 'busy', item: current.item };
    const claimed = store.transaction(() => {
      const next = store.items.oldestQueued();
      return next && store.items.transition(next.id, 'building', 'run started');
    });
    if (!claimed) return { kind: 'empty' };
    start(claimed);
    return { kind: 'started', item: claimed };
  }

  return {
    startNext,
    resumeInterrupted() {
      const interrupted = store.items.listActive();
      const [first, ...rest] = interrupted;
      if (rest.length > 0) {
        // Only one runs at a time: interrupted builds go back to the queue, their work kept;
        // interrupted reviews are resumed one after the other.
        for (const item of rest) if (item.state === 'building') store.items.transition(item.id, 'queued', 'interrupted; waiting for its turn');
        pendingResumes.push(...rest.filter((i) => i.state !== 'building').map((i) => i.id));
      }
      if (first) {
        log.info({ itemId: first.id }, 'resuming an item interrupted by a restart');
        start(first);
      }
    },
    resume(itemId) {
      if (abort.signal.aborted) return;
      const item = store.items.get(itemId);
      if (!item || !(item.state === 'reviewing' || item.state === 'fixing')) return;
      if (current) {
        if (current.item.id !== itemId && !pendingResumes.includes(itemId)) pendingResumes.push(itemId);
        return;
      }
      start(item);
    },
    itemEnded(itemId) {
      if (current?.item.id === itemId) current.abort.abort(new Error('cancelled'));
      else void deps.cleanup(itemId);
    },
    async stop() {
      abort.abort();
      for (const timer of retryTimers) clearTimeout(timer);
      await current?.done;
    },
    async idle() {
      await current?.done;
    },
  };
}
