import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { priceFor } from '../../src/domain/pricing.js';
import { createBatchClient } from '../../src/llm/batch-client.js';
import { submitMeteredBatch, type BatchCall } from '../../src/llm/metered-batch.js';
import { callWorstCaseUsd, createPeriodBudget, type ItemCallBudget } from '../../src/llm/metered-call.js';
import type { Store } from '../../src/store/open-store.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fakes/anthropic-server.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

// Submitting a batch is metered like a call: every request admitted at its worst case at the
// batch price, in order, and the batch persisted with those amounts before the submit returns.

const MODEL = 'claude-opus-4-6';
const OPUS = priceFor(MODEL)!;
const call = (customId: string): BatchCall => ({
  customId,
  request: { model: MODEL, system: [{ type: 'text', text: `review ${customId}` }], tools: [], messages: [{ role: 'user', content: 'go' }], maxTokens: 1000 },
});
/** Every call here has the same size (custom ids of one length). */
const HALF_WORST = callWorstCaseUsd(call('angle-a').request, OPUS) / 2;

let fake: FakeAnthropic;
let store: Store;
let clock: { now: number };
let itemId: number;

beforeEach(async () => {
  fake = await startFakeAnthropic();
  ({ store, clock } = makeStore());
  itemId = store.items.create(makeNewItem({ state: 'reviewing' })).id;
});

afterEach(async () => {
  store.close();
  await fake.close();
});

const budget = (stageBudgetUsd: number): ItemCallBudget => ({ itemId, stage: 'review', stageBudgetUsd, itemBudgetUsd: 100 });
const deps = (period = createPeriodBudget({ dailyUsd: 100, monthlyUsd: 1000 }, 'UTC', () => clock.now)) => ({
  model: { complete: () => Promise.reject(new Error('no normal call is expected')) },
  store,
  prices: {},
  period,
  batches: createBatchClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, maxRetries: 0 }),
  nonce: () => 'n1',
});

describe('submitMeteredBatch', () => {
  it('persists the batch with each request at half its worst case, and frees the in-memory reservation', async () => {
    const d = deps();
    const outcome = await submitMeteredBatch(d, budget(10), 'round-1-reviewers', [call('angle-a'), call('angle-b')]);
    expect(outcome).toMatchObject({ kind: 'submitted', batch: { id: fake.batches[0]!.id, itemId, stage: 'review', step: 'round-1-reviewers', status: 'pending' }, left: [] });
    // Sent with the submission's nonce, stored without it.
    expect(fake.batches[0]!.requests.map((r) => [r.customId, r.body.max_tokens])).toEqual([
      ['angle-a-n1', 1000],
      ['angle-b-n1', 1000],
    ]);
    expect(outcome).toMatchObject({ batch: { nonce: 'n1' } });
    expect(store.batches.intentOfItem(itemId)).toBeUndefined();
    const stored = store.batches.requests(fake.batches[0]!.id);
    expect(stored.map((r) => r.customId)).toEqual(['angle-a', 'angle-b']);
    expect(stored[0]!.worstUsd).toBeCloseTo(HALF_WORST, 12);
    expect(stored[0]!.request).toEqual(call('angle-a').request);
    expect(store.batches.reservedUsd(itemId, 'review')).toBeCloseTo(2 * HALF_WORST, 12);
    expect(d.period.inFlight.usd).toBe(0);
  });

  it('submits the requests that fit a cap, in order, and names the rest', async () => {
    const outcome = await submitMeteredBatch(deps(), budget(2.5 * HALF_WORST), 'round-1-reviewers', [call('angle-a'), call('angle-b'), call('angle-c')]);
    expect(outcome).toMatchObject({ kind: 'submitted', left: [{ customId: 'angle-c' }] });
    expect(fake.batches[0]!.requests.map((r) => r.customId)).toEqual(['angle-a-n1', 'angle-b-n1']);
  });

  it('submits nothing when the first request does not fit: a stage cap is a limit, a daily cap waits for its reset', async () => {
    expect(await submitMeteredBatch(deps(), budget(HALF_WORST / 2), 'round-1-reviewers', [call('angle-a')])).toMatchObject({ kind: 'limit', stop: { limit: 'stage-budget' } });
    // Spent today: half a batched call short of the cap.
    store.ledger.record({ itemId: null, stage: 'drift', model: MODEL, inputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 0, batch: false, costUsd: HALF_WORST });
    const tight = createPeriodBudget({ dailyUsd: 1.5 * HALF_WORST, monthlyUsd: 1000 }, 'UTC', () => clock.now);
    const outcome = await submitMeteredBatch(deps(tight), budget(10), 'round-1-reviewers', [call('angle-a')]);
    expect(outcome).toEqual({ kind: 'retry-later', message: expect.stringContaining('daily budget'), notBefore: Date.UTC(2026, 10, 26) });
    expect(fake.batches).toHaveLength(0);
    expect(store.batches.pending()).toEqual([]);
  });

  it('persists nothing and reserves nothing when the API refuses the batch (a 4xx: surely nothing created)', async () => {
    fake.failNext({ kind: 'error', status: 400, type: 'invalid_request_error', message: 'requests: too many' }, 1, 'batches');
    const d = deps();
    expect(await submitMeteredBatch(d, budget(10), 'round-1-reviewers', [call('angle-a')])).toEqual({ kind: 'failed', message: expect.stringContaining('requests: too many') });
    fake.failNext({ kind: 'rate-limit' }, 1, 'batches');
    expect(await submitMeteredBatch(d, budget(10), 'round-1-reviewers', [call('angle-a')])).toMatchObject({ kind: 'retry-later', throttled: true });
    // Sent once each: the create is never retried by the client.
    expect(fake.batchCalls.map((c) => c.status)).toEqual([400, 429]);
    expect(store.batches.pending()).toEqual([]);
    expect(store.batches.intentOfItem(itemId)).toBeUndefined();
    expect(store.batches.reservedUsd()).toBe(0);
    expect(d.period.inFlight.usd).toBe(0);
  });
});
