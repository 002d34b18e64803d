import { costUsd, priceFor, type ModelPrice } from '../domain/pricing.js';
import type { Batch } from '../store/batches.js';
import type { Store } from '../store/open-store.js';
import { toBatchParams, type BatchClient, type BatchItemResult } from './batch-client.js';
import { classifyModelError } from './classify-model-error.js';
import { admitCall, stopOutcome, type Admission, type CallBudget, type MeteredDeps, type MeteredOutcome } from './metered-call.js';
import type { ModelRequest } from './model-client.js';

/** One call to send in a batch: its custom id (1–64 of `[a-zA-Z0-9_-]`, unique in the batch) and its request. */
export interface BatchCall {
  readonly customId: string;
  readonly request: Omit<ModelRequest, 'signal'>;
}

/** How a metered batch submission went: submitted (and persisted), or why not. */
export type BatchSubmitOutcome =
  /** `batch` is persisted with the calls that fit the budget, in order; `left` were not admitted (a cap). */
  | { readonly kind: 'submitted'; readonly batch: Batch; readonly left: readonly BatchCall[] }
  | Exclude<MeteredOutcome, { kind: 'ok' }>;

/** What a metered batch needs from the process. */
export interface MeteredBatchDeps extends MeteredDeps {
  readonly batches: Pick<BatchClient, 'submit'>;
}

/**
 * Submits calls as one Message Batch, metered like {@link meteredCall}: each call is admitted
 * against every cap at its worst case at the batch price, in order, each counting the ones
 * before it; the calls admitted before the first stop are submitted (none admitted: the stop is
 * the outcome, a daily or monthly cap as `retry-later` with its reset). The batch id and its
 * requests with their worst cases are persisted right after the API accepted the batch, with no
 * await between, and from then on the reservation lives in SQLite (see `store.batches`) until
 * the results are recorded by {@link recordEndedBatch}. A crash between the API's answer and
 * that write leaves at worst an orphan batch (billed, never polled), never a second batch for
 * a persisted one.
 */
export async function submitMeteredBatch(deps: MeteredBatchDeps, budget: CallBudget, step: string, calls: readonly BatchCall[]): Promise<BatchSubmitOutcome> {
  if (calls.length === 0) throw new Error('a batch needs at least one call');
  const reservation = { usd: 0 };
  const admitted: Array<{ readonly call: BatchCall; readonly admission: Extract<Admission, { kind: 'go' }> }> = [];
  try {
    for (const call of calls) {
      const price = priceFor(call.request.model, deps.prices);
      if (!price) return { kind: 'failed', message: `no price is known for model ${call.request.model}` };
      const admission = admitCall(deps.store, budget, call.request, price, { reservation, period: deps.period, batch: true });
      if (admission.kind === 'stop') {
        if (admitted.length === 0) return stopOutcome(admission.stop);
        break;
      }
      admitted.push({ call, admission });
    }
    let batchId: string;
    try {
      batchId = await deps.batches.submit(admitted.map(({ call }) => ({ customId: call.customId, params: toBatchParams(call.request) })));
    } catch (error) {
      return classifyModelError(error);
    }
    const batch = deps.store.batches.create({
      id: batchId,
      itemId: budget.itemId,
      stage: budget.stage,
      step,
      requests: admitted.map(({ call, admission }) => ({ customId: call.customId, request: call.request, worstUsd: admission.worstUsd })),
    });
    return { kind: 'submitted', batch, left: calls.slice(admitted.length) };
  } finally {
    // Persisted (or never sent): the in-memory reservation has done its part.
    for (const { admission } of admitted) admission.release();
  }
}

/** What recording an ended batch wrote. */
export interface RecordedBatch {
  /** Requests answered, each with its ledger row. */
  readonly succeeded: number;
  /** Requests that errored, expired, were canceled or had no result line (nothing billed). */
  readonly unanswered: number;
  /** What the answered requests cost, at the batch price. */
  readonly usd: number;
}

/**
 * Records the results of an ended batch in one transaction: each request's result, a ledger
 * row (flagged `batch`, at the batch price) for each answered one, and the batch as ended, which
 * releases its reservation. A request missing from the results counts as errored. Undefined (and
 * nothing written) when the batch was not pending, so a poll repeated after a restart never
 * records twice. Should the model have no price any more (prices changed across a restart), the
 * reserved worst case is what is recorded.
 */
export function recordEndedBatch(
  store: Store,
  prices: Readonly<Record<string, ModelPrice>>,
  batchId: string,
  results: ReadonlyMap<string, BatchItemResult>,
): RecordedBatch | undefined {
  return store.transaction(() => {
    const batch = store.batches.get(batchId);
    if (batch?.status !== 'pending') return undefined;
    const requests = store.batches.requests(batchId);
    const stored = new Map<string, BatchItemResult>();
    let succeeded = 0;
    let usd = 0;
    for (const r of requests) {
      const result: BatchItemResult = results.get(r.customId) ?? { kind: 'errored', errorType: 'missing_result', message: 'the results file had no line for this request' };
      stored.set(r.customId, result);
      if (result.kind !== 'succeeded') continue;
      const { response } = result;
      const requestModel = (r.request as { model?: unknown } | null)?.model;
      const price = priceFor(response.model, prices) ?? (typeof requestModel === 'string' ? priceFor(requestModel, prices) : undefined);
      const cost = price ? costUsd(response.usage, price, { batch: true }) : r.worstUsd;
      store.ledger.record({ itemId: batch.itemId, stage: batch.stage, model: response.model, ...response.usage, batch: true, costUsd: cost, requestId: `${batchId}/${r.customId}` });
      succeeded += 1;
      usd += cost;
    }
    store.batches.end(batchId, 'ended', stored);
    return { succeeded, unanswered: requests.length - succeeded, usd };
  });
}

/**
 * Marks a pending batch the API no longer knows as failed: nothing of it is billed or recorded,
 * its reservation is released, and the stage falls back to normal calls. False if it was not pending.
 */
export function recordLostBatch(store: Store, batchId: string): boolean {
  return store.batches.end(batchId, 'failed');
}
