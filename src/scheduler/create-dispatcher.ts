import { schedule, type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { dayStart, dispatchDecision, monthStart, nextDayStart, nextMonthStart, type DispatchDecision, type PeakWindow } from '../domain/peak-hours.js';
import type { Runner } from '../pipeline/runner.js';
import type { Store } from '../store/open-store.js';

/** The cron expression that wakes the dispatcher: every minute. */
export const DISPATCH_CRON = '* * * * *';
/** A run needs at least this much budget left to start. @default 0.5 */
export const MIN_RUN_USD = 0.5;

/** Collaborators of {@link createDispatcher}. */
export interface DispatcherDeps {
  readonly store: Store;
  readonly runner: Pick<Runner, 'startNext' | 'runningCount' | 'resumeWaiting'>;
  readonly peakHours: readonly PeakWindow[];
  readonly timeZone: string;
  readonly maxParallel: number;
  readonly budgets: { readonly dailyUsd: number; readonly monthlyUsd: number };
  /** Start queued items by itself off-peak; false: only /run starts them. @default true */
  readonly autoRun: boolean;
  readonly now: () => number;
  readonly log: Logger;
}

/**
 * Decides when items start. node-cron only wakes it; the decision is `dispatchDecision`, a pure
 * function of the clock read once per tick, the peak windows, the pause switch and the budget
 * left today and this month (from the persisted ledger).
 */
export function createDispatcher(deps: DispatcherDeps) {
  const { store, runner, log } = deps;
  let task: ScheduledTask | undefined;
  let stopped = false;

  /** What starting a run now would be told (forced: a confirmed /run, which ignores peak hours). */
  function decide(forced: boolean): DispatchDecision {
    const now = deps.now();
    return dispatchDecision({
      now,
      windows: deps.peakHours,
      timeZone: deps.timeZone,
      paused: store.settings.paused(),
      forced,
      budget: {
        dailyLeftUsd: deps.budgets.dailyUsd - store.ledger.sinceUsd(dayStart(now, deps.timeZone)),
        monthlyLeftUsd: deps.budgets.monthlyUsd - store.ledger.sinceUsd(monthStart(now, deps.timeZone)),
        dailyResetsAt: nextDayStart(now, deps.timeZone),
        monthlyResetsAt: nextMonthStart(now, deps.timeZone),
        // A budget smaller than MIN_RUN_USD must still let runs start.
        minRunUsd: Math.min(MIN_RUN_USD, deps.budgets.dailyUsd, deps.budgets.monthlyUsd),
      },
      running: runner.runningCount(),
      maxParallel: deps.maxParallel,
    });
  }

  /** Starts as many queued items as the decision allows. */
  function tick(): void {
    if (!deps.autoRun || stopped) return;
    try {
      for (;;) {
        const decision = decide(false);
        if (decision.kind !== 'start') return;
        const started = runner.startNext();
        if (started.kind !== 'started') return;
        log.info({ itemId: started.item.id }, 'dispatched an item off-peak');
      }
    } catch (err) {
      log.error({ err }, 'dispatching failed; the next tick tries again');
    }
  }

  return {
    decide,
    tick,
    /** Pauses building: nothing new starts until `resume`. */
    pause(): void {
      store.settings.setPaused(true);
    },
    /** Resumes building: stopped runs go on, and the queue is looked at now. */
    resume(): void {
      store.settings.setPaused(false);
      runner.resumeWaiting();
      tick();
    },
    start(): void {
      task = schedule(DISPATCH_CRON, tick, { timezone: deps.timeZone, noOverlap: true, name: 'nightshift-dispatch' });
      tick();
    },
    async stop(): Promise<void> {
      stopped = true;
      await task?.stop();
    },
  };
}

/** The dispatcher. */
export type Dispatcher = ReturnType<typeof createDispatcher>;
