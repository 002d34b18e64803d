import type Anthropic from '@anthropic-ai/sdk';
import type { TokenUsage } from '../domain/pricing.js';

// The stages talk to models through this small interface; the Anthropic SDK's message shapes
// are the lingua franca (another provider adapts to them), so nothing above llm/ changes
// when one is added.

/** Content block of a message sent to a model. */
export type ContentBlockParam = Anthropic.Messages.ContentBlockParam;
/** A message sent to a model. */
export type MessageParam = Anthropic.Messages.MessageParam;
/** A tool offered to a model. */
export type ToolParam = Anthropic.Messages.ToolUnion;
/** A system prompt block. */
export type SystemBlock = Anthropic.Messages.TextBlockParam;
/** A content block of a model's reply. */
export type ContentBlock = Anthropic.Messages.ContentBlock;
/** Why a model stopped. */
export type StopReason = Anthropic.Messages.StopReason;

/** One model request. */
export interface ModelRequest {
  readonly model: string;
  readonly system: readonly SystemBlock[];
  readonly tools: readonly ToolParam[];
  readonly messages: readonly MessageParam[];
  readonly maxTokens: number;
  readonly toolChoice?: Anthropic.Messages.ToolChoice;
  readonly signal?: AbortSignal;
}

/** One model reply. */
export interface ModelResponse {
  readonly model: string;
  readonly content: ContentBlock[];
  readonly stopReason: StopReason | null;
  readonly usage: TokenUsage;
  readonly requestId?: string | undefined;
}

/** A model provider. */
export interface ModelClient {
  /** Sends one request; transport retries happen inside, so an error here is final for this call. */
  complete(request: ModelRequest): Promise<ModelResponse>;
}

/**
 * The Messages API parameters of a request, as both the streaming client and a batch send them:
 * one function, so a batched request's prompt is byte-identical to an interactive one's and
 * reads the same cache entries.
 */
export function toMessageParams(request: Omit<ModelRequest, 'signal'>): Anthropic.Messages.MessageCreateParamsNonStreaming {
  return {
    model: request.model,
    max_tokens: request.maxTokens,
    system: [...request.system],
    tools: [...request.tools],
    messages: [...request.messages],
    ...(request.toolChoice ? { tool_choice: request.toolChoice } : {}),
  };
}

/** Converts the API's usage block into billed token counts. */
export function toTokenUsage(usage: Anthropic.Messages.Usage): TokenUsage {
  const write = usage.cache_creation_input_tokens ?? 0;
  const write1h = usage.cache_creation?.ephemeral_1h_input_tokens ?? 0;
  return {
    inputTokens: usage.input_tokens,
    cacheWrite5mTokens: Math.max(0, write - write1h),
    cacheWrite1hTokens: write1h,
    cacheReadTokens: usage.cache_read_input_tokens ?? 0,
    outputTokens: usage.output_tokens,
  };
}

/**
 * A call that failed after the API had started answering (a stream cut or stalled midway).
 * The API bills such a call, so `usage` is what it reported before the break; the ledger
 * records it even though the reply is thrown away.
 */
export class PartialCallError extends Error {
  override readonly name = 'PartialCallError';
  constructor(
    readonly model: string,
    readonly usage: TokenUsage,
    override readonly cause: unknown,
  ) {
    super(`the model call broke off after it started: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}
