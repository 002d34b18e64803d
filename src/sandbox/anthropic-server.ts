/**
 * A fake Anthropic Messages API server on 127.0.0.1, for tests and for the sandbox model.
 *
 * The real `@anthropic-ai/sdk` client talks to it over HTTP (`new Anthropic({ baseURL })`), so
 * the SDK's request encoding, SSE parsing, stream accumulation, error classes and retries run
 * for real. Replies are scripted by the test; everything around them follows the real API:
 * the same paths, status codes, error bodies and headers, request validation that refuses what
 * the real API refuses (dangling tool_use, too many cache breakpoints), and a `usage` that
 * follows the documented prompt-cache rules, so cost accounting can be tested against it.
 *
 * Token counts are an estimate, `estimateTokens(v) = ceil(JSON.stringify(v).length / 4)`,
 * counted per prompt block so that counts add up: a prefix costs the sum of its blocks.
 *
 * The cache follows the documented rules: an entry is written at each `cache_control`
 * breakpoint whose prefix reaches the model's minimum cacheable length (`minCacheableTokens`),
 * a later request whose prefix up to a breakpoint is byte-identical within the TTL reads it, and
 * an entry exists only once the response that wrote it has started (`firstByteDelayMs` makes
 * that moment later than the request, so requests sent side by side miss each other's writes).
 * `caching: false` ignores `cache_control` altogether: the baseline a benchmark compares with.
 *
 * The Message Batches API is there too (create, list newest first with `limit`, `after_id`,
 * `before_id` and `has_more`, retrieve, cancel, results as JSONL at an absolute `results_url`
 * on the fake's own base). A batch stays `in_progress` until the test
 * calls `endBatch()` (or starts the fake with `autoEndBatches`); only then is each of its
 * requests answered, in order, by the same script as a normal call.
 */
import { listenOnLoopback, shutdownServer } from './loopback-server.js';
import { createFaultPlan, type CallTarget } from './fault-plan.js';
import { waitForChange } from './wait-for-change.js';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type {
  ContentBlock,
  Message,
  MessageBatch,
  MessageBatchErroredResult,
  MessageBatchRequestCounts,
  MessageBatchResult,
  RawMessageStreamEvent,
  StopReason,
  Usage as ApiUsage,
} from '@anthropic-ai/sdk/resources/messages';

/** One scripted assistant turn. */
export interface FakeReply {
  /** tool_use ids default to `toolu_fake_<n>`; a tool_use input must be a JSON object, as the model's always is. */
  content: Array<{ type: 'text'; text: string } | { type: 'tool_use'; id?: string; name: string; input: unknown }>;
  /** @default 'tool_use' if any block is a tool_use, else 'end_turn' */
  stop_reason?: StopReason;
  /** @default estimateTokens(content) */
  outputTokens?: number;
}

/** A scripted reply, or a function that builds one from the request it answers. */
export type ScriptedReply = FakeReply | ((req: RecordedRequest) => FakeReply);

/**
 * A failure to inject into the next request(s) to /v1/messages or the batch endpoints, see
 * `FakeAnthropic.failNext`. On the batch endpoints the stream faults wait for the next results
 * download (a JSONL body, the one streamed answer there; `results()` retrieves the batch first):
 * 'cut-stream' sends half of it and drops the connection, 'stall-stream' sends half and goes silent.
 */
export type AnthropicFault =
  /** 429 rate_limit_error with `retry-after-ms` (@default 10) and `retry-after` (seconds, rounded up). */
  | { kind: 'rate-limit'; retryAfterMs?: number }
  /**
   * 529 overloaded_error. Like the real API it sends no retry-after, so the SDK backs off by
   * itself (~0.5 s, then ~1 s); `retryAfterMs` adds a `retry-after-ms` header to make tests fast.
   */
  | { kind: 'overloaded'; retryAfterMs?: number }
  /**
   * 5xx api_error. @default status 500. `retryAfterMs` as for 'overloaded'. With `afterCreate`,
   * a batch create is carried out first (the batch exists and runs) and the 5xx replaces its answer.
   */
  | { kind: 'server-error'; status?: number; retryAfterMs?: number; afterCreate?: true }
  /** Destroy the socket before any response (the SDK sees a connection error); `afterCreate` as for 'server-error'. */
  | { kind: 'reset'; afterCreate?: true }
  /** Never answer, until the client aborts or close() is called; `afterCreate` as for 'server-error'. */
  | { kind: 'stall'; afterCreate?: true }
  /**
   * Streaming: send message_start and part of the reply (up to half of the first tool_use's
   * input JSON, or half of the first text), then destroy the socket. The reply is the one the
   * next successful request would get (peeked, not consumed, so a retry gets it in full). The
   * prompt counts as processed: the cache is written and `usage` recorded, as the real API bills
   * it. Non-streaming requests get a 'reset'.
   */
  | { kind: 'cut-stream' }
  /**
   * Streaming: like 'cut-stream', but instead of closing, the connection then stays silent until
   * the client aborts or close() is called. The SDK's `timeout` only covers the wait for the
   * response headers, so only a caller's own idle watchdog gets out of this. Non-streaming
   * requests get a 'stall'.
   */
  | { kind: 'stall-stream' }
  /** Any other API error, e.g. 400 invalid_request_error or 401 authentication_error. */
  | { kind: 'error'; status: number; type: string; message: string };

/** Token usage the way the API reports it (without the extras). */
export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/**
 * One HTTP request the fake received, recorded before any fault or validation is applied; or
 * one request inside a Message Batch (`batch: true`), recorded when the batch was created.
 */
export interface RecordedRequest {
  /** 1-based arrival order (shared by HTTP requests and batch entries). */
  seq: number;
  /**
   * '/v1/messages' or '/v1/messages/count_tokens'; '/v1/messages/batches' for a batch entry; the
   * full path (e.g. '/v1/messages/batches/msgbatch_fake_1/results') for a call in `batchCalls`.
   */
  path: string;
  /** Lower-cased names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  /** The parsed JSON body (the raw text if it was not JSON). A batch entry's is its `params`. */
  body: any;
  /** The query string's parameters, when there was one (e.g. a batch list's `limit`). */
  query?: URLSearchParams;
  /** `body.stream === true`; for a call in `batchCalls`, true for the results download. */
  stream: boolean;
  /** Set for answered requests and for cut or stalled streams (what the real API would bill). */
  usage?: Usage;
  /** `now()` when the body had been read. */
  at: number;
  /**
   * How the fake answered, once decided. 'cut': stream destroyed after message_start; 'stall':
   * nothing more was sent (status 200 if a stream had started).
   */
  outcome?: 'ok' | 'error' | 'reset' | 'stall' | 'cut';
  /**
   * The message answered on /v1/messages: sent in full, or for a cut or stalled stream the one
   * it began to send (whose tool_use ids a client must never answer).
   */
  reply?: Message;
  /** The HTTP status sent, if any. A batch entry's is 200 if it succeeded, the error's status if it errored. */
  status?: number;
  /** Set on an entry for one request inside a Message Batch: not an HTTP request of its own. */
  batch?: true;
  /** With `batch`: the batch it belongs to. */
  batchId?: string;
  /** With `batch`: its `custom_id`. */
  customId?: string;
  /** With `batch`: how it ended, once the batch has ended. */
  batchResult?: MessageBatchResult['type'];
}

/** A Message Batch the fake holds. */
export interface FakeBatch {
  /** e.g. 'msgbatch_fake_1'. */
  readonly id: string;
  readonly status: MessageBatch['processing_status'];
  /** Its requests in submission order; the same objects are in `FakeAnthropic.requests`. */
  readonly requests: readonly RecordedRequest[];
  /** The result of each request by custom_id, once the batch has ended. */
  readonly results: ReadonlyMap<string, MessageBatchResult>;
}

/** How a request in a batch is to end instead of being answered, see `FakeAnthropic.failBatchRequest`. */
export type BatchRequestFailure = 'errored' | 'expired' | 'canceled';

/**
 * Which requests a fault from `failNext` applies to: /v1/messages, any batch endpoint, or only
 * the results download (which `results()` makes after retrieving the batch again).
 */
export type FaultTarget = 'messages' | 'batches' | 'batch-results';

/** Handle on a running fake Anthropic API server. */
export interface FakeAnthropic {
  /** e.g. "http://127.0.0.1:40123"; the SDK appends /v1/messages. */
  readonly baseUrl: string;
  /** The only key the server accepts, as `x-api-key` or `Authorization: Bearer` (what SDK 1.x sends); else 401. */
  readonly apiKey: string;
  /**
   * Every request to /v1/messages and /v1/messages/count_tokens in arrival order, including
   * faulted, refused and retried ones; and every request inside a Message Batch (flagged
   * `batch`), so a test finds its prompt the same way in both.
   */
  readonly requests: RecordedRequest[];
  /** Every HTTP request to /v1/messages/batches and below, in arrival order (retries included). */
  readonly batchCalls: RecordedRequest[];
  /** Every batch created, oldest first. */
  readonly batches: readonly FakeBatch[];
  /** Queue replies, consumed in order by requests that get a reply. */
  script(...replies: ScriptedReply[]): void;
  /**
   * Fallback used when the script queue is empty. If neither gives a reply, the request is
   * answered 500 api_error "fake: no scripted reply" (which the SDK retries).
   */
  onRequest(handler: ((req: RecordedRequest) => FakeReply | undefined) | undefined): void;
  /**
   * Apply `fault` to the next `times` (@default 1) requests to /v1/messages or to a batch
   * endpoint (or only to those of `on`), before any reply is consumed or batch created.
   */
  failNext(fault: AnthropicFault, times?: number, on?: FaultTarget): void;
  /**
   * Apply `fault` once, to the `target.occurrence`-th request to /v1/messages (not the batch
   * endpoints) that `target.match` accepts, counted from now. Checked before `failNext`'s queue,
   * and every request counts, so "the 2nd build turn" is exactly that.
   */
  failAt(target: CallTarget<RecordedRequest>, fault: AnthropicFault): void;
  /**
   * End batches that are in progress or canceling (@default all of them): each request is
   * answered now, in order, from the script (a canceling batch's are canceled), and the batch
   * gets its `results_url`. Throws if there is no such batch, so a test that ends too early
   * fails loudly; wait for `batches` first.
   */
  endBatch(id?: string): readonly FakeBatch[];
  /**
   * The next batch request with this custom_id to be processed ends as `result` instead of
   * being answered (consuming no reply and billing nothing). 'errored' carries `error`
   * (@default api_error "Internal server error").
   */
  failBatchRequest(customId: string, result: BatchRequestFailure, error?: { type: string; message: string }): void;
  /** Sum of `usage` over all requests that have one, batch entries included (billed at half price). */
  totalUsage(): Usage;
  /**
   * Resolve with the first truthy `probe()` result. Re-checks on every request and answer, plus
   * a 50 ms safety poll. A probe that throws rejects at once. @default timeoutMs 10000
   */
  waitFor<T>(probe: () => T | undefined | false | null, opts?: { timeoutMs?: number; what?: string }): Promise<T>;
  /** Drop stalled requests, close the server and its sockets. */
  close(): Promise<void>;
}

/** Options of `startFakeAnthropic`. */
export interface FakeAnthropicOptions {
  /** @default 'sk-ant-CANARY-anthropic-key-0123456789' */
  apiKey?: string;
  /** Models the server knows; others get 404 not_found_error "model: X". @default any model */
  model?: string | readonly string[];
  /** The clock for cache TTLs, `RecordedRequest.at` and batch timestamps. @default Date.now */
  now?: () => number;
  /** End every batch as soon as it is created, as if `endBatch` were called. @default false */
  autoEndBatches?: boolean;
  /**
   * Time from a /v1/messages request to the start of its response (the prompt's processing).
   * A cache entry the request writes exists only from then on, as with the real API. @default 0
   */
  firstByteDelayMs?: number;
  /** False: `cache_control` is ignored, every input token is billed as plain input. @default true */
  caching?: boolean;
}

/** The key tests configure the client with; a canary so that a leak into logs is easy to find. */
export const DEFAULT_API_KEY = 'sk-ant-CANARY-anthropic-key-0123456789';
/**
 * Shortest prefix, in estimated tokens, that the fake caches, by model family (first match wins);
 * models matching none use {@link MIN_CACHEABLE_TOKENS}.
 */
export const MIN_CACHEABLE_TOKENS_BY_MODEL: ReadonlyArray<{ readonly match: RegExp; readonly tokens: number }> = [
  { match: /opus/, tokens: 4096 },
  { match: /haiku-4/, tokens: 4096 },
  { match: /sonnet|haiku/, tokens: 2048 },
];
/** Shortest cacheable prefix of a model that no family in {@link MIN_CACHEABLE_TOKENS_BY_MODEL} matches. */
export const MIN_CACHEABLE_TOKENS = 1024;

/** The shortest prefix, in estimated tokens, that the fake caches for `model`. */
export function minCacheableTokens(model: string): number {
  return MIN_CACHEABLE_TOKENS_BY_MODEL.find((m) => m.match.test(model))?.tokens ?? MIN_CACHEABLE_TOKENS;
}
/** The API refuses requests with more blocks carrying cache_control. */
export const MAX_CACHE_BREAKPOINTS = 4;
/** How many block boundaries before a breakpoint are also checked for a cache hit (documented "about 20"). */
export const CACHE_LOOKBACK_BLOCKS = 20;
/** Cache lifetimes by `cache_control.ttl`, refreshed by every read. */
export const CACHE_TTL_MS = { '5m': 5 * 60_000, '1h': 60 * 60_000 } as const;

const DEFAULT_RETRY_AFTER_MS = 10;
const DEFAULT_WAIT_MS = 10_000;
/** Pieces a text or a tool input is streamed in. */
const STREAM_PIECES = 3;
const MESSAGES_PATH = '/v1/messages';
const COUNT_TOKENS_PATH = '/v1/messages/count_tokens';
const BATCHES_PATH = '/v1/messages/batches';
/** /v1/messages/batches, /v1/messages/batches/{id}, /v1/messages/batches/{id}/{results|cancel}. */
const BATCH_ROUTE = /^\/v1\/messages\/batches(?:\/([^/]+)(?:\/(results|cancel))?)?$/;
/** `expires_at` is this long after creation, as in the API; the fake never expires a batch by itself. */
const BATCH_EXPIRY_MS = 24 * 60 * 60_000;
const MAX_BATCH_REQUESTS = 100_000;
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/;
const DEFAULT_BATCH_ERROR = { type: 'api_error', message: 'Internal server error' };
const CUSTOM_TOOL_NAME = /^[a-zA-Z0-9_-]{1,128}$/;
/** Anthropic-defined client tools and the one name each must be given. */
const CLIENT_TOOL_NAMES: Record<string, string> = {
  bash_20241022: 'bash',
  bash_20250124: 'bash',
  text_editor_20241022: 'str_replace_editor',
  text_editor_20250124: 'str_replace_editor',
  text_editor_20250429: 'str_replace_based_edit_tool',
  text_editor_20250728: 'str_replace_based_edit_tool',
};
/** What a cut stream sends when nothing is scripted: a tool call whose input never completes. */
const DEFAULT_CUT_REPLY: FakeReply = {
  content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo this tool call was cut off' } }],
};

type Ttl = keyof typeof CACHE_TTL_MS;
type Json = Record<string, unknown>;
/** ping is sent by the real API but is not part of the SDK's event union. */
type SseEvent = RawMessageStreamEvent | { type: 'ping' };

/** The token estimate used for every count the fake reports. */
export function estimateTokens(value: unknown): number {
  const json = JSON.stringify(value) as string | undefined;
  return json === undefined ? 0 : Math.ceil(json.length / 4);
}

/** An API error answer (`{ type: 'error', error: { type, message } }`) raised while handling a request. */
class ApiFailure extends Error {
  override readonly name = 'ApiFailure';
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const invalid = (message: string): ApiFailure => new ApiFailure(400, 'invalid_request_error', message);

/** One block of the prompt (a tool definition, a system text block, a message content block). */
interface PromptBlock {
  tokens: number;
  /** Hash of the model and every block up to and including this one, cache_control stripped. */
  prefixHash: string;
  /** Set when the block carries cache_control, i.e. is a breakpoint. */
  ttl?: Ttl;
}

interface CacheEntry {
  expiresAt: number;
  ttlMs: number;
  /** When the writing response starts; before then the entry cannot be read. */
  readableAt: number;
}

/** Usage as computed for one request, with the split of cache writes by TTL. */
interface ComputedUsage extends Usage {
  created5m: number;
  created1h: number;
}

/** A batch as the fake holds it. */
interface BatchState extends FakeBatch {
  status: MessageBatch['processing_status'];
  readonly requests: RecordedRequest[];
  readonly results: Map<string, MessageBatchResult>;
  readonly createdAt: number;
  endedAt?: number;
  cancelInitiatedAt?: number;
}

type BatchRoute = { action: 'create' } | { action: 'list' } | { action: 'retrieve' | 'results' | 'cancel'; id: string };

/** Most batches one list page holds, as in the API. */
const MAX_LIST_LIMIT = 1000;
const DEFAULT_LIST_LIMIT = 20;

interface ValidRequest {
  model: string;
  messages: Array<{ role: string; content: unknown }>;
  system?: unknown;
  tools?: unknown[];
}

/** Start a fake Anthropic API server on 127.0.0.1 on a free port. */
export async function startFakeAnthropic(opts: FakeAnthropicOptions = {}): Promise<FakeAnthropic> {
  const apiKey = opts.apiKey ?? DEFAULT_API_KEY;
  const knownModels = opts.model === undefined ? undefined : new Set(typeof opts.model === 'string' ? [opts.model] : opts.model);
  const now = opts.now ?? Date.now;
  const firstByteDelayMs = opts.firstByteDelayMs ?? 0;
  const caching = opts.caching ?? true;

  const requests: RecordedRequest[] = [];
  // Every request and answer is announced here so waitFor re-checks at once instead of sleeping.
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const announce = (): void => {
    changes.emit('change');
  };

  const queue: ScriptedReply[] = [];
  let fallback: ((req: RecordedRequest) => FakeReply | undefined) | undefined;
  const faults: Array<{ fault: AnthropicFault; on: FaultTarget | undefined }> = [];
  const aimed = createFaultPlan<RecordedRequest, AnthropicFault>();
  const batchCalls: RecordedRequest[] = [];
  const batches: BatchState[] = [];
  const batchFailures = new Map<string, { result: BatchRequestFailure; error: { type: string; message: string } }>();
  let nextBatchId = 1;
  const cache = new Map<string, CacheEntry>();
  let seq = 0;
  let nextMessageId = 1;
  let nextToolUseId = 1;
  const stalled = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  let closing: Promise<void> | undefined;

  // ---- replies -------------------------------------------------------------------------

  function takeReply(req: RecordedRequest): FakeReply {
    const scripted = queue.shift();
    const reply = scripted === undefined ? fallback?.(req) : typeof scripted === 'function' ? scripted(req) : scripted;
    if (reply === undefined) throw new ApiFailure(500, 'api_error', 'fake: no scripted reply');
    return checkReply(reply);
  }

  /** The reply the next successful request would get, without consuming it. */
  function peekReply(req: RecordedRequest): FakeReply {
    const scripted = queue[0];
    const reply = scripted === undefined ? fallback?.(req) : typeof scripted === 'function' ? scripted(req) : scripted;
    return checkReply(reply ?? DEFAULT_CUT_REPLY);
  }

  function toMessage(reply: FakeReply, model: string, usage: ComputedUsage): Message {
    const content: ContentBlock[] = reply.content.map((block) =>
      block.type === 'text'
        ? { type: 'text', text: block.text, citations: null }
        : {
            type: 'tool_use',
            id: block.id ?? `toolu_fake_${nextToolUseId++}`,
            name: block.name,
            input: block.input,
            caller: { type: 'direct' },
          },
    );
    const stopReason = reply.stop_reason ?? (reply.content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn');
    return {
      id: `msg_fake_${nextMessageId++}`,
      type: 'message',
      role: 'assistant',
      model,
      content,
      stop_reason: stopReason,
      stop_sequence: null,
      stop_details: null,
      container: null,
      diagnostics: null,
      usage: toApiUsage(usage),
    };
  }

  // ---- prompt cache --------------------------------------------------------------------

  /**
   * Usage of a request under the documented cache rules, updating the cache: the longest
   * cached, unexpired prefix ending at a breakpoint or up to CACHE_LOOKBACK_BLOCKS boundaries
   * before one is read (and its lifetime refreshed); every longer breakpoint prefix of at least
   * the model's minimum cacheable length is written, readable from `readableAt` (when this
   * request's response starts); the rest is plain input. Without caching, all of it is.
   */
  function applyCache(model: string, blocks: PromptBlock[], outputTokens: number, readableAt = now()): ComputedUsage {
    const t = now();
    const minTokens = minCacheableTokens(model);
    const cumulative: number[] = [];
    let total = 0;
    for (const block of blocks) {
      total += block.tokens;
      cumulative.push(total);
    }
    const breakpoints = caching ? blocks.flatMap((block, i) => (block.ttl ? [i] : [])) : [];

    let readAt = -1;
    for (const bp of breakpoints) {
      for (let j = bp; j >= Math.max(0, bp - CACHE_LOOKBACK_BLOCKS) && j > readAt; j--) {
        const key = blocks[j]!.prefixHash;
        const entry = cache.get(key);
        if (!entry || entry.readableAt > t) continue;
        if (entry.expiresAt <= t) {
          cache.delete(key);
          continue;
        }
        readAt = j;
        break;
      }
    }
    const read = readAt >= 0 ? cumulative[readAt]! : 0;
    if (readAt >= 0) {
      const entry = cache.get(blocks[readAt]!.prefixHash)!;
      entry.expiresAt = t + entry.ttlMs;
    }

    const created = { '5m': 0, '1h': 0 };
    let written = read;
    for (const bp of breakpoints) {
      const upTo = cumulative[bp]!;
      const ttl = blocks[bp]!.ttl!;
      if (bp <= readAt || upTo < minTokens) continue;
      // Two requests writing the same prefix side by side both pay for it; it is readable from
      // whichever response starts first.
      const inFlight = cache.get(blocks[bp]!.prefixHash);
      const from = inFlight && inFlight.readableAt > t ? Math.min(inFlight.readableAt, readableAt) : readableAt;
      cache.set(blocks[bp]!.prefixHash, { expiresAt: from + CACHE_TTL_MS[ttl], ttlMs: CACHE_TTL_MS[ttl], readableAt: from });
      created[ttl] += upTo - written;
      written = upTo;
    }
    const creation = created['5m'] + created['1h'];
    return {
      input_tokens: total - read - creation,
      output_tokens: outputTokens,
      cache_creation_input_tokens: creation,
      cache_read_input_tokens: read,
      created5m: created['5m'],
      created1h: created['1h'],
    };
  }

  // ---- HTTP ----------------------------------------------------------------------------

  function sendJson(res: ServerResponse, rec: RecordedRequest, status: number, body: unknown, headers: Record<string, string> = {}): void {
    rec.status = status;
    if (res.writableEnded || res.destroyed) return; // the client gave up (timeout, abort)
    const payload = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
      'request-id': requestId(rec),
      ...headers,
    });
    res.end(payload);
  }

  function sendError(res: ServerResponse, rec: RecordedRequest, failure: ApiFailure): void {
    rec.outcome = 'error';
    sendJson(
      res,
      rec,
      failure.status,
      { type: 'error', error: { type: failure.type, message: failure.message }, request_id: requestId(rec) },
      failure.headers,
    );
  }

  function destroy(res: ServerResponse, rec: RecordedRequest, outcome: 'reset' | 'cut'): void {
    rec.outcome = outcome;
    res.destroy();
  }

  function checkHeaders(rec: RecordedRequest): void {
    // SDK 1.x sends the key as `Authorization: Bearer <key>`; curl and older clients use x-api-key.
    const key = rec.headers['x-api-key'];
    const bearer = /^Bearer (.+)$/i.exec(rec.headers.authorization ?? '')?.[1];
    if (key !== undefined) {
      if (key !== apiKey) throw new ApiFailure(401, 'authentication_error', 'invalid x-api-key');
    } else if (bearer !== undefined) {
      if (bearer !== apiKey) throw new ApiFailure(401, 'authentication_error', 'Invalid bearer token');
    } else {
      throw new ApiFailure(401, 'authentication_error', 'x-api-key header is required');
    }
    if (!rec.headers['anthropic-version']) throw invalid('anthropic-version: header is required');
  }

  function checkModel(model: string): void {
    if (knownModels && !knownModels.has(model)) throw new ApiFailure(404, 'not_found_error', `model: ${model}`);
  }

  function hold(res: ServerResponse, rec: RecordedRequest): void {
    rec.outcome = 'stall';
    stalled.add(res);
    res.on('close', () => stalled.delete(res));
  }

  /** Apply a fault that needs no valid request; returns false for a stream fault on a stream. */
  function applyFault(fault: AnthropicFault, res: ServerResponse, rec: RecordedRequest): boolean {
    const retryAfter = (ms: number | undefined): Record<string, string> =>
      ms === undefined ? {} : { 'retry-after-ms': String(ms), 'retry-after': String(Math.ceil(ms / 1000)) };
    switch (fault.kind) {
      case 'rate-limit':
        sendError(
          res,
          rec,
          new ApiFailure(
            429,
            'rate_limit_error',
            'This request would exceed the rate limit for your organization of 50 requests per minute. ' +
              'For details, refer to: https://docs.claude.com/en/api/rate-limits.',
            retryAfter(fault.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS),
          ),
        );
        return true;
      case 'overloaded':
        sendError(res, rec, new ApiFailure(529, 'overloaded_error', 'Overloaded', retryAfter(fault.retryAfterMs)));
        return true;
      case 'server-error':
        sendError(res, rec, new ApiFailure(fault.status ?? 500, 'api_error', 'Internal server error', retryAfter(fault.retryAfterMs)));
        return true;
      case 'error':
        sendError(res, rec, new ApiFailure(fault.status, fault.type, fault.message));
        return true;
      case 'reset':
        destroy(res, rec, 'reset');
        return true;
      case 'stall':
        hold(res, rec);
        return true;
      case 'cut-stream':
        if (rec.stream) return false;
        destroy(res, rec, 'reset');
        return true;
      case 'stall-stream':
        if (rec.stream) return false;
        hold(res, rec);
        return true;
    }
  }

  function handleCountTokens(res: ServerResponse, rec: RecordedRequest): void {
    checkHeaders(rec);
    const params = validateRequest(rec.body, { countTokens: true });
    checkModel(params.model);
    const blocks = promptBlocks(params);
    rec.outcome = 'ok';
    sendJson(res, rec, 200, { input_tokens: blocks.reduce((sum, b) => sum + b.tokens, 0) });
  }

  function handleMessages(res: ServerResponse, rec: RecordedRequest): void {
    checkHeaders(rec);
    const fault = aimed.take(rec) ?? takeFault('messages', rec.stream);
    if (fault && applyFault(fault, res, rec)) return;
    const params = validateRequest(rec.body, { countTokens: false });
    checkModel(params.model);
    const blocks = promptBlocks(params);
    if (fault) {
      // Only a stream fault on a stream gets here: the prompt was processed, the answer breaks off.
      const reply = peekReply(rec);
      const usage = applyCache(params.model, blocks, 1);
      rec.reply = toMessage(reply, params.model, usage);
      const { events, partialChars } = cutEvents(rec.reply);
      // Billed like the real API: the prompt, and whatever output was generated before the cut.
      rec.usage = { ...publicUsage(usage), output_tokens: Math.max(1, Math.ceil(partialChars / 4)) };
      rec.status = 200;
      writeSse(res, events, requestId(rec), () => (fault.kind === 'cut-stream' ? destroy(res, rec, 'cut') : hold(res, rec)));
      return;
    }
    const reply = takeReply(rec);
    const usage = applyCache(params.model, blocks, reply.outputTokens ?? estimateTokens(reply.content), now() + firstByteDelayMs);
    const message = toMessage(reply, params.model, usage);
    rec.reply = message;
    rec.usage = publicUsage(usage);
    rec.outcome = 'ok';
    const answer = (): void => {
      if (rec.stream) {
        rec.status = 200;
        writeSse(res, streamEvents(message), requestId(rec), () => res.end());
      } else {
        sendJson(res, rec, 200, message);
      }
    };
    if (firstByteDelayMs === 0) return answer();
    setTimeout(() => {
      answer();
      announce();
    }, firstByteDelayMs);
  }

  /** The first queued fault for this request: `streamed` is a results download when `endpoint` is 'batches'. */
  function takeFault(endpoint: 'messages' | 'batches', streamed: boolean): AnthropicFault | undefined {
    const i = faults.findIndex(({ fault, on }) =>
      endpoint === 'messages'
        ? on === undefined || on === 'messages'
        : streamed
          ? on !== 'messages'
          : (on === undefined || on === 'batches') && fault.kind !== 'cut-stream' && fault.kind !== 'stall-stream',
    );
    return i < 0 ? undefined : faults.splice(i, 1)[0]!.fault;
  }

  // ---- message batches -----------------------------------------------------------------

  function handleBatch(res: ServerResponse, rec: RecordedRequest, route: BatchRoute): void {
    checkHeaders(rec);
    const fault = takeFault('batches', rec.stream);
    if (route.action === 'create' && fault && 'afterCreate' in fault && fault.afterCreate) {
      // The API made the batch; only its answer is lost.
      createBatch(res, rec, false);
      applyFault(fault, res, rec);
      return;
    }
    // Only a stream fault on the results download gets past this; it is applied below.
    if (fault && applyFault(fault, res, rec)) return;
    if (route.action === 'create') {
      createBatch(res, rec);
      return;
    }
    if (route.action === 'list') {
      listBatches(res, rec);
      return;
    }
    const batch = batches.find((b) => b.id === route.id);
    if (!batch) throw new ApiFailure(404, 'not_found_error', `message_batch not found: ${route.id}`);
    if (route.action === 'cancel' && batch.status === 'in_progress') {
      batch.status = 'canceling';
      batch.cancelInitiatedAt = now();
    }
    if (route.action !== 'results') {
      rec.outcome = 'ok';
      sendJson(res, rec, 200, batchJson(batch));
      return;
    }
    if (batch.status !== 'ended') {
      throw invalid(`message_batch ${batch.id} is still ${batch.status}; its results are available once it has ended`);
    }
    // Not in request order, as the API warns: a client that matches results by position fails here.
    const lines = [...batch.requests].reverse().map((r) => JSON.stringify({ custom_id: r.customId, result: batch.results.get(r.customId!) }));
    const payload = lines.map((line) => `${line}\n`).join('');
    rec.status = 200;
    if (res.writableEnded || res.destroyed) return;
    res.writeHead(200, {
      'content-type': 'application/x-jsonl',
      'content-disposition': `attachment; filename*=utf-8''${batch.id}_results.jsonl`,
      'request-id': requestId(rec),
      ...(fault ? {} : { 'content-length': String(Buffer.byteLength(payload)) }),
    });
    if (!fault) {
      rec.outcome = 'ok';
      res.end(payload);
      return;
    }
    res.write(splitPieces(payload, 2)[0] ?? '', () => (fault.kind === 'cut-stream' ? destroy(res, rec, 'cut') : hold(res, rec)));
  }

  /** A page of batches, newest first, as the API pages them (query on `rec.query`). */
  function listBatches(res: ServerResponse, rec: RecordedRequest): void {
    const query = rec.query ?? new URLSearchParams();
    const rawLimit = query.get('limit');
    const limit = rawLimit === null ? DEFAULT_LIST_LIMIT : Number(rawLimit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) throw invalid(`limit: must be an integer from 1 to ${MAX_LIST_LIMIT}`);
    const afterId = query.get('after_id');
    const beforeId = query.get('before_id');
    if (afterId !== null && beforeId !== null) throw invalid('after_id and before_id cannot both be given');
    const newestFirst = [...batches].reverse();
    const cursor = (id: string): number => {
      const i = newestFirst.findIndex((b) => b.id === id);
      if (i < 0) throw invalid(`${afterId === null ? 'before_id' : 'after_id'}: unknown message_batch ${id}`);
      return i;
    };
    let page: BatchState[];
    let hasMore: boolean;
    if (beforeId !== null) {
      // The page just newer than the cursor; has_more: there are newer ones still.
      const end = cursor(beforeId);
      const start = Math.max(0, end - limit);
      page = newestFirst.slice(start, end);
      hasMore = start > 0;
    } else {
      const start = afterId === null ? 0 : cursor(afterId) + 1;
      page = newestFirst.slice(start, start + limit);
      hasMore = start + limit < newestFirst.length;
    }
    rec.outcome = 'ok';
    sendJson(res, rec, 200, { data: page.map(batchJson), has_more: hasMore, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null });
  }

  function createBatch(res: ServerResponse, rec: RecordedRequest, answer = true): void {
    const entries = validateBatchCreate(rec.body);
    const batch: BatchState = {
      id: `msgbatch_fake_${nextBatchId++}`,
      status: 'in_progress',
      requests: [],
      results: new Map(),
      createdAt: now(),
    };
    for (const { customId, params } of entries) {
      const entry: RecordedRequest = {
        seq: ++seq,
        path: BATCHES_PATH,
        headers: rec.headers,
        body: params,
        stream: false,
        at: batch.createdAt,
        batch: true,
        batchId: batch.id,
        customId,
      };
      batch.requests.push(entry);
      requests.push(entry);
    }
    batches.push(batch);
    if (opts.autoEndBatches) endBatches([batch]);
    if (!answer) return;
    rec.outcome = 'ok';
    sendJson(res, rec, 200, batchJson(batch));
  }

  function endBatches(toEnd: BatchState[]): void {
    for (const batch of toEnd) {
      for (const entry of batch.requests) batch.results.set(entry.customId!, processBatchRequest(entry, batch.status === 'canceling'));
      batch.status = 'ended';
      batch.endedAt = now();
    }
  }

  /** Answer one request of a batch as a normal call would be answered, or fail it as scripted. */
  function processBatchRequest(entry: RecordedRequest, canceling: boolean): MessageBatchResult {
    const failure = batchFailures.get(entry.customId!);
    batchFailures.delete(entry.customId!);
    if (failure?.result === 'errored') return erroredResult(entry, failure.error);
    if (failure || canceling) {
      const type = failure?.result === 'expired' ? 'expired' : 'canceled';
      entry.batchResult = type;
      return { type };
    }
    try {
      // The API validates each request's params only when it processes it: a bad one is an
      // errored result, not a refused batch.
      if (isObject(entry.body) && entry.body.stream === true) throw invalid('stream: streaming is not supported in a batch request');
      const params = validateRequest(entry.body, { countTokens: false });
      checkModel(params.model);
      const blocks = promptBlocks(params);
      const reply = takeReply(entry);
      const usage = applyCache(params.model, blocks, reply.outputTokens ?? estimateTokens(reply.content));
      const message = toMessage(reply, params.model, usage);
      message.usage.service_tier = 'batch';
      entry.usage = publicUsage(usage);
      entry.outcome = 'ok';
      entry.status = 200;
      entry.batchResult = 'succeeded';
      return { type: 'succeeded', message };
    } catch (err) {
      const failed = err instanceof ApiFailure ? err : new ApiFailure(500, 'api_error', `fake: crashed: ${String(err)}`);
      entry.status = failed.status;
      return erroredResult(entry, { type: failed.type, message: failed.message });
    }
  }

  function batchJson(batch: BatchState): MessageBatch {
    const counts: MessageBatchRequestCounts = { processing: 0, succeeded: 0, errored: 0, canceled: 0, expired: 0 };
    if (batch.status === 'ended') for (const result of batch.results.values()) counts[result.type] += 1;
    else counts.processing = batch.requests.length;
    const iso = (t: number | undefined): string | null => (t === undefined ? null : new Date(t).toISOString());
    return {
      id: batch.id,
      type: 'message_batch',
      processing_status: batch.status,
      request_counts: counts,
      created_at: new Date(batch.createdAt).toISOString(),
      expires_at: new Date(batch.createdAt + BATCH_EXPIRY_MS).toISOString(),
      ended_at: iso(batch.endedAt),
      cancel_initiated_at: iso(batch.cancelInitiatedAt),
      archived_at: null,
      // Absolute, like the API's: the SDK fetches it as given, not relative to its baseURL.
      results_url: batch.status === 'ended' ? `${url}${BATCHES_PATH}/${encodeURIComponent(batch.id)}/results` : null,
    };
  }

  // ---- HTTP routing --------------------------------------------------------------------

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsedUrl = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = parsedUrl.pathname;
    const batchRoute = routeBatch(req.method, path);
    const known = batchRoute !== undefined || (req.method === 'POST' && (path === MESSAGES_PATH || path === COUNT_TOKENS_PATH));
    const raw = (await readBody(req).catch(() => Buffer.alloc(0))).toString('utf8');
    if (closing) {
      req.socket.destroy();
      return;
    }
    if (!known) {
      // Not recorded as a Messages request, but loud: an unexpected call fails the test.
      const payload = JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'Not Found' } });
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
      res.end(payload);
      return;
    }
    let body: unknown = raw;
    try {
      body = JSON.parse(raw);
    } catch {
      // kept as text; validation answers 400
    }
    const rec: RecordedRequest = {
      seq: ++seq,
      path,
      headers: flattenHeaders(req.headers),
      body,
      stream: batchRoute ? batchRoute.action === 'results' : isObject(body) && body.stream === true,
      at: now(),
      ...(parsedUrl.search ? { query: parsedUrl.searchParams } : {}),
    };
    // Recorded before anything can fail, so tests can count attempts (retries included).
    (batchRoute ? batchCalls : requests).push(rec);
    announce();
    try {
      if (batchRoute) handleBatch(res, rec, batchRoute);
      else if (path === COUNT_TOKENS_PATH) handleCountTokens(res, rec);
      else handleMessages(res, rec);
    } catch (err) {
      // A non-ApiFailure is a bug in the fake or in a test's script: make it loud, not a hang.
      sendError(res, rec, err instanceof ApiFailure ? err : new ApiFailure(500, 'api_error', `fake: crashed: ${String(err)}`));
    }
    announce();
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  const url = await listenOnLoopback(server, sockets);

  async function close(): Promise<void> {
    closing ??= (async () => {
      await shutdownServer(server, sockets, stalled, changes);
    })();
    return closing;
  }

  function waitFor<T>(
    probe: () => T | undefined | false | null,
    waitOpts: { timeoutMs?: number; what?: string } = {},
  ): Promise<T> {
    return waitForChange(changes, probe, {
      timeoutMs: waitOpts.timeoutMs ?? DEFAULT_WAIT_MS,
      ...(waitOpts.what === undefined ? {} : { what: waitOpts.what }),
      describe: () => describeRequests([...requests, ...batchCalls].sort((a, b) => a.seq - b.seq)),
    });
  }

  return {
    baseUrl: url,
    apiKey,
    get requests() {
      return requests;
    },
    get batchCalls() {
      return batchCalls;
    },
    get batches() {
      return batches;
    },
    script(...replies) {
      queue.push(...replies);
    },
    onRequest(handler) {
      fallback = handler;
    },
    failNext(fault, times = 1, on) {
      for (let i = 0; i < times; i++) faults.push({ fault, on });
    },
    failAt(target, fault) {
      aimed.add(target, fault);
    },
    endBatch(id) {
      const open = batches.filter((b) => b.status !== 'ended' && (id === undefined || b.id === id));
      if (open.length === 0) {
        const why = id === undefined ? 'no batch is in progress' : batches.some((b) => b.id === id) ? 'it has already ended' : 'no such batch';
        throw new Error(`fake: endBatch(${id ?? ''}): ${why}`);
      }
      endBatches(open);
      announce();
      return open;
    },
    failBatchRequest(customId, result, error = DEFAULT_BATCH_ERROR) {
      batchFailures.set(customId, { result, error });
    },
    totalUsage() {
      const sum: Usage = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
      for (const { usage } of requests) {
        if (!usage) continue;
        sum.input_tokens += usage.input_tokens;
        sum.output_tokens += usage.output_tokens;
        sum.cache_creation_input_tokens += usage.cache_creation_input_tokens;
        sum.cache_read_input_tokens += usage.cache_read_input_tokens;
      }
      return sum;
    },
    waitFor,
    close,
  };
}

// ---- request validation (pure) -------------------------------------------------------------

function routeBatch(method: string | undefined, path: string): BatchRoute | undefined {
  const match = BATCH_ROUTE.exec(path);
  if (!match) return undefined;
  const [, rawId, sub] = match;
  if (rawId === undefined) return method === 'POST' ? { action: 'create' } : method === 'GET' ? { action: 'list' } : undefined;
  let id: string;
  try {
    id = decodeURIComponent(rawId);
  } catch {
    return undefined;
  }
  if (sub === undefined) return method === 'GET' ? { action: 'retrieve', id } : undefined;
  if (sub === 'results') return method === 'GET' ? { action: 'results', id } : undefined;
  return method === 'POST' ? { action: 'cancel', id } : undefined;
}

/**
 * Check a batch's envelope the way the API does at creation (400 on the first problem). Each
 * request's params are checked only when it is processed, as the API does.
 */
function validateBatchCreate(body: unknown): Array<{ customId: string; params: Json }> {
  if (!isObject(body)) throw invalid('There was an error parsing the body of your request: expected a JSON object');
  if (body.requests === undefined) throw invalid('requests: Field required');
  if (!Array.isArray(body.requests)) throw invalid('requests: Input should be a valid list');
  const list = body.requests as unknown[];
  if (list.length === 0) throw invalid('requests: List should have at least 1 item after validation, not 0');
  if (list.length > MAX_BATCH_REQUESTS) {
    throw invalid(`requests: List should have at most ${MAX_BATCH_REQUESTS} items after validation, not ${list.length}`);
  }
  const seen = new Set<string>();
  return list.map((r, i) => {
    if (!isObject(r)) throw invalid(`requests.${i}: Input should be a valid dictionary`);
    if (r.custom_id === undefined) throw invalid(`requests.${i}.custom_id: Field required`);
    if (typeof r.custom_id !== 'string' || !CUSTOM_ID.test(r.custom_id)) {
      throw invalid(`requests.${i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`);
    }
    if (seen.has(r.custom_id)) throw invalid(`requests.${i}.custom_id: duplicate custom_id '${r.custom_id}'; each must be unique within a batch`);
    seen.add(r.custom_id);
    if (r.params === undefined) throw invalid(`requests.${i}.params: Field required`);
    if (!isObject(r.params)) throw invalid(`requests.${i}.params: Input should be a valid dictionary`);
    return { customId: r.custom_id, params: r.params };
  });
}

/** Check a Messages request the way the real API does; throws a 400 ApiFailure on the first problem. */
function validateRequest(body: unknown, { countTokens }: { countTokens: boolean }): ValidRequest {
  if (!isObject(body)) throw invalid('There was an error parsing the body of your request: expected a JSON object');
  if (body.model === undefined) throw invalid('model: Field required');
  if (typeof body.model !== 'string' || body.model === '') throw invalid('model: Input should be a valid string');
  if (!countTokens) {
    if (body.max_tokens === undefined) throw invalid('max_tokens: Field required');
    if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens)) {
      throw invalid('max_tokens: Input should be a valid integer');
    }
    if (body.max_tokens < 1) throw invalid('max_tokens: Input should be greater than or equal to 1');
  }
  if (body.stream !== undefined && typeof body.stream !== 'boolean') throw invalid('stream: Input should be a valid boolean');
  if (body.messages === undefined) throw invalid('messages: Field required');
  if (!Array.isArray(body.messages)) throw invalid('messages: Input should be a valid list');
  if (body.messages.length === 0) throw invalid('messages: at least one message is required');
  const messages = body.messages as unknown[];

  messages.forEach((m, i) => {
    if (!isObject(m)) throw invalid(`messages.${i}: Input should be a valid dictionary`);
    if (m.role !== 'user' && m.role !== 'assistant' && m.role !== 'system') {
      throw invalid(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    }
    const isLast = i === messages.length - 1;
    if (typeof m.content === 'string') {
      if (m.content === '' && !(isLast && m.role === 'assistant')) {
        throw invalid(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
      }
      return;
    }
    if (!Array.isArray(m.content)) throw invalid(`messages.${i}.content: Input should be a valid string or list`);
    if (m.content.length === 0 && !(isLast && m.role === 'assistant')) {
      throw invalid(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
    }
    let seenOther = false;
    (m.content as unknown[]).forEach((block, j) => {
      const where = `messages.${i}.content.${j}`;
      if (!isObject(block) || typeof block.type !== 'string') throw invalid(`${where}: Input should be a valid dictionary with a type`);
      if (block.type === 'text' && (typeof block.text !== 'string' || block.text === '')) {
        throw invalid('messages: text content blocks must be non-empty');
      }
      if (block.type === 'tool_use') {
        if (m.role !== 'assistant') throw invalid(`${where}: \`tool_use\` blocks can only be in \`assistant\` messages`);
        if (typeof block.id !== 'string' || typeof block.name !== 'string') {
          throw invalid(`${where}: \`tool_use\` blocks need an \`id\` and a \`name\``);
        }
      }
      if (block.type === 'tool_result') {
        if (m.role !== 'user') throw invalid(`${where}: \`tool_result\` blocks can only be in \`user\` messages`);
        if (typeof block.tool_use_id !== 'string') throw invalid(`${where}.tool_use_id: Field required`);
        if (seenOther) {
          throw invalid(`${where}: \`tool_result\` blocks must come first in the content of a user message, before any other block`);
        }
      } else {
        seenOther = true;
      }
    });
  });

  // Roles alternate, starting with a user turn. (Stricter than today's API, which merges
  // consecutive same-role turns: a transcript of ours should never need that.)
  const turns = messages.map((m, i) => ({ m: m as { role: string; content: unknown }, i })).filter(({ m }) => m.role !== 'system');
  if (turns[0]?.m.role !== 'user') throw invalid('messages: first message must use the "user" role');
  for (let k = 1; k < turns.length; k++) {
    if (turns[k]!.m.role === turns[k - 1]!.m.role) {
      const role = turns[k]!.m.role;
      throw invalid(`messages: roles must alternate between "user" and "assistant", but found multiple "${role}" roles in a row`);
    }
  }

  // Every tool_use is answered by a tool_result in the very next message, and vice versa.
  turns.forEach(({ m, i }, k) => {
    const next = turns[k + 1];
    if (m.role === 'assistant') {
      const ids = blocksOf(m.content, 'tool_use').map((b) => String(b.id));
      const answered = new Set(next ? blocksOf(next.m.content, 'tool_result').map((b) => String(b.tool_use_id)) : []);
      const missing = ids.filter((id) => !answered.has(id));
      if (missing.length > 0) {
        throw invalid(
          `messages.${next?.i ?? i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ` +
            `${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
        );
      }
    } else {
      const prev = turns[k - 1];
      const asked = new Set(prev ? blocksOf(prev.m.content, 'tool_use').map((b) => String(b.id)) : []);
      const results = blocksOf(m.content, 'tool_result');
      const j = results.findIndex((b) => !asked.has(String(b.tool_use_id)));
      if (j >= 0) {
        throw invalid(
          `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(results[j]!.tool_use_id)}. ` +
            'Each `tool_result` block must have a corresponding `tool_use` block in the previous message.',
        );
      }
    }
  });

  const last = messages[messages.length - 1] as { role: string; content: unknown };
  if (last.role === 'assistant') {
    const text = typeof last.content === 'string' ? last.content : blocksOf(last.content, 'text').at(-1)?.text;
    if (typeof text === 'string' && /\s$/.test(text)) {
      throw invalid('messages: final assistant content cannot end with trailing whitespace');
    }
  }

  if (body.system !== undefined && typeof body.system !== 'string') {
    if (!Array.isArray(body.system)) throw invalid('system: Input should be a valid string or list');
    (body.system as unknown[]).forEach((block, j) => {
      if (!isObject(block) || block.type !== 'text' || typeof block.text !== 'string') {
        throw invalid(`system.${j}: Input should be a valid text block`);
      }
      if (block.text === '') throw invalid('system: text content blocks must be non-empty');
    });
  }

  const toolNames = validateTools(body.tools);
  validateToolChoice(body.tool_choice, toolNames);

  return {
    model: body.model,
    messages: messages as ValidRequest['messages'],
    ...(body.system !== undefined && { system: body.system }),
    ...(Array.isArray(body.tools) && { tools: body.tools as unknown[] }),
  };
}

function validateTools(tools: unknown): Set<string> {
  const names = new Set<string>();
  if (tools === undefined) return names;
  if (!Array.isArray(tools)) throw invalid('tools: Input should be a valid list');
  (tools as unknown[]).forEach((tool, i) => {
    if (!isObject(tool)) throw invalid(`tools.${i}: Input should be a valid dictionary`);
    const type = tool.type === undefined || tool.type === null ? 'custom' : String(tool.type);
    if (typeof tool.name !== 'string') throw invalid(`tools.${i}.${type}.name: Field required`);
    const required = CLIENT_TOOL_NAMES[type];
    if (required !== undefined && tool.name !== required) {
      throw invalid(`tools.${i}.${type}.name: Input should be '${required}'`);
    }
    if (type === 'custom') {
      if (!CUSTOM_TOOL_NAME.test(tool.name)) {
        throw invalid(`tools.${i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`);
      }
      if (tool.input_schema === undefined) throw invalid(`tools.${i}.custom.input_schema: Field required`);
      if (!isObject(tool.input_schema) || tool.input_schema.type !== 'object') {
        throw invalid(`tools.${i}.custom.input_schema.type: Input should be 'object'`);
      }
    }
    if (names.has(tool.name)) throw invalid('tools: Tool names must be unique.');
    names.add(tool.name);
  });
  return names;
}

function validateToolChoice(choice: unknown, toolNames: Set<string>): void {
  if (choice === undefined) return;
  if (!isObject(choice) || !['auto', 'any', 'tool', 'none'].includes(String(choice.type))) {
    throw invalid("tool_choice: Input tag found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'");
  }
  if ((choice.type === 'any' || choice.type === 'tool') && toolNames.size === 0) {
    throw invalid('tool_choice: tool_choice may only be specified while providing tools');
  }
  if (choice.type === 'tool') {
    if (typeof choice.name !== 'string') throw invalid('tool_choice.tool.name: Field required');
    if (!toolNames.has(choice.name)) throw invalid(`tool_choice: tool '${choice.name}' was not found in tools`);
  }
}

// ---- prompt blocks (pure) ------------------------------------------------------------------

/**
 * The prompt as the cache sees it: tools, then system, then each message's content blocks, in
 * order. A string system prompt or message content counts as one text block, as the API treats
 * it. Hashes are chained from the model, so each block's hash names the whole prefix up to it;
 * the role is part of a message block's hash. cache_control is stripped before hashing and
 * counting, so moving a breakpoint changes neither.
 */
function promptBlocks(params: ValidRequest): PromptBlock[] {
  const parts: Array<{ where: string; kind: string; value: unknown }> = [];
  (params.tools ?? []).forEach((tool, i) => parts.push({ where: `tools.${i}`, kind: 'tool', value: tool }));
  asBlocks(params.system).forEach((block, i) => parts.push({ where: `system.${i}`, kind: 'system', value: block }));
  params.messages.forEach((m, i) =>
    asBlocks(m.content).forEach((block, j) => parts.push({ where: `messages.${i}.content.${j}`, kind: m.role, value: block })),
  );

  let found = 0;
  let seen5m = false;
  let hash = createHash('sha256').update(`model:${params.model}`).digest('hex');
  return parts.map(({ where, kind, value }) => {
    const controls = cacheControlsIn(value);
    found += controls.length;
    if (found > MAX_CACHE_BREAKPOINTS) {
      // Counted over the whole request first, so the message names the real total.
      const total = parts.reduce((sum, p) => sum + cacheControlsIn(p.value).length, 0);
      throw invalid(`A maximum of ${MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found ${total}.`);
    }
    let ttl: Ttl | undefined;
    for (const control of controls) {
      if (!isObject(control) || control.type !== 'ephemeral') throw invalid(`${where}.cache_control.type: Input should be 'ephemeral'`);
      const t = control.ttl ?? '5m';
      if (t !== '5m' && t !== '1h') throw invalid(`${where}.cache_control.ttl: Input should be '5m' or '1h'`);
      if (t === '1h' && seen5m) {
        throw invalid(`${where}.cache_control: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block`);
      }
      if (t === '5m') seen5m = true;
      ttl ??= t;
    }
    const json = JSON.stringify(value, (key, v: unknown) => (key === 'cache_control' ? undefined : v)) ?? '';
    hash = createHash('sha256').update(hash).update('\n').update(kind).update('\n').update(json).digest('hex');
    return { tokens: Math.ceil(json.length / 4), prefixHash: hash, ...(ttl && { ttl }) };
  });
}

function asBlocks(content: unknown): unknown[] {
  if (content === undefined || content === null) return [];
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return Array.isArray(content) ? content : [content];
}

/** Every non-null cache_control in `value`, nested ones (e.g. inside a tool_result) included. */
function cacheControlsIn(value: unknown): unknown[] {
  const found: unknown[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach(visit);
    } else if (isObject(v)) {
      for (const [key, child] of Object.entries(v)) {
        if (key === 'cache_control') {
          if (child !== null && child !== undefined) found.push(child);
        } else {
          visit(child);
        }
      }
    }
  };
  visit(value);
  return found;
}

// ---- responses (pure) ----------------------------------------------------------------------

function toApiUsage(usage: ComputedUsage): ApiUsage {
  return {
    input_tokens: usage.input_tokens,
    output_tokens: usage.output_tokens,
    cache_creation_input_tokens: usage.cache_creation_input_tokens,
    cache_read_input_tokens: usage.cache_read_input_tokens,
    cache_creation: { ephemeral_5m_input_tokens: usage.created5m, ephemeral_1h_input_tokens: usage.created1h },
    service_tier: 'standard',
    server_tool_use: null,
    output_tokens_details: null,
    inference_geo: null,
    speed: null,
  };
}

function publicUsage(usage: ComputedUsage): Usage {
  return {
    input_tokens: usage.input_tokens,
    output_tokens: usage.output_tokens,
    cache_creation_input_tokens: usage.cache_creation_input_tokens,
    cache_read_input_tokens: usage.cache_read_input_tokens,
  };
}

/** The SSE events of a whole message, as the API streams it. */
function streamEvents(message: Message): SseEvent[] {
  const events: SseEvent[] = [messageStart(message), { type: 'ping' }];
  message.content.forEach((block, index) => {
    events.push(...blockStart(block, index));
    for (const piece of splitPieces(blockPayload(block), STREAM_PIECES)) events.push(blockDelta(block, index, piece));
    events.push({ type: 'content_block_stop', index });
  });
  const { usage } = message;
  events.push({
    type: 'message_delta',
    delta: { stop_reason: message.stop_reason, stop_sequence: null, stop_details: null, container: null },
    usage: {
      input_tokens: usage.input_tokens,
      output_tokens: usage.output_tokens,
      cache_creation_input_tokens: usage.cache_creation_input_tokens,
      cache_read_input_tokens: usage.cache_read_input_tokens,
      server_tool_use: null,
      output_tokens_details: null,
    },
  });
  events.push({ type: 'message_stop' });
  return events;
}

/**
 * The events of a stream that breaks off: complete blocks up to the first tool_use, then half of
 * that tool_use's input JSON (or, without a tool_use, half of the first text block).
 */
function cutEvents(message: Message): { events: SseEvent[]; partialChars: number } {
  const events: SseEvent[] = [messageStart(message), { type: 'ping' }];
  const cutAt = Math.max(0, message.content.findIndex((b) => b.type === 'tool_use'));
  let partialChars = 0;
  message.content.slice(0, cutAt + 1).forEach((block, index) => {
    events.push(...blockStart(block, index));
    const payload = blockPayload(block);
    if (index < cutAt) {
      for (const piece of splitPieces(payload, STREAM_PIECES)) events.push(blockDelta(block, index, piece));
      events.push({ type: 'content_block_stop', index });
      partialChars += payload.length;
    } else {
      const half = splitPieces(payload, 2)[0] ?? '';
      if (half !== '') events.push(blockDelta(block, index, half));
      partialChars += half.length;
    }
  });
  return { events, partialChars };
}

function messageStart(message: Message): SseEvent {
  return {
    type: 'message_start',
    message: { ...message, content: [], stop_reason: null, stop_sequence: null, usage: { ...message.usage, output_tokens: 1 } },
  };
}

function blockStart(block: ContentBlock, index: number): SseEvent[] {
  if (block.type === 'text') return [{ type: 'content_block_start', index, content_block: { ...block, text: '' } }];
  if (block.type === 'tool_use') return [{ type: 'content_block_start', index, content_block: { ...block, input: {} } }];
  throw new Error(`fake: cannot stream a ${block.type} block`);
}

function blockPayload(block: ContentBlock): string {
  if (block.type === 'text') return block.text;
  if (block.type === 'tool_use') return JSON.stringify(block.input) ?? '{}';
  return '';
}

function blockDelta(block: ContentBlock, index: number, piece: string): SseEvent {
  return block.type === 'tool_use'
    ? { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: piece } }
    : { type: 'content_block_delta', index, delta: { type: 'text_delta', text: piece } };
}

/** `text` in up to `n` non-empty pieces of about equal length, cut between code points. */
function splitPieces(text: string, n: number): string[] {
  const chars = Array.from(text);
  const size = Math.max(1, Math.ceil(chars.length / n));
  const pieces: string[] = [];
  for (let i = 0; i < chars.length; i += size) pieces.push(chars.slice(i, i + size).join(''));
  return pieces;
}

/** Write the events as SSE; `then` runs once the last one is handed to the socket. */
function writeSse(res: ServerResponse, events: SseEvent[], requestId: string, then: () => void): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'request-id': requestId,
  });
  const text = events.map((event) => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  text.forEach((chunk, i) => {
    if (i < text.length - 1) res.write(chunk);
    else res.write(chunk, () => then());
  });
}

// ---- helpers (pure) ------------------------------------------------------------------------

/** Validate a scripted reply, so that a mistake in a test's script is reported as such. */
function checkReply(reply: FakeReply): FakeReply {
  if (!isObject(reply) || !Array.isArray(reply.content)) {
    throw new ApiFailure(500, 'api_error', `fake: a scripted reply needs a content array, got ${JSON.stringify(reply)}`);
  }
  for (const block of reply.content) {
    const ok =
      isObject(block) &&
      ((block.type === 'text' && typeof block.text === 'string') ||
        (block.type === 'tool_use' && typeof block.name === 'string' && isObject(block.input)));
    if (!ok) throw new ApiFailure(500, 'api_error', `fake: bad block in a scripted reply: ${JSON.stringify(block)}`);
  }
  return reply;
}

function erroredResult(entry: RecordedRequest, error: { type: string; message: string }): MessageBatchErroredResult {
  entry.outcome = 'error';
  entry.batchResult = 'errored';
  // The SDK types `error.type` as a closed union; a test may script any type the API might send.
  const object = { type: error.type, message: error.message } as MessageBatchErroredResult['error']['error'];
  return { type: 'errored', error: { type: 'error', error: object, request_id: null } };
}

function requestId(rec: RecordedRequest): string {
  return `req_fake_${String(rec.seq).padStart(6, '0')}`;
}

function blocksOf(content: unknown, type: string): Json[] {
  return Array.isArray(content) ? content.filter((b): b is Json => isObject(b) && b.type === type) : [];
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The last 20 requests, one line each, for timeout messages. */
function describeRequests(requests: readonly RecordedRequest[]): string {
  if (requests.length === 0) return 'No requests were recorded.';
  const last = requests.slice(-20);
  const lines = last.map((r) => {
    const body = isObject(r.body) ? r.body : {};
    const messages = Array.isArray(body.messages) ? body.messages.length : '?';
    const u = r.usage;
    const usage = u
      ? ` in=${u.input_tokens} cw=${u.cache_creation_input_tokens} cr=${u.cache_read_input_tokens} out=${u.output_tokens}`
      : '';
    const answer = `${r.batchResult ?? r.outcome ?? 'pending'}${r.status ? ` ${r.status}` : ''}`;
    if (r.path.startsWith(`${BATCHES_PATH}/`) || (r.path === BATCHES_PATH && !r.batch)) return `  #${r.seq} ${r.path} -> ${answer}`;
    const batch = r.batch ? ` batch=${r.batchId}/${r.customId}` : '';
    return `  #${r.seq} ${r.path}${batch} model=${String(body.model)} ${r.stream ? 'stream' : 'sync'} messages=${messages} -> ${answer}${usage}`;
  });
  return `Last ${last.length} of ${requests.length} requests:\n${lines.join('\n')}`;
}
