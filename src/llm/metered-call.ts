import { dayStart, monthStart, nextDayStart, nextMonthStart } from '../domain/peak-hours.js';
import { costUsd, estimateInputTokens, priceFor, worstCaseCostUsd, type ModelPrice } from '../domain/pricing.js';
import { zonedParts } from '../domain/zoned-time.js';
import type { Store } from '../store/open-store.js';
import { classifyModelError } from './classify-model-error.js';
import { PartialCallError, type ModelClient, type ModelRequest, type ModelResponse } from './model-client.js';

/**
 * Dollar caps a call is checked against. A call made for an item is checked against the
 * item's stage and item caps; a call made for no item (a drift checkpoint) has `itemId: null`,
 * only a stage cap, and a ledger row without an item id. Both are also checked against the
 * process's daily and monthly caps when the caller has a {@link PeriodBudget}.
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

/**
 * The caps on what the whole process spends per local day and month, and the worst cases of
 * every call in flight against them. One per process (see {@link createPeriodBudget}): items
 * running side by side share `inFlight`, so together they cannot overshoot a cap.
 */
export interface PeriodBudget {
  readonly dailyUsd: number;
  readonly monthlyUsd: number;
  /** IANA zone whose midnights start the days and months. */
  readonly timeZone: string;
  /** Wall clock (epoch ms). Must be the store's clock: ledger rows are stamped with it. */
  readonly now: () => number;
  /** Worst cases of the calls in flight in this process, in dollars. */
  readonly inFlight: { usd: number };
}

/** The daily and monthly caps of one process, with nothing in flight yet. */
export function createPeriodBudget(
  caps: { readonly dailyUsd: number; readonly monthlyUsd: number },
  timeZone: string,
  /** @default Date.now */
  now: () => number = Date.now,
): PeriodBudget {
  return { dailyUsd: caps.dailyUsd, monthlyUsd: caps.monthlyUsd, timeZone, now, inFlight: { usd: 0 } };
}

/** A cap the next call could cross. */
export type BudgetStop = StageBudgetStop | PeriodBudgetStop;

/** The stage or item cap: final for the run (more money for it needs a human). */
export interface StageBudgetStop {
  readonly limit: 'stage-budget' | 'item-budget';
  readonly message: string;
}

/** The daily or monthly cap: the work waits for `resetsAt` and goes on from where it stopped. */
export interface PeriodBudgetStop {
  readonly limit: 'daily-budget' | 'monthly-budget';
  /** Names the cap and when it resets (local time in the period's zone). */
  readonly message: string;
  /** When the period ends and its cap is free again (epoch ms). */
  readonly resetsAt: number;
  /**
   * False when this one call's worst case is more than the whole cap: waiting for the reset
   * would not help, so the stop is as final as a stage cap.
   */
  readonly resumable: boolean;
}

/** Whether a stop is a daily or monthly one (the work waits for the reset). */
export function isPeriodStop(stop: BudgetStop): stop is PeriodBudgetStop {
  return stop.limit === 'daily-budget' || stop.limit === 'monthly-budget';
}

/** The dearest a call of this request could be: all input at the dearest rate, the full max_tokens of output. */
export function callWorstCaseUsd(request: Omit<ModelRequest, 'signal'>, price: ModelPrice): number {
  return worstCaseCostUsd(estimateInputTokens(request), request.maxTokens, price);
}

/**
 * Whether a call of this request could cross a cap: persisted spend plus the calls in flight
 * plus the call's worst case (see {@link callWorstCaseUsd}), against the stage and item caps,
 * then (with `period`) the monthly and daily caps of the current local month and day. A call
 * for no item has no persisted stage spend to count (see {@link RepoCallBudget}).
 */
export function checkBudget(
  store: Store,
  budget: CallBudget,
  request: Omit<ModelRequest, 'signal'>,
  price: ModelPrice,
  /** Worst cases of calls already in flight alongside this one, for the stage and item caps. */
  inFlightUsd = 0,
  /** The process's daily and monthly caps; they count `period.inFlight` instead. */
  period?: PeriodBudget,
): BudgetStop | undefined {
  return checkWorstCase(store, budget, callWorstCaseUsd(request, price), inFlightUsd, period);
}

function checkWorstCase(store: Store, budget: CallBudget, worst: number, inFlightUsd: number, period: PeriodBudget | undefined): BudgetStop | undefined {
  const stageUsd = (budget.itemId === null ? 0 : store.ledger.stageUsd(budget.itemId, budget.stage)) + inFlightUsd;
  if (stageUsd + worst > budget.stageBudgetUsd) {
    return { limit: 'stage-budget', message: `spent $${stageUsd.toFixed(2)} of the $${budget.stageBudgetUsd.toFixed(2)} ${budget.stage} budget; the next call could cost up to $${worst.toFixed(2)}` };
  }
  if (budget.itemId !== null) {
    const itemUsd = store.ledger.itemUsd(budget.itemId) + inFlightUsd;
    if (itemUsd + worst > budget.itemBudgetUsd) {
      return { limit: 'item-budget', message: `spent $${itemUsd.toFixed(2)} of the $${budget.itemBudgetUsd.toFixed(2)} item budget; the next call could cost up to $${worst.toFixed(2)}` };
    }
  }
  return period ? checkPeriods(store, period, worst) : undefined;
}

// Monthly first: when both caps are crossed, the daily reset alone would not be enough.
function checkPeriods(store: Store, period: PeriodBudget, worst: number): PeriodBudgetStop | undefined {
  const now = period.now();
  const { timeZone } = period;
  const periods = [
    { limit: 'monthly-budget', name: 'monthly', when: 'this month', capUsd: period.monthlyUsd, from: monthStart(now, timeZone), resetsAt: nextMonthStart(now, timeZone) },
    { limit: 'daily-budget', name: 'daily', when: 'today', capUsd: period.dailyUsd, from: dayStart(now, timeZone), resetsAt: nextDayStart(now, timeZone) },
  ] as const;
  for (const p of periods) {
    const spentUsd = store.ledger.sinceUsd(p.from);
    const usedUsd = spentUsd + period.inFlight.usd;
    if (usedUsd + worst <= p.capUsd) continue;
    const inFlight = period.inFlight.usd > 0 ? ` (and $${period.inFlight.usd.toFixed(2)} in calls still running)` : '';
    const resumable = worst <= p.capUsd;
    const after = resumable
      ? `it resets at ${formatLocal(p.resetsAt, timeZone)}, and the work goes on from here then`
      : `that is more than the whole cap, so waiting for its reset at ${formatLocal(p.resetsAt, timeZone)} will not help; raise NIGHTSHIFT_BUDGET_${p.name.toUpperCase()}_USD`;
    return {
      limit: p.limit,
      message: `the ${p.name} budget of $${p.capUsd.toFixed(2)} would be crossed: spent $${spentUsd.toFixed(2)} ${p.when}${inFlight}, and the next call could cost up to $${worst.toFixed(2)}; ${after}`,
      resetsAt: p.resetsAt,
      resumable,
    };
  }
  return undefined;
}

/** `2026-11-26 00:00 Europe/Amsterdam`: a reset time as the user's clock shows it. */
function formatLocal(epochMs: number, timeZone: string): string {
  const p = zonedParts(epochMs, timeZone);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${p.year}-${two(p.month)}-${two(p.day)} ${two(p.hour)}:${two(p.minute)} ${timeZone}`;
}

/** A call let through the budget check: call `release` once it has ended, paid or not. */
export type Admission = { readonly kind: 'go'; readonly release: () => void } | { readonly kind: 'stop'; readonly stop: BudgetStop };

/**
 * Checks a call against every cap (see {@link checkBudget}) and, when it may go ahead, counts
 * its worst case as in flight (in `reservation` and `period.inFlight`) until `release`. The
 * check and the reservation happen without an await between them, so calls started side by
 * side in one process see each other.
 */
export function admitCall(
  store: Store,
  budget: CallBudget,
  request: Omit<ModelRequest, 'signal'>,
  price: ModelPrice,
  options: { readonly reservation?: { usd: number }; readonly period?: PeriodBudget | undefined } = {},
): Admission {
  const worst = callWorstCaseUsd(request, price);
  const stop = checkWorstCase(store, budget, worst, options.reservation?.usd ?? 0, options.period);
  if (stop) return { kind: 'stop', stop };
  if (options.reservation) options.reservation.usd += worst;
  if (options.period) options.period.inFlight.usd += worst;
  let released = false;
  return {
    kind: 'go',
    release() {
      if (released) return;
      released = true;
      if (options.reservation) options.reservation.usd -= worst;
      if (options.period) options.period.inFlight.usd -= worst;
    },
  };
}

/** Records a call that broke off midway (the API bills what it streamed). */
export function recordPartialCall(store: Store, budget: CallBudget, error: PartialCallError, price: ModelPrice): void {
  store.ledger.record({ itemId: budget.itemId, stage: budget.stage, model: error.model, ...error.usage, batch: false, costUsd: costUsd(error.usage, price) });
}

/** The outcome of one metered call. */
export type MeteredOutcome =
  | { readonly kind: 'ok'; readonly response: ModelResponse }
  /** A stage or item cap, or a daily or monthly cap that this call alone is dearer than. */
  | { readonly kind: 'limit'; readonly stop: BudgetStop }
  /**
   * Worth trying again: a transient model error, or a daily or monthly cap (then `notBefore`
   * is its reset time and the message names the cap and the reset).
   */
  | { readonly kind: 'retry-later'; readonly message: string; readonly notBefore?: number; /** A rate limit or overload (see `classifyModelError`). */ readonly rateLimited?: true }
  | { readonly kind: 'failed'; readonly message: string };

/** What a metered call needs from the process. */
export interface MeteredDeps {
  readonly model: ModelClient;
  readonly store: Store;
  readonly prices: Readonly<Record<string, ModelPrice>>;
  /** The process's daily and monthly caps; without it only the stage and item caps apply. */
  readonly period?: PeriodBudget | undefined;
}

/**
 * One model call outside an agent loop (a reviewer, triage, a drift checkpoint): checked against the budget
 * before, recorded in the ledger after (also when it broke off midway), errors classified. A
 * daily or monthly cap comes back as `retry-later` with `notBefore`, so the stage waits for the
 * reset instead of giving up.
 */
export async function meteredCall(
  deps: MeteredDeps,
  budget: CallBudget,
  request: ModelRequest,
  /** Shared by calls made in parallel: each counts the others' worst cases as spent. */
  reservation: { usd: number } = { usd: 0 },
): Promise<MeteredOutcome> {
  const price = priceFor(request.model, deps.prices);
  if (!price) return { kind: 'failed', message: `no price is known for model ${request.model}` };
  const admission = admitCall(deps.store, budget, request, price, { reservation, period: deps.period });
  if (admission.kind === 'stop') {
    const { stop } = admission;
    return isPeriodStop(stop) && stop.resumable ? { kind: 'retry-later', message: stop.message, notBefore: stop.resetsAt } : { kind: 'limit', stop };
  }
  try {
    const response = await deps.model.complete(request);
    deps.store.ledger.record({ itemId: budget.itemId, stage: budget.stage, model: response.model, ...response.usage, batch: false, costUsd: costUsd(response.usage, price), requestId: response.requestId });
    return { kind: 'ok', response };
  } catch (error) {
    if (error instanceof PartialCallError) recordPartialCall(deps.store, budget, error, price);
    return classifyModelError(error);
  } finally {
    admission.release();
  }
}
