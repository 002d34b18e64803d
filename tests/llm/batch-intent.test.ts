import Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { priceFor } from '../../src/domain/pricing.js';
import { BATCH_RECONCILE_AFTER_MS, createBatchClient } from '../../src/llm/batch-client.js';
import { submitMeteredBatch, type BatchCall, type BatchSubmitOutcome } from '../../src/llm/metered-batch.js';
import { callWorstCaseUsd, createPeriodBudget, type ItemCallBudget } from '../../src/llm/metered-call.js';
import { createBatchPoller } from '../../src/pipeline/batch-poller.js';
import { openStore, type Store } from '../../src/store/open-store.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fakes/anthropic-server.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

// I-ONCE and I-COST for a batch submission whose outcome is unclear: the API made the batch but
// the answer was lost (a reset, a 5xx), the process died before recording it, or the write
// failed. After each, exactly one batch is ever created for the step, it is adopted by its
// nonce once it has ended, its cost reaches the ledger once, and its worst case stays reserved
// the whole time. Only when no batch can be the intent's is the step submitted again.

const MODEL = 'claude-opus-4-6';
const OPUS = priceFor(MODEL)!;
const STEP = 'round-1-reviewers';
const call = (customId: string): BatchCall => ({
  customId,
  request: { model: MODEL, system: [{ type: 'text', text: `review ${customId}` }], tools: [], messages: [{ role: 'user', content: 'go' }], maxTokens: 1000 },
});
const CALLS = [call('angle-a'), call('angle-b')];
/** What the two calls reserve: each one's worst case at the batch price. */
const RESERVED = CALLS.reduce((sum, c) => sum + callWorstCaseUsd(c.request, OPUS, { batch: true }), 0);
const log = pino({ level: 'silent' });

let fake: FakeAnthropic;
let store: Store;
let clock: { now: number };
let path: string;
let itemId: number;
let resumed: number[];
let nonces: number;
const extraStores: Store[] = [];

beforeEach(async () => {
  ({ store, clock, path } = makeStore());
  // The API's clock is ours here, so the intent's window holds the batches it made.
  fake = await startFakeAnthropic({ now: () => clock.now });
  fake.onRequest(() => ({ content: [{ type: 'text', text: 'reviewed' }] }));
  itemId = store.items.create(makeNewItem({ state: 'reviewing' })).id;
  resumed = [];
  nonces = 0;
});

afterEach(async () => {
  await fake.close();
  for (const s of extraStores.splice(0)) s.close();
  store.close();
});

const budget: ItemCallBudget = { itemId: 0, stage: 'review', stageBudgetUsd: 10, itemBudgetUsd: 100 };
// The production retry default: the create must not be retried all the same.
const client = () => createBatchClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl });
const submit = (on: Store = store): Promise<BatchSubmitOutcome> =>
  submitMeteredBatch(
    {
      model: { complete: () => Promise.reject(new Error('no normal call is expected')) },
      store: on,
      prices: {},
      period: createPeriodBudget({ dailyUsd: 100, monthlyUsd: 1000 }, 'UTC', () => clock.now),
      batches: client(),
      nonce: () => `n${++nonces}`,
    },
    { ...budget, itemId },
    STEP,
    CALLS,
  );
const poller = (on: Store = store) => createBatchPoller({ store: on, client: client(), prices: {}, resume: (id) => void resumed.push(id), log });
const lists = () => fake.batchCalls.filter((c) => c.path === '/v1/messages/batches' && c.query !== undefined).length;
const ledgerRows = (on: Store = store) => on.ledger.itemByStage(itemId);

/**
 * The intent is unclear and reserved; the poller leaves it alone until its create can no longer
 * be in flight, then waits for the running batch to end, then adopts it and records it once.
 */
async function expectAdoptedOnce(on: Store = store): Promise<void> {
  expect(on.batches.intentOfItem(itemId)).toBeDefined();
  expect(on.batches.reservedUsd(itemId, 'review')).toBeCloseTo(RESERVED, 12);
  await poller(on).tick();
  expect(lists()).toBe(0);

  clock.now += BATCH_RECONCILE_AFTER_MS;
  await poller(on).tick();
  // Running: its custom ids cannot be seen yet, so nothing is decided and the reservation holds.
  expect(lists()).toBe(1);
  expect(on.batches.intentOfItem(itemId)).toBeDefined();
  expect(on.batches.reservedUsd(itemId, 'review')).toBeCloseTo(RESERVED, 12);
  expect(resumed).toEqual([]);

  fake.endBatch(fake.batches[0]!.id);
  await poller(on).tick();
  expect(fake.batches).toHaveLength(1);
  const [made] = fake.batches;
  expect(on.batches.latestOfStep(itemId, STEP)).toMatchObject({ id: made!.id, nonce: 'n1', status: 'ended' });
  expect(on.batches.intentOfItem(itemId)).toBeUndefined();
  expect(on.batches.reservedUsd()).toBe(0);
  expect(on.batches.requests(made!.id).map((r) => [r.customId, (r.result as { kind: string }).kind])).toEqual([
    ['angle-a', 'succeeded'],
    ['angle-b', 'succeeded'],
  ]);
  expect(resumed).toEqual([itemId]);
  const usd = on.ledger.itemUsd(itemId);
  expect(usd).toBeGreaterThan(0);
  expect(ledgerRows(on)).toEqual([{ stage: 'review', usd }]);
  // Later polls record nothing twice and ask nothing more about the intent.
  const calls = fake.batchCalls.length;
  await poller(on).tick();
  expect(on.ledger.itemUsd(itemId)).toBe(usd);
  expect(fake.batchCalls).toHaveLength(calls);
}

describe('an unclear batch submission', () => {
  it('a reset after the API created the batch: not sent again, adopted by its nonce once it has ended', async () => {
    fake.failNext({ kind: 'reset', afterCreate: true }, 1, 'batches');
    expect(await submit()).toMatchObject({ kind: 'unclear', intent: { nonce: 'n1', step: STEP } });
    // One create, not retried.
    expect(fake.batchCalls.map((c) => c.outcome)).toEqual(['reset']);
    expect(store.batches.pending()).toEqual([]);
    await expectAdoptedOnce();
  });

  it('a 5xx after the create: adopted, and a same-sized batch of someone else is not taken for it', async () => {
    fake.failNext({ kind: 'server-error', status: 502, afterCreate: true }, 1, 'batches');
    expect(await submit()).toMatchObject({ kind: 'unclear', message: expect.stringContaining('502') });
    // Another client on the key makes a batch of the same size, which ends first.
    const other = await client().submit(CALLS.map((c) => ({ customId: `${c.customId}-zz`, params: { model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] } })));
    fake.endBatch(other);
    clock.now += BATCH_RECONCILE_AFTER_MS;
    await poller().tick();
    // The other one's results were read and did not match; ours still runs.
    expect(store.batches.has(other)).toBe(false);
    expect(store.batches.intentOfItem(itemId)).toBeDefined();
    expect(store.batches.reservedUsd(itemId, 'review')).toBeCloseTo(RESERVED, 12);
    fake.endBatch(fake.batches[0]!.id);
    await poller().tick();
    expect(store.batches.latestOfStep(itemId, STEP)).toMatchObject({ id: fake.batches[0]!.id, status: 'ended' });
    expect(store.batches.has(other)).toBe(false);
    expect(store.batches.reservedUsd()).toBe(0);
    expect(ledgerRows()).toEqual([{ stage: 'review', usd: expect.any(Number) }]);
  });

  it('a crash between the create and its record: the next process finds the intent and adopts the batch', async () => {
    fake.failNext({ kind: 'stall', afterCreate: true }, 1, 'batches');
    // The first process sends the create and dies before any answer (its promise is abandoned).
    const abandoned = submit();
    await fake.waitFor(() => fake.batches.length === 1, { what: 'the batch to be created' });
    const next = openStore(path, { now: () => clock.now });
    extraStores.push(next);
    await expectAdoptedOnce(next);
    await fake.close();
    // The dead process's create never came back with an id to record.
    expect(await abandoned).toMatchObject({ kind: 'unclear' });
    expect(next.batches.pending()).toEqual([]);
  });

  it('a failing write after the create: the intent keeps the reservation and the batch is adopted', async () => {
    const raw = new Database(path);
    try {
      raw.exec(`CREATE TRIGGER refuse_batches BEFORE INSERT ON batches BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`);
      const outcome = await submit();
      expect(outcome).toMatchObject({ kind: 'unclear', message: expect.stringContaining(`batch ${fake.batches[0]!.id} was created but could not be recorded`) });
      raw.exec('DROP TRIGGER refuse_batches');
    } finally {
      raw.close();
    }
    await expectAdoptedOnce();
  });

  it('a create that made no batch: after reconciliation finds none, the intent is dropped and the step submitted once more', async () => {
    fake.failNext({ kind: 'reset' }, 1, 'batches');
    expect(await submit()).toMatchObject({ kind: 'unclear' });
    expect(fake.batches).toHaveLength(0);
    expect(store.batches.reservedUsd(itemId, 'review')).toBeCloseTo(RESERVED, 12);
    clock.now += BATCH_RECONCILE_AFTER_MS - 1;
    await poller().tick();
    expect(lists()).toBe(0);
    clock.now += 1;
    await poller().tick();
    expect(store.batches.intentOfItem(itemId)).toBeUndefined();
    expect(store.batches.reservedUsd()).toBe(0);
    expect(resumed).toEqual([itemId]);
    const again = await submit();
    expect(again).toMatchObject({ kind: 'submitted', batch: { nonce: 'n2', step: STEP } });
    expect(fake.batches).toHaveLength(1);
    expect(fake.batches[0]!.requests.map((r) => r.customId)).toEqual(['angle-a-n2', 'angle-b-n2']);
  });

  it('refuses a custom id that does not fit 64 characters with its nonce, before anything is written or sent', async () => {
    const long = call(`angle-${'x'.repeat(57)}`);
    await expect(submitMeteredBatch({ model: { complete: () => Promise.reject(new Error('no')) }, store, prices: {}, batches: client() }, { ...budget, itemId }, STEP, [long])).rejects.toThrow(/does not fit/);
    expect(store.batches.intentOfItem(itemId)).toBeUndefined();
    expect(fake.batchCalls).toHaveLength(0);
  });
});
