import * as Anthropic from '@anthropic-ai/sdk/core/error';
import { PartialCallError } from './model-client.js';

/** What a failed model call means for the stage that made it. */
export type ModelErrorOutcome =
  /** `throttled`: a rate limit or overload, which reschedules the work without using one of its attempts. */
  | { readonly kind: 'retry-later'; readonly message: string; readonly throttled?: true }
  | { readonly kind: 'failed'; readonly message: string };

/**
 * Classifies an error that is final for one call (the SDK has already retried what it
 * retries). Rate limits, overload, server errors and broken connections or streams are worth
 * trying again later; bad requests, auth and spend-limit errors are not.
 */
export function classifyModelError(error: unknown): ModelErrorOutcome {
  if (error instanceof PartialCallError) return classifyModelError(error.cause);
  if (error instanceof Anthropic.RateLimitError) return { kind: 'retry-later', message: 'Anthropic rate limit (429)', throttled: true };
  if (error instanceof Anthropic.InternalServerError) {
    return error.status === 529 ? { kind: 'retry-later', message: 'Anthropic is overloaded (529)', throttled: true } : { kind: 'retry-later', message: `Anthropic server error (${error.status})` };
  }
  if (error instanceof Anthropic.APIConnectionError) return { kind: 'retry-later', message: 'connection to Anthropic failed' };
  // Our idle watchdog aborted a stream that stopped sending.
  if (error instanceof Anthropic.APIUserAbortError) return { kind: 'retry-later', message: 'the reply stream from Anthropic stalled' };
  if (error instanceof Anthropic.AuthenticationError) return { kind: 'failed', message: 'Anthropic rejected ANTHROPIC_API_KEY (401)' };
  if (error instanceof Anthropic.PermissionDeniedError) return { kind: 'failed', message: 'the Anthropic key may not use this model (403)' };
  if (error instanceof Anthropic.NotFoundError) return { kind: 'failed', message: 'Anthropic does not know this model (404); check NIGHTSHIFT_MODEL_*' };
  if (error instanceof Anthropic.APIError) {
    const detail = apiMessage(error);
    // Spend limits and credit exhaustion are 400s that no retry will fix.
    return { kind: 'failed', message: `Anthropic refused the request (${error.status ?? 'error'}): ${detail}` };
  }
  // A stream cut midway: the SDK rejects with its base error class ("terminated").
  if (error instanceof Anthropic.AnthropicError) return { kind: 'retry-later', message: 'the reply stream from Anthropic broke off' };
  return { kind: 'failed', message: error instanceof Error ? error.message : String(error) };
}

function apiMessage(error: Anthropic.APIError): string {
  const body = error.error as { error?: { message?: unknown } } | undefined;
  const message = body?.error?.message;
  return typeof message === 'string' ? message.slice(0, 300) : 'no details';
}
