import type Anthropic from '@anthropic-ai/sdk';
import { APIConnectionError, APIError, NotFoundError } from '@anthropic-ai/sdk/core/error';
import { lazyAnthropic } from './anthropic-sdk.js';
import { z } from 'zod';
import type { ModelResponse } from './model-client.js';
import { toTokenUsage } from './model-client.js';

/** A batch ends within this long of its creation; requests not processed by then expire. @default 24 hours */
export const BATCH_EXPIRY_MS = 24 * 60 * 60_000;

/**
 * How long one create may take before it is given up (its outcome then unclear). Reconciliation
 * waits longer than this (see {@link BATCH_RECONCILE_AFTER_MS}). @default 2 minutes
 */
export const BATCH_SUBMIT_TIMEOUT_MS = 2 * 60_000;

/**
 * How old an open intent must be before reconciliation looks for its batch: past the create's
 * timeout, with room for an API that was still creating the batch when the connection broke
 * and for a list that shows a new batch late. @default 10 minutes
 */
export const BATCH_RECONCILE_AFTER_MS = 10 * 60_000;

/**
 * How much earlier than the intent a batch may be stamped and still be a candidate: the API's
 * clock is not ours. A wider window only costs listing more. @default 15 minutes
 */
export const BATCH_CLOCK_SKEW_MS = 15 * 60_000;

/** Request parameters of one batched call: a non-streaming Messages request. */
export type BatchParams = Anthropic.Messages.MessageCreateParamsNonStreaming;

/** One request in a batch; `customId` (1–64 of `[a-zA-Z0-9_-]`, unique in the batch) is how its result is found. */
export interface BatchRequest {
  readonly customId: string;
  readonly params: BatchParams;
}

/** How one request of an ended batch ended. */
export type BatchItemResult =
  | { readonly kind: 'succeeded'; readonly response: ModelResponse }
  /** Not answered (nothing billed); `errorType` is the API's error type, e.g. 'invalid_request_error'. */
  | { readonly kind: 'errored'; readonly errorType: string; readonly message: string }
  /** Not processed within the batch's 24 hours (nothing billed). */
  | { readonly kind: 'expired' }
  /** The batch was canceled before this request was processed (nothing billed). */
  | { readonly kind: 'canceled' };

/**
 * A batch is pending until every request in it has ended; then its results arrive all at once.
 * `results` holds what the results file listed, by custom id: a submitted id missing from it
 * (the API promises one line per request) is for the caller to treat like an errored one.
 */
export type BatchState =
  | { readonly kind: 'pending' }
  | { readonly kind: 'ended'; readonly results: ReadonlyMap<string, BatchItemResult> };

/**
 * What a search for the batch of an unclear create found. `found`: the ended batch whose
 * results hold the custom id, with those results. `absent`: no batch created in the window can
 * be it. `undecided`: candidates are still running (the API shows no custom ids before a batch
 * has ended), so the search must be made again once they have.
 */
export type BatchSearch =
  | { readonly kind: 'found'; readonly batchId: string; readonly results: ReadonlyMap<string, BatchItemResult> }
  | { readonly kind: 'absent' }
  | { readonly kind: 'undecided'; readonly running: readonly string[] };

/** What identifies the batch an unclear create may have made. */
export interface BatchProbe {
  /** A custom id only that batch has (it ends in the intent's nonce). */
  readonly customId: string;
  /** How many requests the batch has: others are not candidates. */
  readonly requestCount: number;
  /** Batches created before this (epoch ms, the API's clock) are not candidates. */
  readonly createdAfter: number;
  /** Batches already recorded are not candidates. */
  readonly isKnown: (batchId: string) => boolean;
}

/** The Message Batches API (half price, results within 24 hours) as the pipeline uses it. */
export interface BatchClient {
  /**
   * Creates a batch and returns its id, which the caller persists before anything else. Sent
   * once, never retried (a retry after an unclear failure could create a second batch): on an
   * error, {@link isRefusedBatch} tells whether the API surely created nothing; otherwise
   * `find` decides.
   */
  submit(requests: readonly BatchRequest[]): Promise<string>;
  /**
   * Looks for the batch an unclear create may have made: lists batches newest first back to
   * `createdAfter`, skips those recorded or of another size, and reads the results of each
   * ended candidate for the custom id (the cheapest sound test: the list shows no custom ids,
   * and the results are the one place that does, once a batch has ended).
   */
  find(probe: BatchProbe): Promise<BatchSearch>;
  /**
   * Reads the batch's state; once it has ended, downloads its results. Safe to repeat, also after
   * a restart. Rejects with the SDK's errors (a broken download as `APIConnectionError`; an
   * unknown or archived batch as `NotFoundError`).
   */
  poll(batchId: string): Promise<BatchState>;
}

/**
 * The Message Batches API over the Anthropic SDK. Transport retries (429, 5xx, 529, dropped
 * connections) of the reads (`poll`, `find`) are the SDK's, `maxRetries` times (@default 4), and
 * only this layer's: an error out of them means "try again at the next poll". The create is
 * sent once (`maxRetries: 0`): a blind retry after a 5xx or a dropped connection could create a
 * second batch while the first runs, billed and unknown; reconciliation (`find`) decides instead.
 */
export function createBatchClient(options: { apiKey: string; baseUrl: string; maxRetries?: number }): BatchClient {
  const client = lazyAnthropic({ apiKey: options.apiKey, baseURL: options.baseUrl, maxRetries: options.maxRetries ?? 4 });
  return {
    async submit(requests) {
      const batch = await (await client()).messages.batches.create(
        { requests: requests.map((r) => ({ custom_id: r.customId, params: r.params })) },
        { maxRetries: 0, timeout: BATCH_SUBMIT_TIMEOUT_MS },
      );
      return batch.id;
    },

    async find(probe) {
      const running: string[] = [];
      for await (const batch of (await client()).messages.batches.list({ limit: 100 })) {
        // Newest first: past the window, every later one is older still.
        if (Date.parse(batch.created_at) < probe.createdAfter) break;
        if (probe.isKnown(batch.id)) continue;
        const c = batch.request_counts;
        if (c.processing + c.succeeded + c.errored + c.canceled + c.expired !== probe.requestCount) continue;
        if (batch.processing_status !== 'ended') {
          running.push(batch.id);
          continue;
        }
        const results = await readResults(batch.id);
        if (results.has(probe.customId)) return { kind: 'found', batchId: batch.id, results };
      }
      return running.length > 0 ? { kind: 'undecided', running } : { kind: 'absent' };
    },

    async poll(batchId) {
      const batch = await (await client()).messages.batches.retrieve(batchId);
      // 'canceling' is still pending: requests already running finish before the batch ends.
      if (batch.processing_status !== 'ended') return { kind: 'pending' };
      return { kind: 'ended', results: await readResults(batchId) };
    },
  };

  async function readResults(batchId: string): Promise<Map<string, BatchItemResult>> {
    // results() retrieves the batch again for its results_url, then streams that JSONL file.
    const lines = await (await client()).messages.batches.results(batchId);
    const results = new Map<string, BatchItemResult>();
    try {
      for await (const line of lines) results.set(line.custom_id, toItemResult(line.result));
    } catch (error) {
      // A download that breaks off midway surfaces as undici's bare TypeError ("terminated"),
      // which nothing would know to try again: name it for what it is.
      if (error instanceof TypeError) throw new APIConnectionError({ message: 'the batch results download broke off', cause: error });
      throw error;
    }
    return results;
  }
}

/**
 * Whether a failed create surely made no batch: the API answered with a 4xx (invalid, refused,
 * rate-limited). A 5xx, a 529, a timeout or a dropped connection may come after the batch was
 * created, so their outcome is unclear.
 */
export function isRefusedBatch(error: unknown): boolean {
  return error instanceof APIError && typeof error.status === 'number' && error.status >= 400 && error.status < 500;
}

/** Whether `poll` failed because the API does not know the batch (a wrong key, or archived): polling again will not help. */
export function isUnknownBatch(error: unknown): boolean {
  return error instanceof NotFoundError;
}

const usageShape = z.object({
  inputTokens: z.number(),
  cacheWrite5mTokens: z.number(),
  cacheWrite1hTokens: z.number(),
  cacheReadTokens: z.number(),
  outputTokens: z.number(),
});
const storedResult = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('succeeded'),
    response: z.object({
      model: z.string(),
      // The API's content blocks, as the SDK typed them when they arrived.
      content: z.array(z.looseObject({ type: z.string() })),
      stopReason: z.string().nullable(),
      usage: usageShape,
      requestId: z.string().optional(),
    }),
  }),
  z.object({ kind: z.literal('errored'), errorType: z.string(), message: z.string() }),
  z.object({ kind: z.literal('expired') }),
  z.object({ kind: z.literal('canceled') }),
]);

/** A result read back from storage (it was a {@link BatchItemResult} when stored); undefined if it is not one. */
export function parseStoredResult(value: unknown): BatchItemResult | undefined {
  const parsed = storedResult.safeParse(value);
  return parsed.success ? (parsed.data as BatchItemResult) : undefined;
}

function toItemResult(result: Anthropic.Messages.MessageBatchResult): BatchItemResult {
  switch (result.type) {
    case 'succeeded':
      return { kind: 'succeeded', response: toModelResponse(result.message) };
    case 'errored':
      return { kind: 'errored', errorType: result.error.error.type, message: result.error.error.message };
    case 'expired':
    case 'canceled':
      return { kind: result.type };
    default: {
      // A result type newer than this SDK: nothing was answered, so it is as good as an error.
      const unknown = result as { type?: unknown };
      return { kind: 'errored', errorType: 'unknown_result', message: `unknown batch result type: ${String(unknown.type)}` };
    }
  }
}

/** The same conversion the streaming client makes; a batch result has no request id of its own. */
function toModelResponse(message: Anthropic.Messages.Message): ModelResponse {
  return {
    model: message.model,
    content: message.content,
    stopReason: message.stop_reason,
    usage: toTokenUsage(message.usage),
  };
}
