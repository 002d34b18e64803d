import { APIConnectionError, InternalServerError, NotFoundError } from '@anthropic-ai/sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBatchClient, type BatchClient, type BatchItemResult, type BatchRequest, type BatchState } from '../../src/llm/batch-client.js';
import { estimateTokens, startFakeAnthropic, type FakeAnthropic } from '../fakes/anthropic-server.js';

const MODEL = 'claude-sonnet-4-6';

let fake: FakeAnthropic;

beforeEach(async () => {
  fake = await startFakeAnthropic();
});

afterEach(async () => {
  await fake.close();
});

function batchClient(overrides: { maxRetries?: number } = {}): BatchClient {
  return createBatchClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, ...overrides });
}

function makeRequest(customId: string, overrides: Partial<BatchRequest['params']> = {}): BatchRequest {
  return {
    customId,
    params: {
      model: MODEL,
      max_tokens: 200,
      system: [{ type: 'text', text: 'You triage issues.' }],
      messages: [{ role: 'user', content: `<issue id="${customId}">The build fails on Windows.</issue>` }],
      ...overrides,
    },
  };
}

function ended(state: BatchState): ReadonlyMap<string, BatchItemResult> {
  if (state.kind !== 'ended') throw new Error(`expected an ended batch, got ${state.kind}`);
  return state.results;
}

describe('createBatchClient', () => {
  it('submits, stays pending across a restart, then maps the results by custom id with usage', async () => {
    const requests = [makeRequest('triage-1'), makeRequest('triage-2', { max_tokens: 50 })];
    const batchId = await batchClient().submit(requests);

    // The fake recorded each request's params, as sent.
    expect(fake.requests.map((r) => [r.batchId, r.customId])).toEqual([
      [batchId, 'triage-1'],
      [batchId, 'triage-2'],
    ]);
    expect(fake.requests.map((r) => r.body)).toEqual(requests.map((r) => r.params));

    expect(await batchClient().poll(batchId)).toEqual({ kind: 'pending' });
    // A new client, as after a restart, finds the same batch by its persisted id.
    expect(await batchClient().poll(batchId)).toEqual({ kind: 'pending' });

    fake.script({ content: [{ type: 'text', text: 'bug: windows paths' }] }, { content: [{ type: 'text', text: 'duplicate of #3' }], outputTokens: 9 });
    fake.endBatch(batchId);
    const results = ended(await batchClient().poll(batchId));

    expect([...results.keys()].sort()).toEqual(['triage-1', 'triage-2']);
    const first = results.get('triage-1');
    const second = results.get('triage-2');
    if (first?.kind !== 'succeeded' || second?.kind !== 'succeeded') throw new Error('both should have succeeded');
    expect(first.response.content).toMatchObject([{ type: 'text', text: 'bug: windows paths' }]);
    expect(second.response).toMatchObject({ model: MODEL, stopReason: 'end_turn', content: [{ type: 'text', text: 'duplicate of #3' }] });
    const inputTokens =
      estimateTokens({ type: 'text', text: 'You triage issues.' }) +
      estimateTokens({ type: 'text', text: '<issue id="triage-2">The build fails on Windows.</issue>' });
    expect(second.response.usage).toEqual({
      inputTokens,
      cacheWrite5mTokens: 0,
      cacheWrite1hTokens: 0,
      cacheReadTokens: 0,
      outputTokens: 9,
    });
    expect(second.response.usage.inputTokens).toBe(fake.requests[1]!.usage?.input_tokens);
  });

  it('reports errored and expired requests without a response', async () => {
    fake.failBatchRequest('flaky', 'errored', { type: 'overloaded_error', message: 'Overloaded' });
    fake.failBatchRequest('slow', 'expired');
    fake.script({ content: [{ type: 'text', text: 'fine' }] });
    const batchId = await batchClient().submit([makeRequest('flaky'), makeRequest('slow'), makeRequest('fine')]);
    fake.endBatch();
    const results = ended(await batchClient().poll(batchId));
    expect(results.get('flaky')).toEqual({ kind: 'errored', errorType: 'overloaded_error', message: 'Overloaded' });
    expect(results.get('slow')).toEqual({ kind: 'expired' });
    expect(results.get('fine')?.kind).toBe('succeeded');
  });

  it('reports a request whose params the API refuses at processing time as errored', async () => {
    const batchId = await batchClient().submit([makeRequest('bad', { max_tokens: 0 })]);
    fake.endBatch();
    expect(ended(await batchClient().poll(batchId)).get('bad')).toEqual({
      kind: 'errored',
      errorType: 'invalid_request_error',
      message: 'max_tokens: Input should be greater than or equal to 1',
    });
  });

  it('a canceling batch is still pending; once ended its requests are canceled', async () => {
    const batchId = await batchClient().submit([makeRequest('one')]);
    // Canceling is not part of the port; the batch is canceled the way an operator would.
    const cancel = await fetch(`${fake.baseUrl}/v1/messages/batches/${batchId}/cancel`, {
      method: 'POST',
      headers: { 'x-api-key': fake.apiKey, 'anthropic-version': '2023-06-01' },
    });
    expect(cancel.status).toBe(200);
    expect(await batchClient().poll(batchId)).toEqual({ kind: 'pending' });
    fake.endBatch(batchId);
    expect(ended(await batchClient().poll(batchId)).get('one')).toEqual({ kind: 'canceled' });
  });

  it('leaves 529 and 500 on retrieve and on the results download to the SDK retries', async () => {
    const batchId = await batchClient().submit([makeRequest('one')]);
    fake.failNext({ kind: 'overloaded', retryAfterMs: 5 }, 1, 'batches');
    fake.failNext({ kind: 'server-error', retryAfterMs: 5 }, 1, 'batches');
    expect(await batchClient().poll(batchId)).toEqual({ kind: 'pending' });
    expect(fake.batchCalls.map((r) => r.status)).toEqual([200, 529, 500, 200]);

    fake.script({ content: [{ type: 'text', text: 'done' }] });
    fake.endBatch();
    const before = fake.batchCalls.length;
    // poll retrieves; results() retrieves again, then downloads.
    fake.failNext({ kind: 'overloaded', retryAfterMs: 5 }, 1, 'batch-results');
    fake.failNext({ kind: 'server-error', status: 503, retryAfterMs: 5 }, 1, 'batch-results');
    expect(ended(await batchClient().poll(batchId)).get('one')?.kind).toBe('succeeded');
    expect(fake.batchCalls.slice(before).map((r) => [r.path.endsWith('/results') ? 'results' : 'retrieve', r.status])).toEqual([
      ['retrieve', 200],
      ['retrieve', 200],
      ['results', 529],
      ['results', 503],
      ['results', 200],
    ]);
  });

  it('surfaces a failure once the SDK retries are spent, and an unknown batch as NotFoundError', async () => {
    const batchId = await batchClient().submit([makeRequest('one')]);
    fake.failNext({ kind: 'server-error', retryAfterMs: 5 }, 2, 'batches');
    await expect(batchClient({ maxRetries: 1 }).poll(batchId)).rejects.toBeInstanceOf(InternalServerError);
    expect(fake.batchCalls.map((r) => r.status)).toEqual([200, 500, 500]);
    await expect(batchClient().poll('msgbatch_unknown')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('rejects a results download that breaks off as a connection error, so the next poll tries again', async () => {
    fake.onRequest(() => ({ content: [{ type: 'text', text: 'an answer long enough to be cut in the middle of its line' }] }));
    const batchId = await batchClient().submit([makeRequest('a'), makeRequest('b')]);
    fake.endBatch();
    fake.failNext({ kind: 'cut-stream' }, 1, 'batch-results');
    await expect(batchClient().poll(batchId)).rejects.toBeInstanceOf(APIConnectionError);
    expect(fake.batchCalls.at(-1)).toMatchObject({ outcome: 'cut' });
    expect([...ended(await batchClient().poll(batchId)).keys()].sort()).toEqual(['a', 'b']);
  });
});
