import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { estimateInputTokens, priceFor, worstCaseCostUsd } from '../../src/domain/pricing.js';
import { meteredCall, type CallBudget } from '../../src/llm/metered-call.js';
import type { ModelClient, ModelRequest } from '../../src/llm/model-client.js';
import { makeStore } from '../helpers/factories.js';

const request: ModelRequest = {
  model: 'claude-opus-4-6',
  system: [{ type: 'text', text: 'look at the last merges' }],
  tools: [],
  messages: [{ role: 'user', content: 'go' }],
  maxTokens: 1000,
};
const worst = worstCaseCostUsd(estimateInputTokens(request), request.maxTokens, priceFor(request.model)!);

/** The ModelClient port, answering at once and counting its calls (no HTTP). */
function countingModel() {
  const model = {
    calls: 0,
    complete: async () => {
      model.calls += 1;
      return { model: request.model, content: [], stopReason: 'end_turn' as const, usage: { inputTokens: 100, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 50 } };
    },
  } satisfies ModelClient & { calls: number };
  return model;
}

describe('meteredCall for no item (a drift checkpoint)', () => {
  it('records the call with a null item id under its stage', async () => {
    const { store, path } = makeStore();
    const model = countingModel();
    const budget: CallBudget = { itemId: null, stage: 'drift', stageBudgetUsd: worst * 2 };
    expect((await meteredCall({ model, store, prices: {} }, budget, request)).kind).toBe('ok');
    const db = new Database(path, { readonly: true });
    try {
      expect(db.prepare('SELECT item_id AS itemId, stage, output_tokens AS out FROM llm_calls').all()).toEqual([{ itemId: null, stage: 'drift', out: 50 }]);
    } finally {
      db.close();
    }
  });

  it('checks only the stage cap, against the call\'s worst case and the calls in flight', async () => {
    const { store } = makeStore();
    const model = countingModel();
    const budget: CallBudget = { itemId: null, stage: 'drift', stageBudgetUsd: worst * 1.5 };
    expect((await meteredCall({ model, store, prices: {} }, budget, request)).kind).toBe('ok');
    // A second call alongside one in flight would cross the cap.
    expect(await meteredCall({ model, store, prices: {} }, budget, request, { usd: worst })).toMatchObject({ kind: 'limit', stop: { limit: 'stage-budget' } });
    expect(await meteredCall({ model, store, prices: {} }, { ...budget, stageBudgetUsd: worst / 2 }, request)).toMatchObject({ kind: 'limit', stop: { limit: 'stage-budget', message: expect.stringContaining('drift budget') } });
    expect(model.calls).toBe(1);
  });
});
