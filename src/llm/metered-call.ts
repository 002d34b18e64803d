import { costUsd, estimateInputTokens, priceFor, worstCaseCostUsd, type ModelPrice } from '../domain/pricing.js';
import type { Store } from '../store/open-store.js';
import { classifyModelError, type ModelErrorOutcome } from './classify-model-error.js';
import { PartialCallError, type ModelClient, type ModelRequest, type ModelResponse } from './model-client.js';

/**
 * Dollar caps a call is checked against. A call made for an item is checked against the
 * item's stage and item caps; a call made for no item (a drift checkpoint) has `itemId: null`,
 * only a stage cap, and a ledger row without an item id.
 */
export type CallBudget = ItemCallBudget | RepoCallBudget;

/** The caps of a call made for one item. */
export interface ItemCallBudget {
  readonly itemId: number;
  /** Ledger stage the call is billed to. */
  readonly stage: string;
  readonly stageBudgetUsd: number;
  readonly itemBudgetUsd: number;
}

/**
 * The cap of a call made for no item. The ledger keeps no per-checkpoint total, so the stage
 * cap bounds each call (with the calls in flight beside it, through the shared reservation).
 */
export interface RepoCallBudget {
  readonly itemId: null;
  /** Ledger stage the call is billed to. */
  readonly stage: string;
  readonly stageBudgetUsd: number;
  readonly itemBudgetUsd?: undefined;
}

/** A cap the next call could cross. */
export interface BudgetStop {
  readonly limit: 'stage-budget' | 'item-budget';
  readonly message: string;
}

/**
 * Whether a call of this request could cross the stage or item cap: persisted spend plus the
 * call's worst case (all input at the dearest rate, the full max_tokens of output). A call for
 * no item has no persisted stage spend to count (see {@link RepoCallBudget}).
 */
export function checkBudget(
  store: Store,
  budget: CallBudget,
  request: Omit<ModelRequest, 'signal'>,
  price: ModelPrice,
  /** Worst cases of calls already in flight alongside this one. */
  inFlightUsd = 0,
): BudgetStop | undefined {
  const worst = worstCaseCostUsd(estimateInputTokens(request), request.maxTokens, price);
  const stageUsd = (budget.itemId === null ? 0 : store.ledger.stageUsd(budget.itemId, budget.stage)) + inFlightUsd;
  if (stageUsd + worst > budget.stageBudgetUsd) {
    return { limit: 'stage-budget', message: `spent $${stageUsd.toFixed(2)} of the $${budget.stageBudgetUsd.toFixed(2)} ${budget.stage} budget; the next call could cost up to $${worst.toFixed(2)}` };
  }
  if (budget.itemId === null) return undefined;
  const itemUsd = store.ledger.itemUsd(budget.itemId) + inFlightUsd;
  if (itemUsd + worst > budget.itemBudgetUsd) {
    return { limit: 'item-budget', message: `spent $${itemUsd.toFixed(2)} of the $${budget.itemBudgetUsd.toFixed(2)} item budget; the next call could cost up to $${worst.toFixed(2)}` };
  }
  return undefined;
}

/** Records a call that broke off midway (the API bills what it streamed). */
export function recordPartialCall(store: Store, budget: CallBudget, error: PartialCallError, price: ModelPrice): void {
  store.ledger.record({ itemId: budget.itemId, stage: budget.stage, model: error.model, ...error.usage, batch: false, costUsd: costUsd(error.usage, price) });
}

/** The outcome of one metered call. */
export type MeteredOutcome =
  | { readonly kind: 'ok'; readonly response: ModelResponse }
  | { readonly kind: 'limit'; readonly stop: BudgetStop }
  | ModelErrorOutcome;

/**
 * One model call outside an agent loop (a reviewer, triage, a drift checkpoint): checked against the budget
 * before, recorded in the ledger after (also when it broke off midway), errors classified.
 */
export async function meteredCall(
  deps: { model: ModelClient; store: Store; prices: Readonly<Record<string, ModelPrice>> },
  budget: CallBudget,
  request: ModelRequest,
  /** Shared by calls made in parallel: each counts the others' worst cases as spent. */
  reservation: { usd: number } = { usd: 0 },
): Promise<MeteredOutcome> {
  const price = priceFor(request.model, deps.prices);
  if (!price) return { kind: 'failed', message: `no price is known for model ${request.model}` };
  const stop = checkBudget(deps.store, budget, request, price, reservation.usd);
  if (stop) return { kind: 'limit', stop };
  const worst = worstCaseCostUsd(estimateInputTokens(request), request.maxTokens, price);
  reservation.usd += worst;
  try {
    const response = await deps.model.complete(request);
    deps.store.ledger.record({ itemId: budget.itemId, stage: budget.stage, model: response.model, ...response.usage, batch: false, costUsd: costUsd(response.usage, price), requestId: response.requestId });
    return { kind: 'ok', response };
  } catch (error) {
    if (error instanceof PartialCallError) recordPartialCall(deps.store, budget, error, price);
    return classifyModelError(error);
  } finally {
    reservation.usd -= worst;
  }
}
