import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBatchClient, type BatchClient } from '../../src/llm/batch-client.js';
import { createBatchPoller } from '../../src/pipeline/batch-poller.js';
import type { StageOutcome } from '../../src/pipeline/build-stage.js';
import { createRunner } from '../../src/pipeline/runner.js';
import type { Store } from '../../src/store/open-store.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fakes/anthropic-server.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

// The poller against the fake Batches API: a failed poll is tried again at the next tick, an
// ended batch is recorded once and its item resumed, a cancelled item's batch is still recorded.

const MODEL = 'claude-opus-4-6';
const log = pino({ level: 'silent' });

let fake: FakeAnthropic;
let client: BatchClient;
let store: Store;

beforeEach(async () => {
  fake = await startFakeAnthropic();
  client = createBatchClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, maxRetries: 0 });
  ({ store } = makeStore());
});

afterEach(async () => {
  store.close();
  await fake.close();
});

/** Submits a one-request batch for `itemId` and persists it, as the review stage does. */
async function submitFor(itemId: number): Promise<string> {
  const request = { model: MODEL, system: [{ type: 'text' as const, text: 'review' }], tools: [], messages: [{ role: 'user' as const, content: 'go' }], maxTokens: 100 };
  const id = await client.submit([{ customId: 'angle-a', params: { model: MODEL, max_tokens: 100, system: request.system, messages: request.messages } }]);
  store.batches.create({ id, itemId, stage: 'review', step: 'round-1-reviewers', requests: [{ customId: 'angle-a', request, worstUsd: 0.1 }] });
  return id;
}

describe('batch poller', () => {
  it('tries a failed poll again at the next tick, then records the batch once and resumes its item', async () => {
    const item = store.items.create(makeNewItem({ state: 'reviewing' }));
    const id = await submitFor(item.id);
    const resumed: number[] = [];
    const poller = createBatchPoller({ store, client, prices: {}, resume: (itemId) => void resumed.push(itemId), log });

    fake.script({ content: [{ type: 'text', text: 'fine' }] });
    fake.endBatch();
    fake.failNext({ kind: 'server-error' }, 1, 'batches');
    await poller.tick();
    expect(store.batches.get(id)?.status).toBe('pending');
    expect(store.ledger.itemUsd(item.id)).toBe(0);
    expect(resumed).toEqual([]);

    await poller.tick();
    expect(store.batches.get(id)?.status).toBe('ended');
    expect(store.ledger.itemUsd(item.id)).toBeGreaterThan(0);
    expect(resumed).toEqual([item.id]);
    // Nothing pending: the next tick asks the API nothing.
    const calls = fake.batchCalls.length;
    await poller.tick();
    expect(fake.batchCalls).toHaveLength(calls);
  });

  it("records the batch of an item cancelled meanwhile (it was paid), and the runner starts nothing", async () => {
    const item = store.items.create(makeNewItem({ state: 'reviewing' }));
    await submitFor(item.id);
    store.items.transition(item.id, 'cancelled', 'cancelled by the user');
    const reviews: number[] = [];
    const runner = createRunner({
      store,
      build: () => Promise.resolve<StageOutcome>({ kind: 'done' }),
      review: (i) => {
        reviews.push(i.id);
        return Promise.resolve<StageOutcome>({ kind: 'done' });
      },
      notifier: { notify: () => undefined },
      cleanup: async () => undefined,
      log,
    });
    try {
      const poller = createBatchPoller({ store, client, prices: {}, resume: (itemId) => runner.resume(itemId), log });
      fake.script({ content: [{ type: 'text', text: 'fine' }] });
      fake.endBatch();
      await poller.tick();
      await runner.idle();
      expect(store.ledger.itemUsd(item.id)).toBeGreaterThan(0);
      expect(store.batches.reservedUsd()).toBe(0);
      expect(runner.runningCount()).toBe(0);
      expect(reviews).toEqual([]);
      expect(store.items.get(item.id)?.state).toBe('cancelled');
    } finally {
      await runner.stop();
    }
  });
});
