import type Anthropic from '@anthropic-ai/sdk';
import type { TokenUsage } from '../domain/pricing.js';
import { lazyAnthropic } from './anthropic-sdk.js';
import type { ModelClient, ModelRequest, ModelResponse } from './model-client.js';
import { PartialCallError, toMessageParams, toTokenUsage } from './model-client.js';

/** A stream that sends nothing for this long is treated as a dropped connection. @default 120000 */
export const STREAM_IDLE_TIMEOUT_MS = 120_000;

/** Wait before sending again a request whose stream broke off midway. @default 1000 */
export const STREAM_RETRY_DELAY_MS = 1_000;

/**
 * The Anthropic Messages API as a `ModelClient`. Requests stream (the API requires it for large
 * `max_tokens`); the SDK retries 429, 5xx, 529 and connection errors before the stream starts.
 * A stream that breaks or stalls midway, or a request that gets no answer at all for
 * `idleTimeoutMs`, is a transport error too, so it is sent again once here (when `maxRetries` >
 * 0) instead of failing the stage into a minute-long backoff; partial content is never
 * returned, so a half-streamed tool call can never be executed. A broken stream was billed: its
 * usage is added to the answer's (or to the final PartialCallError's).
 * Only once, because one admission to the budget covers the whole call: a second paid attempt
 * stays within the "one call's worst case" that I-COST allows.
 */
export function createAnthropicClient(options: { apiKey: string; baseUrl: string; maxRetries?: number; idleTimeoutMs?: number; streamRetryDelayMs?: number }): ModelClient {
  const maxRetries = options.maxRetries ?? 4;
  const client = lazyAnthropic({ apiKey: options.apiKey, baseURL: options.baseUrl, maxRetries });
  const idleTimeoutMs = options.idleTimeoutMs ?? STREAM_IDLE_TIMEOUT_MS;
  const streamRetryDelayMs = options.streamRetryDelayMs ?? STREAM_RETRY_DELAY_MS;
  // Errors of requests the idle watchdog aborted before anything streamed (nothing was billed).
  const unanswered = new WeakSet<object>();
  const once = async (request: ModelRequest): Promise<ModelResponse> => {
    const idle = new AbortController();
    const onAbort = () => idle.abort(request.signal?.reason);
    request.signal?.addEventListener('abort', onAbort, { once: true });
    let timer = setTimeout(() => idle.abort(new Error('stream idle timeout')), idleTimeoutMs);
    // What the API reported before a break: message_start carries the input side, each
    // message_delta the output so far.
    let started: { model: string; usage: Anthropic.Messages.Usage } | undefined;
    // message_delta (with the output count) comes only at the end, so a break midway leaves
    // output unreported: estimate it from what streamed, erring high (3 characters a token).
    let streamedChars = 0;
    try {
      const stream = (await client()).messages.stream(toMessageParams(request), { signal: idle.signal });
      stream.on('streamEvent', (event) => {
        if (event.type === 'message_start') started = { model: event.message.model, usage: { ...event.message.usage } };
        else if (event.type === 'message_delta' && started) started.usage.output_tokens = event.usage.output_tokens;
        else if (event.type === 'content_block_delta') {
          const delta = event.delta;
          streamedChars += delta.type === 'text_delta' ? delta.text.length : delta.type === 'input_json_delta' ? delta.partial_json.length : delta.type === 'thinking_delta' ? delta.thinking.length : 0;
        }
        clearTimeout(timer);
        timer = setTimeout(() => idle.abort(new Error('stream idle timeout')), idleTimeoutMs);
      });
      const message = await stream.finalMessage();
      return {
        model: message.model,
        content: message.content,
        stopReason: message.stop_reason,
        usage: toTokenUsage(message.usage),
        requestId: stream.request_id ?? undefined,
      };
    } catch (error) {
      if (started) {
        const usage = toTokenUsage(started.usage);
        const outputTokens = Math.max(usage.outputTokens, Math.ceil(streamedChars / 3));
        throw new PartialCallError(started.model, { ...usage, outputTokens }, error);
      }
      if (idle.signal.aborted && !request.signal?.aborted && error instanceof Object) unanswered.add(error);
      throw error;
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onAbort);
    }
  };
  return {
    async complete(request: ModelRequest): Promise<ModelResponse> {
      let first: unknown;
      try {
        return await once(request);
      } catch (error) {
        if (!(error instanceof PartialCallError || unanswered.has(error as object)) || maxRetries === 0 || request.signal?.aborted) throw error;
        first = error;
      }
      await new Promise((resolve) => setTimeout(resolve, streamRetryDelayMs));
      if (request.signal?.aborted) throw first;
      if (!(first instanceof PartialCallError)) return once(request);
      const broken = first;
      try {
        const response = await once(request);
        return { ...response, usage: addUsage(response.usage, broken.usage) };
      } catch (error) {
        const usage = error instanceof PartialCallError ? addUsage(error.usage, broken.usage) : broken.usage;
        throw new PartialCallError(broken.model, usage, error instanceof PartialCallError ? error.cause : error);
      }
    },
  };
}

function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    cacheWrite5mTokens: a.cacheWrite5mTokens + b.cacheWrite5mTokens,
    cacheWrite1hTokens: a.cacheWrite1hTokens + b.cacheWrite1hTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    outputTokens: a.outputTokens + b.outputTokens,
  };
}
