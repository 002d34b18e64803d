import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAgent, type AgentLimits, type AgentTask, type ToolExecutor } from '../../src/agent/run-agent.js';
import { costUsd, DEFAULT_PRICES } from '../../src/domain/pricing.js';
import { createAnthropicClient } from '../../src/llm/anthropic-client.js';
import type { Store } from '../../src/store/open-store.js';
import { startFakeAnthropic, type FakeAnthropic, type FakeReply } from '../fakes/anthropic-server.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

const MODEL = 'claude-sonnet-4-5';
const SONNET = DEFAULT_PRICES.find((p) => p.family === 'Sonnet 4.x')!.price;
const LIMITS: AgentLimits = { maxTurns: 20, maxOutputTokens: 4000, maxWallClockMs: 60_000, stageBudgetUsd: 5, itemBudgetUsd: 10 };

let fake: FakeAnthropic;
let store: Store;
let itemId: number;
let executed: Array<{ name: string; input: unknown }>;

const bashCall = (command: string): FakeReply => ({ content: [{ type: 'tool_use', name: 'bash', input: { command } }] });
const finish = (text = 'All done.'): FakeReply => ({ content: [{ type: 'text', text }] });

function executors(result = (input: unknown) => `ran ${JSON.stringify(input)}`): Record<string, ToolExecutor> {
  return {
    bash: async (input) => {
      executed.push({ name: 'bash', input });
      return { content: result(input), isError: false };
    },
  };
}

function task(overrides: Partial<AgentTask> = {}): AgentTask {
  return {
    itemId,
    stage: 'build',
    model: MODEL,
    // Long enough to be cacheable (the fake caches prefixes of 1024+ tokens).
    system: 'You are a careful engineer. '.repeat(400),
    initialMessage: 'Add a --json flag.',
    tools: [{ type: 'bash_20250124', name: 'bash' }],
    executors: executors(),
    limits: LIMITS,
    ...overrides,
  };
}

function deps(maxRetries = 2) {
  return {
    model: createAnthropicClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, maxRetries }),
    store,
    prices: {},
    redact: (t: string) => t.replaceAll('CANARY-secret', '[REDACTED]'),
    log: pino({ level: 'silent' }),
  };
}

/**
 * The ledger's total must equal the fake's billed usage priced by the table. A stream cut
 * midway is billed by the fake for what it streamed; the client can only estimate that (erring
 * high), so with `cut` the ledger may exceed the bill by a little, never fall short.
 */
function expectLedgerMatchesFake(options: { cut?: boolean } = {}) {
  const answered = fake.requests.filter((r) => r.usage && r.path === '/v1/messages');
  const expected = answered.reduce(
    (sum, r) =>
      sum +
      costUsd(
        {
          inputTokens: r.usage!.input_tokens,
          cacheWrite5mTokens: r.usage!.cache_creation_input_tokens,
          cacheWrite1hTokens: 0,
          cacheReadTokens: r.usage!.cache_read_input_tokens,
          outputTokens: r.usage!.output_tokens,
        },
        SONNET,
      ),
    0,
  );
  expect(expected).toBeGreaterThan(0);
  if (!options.cut) {
    expect(store.ledger.itemUsd(itemId)).toBeCloseTo(expected, 10);
    return;
  }
  expect(store.ledger.itemUsd(itemId)).toBeGreaterThanOrEqual(expected - 1e-12);
  expect(store.ledger.itemUsd(itemId)).toBeLessThan(expected * 1.01);
}

beforeEach(async () => {
  fake = await startFakeAnthropic();
  store = makeStore().store;
  itemId = store.items.create(makeNewItem()).id;
  executed = [];
});

afterEach(async () => {
  store.close();
  await fake.close();
});

describe('runAgent', () => {
  it('runs tools until the model ends its turn, and prices every call in the ledger', async () => {
    fake.script(bashCall('npm test'), bashCall('git diff'), finish('Added the flag and a test.'));
    const outcome = await runAgent(deps(), task());
    expect(outcome).toEqual({ kind: 'done', finalText: 'Added the flag and a test.', turns: 3 });
    expect(executed.map((e) => e.input)).toEqual([{ command: 'npm test' }, { command: 'git diff' }]);
    expectLedgerMatchesFake();
    // The transcript is cached: later turns read the prefix earlier turns wrote.
    const usage = fake.requests.map((r) => r.usage!);
    expect(usage[0]!.cache_creation_input_tokens).toBeGreaterThan(0);
    expect(usage[1]!.cache_read_input_tokens).toBeGreaterThanOrEqual(usage[0]!.cache_creation_input_tokens);
    expect(usage[2]!.input_tokens).toBeLessThan(usage[2]!.cache_read_input_tokens);
    // At most 4 breakpoints; tools and system are cached.
    const body = fake.requests[2]!.body as { tools: Array<{ cache_control?: unknown }>; system: Array<{ cache_control?: unknown }> };
    expect(body.tools.at(-1)?.cache_control).toEqual({ type: 'ephemeral' });
    expect(body.system.at(-1)?.cache_control).toEqual({ type: 'ephemeral' });
  });

  it('scrubs secrets from tool results before the model sees them', async () => {
    fake.script(bashCall('env'), finish());
    await runAgent(deps(), task({ executors: executors(() => 'TOKEN=CANARY-secret') }));
    expect(JSON.stringify(fake.requests[1]!.body)).not.toContain('CANARY-secret');
    expect(JSON.stringify(fake.requests[1]!.body)).toContain('[REDACTED]');
  });

  it('stops at the turn limit before making another call', async () => {
    fake.onRequest(() => bashCall('ls'));
    let n = 0;
    const outcome = await runAgent(deps(), task({ limits: { ...LIMITS, maxTurns: 3 }, executors: executors(() => `different ${n++}`) }));
    expect(outcome).toMatchObject({ kind: 'limit', limit: 'turns', turns: 3 });
    expect(fake.requests).toHaveLength(3);
  });

  it('stops when the same call keeps giving the same result', async () => {
    fake.onRequest(() => bashCall('npm test'));
    const outcome = await runAgent(deps(), task({ executors: executors(() => 'FAIL same failure') }));
    expect(outcome).toMatchObject({ kind: 'limit', limit: 'stuck' });
    expect(fake.requests).toHaveLength(3);
  });

  it('stops before a call whose worst case would cross the stage budget', async () => {
    fake.onRequest(() => bashCall('ls'));
    let n = 0;
    // One turn costs cents; a $0.20 budget with 4000 output tokens (about $0.10 worst case) allows a few.
    const outcome = await runAgent(deps(), task({ limits: { ...LIMITS, maxTurns: 500, stageBudgetUsd: 0.2 }, executors: executors(() => `r${n++}`) }));
    expect(outcome).toMatchObject({ kind: 'limit', limit: 'stage-budget' });
    expect(store.ledger.stageUsd(itemId, 'build')).toBeLessThanOrEqual(0.2);
    expect(fake.requests.length).toBeGreaterThan(0);
    expectLedgerMatchesFake();
  });

  it('stops before a call whose worst case would cross the item budget', async () => {
    fake.onRequest(() => bashCall('ls'));
    store.ledger.record({ itemId, stage: 'earlier', model: MODEL, inputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 0, batch: false, costUsd: 9.99 });
    const outcome = await runAgent(deps(), task());
    expect(outcome).toMatchObject({ kind: 'limit', limit: 'item-budget' });
    expect(fake.requests).toHaveLength(0);
  });

  it('stops at the wall-clock limit', async () => {
    fake.onRequest(() => bashCall('ls'));
    let now = 0;
    let n = 0;
    const outcome = await runAgent(
      { ...deps(), clock: () => now },
      task({ executors: { bash: async () => ((now += 40_000), { content: `r${n++}`, isError: false }) } }),
    );
    expect(outcome).toMatchObject({ kind: 'limit', limit: 'wall-clock' });
    expect(fake.requests).toHaveLength(2);
  });

  it('never runs a tool call from a reply cut at the output limit', async () => {
    fake.script({ content: [{ type: 'tool_use', name: 'bash', input: { command: 'rm -rf half' } }], stop_reason: 'max_tokens' }, finish());
    const outcome = await runAgent(deps(), task());
    expect(outcome.kind).toBe('done');
    expect(executed).toEqual([]);
    expect(JSON.stringify(fake.requests[1]!.body.messages.at(-1))).toContain('cut off at the output limit');
  });

  it('fails clearly on a refusal and on a full context window', async () => {
    fake.script({ content: [{ type: 'text', text: 'No.' }], stop_reason: 'refusal' });
    expect(await runAgent(deps(), task())).toMatchObject({ kind: 'failed', message: expect.stringContaining('refusal') });
    itemId = store.items.create(makeNewItem()).id;
    fake.script({ content: [{ type: 'text', text: 'So much.' }], stop_reason: 'model_context_window_exceeded' });
    expect(await runAgent(deps(), task())).toMatchObject({ kind: 'failed', message: expect.stringContaining('context window') });
  });

  it('does not pay again for a run that finished before a crash', async () => {
    fake.script(bashCall('ls'), finish('Done before the crash.'));
    expect(await runAgent(deps(), task())).toMatchObject({ kind: 'done' });
    const calls = fake.requests.length;
    // The stage is re-entered (say the push failed): the finished run answers from SQLite.
    expect(await runAgent(deps(), task())).toEqual({ kind: 'done', finalText: 'Done before the crash.', turns: 2 });
    expect(fake.requests).toHaveLength(calls);
  });

  it('reports tools interrupted by a restart instead of running them twice', async () => {
    fake.script(bashCall('echo once >> log.txt'), finish());
    const stopping = new AbortController();
    // The process "dies" while the tool runs: the reply is stored, its results are not.
    const dying: Record<string, ToolExecutor> = {
      bash: async (input) => {
        executed.push({ name: 'bash', input });
        stopping.abort();
        return { content: 'ok', isError: false };
      },
    };
    expect(await runAgent(deps(), task({ executors: dying, signal: stopping.signal }))).toEqual({ kind: 'aborted' });
    expect(await runAgent(deps(), task())).toMatchObject({ kind: 'done' });
    expect(executed).toHaveLength(1);
    expect(JSON.stringify(fake.requests.at(-1)!.body.messages.at(-1))).toContain('Interrupted by a restart');
  });

  it('continues after pause_turn', async () => {
    fake.script({ content: [{ type: 'text', text: 'Thinking about it' }], stop_reason: 'pause_turn' }, finish('Finished.'));
    expect(await runAgent(deps(), task())).toMatchObject({ kind: 'done', finalText: 'Finished.' });
    expect(JSON.stringify(fake.requests[1]!.body.messages.at(-1))).toContain('Continue.');
  });

  it('gets through a 529 by the client retrying, paying once', async () => {
    fake.failNext({ kind: 'overloaded', retryAfterMs: 10 });
    fake.script(finish());
    expect((await runAgent(deps(), task())).kind).toBe('done');
    expectLedgerMatchesFake();
  });

  it('sends a request whose stream broke off again at once, executing nothing of the cut reply and paying for both', async () => {
    fake.script(bashCall('step 1'), finish('Done after the cut.'));
    fake.failAt({ match: (r) => r.body.messages.length === 3 }, { kind: 'cut-stream' });
    fake.failAt({ match: (r) => r.body.messages.length === 1 }, { kind: 'cut-stream' });
    expect(await runAgent(deps(), task())).toMatchObject({ kind: 'done', finalText: 'Done after the cut.', turns: 2 });
    expect(executed.map((e) => (e.input as { command: string }).command)).toEqual(['step 1']);
    expect(fake.requests.map((r) => r.outcome)).toEqual(['cut', 'ok', 'cut', 'ok']);
    expectLedgerMatchesFake({ cut: true });
  });

  it('sends a request that got no answer at all again once, after the idle timeout', async () => {
    fake.script(bashCall('step 1'), finish('Done after the stall.'));
    fake.failAt({ match: (r) => r.body.messages.length === 3 }, { kind: 'stall' });
    const model = createAnthropicClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, maxRetries: 2, idleTimeoutMs: 300, streamRetryDelayMs: 0 });
    expect(await runAgent({ ...deps(), model }, task())).toMatchObject({ kind: 'done', finalText: 'Done after the stall.', turns: 2 });
    expect(executed).toHaveLength(1);
    expect(fake.requests.map((r) => r.outcome)).toEqual(['ok', 'stall', 'ok']);
    expectLedgerMatchesFake();
  });

  it('resumes after a broken stream from the last completed turn, without paying for it again', async () => {
    fake.script(bashCall('step 1'), bashCall('step 2'), finish('Resumed and done.'));
    // While step 2 runs, arm the fault: the third call's stream is cut mid-message.
    const armed: Record<string, ToolExecutor> = {
      bash: async (input) => {
        executed.push({ name: 'bash', input });
        if ((input as { command: string }).command === 'step 2') fake.failNext({ kind: 'cut-stream' });
        return { content: 'ok', isError: false };
      },
    };
    expect(await runAgent(deps(0), task({ executors: armed }))).toMatchObject({ kind: 'retry-later' });
    expect(executed).toHaveLength(2);

    const second = await runAgent(deps(0), task({ executors: armed }));
    expect(second).toMatchObject({ kind: 'done', finalText: 'Resumed and done.', turns: 3 });
    // No tool ran twice, and the resumed request carried the whole transcript.
    expect(executed.map((e) => (e.input as { command: string }).command)).toEqual(['step 1', 'step 2']);
    const last = fake.requests.at(-1)!.body as { messages: unknown[] };
    expect(last.messages).toHaveLength(5);
    expectLedgerMatchesFake({ cut: true });
  });
});
