import { describe, expect, it } from 'vitest';
import { costUsd, priceFor } from '../../src/domain/pricing.js';
import type { BatchItemResult } from '../../src/llm/batch-client.js';
import { recordEndedBatch, recordLostBatch } from '../../src/llm/metered-batch.js';
import { callWorstCaseUsd, checkBudget, createPeriodBudget, type ItemCallBudget } from '../../src/llm/metered-call.js';
import type { ModelRequest } from '../../src/llm/model-client.js';
import { openStore } from '../../src/store/open-store.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

// A pending batch's requests are reserved at their worst case against every cap, in SQLite, so
// the reservation holds across a restart; recording the results swaps it for ledger rows in
// one transaction, once.

const MODEL = 'claude-opus-4-6';
const OPUS = priceFor(MODEL)!;
const request: Omit<ModelRequest, 'signal'> = { model: MODEL, system: [{ type: 'text', text: 'review' }], tools: [], messages: [{ role: 'user', content: 'go' }], maxTokens: 1000 };
const WORST = callWorstCaseUsd(request, OPUS);
const usage = { inputTokens: 2000, cacheWrite5mTokens: 500, cacheWrite1hTokens: 0, cacheReadTokens: 4000, outputTokens: 300 };
const answered: BatchItemResult = { kind: 'succeeded', response: { model: MODEL, content: [{ type: 'text', text: 'ok', citations: null }], stopReason: 'end_turn', usage } };

function setup() {
  const made = makeStore();
  const item = made.store.items.create(makeNewItem({ state: 'reviewing' }));
  made.store.batches.create({
    id: 'msgbatch_1',
    itemId: item.id,
    stage: 'review',
    step: 'round-1-reviewers',
    requests: [
      { customId: 'angle-a', request, worstUsd: 0.3 },
      { customId: 'angle-b', request, worstUsd: 0.2 },
    ],
  });
  return { ...made, item };
}

describe('batches store', () => {
  it('reserves a pending batch against the stage, item and period caps, also after a restart', () => {
    const { store, path, clock, item } = setup();
    expect(store.batches.reservedUsd(item.id, 'review')).toBeCloseTo(0.5);
    expect(store.batches.reservedUsd(item.id, 'fix-1')).toBe(0);
    expect(store.batches.reservedUsd(item.id)).toBeCloseTo(0.5);
    expect(store.batches.reservedUsd()).toBeCloseTo(0.5);
    store.close();

    // A new process on the same database: the reservation is still there.
    const again = openStore(path, { now: () => clock.now });
    const budget = (stageBudgetUsd: number, itemBudgetUsd = 100): ItemCallBudget => ({ itemId: item.id, stage: 'review', stageBudgetUsd, itemBudgetUsd });
    expect(again.batches.pendingOfItem(item.id)).toMatchObject({ id: 'msgbatch_1', step: 'round-1-reviewers', status: 'pending' });
    expect(checkBudget(again, budget(0.5 + WORST + 0.01), request, OPUS)).toBeUndefined();
    expect(checkBudget(again, budget(0.5 + WORST - 0.01), request, OPUS)).toMatchObject({ limit: 'stage-budget', message: expect.stringContaining('spent $0.50') });
    expect(checkBudget(again, budget(100, 0.5 + WORST - 0.01), request, OPUS)).toMatchObject({ limit: 'item-budget' });
    const daily = createPeriodBudget({ dailyUsd: 0.5 + WORST - 0.01, monthlyUsd: 100 }, 'UTC', () => clock.now);
    expect(checkBudget(again, budget(100), request, OPUS, 0, daily)).toMatchObject({ limit: 'daily-budget', message: expect.stringContaining('$0.50 in calls still running') });
    again.close();
  });

  it('records the results with ledger rows at the batch price and releases the reservation, in one go and only once', () => {
    const { store, item } = setup();
    const results = new Map<string, BatchItemResult>([
      ['angle-a', answered],
      ['angle-b', { kind: 'expired' }],
    ]);
    expect(recordEndedBatch(store, {}, 'msgbatch_1', results)).toEqual({ succeeded: 1, unanswered: 1, usd: costUsd(usage, OPUS, { batch: true }) });
    expect(costUsd(usage, OPUS, { batch: true })).toBeCloseTo(costUsd(usage, OPUS) / 2, 12);
    expect(store.ledger.stageUsd(item.id, 'review')).toBeCloseTo(costUsd(usage, OPUS) / 2, 12);
    expect(store.ledger.periodBatchUsd({ from: 0, to: Number.MAX_SAFE_INTEGER })).toBeCloseTo(costUsd(usage, OPUS) / 2, 12);
    expect(store.batches.reservedUsd()).toBe(0);
    expect(store.batches.get('msgbatch_1')).toMatchObject({ status: 'ended', endedAt: expect.any(Number) });
    expect(store.batches.requests('msgbatch_1').map((r) => [r.customId, r.result])).toEqual([
      ['angle-a', answered],
      ['angle-b', { kind: 'expired' }],
    ]);

    // A repeated poll (e.g. after a restart) records nothing twice.
    expect(recordEndedBatch(store, {}, 'msgbatch_1', results)).toBeUndefined();
    expect(store.ledger.periodTotal({ from: 0, to: Number.MAX_SAFE_INTEGER }).calls).toBe(1);
  });

  it('counts a request missing from the results file as errored, billed nothing', () => {
    const { store } = setup();
    expect(recordEndedBatch(store, {}, 'msgbatch_1', new Map([['angle-a', answered]]))).toMatchObject({ succeeded: 1, unanswered: 1 });
    expect(store.batches.requests('msgbatch_1')[1]!.result).toEqual({ kind: 'errored', errorType: 'missing_result', message: expect.any(String) });
  });

  it('records the reserved worst case when the model has no price any more (prices changed across a restart)', () => {
    const { store } = makeStore();
    const item = store.items.create(makeNewItem({ state: 'reviewing' }));
    store.batches.create({ id: 'b', itemId: item.id, stage: 'review', step: 's', requests: [{ customId: 'x', request: { ...request, model: 'mystery-model' }, worstUsd: 0.25 }] });
    const result: BatchItemResult = { kind: 'succeeded', response: { model: 'mystery-model', content: [], stopReason: 'end_turn', usage } };
    expect(recordEndedBatch(store, {}, 'b', new Map([['x', result]]))).toMatchObject({ usd: 0.25 });
    expect(store.ledger.itemUsd(item.id)).toBe(0.25);
  });

  it('a lost batch releases its reservation and records no spend', () => {
    const { store, item } = setup();
    expect(recordLostBatch(store, 'msgbatch_1')).toBe(true);
    expect(store.batches.get('msgbatch_1')?.status).toBe('failed');
    expect(store.batches.reservedUsd(item.id)).toBe(0);
    expect(store.ledger.itemUsd(item.id)).toBe(0);
    expect(recordLostBatch(store, 'msgbatch_1')).toBe(false);
  });

  it('marks a result used once, and finds the newest batch of a step', () => {
    const { store, clock, item } = setup();
    store.batches.markUsed('msgbatch_1', 'angle-a');
    const usedAt = store.batches.requests('msgbatch_1')[0]!.usedAt;
    expect(usedAt).toBe(clock.now);
    clock.now += 1000;
    store.batches.markUsed('msgbatch_1', 'angle-a');
    expect(store.batches.requests('msgbatch_1')[0]!.usedAt).toBe(usedAt);
    store.batches.create({ id: 'msgbatch_2', itemId: item.id, stage: 'review', step: 'round-1-reviewers', requests: [] });
    expect(store.batches.latestOfStep(item.id, 'round-1-reviewers')?.id).toBe('msgbatch_2');
    expect(store.batches.latestOfStep(item.id, 'round-1-triage')).toBeUndefined();
  });
  it('reserves an open intent like a pending batch, across a restart, until it is settled once or dropped', () => {
    const { store, path, clock, item } = setup();
    const requests = [{ customId: 'triage', request, worstUsd: 0.25 }];
    store.batches.openIntent({ nonce: 'n1', itemId: item.id, stage: 'review', step: 'round-1-triage', requests });
    store.batches.openIntent({ nonce: 'n2', itemId: item.id, stage: 'fix', step: 'other', requests });
    expect(store.batches.reservedUsd(item.id, 'review')).toBeCloseTo(0.75);
    expect(store.batches.reservedUsd(item.id)).toBeCloseTo(1);
    expect(store.batches.reservedUsd()).toBeCloseTo(1);
    store.close();
    const reopened = openStore(path, { now: () => clock.now });
    try {
      expect(reopened.batches.intentOfItem(item.id)).toMatchObject({ nonce: 'n1', step: 'round-1-triage', requests, createdAt: clock.now });
      expect(reopened.batches.intentsOlderThan(1)).toEqual([]);
      clock.now += 1;
      expect(reopened.batches.intentsOlderThan(1).map((i) => i.nonce)).toEqual(['n1', 'n2']);
      const settled = reopened.batches.settleIntent('n1', { id: 'msgbatch_2', itemId: item.id, stage: 'review', step: 'round-1-triage', requests });
      expect(settled).toMatchObject({ id: 'msgbatch_2', nonce: 'n1', status: 'pending' });
      // Settling again (the submit and the poller both learned the id) changes nothing.
      expect(reopened.batches.settleIntent('n1', { id: 'msgbatch_2', itemId: item.id, stage: 'review', step: 'round-1-triage', requests })).toEqual(settled);
      expect(reopened.batches.requests('msgbatch_2')).toHaveLength(1);
      expect(reopened.batches.reservedUsd(item.id, 'review')).toBeCloseTo(0.75);
      expect(reopened.batches.dropIntent('n2')).toBe(true);
      expect(reopened.batches.dropIntent('n2')).toBe(false);
      expect(reopened.batches.intentOfItem(item.id)).toBeUndefined();
      expect(reopened.batches.reservedUsd(item.id)).toBeCloseTo(0.75);
    } finally {
      reopened.close();
    }
  });
});
