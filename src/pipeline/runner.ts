import type { Logger } from 'pino';
import { StaleLease, type Item } from '../store/items.js';
import { describeStoreError, type Store } from '../store/open-store.js';
import type { StageOutcome } from './build-stage.js';
import type { ItemNotifier } from './item-events.js';

/** First wait before an item whose stage said "retry later" runs again; doubles each time. @default 60000 */
export const RETRY_LATER_BASE_MS = 60_000;
/** Longest such wait. @default 30 minutes */
export const RETRY_LATER_MAX_MS = 30 * 60_000;
/** Attempts of a stage before the item fails, when not configured (`NIGHTSHIFT_MAX_ATTEMPTS`). @default 3 */
export const DEFAULT_MAX_ATTEMPTS = 3;
/** Rate-limited waits in a row that use no attempt (about 4.5 hours of backoff); later ones do. @default 12 */
export const MAX_THROTTLED_IN_A_ROW = 12;

/** The answer to /run. */
export type StartResult =
  | { readonly kind: 'started'; readonly item: Item }
  | { readonly kind: 'paused' }
  | { readonly kind: 'busy'; readonly item: Item }
  | { readonly kind: 'empty' };

const ACTIVE: ReadonlySet<Item['state']> = new Set(['building', 'reviewing', 'fixing']);

/** How long a lease on an item lasts without a heartbeat. @default 60000 */
export const LEASE_MS = 60_000;

/** Runs items through their stages, up to `maxParallel` at once and one per repo. */
export interface Runner {
  /** Claims the oldest queued item whose repo is free and starts it (the claim is synchronous; the work runs after). */
  startNext(): StartResult;
  /** How many items are running now. */
  runningCount(): number;
  /** Aborts every run in hand (/stop): the items keep their state and resume later. Returns their ids. */
  abortRuns(): number[];
  /** Starts items a crash left in a working state, from their last checkpoint. */
  resumeInterrupted(): void;
  /** Starts items left in a working state while paused (after /resume). */
  resumeWaiting(): void;
  /**
   * Starts the items in a working state whose wait is over (a retry's backoff, a budget's reset)
   * while there is room; the clock-driven tick calls it. Queued builds are the dispatcher's.
   */
  wakeDue(): void;
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
 * The pipeline runner. A stage's outcome decides the item's next state: `done` moves it on;
 * `retry-later` makes it wait (a build back in the queue, a review in place) for a persisted
 * `not_before`: a budget's reset, or a backoff that doubles. Rate limits, overload and budget
 * waits are free; any other retry uses one of `maxAttempts`, and the last one fails the item.
 * `failed` ends in `failed`. The user is told why, and a failed item gets a Retry button.
 */
export function createRunner(deps: {
  store: Store;
  /** This process's worker id, written on every lease. */
  workerId?: string;
  /** Items running at once. @default 1 */
  maxParallel?: number;
  /** Attempts of a stage before the item fails (rate limits and budget waits do not count). @default 3 */
  maxAttempts?: number;
  /** Whether a queued item starts by itself once due (the dispatcher's auto-run); false: it waits for /run. @default true */
  queueStartsItself?: boolean;
  now?: () => number;
  build: (item: Item, signal: AbortSignal) => Promise<StageOutcome>;
  /** Review → triage → fix; runs on items in `reviewing` or `fixing`. */
  review: (item: Item, signal: AbortSignal) => Promise<StageOutcome>;
  notifier: ItemNotifier;
  /** Removes what an ended item left behind (its worktree). Must not throw. */
  cleanup: (itemId: number) => Promise<void>;
  /** Called when a run ends and a slot is free (the dispatcher may start the next item). */
  onIdleSlot?: () => void;
  /** Whether building is paused (/pause, /stop): nothing new starts, and stopped runs wait. @default never */
  paused?: () => boolean;
  log: Logger;
}): Runner {
  const { store, notifier, log } = deps;
  const clock = deps.now ?? Date.now;
  const workerId = deps.workerId ?? `worker-${process.pid}`;
  const maxParallel = deps.maxParallel ?? 1;
  const maxAttempts = deps.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const running = new Map<number, { item: Item; fence: number; done: Promise<void>; abort: AbortController }>();
  const abort = new AbortController();
  // Rate limits in a row per item: they back off like failures but use no attempt, so the count
  // need not survive a restart (it starts from the shortest wait again).
  const throttleCounts = new Map<number, number>();
  // Interrupted reviews waiting for a run slot.
  const pendingResumes: number[] = [];
  // The heartbeat: leases of running items are renewed well before they expire.
  const heartbeat = setInterval(() => {
    try {
      if (running.size > 0) store.items.renewLeases(workerId, [...running.keys()], clock() + LEASE_MS);
    } catch (err) {
      log.warn({ err }, 'could not renew item leases');
    }
  }, LEASE_MS / 3);
  heartbeat.unref();

  const busyRepos = () => [...running.values()].map((r) => r.item.repo);
  const hasRoom = (repo?: string) => running.size < maxParallel && (repo === undefined || !busyRepos().includes(repo));

  /** Starts waiting interrupted items (reviews, fixes, stopped builds) while there is room. */
  function drainPending(): void {
    for (const id of [...pendingResumes]) {
      if (abort.signal.aborted || paused() || running.size >= maxParallel) break;
      const resumed = store.items.get(id);
      if (resumed && !hasRoom(resumed.repo)) continue; // its repo is busy: it waits for its turn
      pendingResumes.splice(pendingResumes.indexOf(id), 1);
      // Started meanwhile, or waiting out a backoff since it was listed: not now.
      if (!resumed || running.has(id) || (resumed.notBefore ?? 0) > clock()) continue;
      if (ACTIVE.has(resumed.state)) start(resumed);
    }
  }

  /** A new lease (and fencing token) for a run: a worker that held the item before is now stale. */
  const lease = (itemId: number): number => store.items.lease(itemId, workerId, clock() + LEASE_MS);

  /** Starts a run of `item`; `fence` when the caller leased it in the transaction that claimed it. */
  function start(item: Item, leased?: number): void {
    const itemAbort = new AbortController();
    const signal = AbortSignal.any([abort.signal, itemAbort.signal]);
    const fence = leased ?? lease(item.id);
    const done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => run(item, signal, fence));
    running.set(item.id, { item, fence, done, abort: itemAbort });
    void done.finally(() => {
      if (running.get(item.id)?.fence === fence) running.delete(item.id);
      try {
        store.items.releaseLease(item.id, fence);
      } catch (err) {
        log.warn({ err, itemId: item.id }, 'could not release the lease');
      }
      // The next interrupted review still waiting (items cancelled meanwhile are skipped).
      drainPending();
      deps.onIdleSlot?.();
    });
  }

  async function run(item: Item, signal: AbortSignal, fence: number): Promise<void> {
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
        // Aborted for this item alone: /stop (a cancel moves the item, which settle sees).
        if (!settle(item, fence, stage, state, outcome, signal.aborted, ilog)) return;
      } catch (error) {
        ilog.error({ err: error }, 'could not record the outcome of the stage; the item resumes on the next start');
        // Told once, here: nothing retries the item before the next start, so nothing repeats it.
        // A lease taken over is not news: the worker holding it now reports the item.
        if (!(error instanceof StaleLease)) notifier.notify(item, { kind: 'unrecorded', stage, reason: describeStoreError(error) });
        return;
      }
    }
  }

  /** Applies a stage's outcome; true when the item should go on to its next stage now. */
  function settle(item: Item, fence: number, stage: 'build' | 'review', from: Item['state'], outcome: StageOutcome, stopped: boolean, ilog: Logger): boolean {
    const nowMs = clock();
    const move = (to: Item['state'], reason: string) => store.items.transitionFenced(item.id, fence, to, reason);
    const now = store.items.get(item.id)?.state;
    if (now !== from && !(stage === 'review' && (now === 'reviewing' || now === 'fixing'))) {
      // Cancelled (or otherwise moved) while it ran: its new state stands.
      ilog.info({ outcome: outcome.kind }, 'the item left its stage while it ran; outcome not applied');
      void deps.cleanup(item.id);
      return false;
    }
    switch (outcome.kind) {
      case 'done': {
        throttleCounts.delete(item.id);
        store.items.clearAttempts(item.id);
        if (stage === 'build') {
          move('reviewing', 'pull request opened');
          ilog.info('item built; reviewing');
          return true;
        }
        if (now === 'fixing') move('reviewing', 'fix reviewed');
        move('ready', 'reviewed, triaged and fixed');
        ilog.info('item reviewed; ready for the human');
        notifier.notify(store.items.get(item.id)!, { kind: 'ready', itemUsd: store.ledger.itemUsd(item.id) });
        return false;
      }
      case 'retry-later': {
        // Stopped (/stop): the item keeps its state and checkpoint, and no attempt is used.
        // /resume picks it up; if /resume came while the run was winding down, it goes on now.
        if (stopped || paused()) {
          if (paused()) {
            ilog.info('run stopped; waiting for /resume');
            notifier.notify(store.items.get(item.id)!, { kind: 'stopped' });
          } else if (!pendingResumes.includes(item.id)) {
            pendingResumes.push(item.id);
          }
          return false;
        }
        // A budget stop waits for the cap's reset, and a rate limit or overload backs off; neither
        // uses an attempt. Anything else (a dropped connection, a 5xx) does, and after the last
        // one the item fails. The wait is persisted, so neither a restart nor the dispatcher
        // starts it early, and the clock-driven tick (`wakeDue`, the dispatcher) starts it after.
        const backoff = (n: number) => Math.min(RETRY_LATER_MAX_MS, RETRY_LATER_BASE_MS * 2 ** (n - 1));
        const next = store.transaction(() => {
          let delay: number;
          let attempt: { n: number; of: number } | undefined;
          if (outcome.notBefore !== undefined) {
            delay = Math.max(1000, outcome.notBefore - nowMs);
          } else if (outcome.throttled && (throttleCounts.get(item.id) ?? 0) < MAX_THROTTLED_IN_A_ROW) {
            const count = (throttleCounts.get(item.id) ?? 0) + 1;
            throttleCounts.set(item.id, count);
            delay = backoff(count);
          } else {
            // A failure, or rate limits that go on for hours (a request larger than the
            // account's per-minute limit is refused every time): each uses an attempt.
            attempt = { n: store.items.addAttempt(item.id), of: maxAttempts };
            if (attempt.n >= maxAttempts) {
              const tries = attempt.n === 1 ? 'one attempt' : `${attempt.n} attempts`;
              return { kind: 'failed', item: move('failed', `gave up after ${tries}; the last one: ${outcome.reason}`) } as const;
            }
            delay = backoff(attempt.n);
          }
          // A build goes back to the queue; a review keeps its state and is resumed in place.
          if (now === 'building') move('queued', outcome.reason);
          store.items.setNotBefore(item.id, nowMs + delay);
          return { kind: 'wait', delay, attempt } as const;
        });
        if (next.kind === 'failed') {
          throttleCounts.delete(item.id);
          ilog.warn({ reason: next.item.stateReason }, 'item failed: no attempts left');
          notifier.notify(next.item, { kind: 'failed', reason: next.item.stateReason ?? outcome.reason, itemUsd: store.ledger.itemUsd(item.id) });
          return false;
        }
        ilog.warn({ reason: outcome.reason, retryInMs: next.delay, attempt: next.attempt }, 'will retry the item later');
        notifier.notify(store.items.get(item.id)!, {
          kind: 'retry-later',
          reason: outcome.reason,
          retryInMs: next.delay,
          ...(next.attempt ? { attempt: next.attempt } : {}),
          // A build back in the queue waits for /run when nothing dispatches the queue by itself.
          ...(now === 'building' && deps.queueStartsItself === false ? { waitsForRun: true } : {}),
        });
        return false;
      }
      case 'waiting': {
        // A batch works for the item: it keeps its state, frees its slot and its repo, and is
        // no failed attempt. Whoever receives the results resumes it (`resume`), also after a
        // restart; `until` is persisted so nothing starts it early by the clock alone (past it,
        // the clock looks again at most every RETRY_LATER_MAX_MS, not at every tick).
        // Handing the work off was progress: the stage's failed attempts start again from none.
        store.transaction(() => {
          store.items.setNotBefore(item.id, Math.max(outcome.until, nowMs + RETRY_LATER_MAX_MS));
          store.items.clearAttempts(item.id);
        });
        throttleCounts.delete(item.id);
        ilog.info({ reason: outcome.reason, until: outcome.until }, 'waiting for work handed off');
        notifier.notify(store.items.get(item.id)!, { kind: 'waiting', reason: outcome.reason, until: outcome.until });
        return false;
      }
      case 'failed': {
        throttleCounts.delete(item.id);
        const failed = move('failed', outcome.reason);
        ilog.warn({ reason: outcome.reason }, 'item failed');
        notifier.notify(failed, { kind: 'failed', reason: outcome.reason, itemUsd: store.ledger.itemUsd(item.id) });
        return false;
      }
    }
  }

  const paused = () => deps.paused?.() ?? false;

  function startNext(): StartResult {
    if (abort.signal.aborted) return { kind: 'empty' };
    if (paused()) return { kind: 'paused' };
    const [first] = running.values();
    if (first && running.size >= maxParallel) return { kind: 'busy', item: first.item };
    // The claim and its lease are one transaction: no item is left `building` without a run.
    const claimed = store.transaction(() => {
      const next = store.items.oldestQueued(busyRepos());
      return next && { item: store.items.transition(next.id, 'building', 'run started'), fence: lease(next.id) };
    });
    if (!claimed) return first ? { kind: 'busy', item: first.item } : { kind: 'empty' };
    start(claimed.item, claimed.fence);
    return { kind: 'started', item: claimed.item };
  }

  return {
    startNext,
    runningCount: () => running.size,
    abortRuns() {
      const ids = [...running.keys()];
      for (const run of running.values()) run.abort.abort(new Error('stopped by /stop'));
      return ids;
    },
    resumeInterrupted() {
      // Items a crash left in a working state. The process lock says no other nightshift is
      // alive, so their leases are stale: each is claimed afresh (a newer fencing token).
      // Paused (/pause or /stop before the restart): they wait for /resume.
      if (paused()) return;
      for (const item of store.items.listActive()) {
        if ((item.notBefore ?? 0) > clock()) {
          // Waiting out a backoff or a budget's reset: a build waits in the queue, a review in place.
          if (item.state === 'building') store.items.transition(item.id, 'queued', 'interrupted; waiting for its retry');
          continue;
        }
        if (hasRoom(item.repo)) {
          log.info({ itemId: item.id }, 'resuming an item interrupted by a restart');
          start(item);
        } else if (item.state === 'building') store.items.transition(item.id, 'queued', 'interrupted; waiting for its turn');
        else pendingResumes.push(item.id);
      }
    },
    resumeWaiting() {
      // After /resume: items stopped in a working state go on from their checkpoints.
      for (const item of store.items.listActive()) {
        if (running.has(item.id)) continue;
        if (!pendingResumes.includes(item.id)) pendingResumes.push(item.id);
      }
      drainPending();
      // Builds that found no room wait in the queue, where the dispatcher and /run find them.
      for (const id of [...pendingResumes]) {
        const item = store.items.get(id);
        if (item?.state === 'building') {
          pendingResumes.splice(pendingResumes.indexOf(id), 1);
          store.items.transition(id, 'queued', 'stopped; waiting for its turn');
        }
      }
    },
    wakeDue() {
      if (abort.signal.aborted || paused()) return;
      const at = clock();
      for (const item of store.items.listActive()) {
        if (running.has(item.id) || pendingResumes.includes(item.id) || (item.notBefore ?? 0) > at) continue;
        pendingResumes.push(item.id);
      }
      drainPending();
    },
    resume(itemId) {
      if (abort.signal.aborted || running.has(itemId)) return;
      // Paused: the item waits in its state; /resume picks it up.
      if (paused()) return;
      const item = store.items.get(itemId);
      if (!item || !(item.state === 'reviewing' || item.state === 'fixing')) return;
      if (hasRoom(item.repo)) {
        const listed = pendingResumes.indexOf(itemId);
        if (listed >= 0) pendingResumes.splice(listed, 1);
        start(item);
      }
      else if (!pendingResumes.includes(itemId)) pendingResumes.push(itemId);
    },
    itemEnded(itemId) {
      const run = running.get(itemId);
      if (run) run.abort.abort(new Error('cancelled'));
      else void deps.cleanup(itemId);
    },
    async stop() {
      abort.abort();
      clearInterval(heartbeat);
      await Promise.all([...running.values()].map((r) => r.done));
    },
    async idle() {
      await Promise.all([...running.values()].map((r) => r.done));
    },
  };
}
