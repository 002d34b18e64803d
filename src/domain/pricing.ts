/** Dollar prices of one model per million tokens. */
export interface ModelPrice {
  readonly inputPerMTok: number;
  readonly outputPerMTok: number;
}

/** Tokens of one model call, split the way they are billed. */
export interface TokenUsage {
  readonly inputTokens: number;
  /** Written to the 5-minute cache (billed 1.25× input). */
  readonly cacheWrite5mTokens: number;
  /** Written to the 1-hour cache (billed 2× input). */
  readonly cacheWrite1hTokens: number;
  /** Read from the cache (billed 0.1× input). */
  readonly cacheReadTokens: number;
  readonly outputTokens: number;
}

/** Multipliers on the input price, and the batch discount. */
export const CACHE_WRITE_5M_MULTIPLIER = 1.25;
export const CACHE_WRITE_1H_MULTIPLIER = 2;
export const CACHE_READ_MULTIPLIER = 0.1;
export const BATCH_MULTIPLIER = 0.5;

/** Default prices by model family (matched against the model id). */
export const DEFAULT_PRICES: ReadonlyArray<{ readonly family: string; readonly match: RegExp; readonly price: ModelPrice }> = [
  { family: 'Opus 4.x', match: /opus-4/, price: { inputPerMTok: 5, outputPerMTok: 25 } },
  { family: 'Sonnet 4.x', match: /sonnet-4/, price: { inputPerMTok: 3, outputPerMTok: 15 } },
  { family: 'Haiku 4.5', match: /haiku-4-5/, price: { inputPerMTok: 1, outputPerMTok: 5 } },
];

/** The price of `model`: an exact override first, then the default family, else undefined. */
export function priceFor(model: string, overrides: Readonly<Record<string, ModelPrice>> = {}): ModelPrice | undefined {
  return overrides[model] ?? DEFAULT_PRICES.find((p) => p.match.test(model))?.price;
}

/** Dollar cost of one call. */
export function costUsd(usage: TokenUsage, price: ModelPrice, options: { batch?: boolean } = {}): number {
  const inputUnits =
    usage.inputTokens +
    usage.cacheWrite5mTokens * CACHE_WRITE_5M_MULTIPLIER +
    usage.cacheWrite1hTokens * CACHE_WRITE_1H_MULTIPLIER +
    usage.cacheReadTokens * CACHE_READ_MULTIPLIER;
  const dollars = (inputUnits * price.inputPerMTok + usage.outputTokens * price.outputPerMTok) / 1_000_000;
  return options.batch ? dollars * BATCH_MULTIPLIER : dollars;
}

/**
 * The most the next call can cost: every input token billed as a 1-hour cache write (the
 * dearest way to pay for input) and the full `maxTokens` of output.
 */
export function worstCaseCostUsd(inputTokens: number, maxTokens: number, price: ModelPrice): number {
  return (inputTokens * CACHE_WRITE_1H_MULTIPLIER * price.inputPerMTok + maxTokens * price.outputPerMTok) / 1_000_000;
}

/** Tokens the API adds for tool definitions and tool use that the request body does not show. @default 3000 */
export const HIDDEN_PROMPT_TOKENS = 3000;

/**
 * A conservative token estimate of a request body: one token per three UTF-8 bytes of its
 * JSON (real tokenizers average about four characters for English and code; CJK text and
 * emoji take three or four bytes a character), plus the API's hidden tool prompts.
 */
export function estimateInputTokens(request: unknown): number {
  return Math.ceil(new TextEncoder().encode(JSON.stringify(request)).length / 3) + HIDDEN_PROMPT_TOKENS;
}
