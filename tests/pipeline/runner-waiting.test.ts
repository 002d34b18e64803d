import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StageOutcome } from '../../src/pipeline/build-stage.js';
import type { ItemEvent } from '../../src/pipeline/item-events.js';
import { createRunner, type Runner } from '../../src/pipeline/runner.js';
import type { Item } from '../../src/store/items.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

// A stage that handed its work to a Message Batch returns `waiting`: the item keeps its state
// and frees its slot and its repo, no retry is scheduled, and `resume` goes on with it.

const log = pino({ level: 'silent' });
const runners: Runner[] = [];

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(runners.splice(0).map((r) => r.stop()));
});

function setup() {
  const { store, clock } = makeStore();
  const reviews: Array<{ item: Item; finish: (o: StageOutcome) => void }> = [];
  const builds: Item[] = [];
  const events: Array<{ itemId: number; event: ItemEvent }> = [];
  const runner = createRunner({
    store,
    now: () => clock.now,
    // A build that runs until it is stopped.
    build: (item, signal) => {
      builds.push(item);
      return new Promise<StageOutcome>((resolve) => signal.addEventListener('abort', () => resolve({ kind: 'retry-later', reason: 'stopped by request' }), { once: true }));
    },
    review: (item) => new Promise<StageOutcome>((resolve) => reviews.push({ item, finish: resolve })),
    notifier: { notify: (item, event) => void events.push({ itemId: item.id, event }) },
    cleanup: async () => undefined,
    paused: () => store.settings.paused(),
    log,
  });
  runners.push(runner);
  return { store, clock, runner, reviews, builds, events };
}

describe('runner: a waiting stage', () => {
  it('keeps the item reviewing, frees its slot and repo, persists until, schedules no retry; a resume waits for its repo', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { store, clock, runner, reviews, builds, events } = setup();
    const waiting = store.items.create(makeNewItem({ repo: 'me/app', state: 'reviewing' }));
    const next = store.items.create(makeNewItem({ repo: 'me/app' }));
    runner.resume(waiting.id);
    await vi.waitFor(() => expect(reviews).toHaveLength(1));
    const until = clock.now + 24 * 60 * 60_000;
    reviews[0]!.finish({ kind: 'waiting', reason: 'review round 1 reviewers submitted as a batch', until });
    await runner.idle();

    expect(runner.runningCount()).toBe(0);
    expect(store.items.get(waiting.id)).toMatchObject({ state: 'reviewing', notBefore: until });
    expect(events.filter((e) => e.itemId === waiting.id).map((e) => e.event)).toEqual([
      { kind: 'started', stage: 'review' },
      { kind: 'waiting', reason: 'review round 1 reviewers submitted as a batch', until },
    ]);
    // No retry timer: nothing starts the item by itself.
    expect(vi.getTimerCount()).toBe(0);
    // Its repo is free: another item of it starts.
    expect(runner.startNext()).toMatchObject({ kind: 'started', item: { id: next.id } });
    await vi.waitFor(() => expect(builds).toHaveLength(1));

    // The batch ended: the poller resumes the item (its repo now busy: it waits for a slot).
    runner.resume(waiting.id);
    expect(reviews).toHaveLength(1);
  });

  it('resumes a waiting item when the poller asks, with room', async () => {
    const { store, clock, runner, reviews } = setup();
    const item = store.items.create(makeNewItem({ state: 'reviewing' }));
    runner.resume(item.id);
    await vi.waitFor(() => expect(reviews).toHaveLength(1));
    reviews[0]!.finish({ kind: 'waiting', reason: 'batch', until: clock.now + 1000 });
    await runner.idle();
    runner.resume(item.id);
    await vi.waitFor(() => expect(reviews).toHaveLength(2));
    reviews[1]!.finish({ kind: 'done' });
    await runner.idle();
    expect(store.items.get(item.id)?.state).toBe('ready');
  });

  it('while stopped (/stop), a batch that ended does not start the item; /resume does', async () => {
    const { store, clock, runner, reviews } = setup();
    const item = store.items.create(makeNewItem({ state: 'reviewing' }));
    runner.resume(item.id);
    await vi.waitFor(() => expect(reviews).toHaveLength(1));
    reviews[0]!.finish({ kind: 'waiting', reason: 'batch', until: clock.now + 1000 });
    await runner.idle();
    store.settings.setPaused(true);
    // The batch ended: the poller clears the wait and asks the runner to resume the item.
    store.items.setNotBefore(item.id, null);
    runner.resume(item.id);
    await runner.idle();
    expect(reviews).toHaveLength(1);
    store.settings.setPaused(false);
    runner.resumeWaiting();
    await vi.waitFor(() => expect(reviews).toHaveLength(2));
    reviews[1]!.finish({ kind: 'done' });
    await runner.idle();
    expect(store.items.get(item.id)?.state).toBe('ready');
  });
});
