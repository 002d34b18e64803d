import Anthropic from '@anthropic-ai/sdk';
import { describe, expect, it } from 'vitest';
import { classifyModelError } from '../../src/llm/classify-model-error.js';
import { PartialCallError } from '../../src/llm/model-client.js';
import { classifyStageError } from '../../src/pipeline/classify-stage-error.js';
import { RequestError } from '@octokit/request-error';

// What a failed call means for the item's attempts: a rate limit or overload reschedules
// without using one (`throttled`), any other transient error uses one, the rest fail.

const apiError = (status: number, message = 'x') => Anthropic.APIError.generate(status, { type: 'error', error: { type: 'some_error', message } }, message, new Headers());
const noUsage = { inputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 0 };

describe('classifyModelError', () => {
  it('marks a 429 and a 529 as throttled, so they use no attempt', () => {
    expect(classifyModelError(apiError(429))).toEqual({ kind: 'retry-later', message: 'Anthropic rate limit (429)', throttled: true });
    expect(classifyModelError(apiError(529))).toEqual({ kind: 'retry-later', message: 'Anthropic is overloaded (529)', throttled: true });
    // Also when the overload cut a stream that had already started.
    expect(classifyModelError(new PartialCallError('m', noUsage, apiError(529)))).toMatchObject({ throttled: true });
  });

  it('leaves other transient errors unthrottled (they use an attempt) and fails the rest', () => {
    expect(classifyModelError(apiError(500))).toEqual({ kind: 'retry-later', message: 'Anthropic server error (500)' });
    expect(classifyModelError(new Anthropic.APIConnectionError({ message: 'reset' }))).toEqual({ kind: 'retry-later', message: 'connection to Anthropic failed' });
    expect(classifyModelError(apiError(401))).toMatchObject({ kind: 'failed' });
    expect(classifyModelError(apiError(400, 'Your credit balance is too low'))).toMatchObject({ kind: 'failed', message: expect.stringContaining('credit balance') });
  });
});

describe('classifyStageError', () => {
  const ghError = (status: number, message: string) =>
    new RequestError(message, status, { request: { method: 'GET', url: 'https://api.github.invalid/x', headers: {} }, response: { status, url: '', headers: {}, data: { message } } });

  it("marks GitHub's rate limits as throttled and its 5xx as an ordinary retry", () => {
    expect(classifyStageError(ghError(403, 'You have exceeded a secondary rate limit'))).toMatchObject({ kind: 'retry-later', throttled: true });
    expect(classifyStageError(ghError(429, 'Too many requests'))).toMatchObject({ kind: 'retry-later', throttled: true });
    expect(classifyStageError(ghError(502, 'Bad gateway'))).toEqual({ kind: 'retry-later', reason: 'GitHub answered 502: Bad gateway' });
    expect(classifyStageError(ghError(403, 'Resource not accessible by integration'))).toMatchObject({ kind: 'failed' });
  });
});
