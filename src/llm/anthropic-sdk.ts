import type Anthropic from '@anthropic-ai/sdk';

/**
 * An Anthropic SDK client made on first use. The SDK is some 320 modules, half of the bot's
 * start-up time, and a start that only has cards to settle and chats to answer never calls a
 * model. Its error classes live in `@anthropic-ai/sdk/core/error`, which is small and is the
 * module the client throws from, so `instanceof` checks need no client.
 */
export function lazyAnthropic(options: { apiKey: string; baseURL: string; maxRetries: number }): () => Promise<Anthropic> {
  let client: Promise<Anthropic> | undefined;
  return () => (client ??= import('@anthropic-ai/sdk').then(({ default: Sdk }) => new Sdk(options)));
}
