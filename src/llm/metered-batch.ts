import { randomBytes } from 'node:crypto';
import { costUsd, priceFor, type ModelPrice } from '../domain/pricing.js';
import { wireCustomId, type Batch, type BatchIntent } from '../store/batches.js';
import type { Store } from '../store/open-store.js';
import { BATCH_CLOCK_SKEW_MS, isRefusedBatch, type BatchClient, type BatchItemResult } from './batch-client.js';
import { classifyModelError } from './classify-model-error.js';
import { admitCall, stopOutcome, type Admission, type CallBudget, type MeteredDeps, type MeteredOutcome } from './metered-call.js';
import { toMessageParams, type ModelRequest } from './model-client.js';

/** One call to send in a batch: its custom id (1–64 of `[a-zA-Z0-9_-]`, unique in the batch) and its request. */
export interface BatchCall {
  readonly customId: string;
  readonly request: Omit<ModelRequest, 'signal'>;
}

/** How a metered batch submission went: submitted (and persisted), unclear, or why not. */
export type BatchSubmitOutcome =
  /** `batch` is persisted with the calls that fit the budget, in order; `left` were not admitted (a cap). */
  | { readonly kind: 'submitted'; readonly batch: Batch; readonly left: readonly BatchCall[] }
  /**
   * The create may or may not have made a batch (a 5xx, a dropped connection, a timeout, or the
   * batch could not be recorded): the intent stays open, its reservation held, until
   * {@link reconcileBatchIntent} finds the batch or finds there is none. Nothing is to be submitted
   * for the step meanwhile.
   */
  | { readonly kind: 'unclear'; readonly intent: BatchIntent; readonly message: string }
  | Exclude<MeteredOutcome, { kind: 'ok' }>;

/** What a metered batch needs from the process. */
export interface MeteredBatchDeps extends MeteredDeps {
  readonly batches: Pick<BatchClient, 'submit'>;
  /** A fresh nonce of 1–16 of `[a-z0-9]` per submission. @default 16 random hex digits */
  readonly nonce?: () => string;
}

/** Longest nonce: the longest custom id of the stage (47) + '-' + this fits the API's 64. */
const NONCE_MAX = 16;
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * Submits calls as one Message Batch, metered like {@link meteredCall}: each call is admitted
 * against every cap at its worst case at the batch price, in order, each counting the ones
 * before it; the calls admitted before the first stop are submitted (none admitted: the stop is
 * the outcome, a daily or monthly cap as `retry-later` with its reset).
 *
 * Before the create is sent, an intent (the requests, their worst cases, a fresh nonce that ends
 * every custom id sent) is written to SQLite, and from then on the reservation lives there: an
 * open intent counts like a pending batch, also across a crash. The create is sent once. Its
 * answer settles the intent into a pending batch (no await between); a 4xx drops it (nothing was
 * created); anything else leaves it open (`unclear`) for {@link reconcileBatchIntent}. So no
 * second batch is submitted for the step while the first may exist, and no batch's spend escapes
 * the reservations.
 */
export async function submitMeteredBatch(deps: MeteredBatchDeps, budget: CallBudget, step: string, calls: readonly BatchCall[]): Promise<BatchSubmitOutcome> {
  if (calls.length === 0) throw new Error('a batch needs at least one call');
  const nonce = (deps.nonce ?? randomNonce)();
  if (!/^[a-z0-9]+$/.test(nonce) || nonce.length > NONCE_MAX) throw new Error(`a batch nonce must be 1-${NONCE_MAX} of [a-z0-9], got ${JSON.stringify(nonce)}`);
  for (const call of calls) {
    if (!CUSTOM_ID.test(wireCustomId(call.customId, nonce))) {
      throw new Error(`custom id ${JSON.stringify(call.customId)} does not fit the API's 1-64 of [a-zA-Z0-9_-] once '-<nonce>' is added`);
    }
  }
  const reservation = { usd: 0 };
  const admitted: Array<{ readonly call: BatchCall; readonly admission: Extract<Admission, { kind: 'go' }> }> = [];
  let intent: BatchIntent;
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
    // Written with no await since the admissions: the persisted reservation takes over from the
    // in-memory one (released in `finally`, before anything is awaited).
    intent = deps.store.batches.openIntent({
      nonce,
      itemId: budget.itemId,
      stage: budget.stage,
      step,
      requests: admitted.map(({ call, admission }) => ({ customId: call.customId, request: call.request, worstUsd: admission.worstUsd })),
    });
  } finally {
    for (const { admission } of admitted) admission.release();
  }
  let batchId: string;
  try {
    batchId = await deps.batches.submit(admitted.map(({ call }) => ({ customId: wireCustomId(call.customId, nonce), params: toMessageParams(call.request) })));
  } catch (error) {
    if (!isRefusedBatch(error)) {
      return { kind: 'unclear', intent, message: `the batch may have been created (${errorText(error)}); looking for it before anything is sent again` };
    }
    deps.store.batches.dropIntent(nonce);
    return classifyModelError(error);
  }
  try {
    const batch = deps.store.batches.settleIntent(nonce, { id: batchId, itemId: intent.itemId, stage: intent.stage, step, requests: intent.requests });
    return { kind: 'submitted', batch, left: calls.slice(admitted.length) };
  } catch (error) {
    // The batch exists, but the write failed: the intent (if it was written) keeps the
    // reservation, and reconciliation adopts the batch by its nonce.
    return { kind: 'unclear', intent, message: `batch ${batchId} was created but could not be recorded (${errorText(error)}); it will be adopted when found` };
  }
}

/** What reconciling an open intent did. */
export type ReconciledIntent =
  /** The intent's batch was found ended, adopted, and its results and ledger rows recorded. */
  | { readonly kind: 'adopted'; readonly batchId: string; readonly recorded: RecordedBatch }
  /** No batch of the intent exists: the intent is dropped, the step may be submitted again. */
  | { readonly kind: 'absent' }
  /** Batches that could be the intent's still run: look again at a later poll. */
  | { readonly kind: 'undecided'; readonly running: readonly string[] }
  /** The intent was settled or dropped meanwhile: nothing done. */
  | { readonly kind: 'gone' };

/**
 * Decides an open intent (see {@link submitMeteredBatch}) once its create can no longer be in
 * flight (the caller waits `BATCH_RECONCILE_AFTER_MS`): searches the API for the batch carrying
 * its nonce (see `BatchClient.find`). Found (it has ended): the batch is recorded with its
 * results and ledger rows, and the intent closed, in one transaction. None can be it: the intent
 * is dropped, which frees its reservation and lets the stage submit again. Otherwise the intent
 * stays open, reserved, for the next poll. Rejects with the client's errors (try again later).
 */
export async function reconcileBatchIntent(
  deps: { readonly store: Store; readonly prices: Readonly<Record<string, ModelPrice>>; readonly batches: Pick<BatchClient, 'find'> },
  intent: BatchIntent,
): Promise<ReconciledIntent> {
  const { store } = deps;
  const [first] = intent.requests;
  if (!first) throw new Error(`batch intent ${intent.nonce} has no requests`);
  const search = await deps.batches.find({
    customId: wireCustomId(first.customId, intent.nonce),
    requestCount: intent.requests.length,
    createdAfter: intent.createdAt - BATCH_CLOCK_SKEW_MS,
    isKnown: (id) => store.batches.has(id),
  });
  if (search.kind === 'undecided') return search;
  return store.transaction((): ReconciledIntent => {
    if (!store.batches.intent(intent.nonce)) return { kind: 'gone' };
    if (search.kind === 'absent') {
      store.batches.dropIntent(intent.nonce);
      return { kind: 'absent' };
    }
    store.batches.settleIntent(intent.nonce, { id: search.batchId, itemId: intent.itemId, stage: intent.stage, step: intent.step, requests: intent.requests });
    const recorded = recordEndedBatch(store, deps.prices, search.batchId, search.results);
    // Just settled, so pending: recorded is always set here.
    if (!recorded) throw new Error(`batch ${search.batchId} was adopted but not pending`);
    return { kind: 'adopted', batchId: search.batchId, recorded };
  });
}

function randomNonce(): string {
  return randomBytes(NONCE_MAX / 2).toString('hex');
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
 * records twice. `results` are keyed by the custom ids as sent (with the batch's nonce). Should the model have no price any more (prices changed across a restart), the
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
      const result: BatchItemResult = results.get(wireCustomId(r.customId, batch.nonce)) ?? { kind: 'errored', errorType: 'missing_result', message: 'the results file had no line for this request' };
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
