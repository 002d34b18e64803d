import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAgent, type AgentTask, type ToolExecutor } from '../../src/agent/run-agent.js';
import { priceFor } from '../../src/domain/pricing.js';
import { createAnthropicClient } from '../../src/llm/anthropic-client.js';
import { callWorstCaseUsd, checkBudget, createPeriodBudget, meteredCall, type CallBudget, type PeriodBudget } from '../../src/llm/metered-call.js';
import type { ModelClient, ModelRequest } from '../../src/llm/model-client.js';
import { unfinishedAgentOutcome } from '../../src/pipeline/classify-stage-error.js';
import { openStore, type Store } from '../../src/store/open-store.js';
import { startFakeAnthropic, type FakeAnthropic, type FakeReply } from '../fakes/anthropic-server.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

const ZONE = 'Europe/Amsterdam';
const at = (iso: string) => Date.parse(iso);

const request: ModelRequest = {
  model: 'claude-opus-4-6',
  system: [{ type: 'text', text: 'look at the last merges' }],
  tools: [],
  messages: [{ role: 'user', content: 'go' }],
  maxTokens: 1000,
};
const WORST = callWorstCaseUsd(request, priceFor(request.model)!);
/** Only the period caps matter here: a stage cap no call comes near. */
const NO_ITEM: CallBudget = { itemId: null, stage: 'drift', stageBudgetUsd: 1000 };

/** Writes a ledger row of `usd` stamped `when` (the store's clock stands there while it writes). */
function spend(store: Store, clock: { now: number }, usd: number, when: number, itemId: number | null = null): void {
  const was = clock.now;
  clock.now = when;
  store.ledger.record({ itemId, stage: itemId === null ? 'drift' : 'build', model: request.model, inputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 0, batch: false, costUsd: usd });
  clock.now = was;
}

function period(clock: { now: number }, caps: { dailyUsd: number; monthlyUsd: number }): PeriodBudget {
  return createPeriodBudget(caps, ZONE, () => clock.now);
}

describe('the daily cap, in the local day of NIGHTSHIFT_TIMEZONE', () => {
  // Each case: the last second of the previous local day, the first of this one, a time late
  // this day, and when this day ends. A UTC day or "the last 24 hours" gets each one wrong.
  it.each([
    { day: 'an ordinary day', before: '2026-11-25T22:59:59Z', first: '2026-11-25T23:00:00Z', late: '2026-11-26T22:30:00Z', resets: '2026-11-26T23:00:00Z', shown: '2026-11-27 00:00' },
    // 25 October 2026: the clocks go back at 03:00; the local day lasts 25 hours.
    { day: 'the 25-hour day clocks go back', before: '2026-10-24T21:59:59Z', first: '2026-10-24T22:00:00Z', late: '2026-10-25T22:59:00Z', resets: '2026-10-25T23:00:00Z', shown: '2026-10-26 00:00' },
    // 29 March 2026: the clocks go forward at 02:00; the local day lasts 23 hours.
    { day: 'the 23-hour day clocks go forward', before: '2026-03-28T22:59:59Z', first: '2026-03-28T23:00:00Z', late: '2026-03-29T21:59:00Z', resets: '2026-03-29T22:00:00Z', shown: '2026-03-30 00:00' },
  ])('counts $day from local midnight to local midnight', ({ before, first, late, resets, shown }) => {
    const { store, clock } = makeStore(at(late));
    const caps = period(clock, { dailyUsd: 1, monthlyUsd: 100 });
    // The whole cap spent a second before midnight: that was yesterday.
    spend(store, clock, 1, at(before));
    spend(store, clock, 0.01, at(first));
    expect(checkBudget(store, NO_ITEM, request, priceFor(request.model)!, 0, caps)).toBeUndefined();
    // Room for the next call only if the first second of the day did not count.
    spend(store, clock, 1 - WORST - 0.005, at(late));
    const stop = checkBudget(store, NO_ITEM, request, priceFor(request.model)!, 0, caps);
    expect(stop).toEqual({ limit: 'daily-budget', resetsAt: at(resets), resumable: true, message: expect.stringContaining('daily budget of $1.00') });
    expect(stop?.message).toContain(`resets at ${shown} ${ZONE}`);
    // One second after the local day ends, the cap is free again.
    clock.now = at(resets);
    expect(checkBudget(store, NO_ITEM, request, priceFor(request.model)!, 0, caps)).toBeUndefined();
    store.close();
  });
});

describe('the monthly cap, in the local month of NIGHTSHIFT_TIMEZONE', () => {
  it.each([
    { month: 'December', before: '2026-11-30T22:59:59Z', first: '2026-11-30T23:00:00Z', late: '2026-12-15T12:00:00Z', resets: '2026-12-31T23:00:00Z', shown: '2027-01-01 00:00' },
    // Starts in summer time (+02:00), ends in winter time (+01:00).
    { month: 'October, across the change to winter time', before: '2026-09-30T21:59:59Z', first: '2026-09-30T22:00:00Z', late: '2026-10-31T22:30:00Z', resets: '2026-10-31T23:00:00Z', shown: '2026-11-01 00:00' },
    // Starts in winter time, ends in summer time.
    { month: 'March, across the change to summer time', before: '2026-02-28T22:59:59Z', first: '2026-02-28T23:00:00Z', late: '2026-03-31T21:30:00Z', resets: '2026-03-31T22:00:00Z', shown: '2026-04-01 00:00' },
  ])('counts $month from its first local midnight', ({ before, first, late, resets, shown }) => {
    const { store, clock } = makeStore(at(late));
    // A daily cap no day comes near, so only the month decides.
    const caps = period(clock, { dailyUsd: 100, monthlyUsd: 1 });
    spend(store, clock, 1, at(before));
    spend(store, clock, 0.01, at(first));
    expect(checkBudget(store, NO_ITEM, request, priceFor(request.model)!, 0, caps)).toBeUndefined();
    spend(store, clock, 1 - WORST - 0.005, at(first) + 86_400_000);
    const stop = checkBudget(store, NO_ITEM, request, priceFor(request.model)!, 0, caps);
    expect(stop).toEqual({ limit: 'monthly-budget', resetsAt: at(resets), resumable: true, message: expect.stringContaining('monthly budget of $1.00') });
    expect(stop?.message).toContain(`resets at ${shown} ${ZONE}`);
    clock.now = at(resets);
    expect(checkBudget(store, NO_ITEM, request, priceFor(request.model)!, 0, caps)).toBeUndefined();
    store.close();
  });

  it('names the monthly cap when both would be crossed (the daily reset alone would not help)', () => {
    const { store, clock } = makeStore(at('2026-11-25T12:00:00Z'));
    spend(store, clock, 1, at('2026-11-25T11:00:00Z'));
    const stop = checkBudget(store, NO_ITEM, request, priceFor(request.model)!, 0, period(clock, { dailyUsd: 1, monthlyUsd: 1 }));
    expect(stop).toMatchObject({ limit: 'monthly-budget', resetsAt: at('2026-11-30T23:00:00Z') });
    store.close();
  });

  it('checks the stage and item caps first: those stops are final, so waiting for a reset would be wasted', () => {
    const { store, clock } = makeStore(at('2026-11-25T12:00:00Z'));
    const itemId = store.items.create(makeNewItem()).id;
    spend(store, clock, 1, at('2026-11-25T11:00:00Z'), itemId);
    const budget: CallBudget = { itemId, stage: 'build', stageBudgetUsd: 1, itemBudgetUsd: 10 };
    expect(checkBudget(store, budget, request, priceFor(request.model)!, 0, period(clock, { dailyUsd: 1, monthlyUsd: 1 }))).toMatchObject({ limit: 'stage-budget' });
    store.close();
  });
});

describe('daily and monthly caps on metered calls', () => {
  let fake: FakeAnthropic;
  beforeEach(async () => {
    fake = await startFakeAnthropic();
  });
  afterEach(async () => {
    await fake.close();
  });

  it('keeps the spend of the day across a store reopen (a restart), and sends nothing past the cap', async () => {
    const { store, clock, path } = makeStore(at('2026-11-25T20:00:00Z'));
    spend(store, clock, 1 - WORST / 2, at('2026-11-25T09:00:00Z'));
    store.close();
    const reopened = openStore(path, { now: () => clock.now });
    const model = createAnthropicClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, maxRetries: 0 });
    const outcome = await meteredCall({ model, store: reopened, prices: {}, period: period(clock, { dailyUsd: 1, monthlyUsd: 100 }) }, NO_ITEM, request);
    // Resumable: the stage keeps its place and tries again at the reset.
    expect(outcome).toEqual({ kind: 'retry-later', notBefore: at('2026-11-25T23:00:00Z'), message: expect.stringMatching(/daily budget of \$1\.00 .*resets at 2026-11-26 00:00 Europe\/Amsterdam/) });
    expect(fake.requests).toHaveLength(0);
    reopened.close();
  });

  it('fails a call dearer than the whole daily cap instead of waiting for a reset that would not help', async () => {
    const { store, clock } = makeStore(at('2026-11-25T20:00:00Z'));
    const model = createAnthropicClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, maxRetries: 0 });
    const outcome = await meteredCall({ model, store, prices: {}, period: period(clock, { dailyUsd: WORST / 2, monthlyUsd: 100 }) }, NO_ITEM, request);
    expect(outcome).toMatchObject({ kind: 'limit', stop: { limit: 'daily-budget', resumable: false, message: expect.stringContaining('raise NIGHTSHIFT_BUDGET_DAILY_USD') } });
    expect(fake.requests).toHaveLength(0);
    store.close();
  });

  it('counts the calls of other items still in flight, so items side by side cannot overshoot the day together', async () => {
    const { store, clock } = makeStore(at('2026-11-25T12:00:00Z'));
    const first = store.items.create(makeNewItem()).id;
    const second = store.items.create(makeNewItem({ title: 'Another' })).id;
    const caps = period(clock, { dailyUsd: WORST * 1.5, monthlyUsd: 100 });
    const release: Array<() => void> = [];
    const held: ModelClient = {
      complete: () =>
        new Promise((resolve) =>
          release.push(() => resolve({ model: request.model, content: [], stopReason: 'end_turn', usage: { inputTokens: 10, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 10 } })),
        ),
    };
    const budgetOf = (itemId: number): CallBudget => ({ itemId, stage: 'review', stageBudgetUsd: 100, itemBudgetUsd: 100 });
    // Each item has its own reservation (as each review stage does); only the period's is shared.
    const running = meteredCall({ model: held, store, prices: {}, period: caps }, budgetOf(first), request, { usd: 0 });
    const refused = await meteredCall({ model: held, store, prices: {}, period: caps }, budgetOf(second), request, { usd: 0 });
    expect(refused).toMatchObject({ kind: 'retry-later', notBefore: at('2026-11-25T23:00:00Z'), message: expect.stringContaining('in calls still running') });
    expect(release).toHaveLength(1);
    release[0]!();
    expect((await running).kind).toBe('ok');
    expect(caps.inFlight.usd).toBeCloseTo(0, 12);
    store.close();
  });
});

describe('an agent run at the daily cap', () => {
  const MODEL = 'claude-sonnet-4-6';
  let fake: FakeAnthropic;
  let store: Store;
  let clock: { now: number };
  let itemId: number;
  let executed: number;

  const bashCall = (command: string): FakeReply => ({ content: [{ type: 'tool_use', name: 'bash', input: { command } }] });

  beforeEach(async () => {
    fake = await startFakeAnthropic();
    // 22:00 in Amsterdam.
    ({ store, clock } = makeStore(at('2026-11-25T21:00:00Z')));
    itemId = store.items.create(makeNewItem()).id;
    executed = 0;
  });
  afterEach(async () => {
    store.close();
    await fake.close();
  });

  function deps(caps: PeriodBudget) {
    return {
      model: createAnthropicClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, maxRetries: 0 }),
      store,
      prices: {},
      redact: (t: string) => t,
      log: pino({ level: 'silent' }),
      period: caps,
    };
  }

  function task(bash: ToolExecutor): AgentTask {
    return {
      itemId,
      stage: 'build',
      model: MODEL,
      system: 'You are a careful engineer.',
      initialMessage: 'Add a --json flag.',
      tools: [{ type: 'bash_20250124', name: 'bash' }],
      executors: { bash },
      limits: { maxTurns: 20, maxOutputTokens: 4000, maxWallClockMs: 60_000, stageBudgetUsd: 5, itemBudgetUsd: 10 },
    };
  }

  it('stops before the call that could cross the cap, tells which cap and when it resets, and goes on from there after the reset', async () => {
    const caps = period(clock, { dailyUsd: 1, monthlyUsd: 100 });
    const runTask = task(async () => {
      executed += 1;
      // Meanwhile another item spends most of the day's budget.
      spend(store, clock, 0.99, clock.now);
      return { content: 'tests pass', isError: false };
    });
    fake.script(bashCall('npm test'), { content: [{ type: 'text', text: 'Done.' }] });

    const stopped = await runAgent(deps(caps), runTask);
    const midnight = at('2026-11-25T23:00:00Z');
    expect(stopped).toEqual({ kind: 'retry-later', notBefore: midnight, message: expect.stringMatching(/daily budget of \$1\.00 .*resets at 2026-11-26 00:00 Europe\/Amsterdam/) });
    // The first turn was paid; the second was never sent.
    expect(fake.requests.filter((r) => r.path === '/v1/messages')).toHaveLength(1);
    expect(executed).toBe(1);
    // The stage waits for the reset, as a retry (not a failure), and the run stays resumable.
    expect(unfinishedAgentOutcome(stopped)).toEqual({ kind: 'retry-later', reason: stopped.kind === 'retry-later' ? stopped.message : '', notBefore: midnight });
    expect(store.agentRuns.latest(itemId, 'build')?.status).toBe('running');
    expect(caps.inFlight.usd).toBeCloseTo(0, 12);

    // A second before the reset: still stopped, still nothing sent.
    clock.now = midnight - 1000;
    expect(await runAgent(deps(caps), runTask)).toMatchObject({ kind: 'retry-later', notBefore: midnight });
    expect(fake.requests.filter((r) => r.path === '/v1/messages')).toHaveLength(1);

    // After the reset the run goes on from its last turn: the tool is not run again.
    clock.now = midnight;
    expect(await runAgent(deps(caps), runTask)).toEqual({ kind: 'done', finalText: 'Done.', turns: 2 });
    expect(executed).toBe(1);
    const second = fake.requests.filter((r) => r.path === '/v1/messages')[1]!.body as { messages: Array<{ role: string; content: Array<{ type: string; content?: string }> }> };
    expect(second.messages.at(-1)?.content.some((b) => b.type === 'tool_result' && b.content === 'tests pass')).toBe(true);
  });

  it('fails the run when one call alone is dearer than the whole daily cap', async () => {
    const stopped = await runAgent(deps(period(clock, { dailyUsd: 0.001, monthlyUsd: 100 })), task(async () => ({ content: '', isError: false })));
    expect(stopped).toMatchObject({ kind: 'limit', limit: 'daily-budget' });
    expect(fake.requests).toHaveLength(0);
    expect(unfinishedAgentOutcome(stopped)).toMatchObject({ kind: 'failed', reason: expect.stringContaining('daily budget limit') });
  });
});
