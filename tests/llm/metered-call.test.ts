import { describe, expect, it } from 'vitest';
import { estimateInputTokens, priceFor, worstCaseCostUsd } from '../../src/domain/pricing.js';
import { meteredCall } from '../../src/llm/metered-call.js';
import type { ModelClient, ModelRequest } from '../../src/llm/model-client.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

const request: ModelRequest = {
  model: 'claude-opus-4-5',
  system: [{ type: 'text', text: 'review' }],
  tools: [],
  messages: [{ role: 'user', content: 'go' }],
  maxTokens: 1000,
};

/** A model whose calls finish only when the test says so (the ModelClient port, no HTTP). */
function heldModel() {
  const release: Array<() => void> = [];
  const client: ModelClient = {
    complete: () =>
      new Promise((resolve) =>
        release.push(() =>
          resolve({ model: request.model, content: [], stopReason: 'end_turn', usage: { inputTokens: 10, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 10 } }),
        ),
      ),
  };
  return { client, release };
}

describe('meteredCall', () => {
  it('counts calls in flight against the budget, so parallel calls cannot overshoot it together', async () => {
    const { store } = makeStore();
    const itemId = store.items.create(makeNewItem()).id;
    const worst = worstCaseCostUsd(estimateInputTokens(request), request.maxTokens, priceFor(request.model)!);
    // Room for one worst case, not two.
    const budget = { itemId, stage: 'review', stageBudgetUsd: worst * 1.5, itemBudgetUsd: 100 };
    const { client, release } = heldModel();
    const reservation = { usd: 0 };
    const first = meteredCall({ model: client, store, prices: {} }, budget, request, reservation);
    const second = await meteredCall({ model: client, store, prices: {} }, budget, request, reservation);
    expect(second).toMatchObject({ kind: 'limit', stop: { limit: 'stage-budget' } });
    release[0]!();
    expect((await first).kind).toBe('ok');
    expect(reservation.usd).toBeCloseTo(0, 12);
    expect(store.ledger.stageUsd(itemId, 'review')).toBeGreaterThan(0);
  });
});
