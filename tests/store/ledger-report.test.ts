import { afterEach, describe, expect, it } from 'vitest';
import type { Decider } from '../../src/store/cards.js';
import type { LedgerEntry } from '../../src/store/ledger.js';
import type { Store } from '../../src/store/open-store.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

const ALICE: Decider = { id: 111, name: '@alice' };
const T0 = Date.UTC(2026, 10, 25, 0, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const stores: Store[] = [];
function fresh() {
  const made = makeStore(T0);
  stores.push(made.store);
  return made;
}
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
});

/** A ledger row with sensible defaults: one build call on Opus costing $1. */
function entry(overrides: Partial<LedgerEntry> = {}): LedgerEntry {
  return {
    itemId: null,
    stage: 'build',
    model: 'claude-opus-4-5',
    inputTokens: 1000,
    cacheWrite5mTokens: 0,
    cacheWrite1hTokens: 0,
    cacheReadTokens: 0,
    outputTokens: 100,
    batch: false,
    costUsd: 1,
    ...overrides,
  };
}

describe('ledger report reads', () => {
  it('sums a half-open period, counting fix rounds under one stage and ordering dearest first', () => {
    const { store, clock } = fresh();
    const record = (at: number, e: Partial<LedgerEntry>) => {
      clock.now = at;
      store.ledger.record(entry(e));
    };
    record(T0 - 1, { stage: 'build', costUsd: 100 }); // before the period
    record(T0, { stage: 'build', costUsd: 1.5 });
    record(T0 + HOUR, { stage: 'fix-1', model: 'claude-sonnet-4-5', costUsd: 0.25 });
    record(T0 + 2 * HOUR, { stage: 'fix-2', model: 'claude-sonnet-4-5', costUsd: 0.5 });
    record(T0 + 3 * HOUR, { stage: 'review', model: 'claude-sonnet-4-5', costUsd: 2, batch: true });
    record(T0 + 24 * HOUR, { stage: 'build', costUsd: 100 }); // the end is excluded

    const day = { from: T0, to: T0 + 24 * HOUR };
    expect(store.ledger.periodTotal(day)).toEqual({ usd: 4.25, calls: 4 });
    expect(store.ledger.periodByStage(day)).toEqual([
      { key: 'review', usd: 2, calls: 1 },
      { key: 'build', usd: 1.5, calls: 1 },
      { key: 'fix', usd: 0.75, calls: 2 },
    ]);
    expect(store.ledger.periodByModel(day)).toEqual([
      { key: 'claude-sonnet-4-5', usd: 2.75, calls: 3 },
      { key: 'claude-opus-4-5', usd: 1.5, calls: 1 },
    ]);
    expect(store.ledger.periodBatchUsd(day)).toBe(2);
  });

  it('keeps token sums apart per model and batch flag', () => {
    const { store, clock } = fresh();
    clock.now = T0 + HOUR;
    store.ledger.record(entry({ cacheReadTokens: 5000, cacheWrite5mTokens: 200, costUsd: 0.5 }));
    store.ledger.record(entry({ cacheReadTokens: 1000, cacheWrite1hTokens: 300, costUsd: 0.25 }));
    store.ledger.record(entry({ cacheReadTokens: 7, batch: true, costUsd: 0.1 }));

    expect(store.ledger.periodTokens({ from: T0, to: T0 + 24 * HOUR })).toEqual([
      {
        model: 'claude-opus-4-5',
        batch: false,
        inputTokens: 2000,
        cacheWrite5mTokens: 200,
        cacheWrite1hTokens: 300,
        cacheReadTokens: 6000,
        outputTokens: 200,
        usd: 0.75,
      },
      {
        model: 'claude-opus-4-5',
        batch: true,
        inputTokens: 1000,
        cacheWrite5mTokens: 0,
        cacheWrite1hTokens: 0,
        cacheReadTokens: 7,
        outputTokens: 100,
        usd: 0.1,
      },
    ]);
  });

  it('counts the items merged in the period and everything ever spent on them', () => {
    const { store, clock } = fresh();
    const merged = (at: number, spend: Array<[number, number]>) => {
      const item = store.items.create(makeNewItem());
      for (const [when, usd] of spend) {
        clock.now = when;
        store.ledger.record(entry({ itemId: item.id, costUsd: usd }));
      }
      clock.now = at;
      for (const state of ['building', 'reviewing', 'ready', 'merged'] as const) store.items.transition(item.id, state);
      return item;
    };
    // Built long before the period, merged in it: all of its spend counts.
    merged(T0 + HOUR, [
      [T0 - 10 * 24 * HOUR, 3],
      [T0 + 30 * MINUTE, 1],
    ]);
    merged(T0 + 2 * HOUR, [[T0 + HOUR, 0.5]]);
    merged(T0 - HOUR, [[T0 - 2 * HOUR, 40]]); // merged before the period
    const open = store.items.create(makeNewItem());
    clock.now = T0 + HOUR;
    store.ledger.record(entry({ itemId: open.id, costUsd: 7 }));

    const day = { from: T0, to: T0 + 24 * HOUR };
    expect(store.ledger.periodMerges(day)).toBe(2);
    expect(store.ledger.mergedItemsUsd(day)).toBe(4.5);
    expect(store.ledger.periodMerges({ from: T0 + 3 * HOUR, to: T0 + 24 * HOUR })).toBe(0);
    expect(store.ledger.mergedItemsUsd({ from: T0 + 3 * HOUR, to: T0 + 24 * HOUR })).toBe(0);
  });

  it('times only review cards a person decided, from the moment the card was sent', () => {
    const { store, clock } = fresh();
    const card = (opts: { shownAt: number; sentAt?: number; decidedAt?: number; by?: Decider; kind?: 'review' | 'checkpoint' }) => {
      const item = store.items.create(makeNewItem());
      clock.now = opts.shownAt;
      const [outboxId] = store.outbox.enqueue({ chatId: 111, text: 'card' });
      const c =
        opts.kind === 'checkpoint'
          ? store.cards.create({ kind: 'checkpoint', repo: 'me/app', chatId: 111, checkpointId: store.checkpoints.create('me/app', 2).id })
          : store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111 });
      store.cards.shown(c.id, { outboxId: outboxId!, html: 'card' });
      if (opts.sentAt !== undefined) {
        clock.now = opts.sentAt;
        store.outbox.markSent(outboxId!, 900 + c.id);
      }
      if (opts.decidedAt !== undefined) {
        clock.now = opts.decidedAt;
        store.cards.decide(c.id, 'approve', 'merged', opts.by);
      }
      return c;
    };
    // Sent a minute after it was shown: the wait counts from the send.
    card({ shownAt: T0, sentAt: T0 + MINUTE, decidedAt: T0 + 3 * MINUTE, by: ALICE });
    card({ shownAt: T0 + HOUR, decidedAt: T0 + HOUR + 30_000, by: ALICE });
    card({ shownAt: T0 + HOUR, decidedAt: T0 + 2 * HOUR, by: ALICE, kind: 'checkpoint' }); // not a review card
    card({ shownAt: T0 + HOUR, decidedAt: T0 + 2 * HOUR }); // decided by the bot (no person)
    card({ shownAt: T0 + HOUR }); // still open
    card({ shownAt: T0 - 2 * HOUR, decidedAt: T0 - HOUR, by: ALICE }); // before the period

    expect(store.cards.decisionTimes(T0, T0 + 24 * HOUR)).toEqual([30_000, 2 * MINUTE]);
  });

  it('sums each day of a list of days by stage, naming days by their index and leaving out days without spend', () => {
    const { store, clock } = fresh();
    const record = (at: number, e: Partial<LedgerEntry>) => {
      clock.now = at;
      store.ledger.record(entry(e));
    };
    // Uneven days, as a DST change makes them.
    const days = [
      { from: T0, to: T0 + 23 * HOUR },
      { from: T0 + 23 * HOUR, to: T0 + 48 * HOUR },
      { from: T0 + 48 * HOUR, to: T0 + 72 * HOUR },
    ];
    record(T0 + HOUR, { stage: 'build', costUsd: 1 });
    record(T0 + 22 * HOUR, { stage: 'fix-1', costUsd: 0.5 });
    record(T0 + 23 * HOUR, { stage: 'fix-2', costUsd: 0.25 });
    record(T0 + 24 * HOUR, { stage: 'fix-3', costUsd: 0.25 });
    record(T0 + 80 * HOUR, { stage: 'build', costUsd: 9 }); // after the last day

    expect(store.ledger.dailyByStage(days)).toEqual([
      { day: 0, stage: 'build', usd: 1 },
      { day: 0, stage: 'fix', usd: 0.5 },
      { day: 1, stage: 'fix', usd: 0.5 },
    ]);
    expect(store.ledger.dailyByStage([])).toEqual([]);
  });
});
