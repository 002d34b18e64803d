import Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StageOutcome } from '../../src/pipeline/build-stage.js';
import type { ItemEvent } from '../../src/pipeline/item-events.js';
import { createRunner, MAX_THROTTLED_IN_A_ROW, RETRY_LATER_BASE_MS, RETRY_LATER_MAX_MS, type Runner } from '../../src/pipeline/runner.js';
import { createDispatcher } from '../../src/scheduler/create-dispatcher.js';
import type { Item } from '../../src/store/items.js';
import type { Store } from '../../src/store/open-store.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

// The runner on a real store, with stages played by the test: each stage call waits until the
// test finishes it, and an aborted one ends as the real stages do ("stopped by request").

const log = pino({ level: 'silent' });
const WORKER = 'worker-test';

interface StageCall {
  readonly item: Item;
  readonly signal: AbortSignal;
  finish(outcome: StageOutcome): void;
}

const runners: Runner[] = [];

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(runners.splice(0).map((r) => r.stop()));
});

function setup(opts: { maxParallel?: number; maxAttempts?: number } = {}) {
  const { store, clock, path } = makeStore();
  const builds: StageCall[] = [];
  const reviews: StageCall[] = [];
  const events: Array<{ itemId: number; event: ItemEvent }> = [];
  const stage = (calls: StageCall[]) => (item: Item, signal: AbortSignal) =>
    new Promise<StageOutcome>((resolve) => {
      calls.push({ item, signal, finish: resolve });
      if (signal.aborted) resolve({ kind: 'retry-later', reason: 'stopped by request' });
      signal.addEventListener('abort', () => resolve({ kind: 'retry-later', reason: 'stopped by request' }), { once: true });
    });
  const runner = createRunner({
    store,
    workerId: WORKER,
    ...(opts.maxParallel === undefined ? {} : { maxParallel: opts.maxParallel }),
    ...(opts.maxAttempts === undefined ? {} : { maxAttempts: opts.maxAttempts }),
    now: () => clock.now,
    build: stage(builds),
    review: stage(reviews),
    notifier: { notify: (item, event) => void events.push({ itemId: item.id, event }) },
    cleanup: async () => undefined,
    paused: () => store.settings.paused(),
    log,
  });
  runners.push(runner);
  const leaseOf = (id: number) => {
    const db = new Database(path, { readonly: true });
    try {
      return db.prepare('SELECT lease_owner AS owner, lease_fence AS fence FROM items WHERE id = ?').get(id) as { owner: string | null; fence: number };
    } finally {
      db.close();
    }
  };
  const kinds = (id: number) => events.filter((e) => e.itemId === id).map((e) => e.event.kind);
  return { store, clock, runner, builds, reviews, events, kinds, leaseOf };
}

/** A dispatcher over `runner` with no peak hours and roomy budgets. */
function dispatcherFor(store: Store, runner: Runner, clock: { now: number }, autoRun: boolean) {
  return createDispatcher({ store, runner, peakHours: [], timeZone: 'UTC', maxParallel: 1, budgets: { dailyUsd: 20, monthlyUsd: 200 }, autoRun, now: () => clock.now, log });
}

describe('runner', () => {
  it('runs up to maxParallel items at once, never two of one repo, each under its own lease', async () => {
    const { store, runner, builds, reviews, kinds, leaseOf } = setup({ maxParallel: 2 });
    const a1 = store.items.create(makeNewItem({ repo: 'me/app' }));
    const a2 = store.items.create(makeNewItem({ repo: 'me/app' }));
    const site = store.items.create(makeNewItem({ repo: 'me/site' }));
    store.items.create(makeNewItem({ repo: 'me/web' }));

    expect(runner.startNext()).toMatchObject({ kind: 'started', item: { id: a1.id } });
    // The next oldest is of a busy repo: the one after it starts instead.
    expect(runner.startNext()).toMatchObject({ kind: 'started', item: { id: site.id } });
    expect(runner.startNext()).toMatchObject({ kind: 'busy' });
    expect(runner.runningCount()).toBe(2);
    expect(store.items.get(a2.id)!.state).toBe('queued');
    expect(leaseOf(a1.id)).toEqual({ owner: WORKER, fence: 1 });
    expect(leaseOf(site.id)).toEqual({ owner: WORKER, fence: 1 });

    await vi.waitFor(() => expect(builds).toHaveLength(2));
    builds[0]!.finish({ kind: 'done' });
    await vi.waitFor(() => expect(reviews).toHaveLength(1));
    reviews[0]!.finish({ kind: 'done' });
    await vi.waitFor(() => expect(runner.runningCount()).toBe(1));
    expect(store.items.get(a1.id)!.state).toBe('ready');
    expect(kinds(a1.id)).toEqual(['started', 'started', 'ready']);
    expect(leaseOf(a1.id)).toEqual({ owner: null, fence: 1 });

    // Its repo is free again: the other item of me/app goes next.
    expect(runner.startNext()).toMatchObject({ kind: 'started', item: { id: a2.id } });
  });

  it('refuses the outcome of a run whose lease was taken over (StaleLease), and leaves the new lease alone', async () => {
    const { store, clock, runner, builds, reviews, kinds, leaseOf } = setup();
    const item = store.items.create(makeNewItem());
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    // Another worker claims the item while this run is still busy with it.
    const newer = store.items.lease(item.id, 'worker-other', clock.now + 60_000);

    builds[0]!.finish({ kind: 'done' });
    await runner.idle();
    expect(store.items.get(item.id)!.state).toBe('building');
    expect(reviews).toHaveLength(0);
    expect(kinds(item.id)).toEqual(['started']);
    expect(leaseOf(item.id)).toEqual({ owner: 'worker-other', fence: newer });
  });

  it('turns a stopped run into a "stopped" notice while paused, with no retry timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { store, runner, builds, kinds } = setup();
    const item = store.items.create(makeNewItem());
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));

    // What /stop does: pause, then abort the runs in hand.
    store.settings.setPaused(true);
    expect(runner.abortRuns()).toEqual([item.id]);
    expect(builds[0]!.signal.aborted).toBe(true);
    await runner.idle();
    expect(kinds(item.id)).toEqual(['started', 'stopped']);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(RETRY_LATER_MAX_MS);
    expect(runner.startNext()).toEqual({ kind: 'paused' });
    expect(builds).toHaveLength(1);
    expect(runner.runningCount()).toBe(0);
  });

  it('waits for a budget reset before the queue offers a build stopped by the daily cap again', async () => {
    const { store, clock, runner, builds, events } = setup();
    const item = store.items.create(makeNewItem());
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    const reset = clock.now + 3 * 60 * 60_000;
    builds[0]!.finish({ kind: 'retry-later', reason: "today's budget is spent", notBefore: reset });
    await runner.idle();

    expect(store.items.get(item.id)!.state).toBe('queued');
    expect(events.at(-1)!.event).toEqual({ kind: 'retry-later', reason: "today's budget is spent", retryInMs: 3 * 60 * 60_000 });
    expect(store.items.oldestQueued()).toBeUndefined();
    expect(runner.startNext()).toEqual({ kind: 'empty' });
    clock.now = reset;
    expect(runner.startNext()).toMatchObject({ kind: 'started', item: { id: item.id } });
  });

  // Regression: `settle` once persisted `not_before` only for a budget stop; a build told "retry
  // later" without one (429, 529, a dropped connection) goes back to `queued` with no backoff, and
  // the dispatcher's next tick (onIdleSlot, right after the run ends) started it again at once.
  it('keeps a rate-limited build out of the queue for its backoff, so the dispatcher does not start it again at once', async () => {
    const { store, clock, runner, builds } = setup();
    const dispatcher = dispatcherFor(store, runner, clock, true);
    store.items.create(makeNewItem());
    dispatcher.tick();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    builds[0]!.finish({ kind: 'retry-later', reason: 'rate limited (429)' });
    await runner.idle();

    // The tick after the run (onIdleSlot, the ticker, cron) finds nothing to start.
    dispatcher.tick();
    expect(runner.runningCount()).toBe(0);
    expect(builds).toHaveLength(1);
    clock.now += RETRY_LATER_BASE_MS;
    dispatcher.tick();
    expect(runner.runningCount()).toBe(1);
    await vi.waitFor(() => expect(builds).toHaveLength(2));
  });

  // Regression: a build stopped by /stop was moved back to `queued`, where `resumeWaiting` does not
  // look, so with NIGHTSHIFT_AUTO_RUN=false (or during peak hours) /resume did not continue it.
  it('continues a stopped build on /resume also when nothing dispatches the queue by itself', async () => {
    const { store, clock, runner, builds } = setup();
    const dispatcher = dispatcherFor(store, runner, clock, false);
    store.items.create(makeNewItem());
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    dispatcher.pause();
    runner.abortRuns();
    await runner.idle();
    dispatcher.resume();
    await vi.waitFor(() => expect(builds).toHaveLength(2));
  });

  it('uses an attempt per transient failure, backs off doubling, and fails the item after the last one', async () => {
    const { store, clock, runner, builds, events } = setup({ maxAttempts: 3 });
    const dispatcher = dispatcherFor(store, runner, clock, true);
    const item = store.items.create(makeNewItem());
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      dispatcher.tick();
      await vi.waitFor(() => expect(builds).toHaveLength(attempt));
      builds[attempt - 1]!.finish({ kind: 'retry-later', reason: 'connection to Anthropic failed' });
      await runner.idle();
      if (attempt < 3) {
        const waiting = store.items.get(item.id)!;
        expect(waiting).toMatchObject({ state: 'queued', attempts: attempt });
        waits.push(waiting.notBefore! - clock.now);
        expect(events.at(-1)!.event).toMatchObject({ kind: 'retry-later', attempt: { n: attempt, of: 3 } });
        // Not a moment before its wait is over.
        clock.now = waiting.notBefore! - 1;
        dispatcher.tick();
        expect(runner.runningCount()).toBe(0);
        clock.now += 1;
      }
    }
    expect(waits).toEqual([RETRY_LATER_BASE_MS, 2 * RETRY_LATER_BASE_MS]);
    expect(store.items.get(item.id)).toMatchObject({ state: 'failed', attempts: 3, stateReason: 'gave up after 3 attempts; the last one: connection to Anthropic failed' });
    expect(events.at(-1)!.event).toMatchObject({ kind: 'failed', reason: 'gave up after 3 attempts; the last one: connection to Anthropic failed' });
    dispatcher.tick();
    expect(builds).toHaveLength(3);
  });

  it('reschedules rate limits, overload and budget waits without using an attempt', async () => {
    const { store, clock, runner, builds } = setup({ maxAttempts: 2 });
    const dispatcher = dispatcherFor(store, runner, clock, true);
    const item = store.items.create(makeNewItem());
    const outcomes: StageOutcome[] = [
      { kind: 'retry-later', reason: 'Anthropic rate limit (429)', throttled: true },
      { kind: 'retry-later', reason: 'Anthropic is overloaded (529)', throttled: true },
      { kind: 'retry-later', reason: 'GitHub answered 403: secondary rate limit', throttled: true },
      { kind: 'retry-later', reason: "today's budget is spent", notBefore: clock.now + 60 * 60_000 },
    ];
    for (const [i, outcome] of outcomes.entries()) {
      dispatcher.tick();
      await vi.waitFor(() => expect(builds).toHaveLength(i + 1));
      builds[i]!.finish(outcome);
      await runner.idle();
      expect(store.items.get(item.id)).toMatchObject({ state: 'queued', attempts: 0 });
      clock.now = store.items.get(item.id)!.notBefore!;
    }
    // Throttled waits double like failures do.
    dispatcher.tick();
    await vi.waitFor(() => expect(builds).toHaveLength(5));
    builds[4]!.finish({ kind: 'done' });
    await vi.waitFor(() => expect(store.items.get(item.id)!.state).toBe('reviewing'));
  });

  it('forgets the failed attempts once a stage succeeds', async () => {
    const { store, clock, runner, builds, reviews } = setup({ maxAttempts: 2 });
    const item = store.items.create(makeNewItem());
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    builds[0]!.finish({ kind: 'retry-later', reason: 'GitHub answered 502' });
    await runner.idle();
    expect(store.items.get(item.id)!.attempts).toBe(1);
    clock.now = store.items.get(item.id)!.notBefore!;
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(2));
    builds[1]!.finish({ kind: 'done' });
    await vi.waitFor(() => expect(reviews).toHaveLength(1));
    expect(store.items.get(item.id)!.attempts).toBe(0);
    // The review has its own two attempts.
    reviews[0]!.finish({ kind: 'retry-later', reason: 'connection to Anthropic failed' });
    await runner.idle();
    expect(store.items.get(item.id)).toMatchObject({ state: 'reviewing', attempts: 1 });
  });

  it('resumes a review in place once its wait is over on the injected clock, without timers', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { store, clock, runner, builds, reviews, events } = setup();
    const item = store.items.create(makeNewItem());
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    builds[0]!.finish({ kind: 'done' });
    await vi.waitFor(() => expect(reviews).toHaveLength(1));
    reviews[0]!.finish({ kind: 'retry-later', reason: 'Anthropic server error (500)' });
    await runner.idle();
    expect(store.items.get(item.id)!.state).toBe('reviewing');
    expect(events.at(-1)!.event).toEqual({ kind: 'retry-later', reason: 'Anthropic server error (500)', retryInMs: RETRY_LATER_BASE_MS, attempt: { n: 1, of: 3 } });
    expect(vi.getTimerCount()).toBe(0);

    runner.wakeDue();
    expect(runner.runningCount()).toBe(0);
    clock.now += RETRY_LATER_BASE_MS;
    runner.wakeDue();
    expect(runner.runningCount()).toBe(1);
    await vi.waitFor(() => expect(reviews).toHaveLength(2));
    expect(reviews[1]!.item.id).toBe(item.id);
    // A second wake while it runs starts nothing more.
    runner.wakeDue();
    expect(runner.runningCount()).toBe(1);
  });

  it('after a restart, leaves an item that waits for its retry alone until its wait is over', async () => {
    const { store, clock, runner, builds, reviews } = setup();
    const item = store.items.create(makeNewItem());
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    builds[0]!.finish({ kind: 'done' });
    await vi.waitFor(() => expect(reviews).toHaveLength(1));
    reviews[0]!.finish({ kind: 'retry-later', reason: "today's budget is spent", notBefore: clock.now + 60 * 60_000 });
    await runner.idle();
    await runner.stop();

    // The next process on the same store.
    const after: StageCall[] = [];
    const restarted = createRunner({
      store,
      workerId: 'worker-next',
      now: () => clock.now,
      build: async () => ({ kind: 'done' }),
      review: (it, signal) => new Promise<StageOutcome>((resolve) => after.push({ item: it, signal, finish: resolve })),
      notifier: { notify: () => undefined },
      cleanup: async () => undefined,
      log,
    });
    runners.push(restarted);
    restarted.resumeInterrupted();
    expect(restarted.runningCount()).toBe(0);
    clock.now += 60 * 60_000;
    restarted.wakeDue();
    await vi.waitFor(() => expect(after).toHaveLength(1));
    expect(after[0]!.item.id).toBe(item.id);
    after[0]!.finish({ kind: 'done' });
    await vi.waitFor(() => expect(store.items.get(item.id)!.state).toBe('ready'));
  });

  it('tells the user that a build back in the queue waits for /run when nothing dispatches by itself', async () => {
    const { store, clock, builds, events } = setup();
    const manual = createRunner({
      store,
      now: () => clock.now,
      queueStartsItself: false,
      build: (item, signal) => new Promise<StageOutcome>((resolve) => builds.push({ item, signal, finish: resolve })),
      review: async () => ({ kind: 'done' }),
      notifier: { notify: (item, event) => void events.push({ itemId: item.id, event }) },
      cleanup: async () => undefined,
      log,
    });
    runners.push(manual);
    store.items.create(makeNewItem());
    manual.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    builds[0]!.finish({ kind: 'retry-later', reason: 'git push failed: connection reset' });
    await manual.idle();
    expect(events.at(-1)!.event).toMatchObject({ kind: 'retry-later', waitsForRun: true, attempt: { n: 1, of: 3 } });
  });

  // Regression: a /resume that came while the stopped run was still winding down found the item
  // running (so did not list it), and the run then settled unpaused: "stopped by request" used
  // an attempt and the item waited out a backoff, or failed after three quick /stop + /resume.
  it('goes on at once, using no attempt, when /resume comes before the stopped run has wound down', async () => {
    const { store, runner, builds, kinds } = setup({ maxAttempts: 1 });
    const item = store.items.create(makeNewItem());
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    store.settings.setPaused(true);
    runner.abortRuns();
    // /resume, before the aborted stage's outcome is applied.
    store.settings.setPaused(false);
    runner.resumeWaiting();
    await vi.waitFor(() => expect(builds).toHaveLength(2));
    expect(store.items.get(item.id)).toMatchObject({ state: 'building', attempts: 0, notBefore: null });
    expect(kinds(item.id)).not.toContain('retry-later');
    expect(kinds(item.id)).not.toContain('failed');
  });

  it('counts rate limits as attempts once they have gone on for MAX_THROTTLED_IN_A_ROW waits', async () => {
    const { store, clock, runner, builds, events } = setup({ maxAttempts: 1 });
    const dispatcher = dispatcherFor(store, runner, clock, true);
    const item = store.items.create(makeNewItem());
    for (let i = 0; i <= MAX_THROTTLED_IN_A_ROW; i++) {
      dispatcher.tick();
      await vi.waitFor(() => expect(builds).toHaveLength(i + 1));
      builds[i]!.finish({ kind: 'retry-later', reason: 'Anthropic rate limit (429)', throttled: true });
      await runner.idle();
      if (i < MAX_THROTTLED_IN_A_ROW) {
        expect(store.items.get(item.id)).toMatchObject({ state: 'queued', attempts: 0 });
        clock.now = store.items.get(item.id)!.notBefore!;
      }
    }
    expect(store.items.get(item.id)).toMatchObject({ state: 'failed', stateReason: 'gave up after one attempt; the last one: Anthropic rate limit (429)' });
    expect(events.at(-1)!.event).toMatchObject({ kind: 'failed' });
  });

  it('starts the attempts afresh once the stage has handed work off (a batch it waits for)', async () => {
    const { store, runner, builds, reviews } = setup();
    const item = store.items.create(makeNewItem());
    runner.startNext();
    await vi.waitFor(() => expect(builds).toHaveLength(1));
    builds[0]!.finish({ kind: 'done' });
    await vi.waitFor(() => expect(reviews).toHaveLength(1));
    reviews[0]!.finish({ kind: 'retry-later', reason: 'connection to Anthropic failed' });
    await runner.idle();
    expect(store.items.get(item.id)!.attempts).toBe(1);
    runner.resume(item.id);
    await vi.waitFor(() => expect(reviews).toHaveLength(2));
    reviews[1]!.finish({ kind: 'waiting', reason: 'review submitted as a batch', until: Date.UTC(2026, 10, 26, 9) });
    await runner.idle();
    expect(store.items.get(item.id)).toMatchObject({ state: 'reviewing', attempts: 0 });
  });
});
