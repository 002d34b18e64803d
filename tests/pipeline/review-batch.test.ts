import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { costUsd, DEFAULT_PRICES } from '../../src/domain/pricing.js';
import { BATCH_EXPIRY_MS, BATCH_RECONCILE_AFTER_MS, createBatchClient } from '../../src/llm/batch-client.js';
import { createPeriodBudget, meteredCall } from '../../src/llm/metered-call.js';
import { createBatchPoller } from '../../src/pipeline/batch-poller.js';
import { runReviewStage, type ReviewStageDeps } from '../../src/pipeline/review-stage.js';
import type { Item } from '../../src/store/items.js';
import type { FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import { makeNewItem } from '../helpers/factories.js';
import { MODEL, startStageHarness, type StageHarness } from './stage-harness.js';

// The review stage with NIGHTSHIFT_ECONOMY=batch, against the fake Anthropic API: the reviewers
// of a round go out as one batch, triage as a second; the stage waits (no run slot held) until
// the poller has recorded each batch's results, then takes them exactly like replies.

const OPUS = DEFAULT_PRICES.find((p) => p.family === 'Opus 4.x')!.price;
const ANGLES = ['correctness', 'design', 'security', 'tests'];
const limits = { maxTurns: 5, maxOutputTokens: 1000, maxWallClockMs: 60_000, budgetUsd: 5 };

let h: StageHarness;
let item: Item;
let resumed: number[];

const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const choice = (r: RecordedRequest) => (r.body as { tool_choice?: { name?: string } }).tool_choice?.name;
const angleOf = (r: RecordedRequest) => /Review angle: ([a-z0-9-]+)/.exec(JSON.stringify(r.body))?.[1];
const normalCalls = () => h.anthropic.requests.filter((r) => !r.batch);
/** A batch request's custom id as the stage stores it: without the submission's nonce. */
const stored = (r: RecordedRequest) => r.customId!.replace(/-[0-9a-f]{16}$/, '');
/** The custom id as sent of the request in the newest batch whose stored id is `customId`. */
const sentId = (customId: string) => h.anthropic.batches.at(-1)!.requests.map((r) => r.customId!).find((id) => id.startsWith(`${customId}-`))!;

const CONTRIBUTING = `# Contributing\n\n${Array.from({ length: 160 }, (_, i) => `- Rule ${i + 1}: functions validate their input, return early on bad values, and have a test for the edge case they guard.`).join('\n')}\n`;

beforeEach(async () => {
  // Guidelines long enough that the shared review context passes Opus's minimum cacheable length (4096 tokens).
  h = await startStageHarness({ 'README.md': '# app\n', 'CONTRIBUTING.md': CONTRIBUTING, 'src/sum.js': 'export const sum = (a, b) => a + b;\n' });
  item = h.store.items.create(makeNewItem({ title: 'Add avg', state: 'reviewing' }));
  const ws = await h.deps.workspace.prepare({ id: item.id, title: item.title, repo: h.deps.repos[0]! });
  writeFileSync(join(ws.path, 'avg.js'), 'export const avg = (xs) => xs.reduce((a, b) => a + b, 0) / (xs.length + 1);\n');
  await h.deps.workspace.commitAll(ws.path, 'Add avg');
  resumed = [];
  // Every reviewer finds the same bug; triage ignores all but one, which goes to the backlog.
  h.anthropic.onRequest((req) => {
    if (choice(req) === 'report_findings') {
      return tool('report_findings', { findings: [{ file: 'avg.js', line_start: 1, severity: 'high', title: `${angleOf(req)}: wrong divisor`, evidence: 'xs.length + 1', failure: 'avg([2]) is 1', suggested_fix: 'xs.length', confidence: 0.9 }] });
    }
    if (choice(req) === 'report_triage') {
      const prompt = JSON.stringify(req.body);
      const ids = [...prompt.matchAll(/\\"id\\": (\d+)/g)].map((m) => Number(m[1]));
      return tool('report_triage', { verdict: 'ready_with_open_items', findings: ids.map((id, i) => ({ id, verdict: i === 0 ? 'backlog' : 'ignore', reason: 'one is enough' })) });
    }
    return undefined;
  });
});

afterEach(async () => {
  await h.close();
});

function stageDeps(overrides: Partial<ReviewStageDeps> = {}): ReviewStageDeps {
  return {
    ...h.deps,
    models: { review: MODEL, fix: MODEL },
    review: { rounds: 2, concurrency: 2, maxOutputTokens: 2000, budgetUsd: 5, fixBudgetUsd: 5 },
    fixLimits: limits,
    batches: createBatchClient({ apiKey: h.anthropic.apiKey, baseUrl: h.anthropic.baseUrl, maxRetries: 0 }),
    ...overrides,
  };
}

const run = (deps = stageDeps()) => runReviewStage(deps, h.store.items.get(item.id)!, new AbortController().signal);

const poller = () =>
  createBatchPoller({
    store: h.store,
    client: createBatchClient({ apiKey: h.anthropic.apiKey, baseUrl: h.anthropic.baseUrl, maxRetries: 0 }),
    prices: {},
    resume: (id) => void resumed.push(id),
    log: pino({ level: 'silent' }),
  });

const reviewRows = () => h.store.ledger.itemByStage(item.id);

describe('the review stage with batch economy', () => {
  it('submits the reviewers as one batch, waits, takes the results like replies, then triage likewise, at half price', async () => {
    const first = await run();
    expect(h.anthropic.batches).toHaveLength(1);
    const [reviewers] = h.anthropic.batches;
    expect(reviewers!.requests.map(stored)).toEqual(ANGLES.map((a) => `angle-${a}`));
    // One shared cached prefix, as for normal calls.
    for (const r of reviewers!.requests) expect(JSON.stringify(r.body.system)).toBe(JSON.stringify(reviewers!.requests[0]!.body.system));
    expect(reviewers!.requests[0]!.body.system[0].cache_control).toEqual({ type: 'ephemeral' });
    const batch = h.store.batches.pendingOfItem(item.id)!;
    expect(batch).toMatchObject({ id: reviewers!.id, step: 'round-1-reviewers', stage: 'review' });
    expect(first).toEqual({ kind: 'waiting', reason: expect.stringContaining('submitted as a batch'), until: batch.createdAt + BATCH_EXPIRY_MS });
    expect(h.store.batches.reservedUsd(item.id, 'review')).toBeGreaterThan(0);

    // Run again while it is pending (a restart, /resume): it waits, and submits nothing new.
    expect(await run()).toMatchObject({ kind: 'waiting' });
    await poller().tick();
    expect(resumed).toEqual([]);
    expect(h.anthropic.batches).toHaveLength(1);

    h.anthropic.endBatch();
    h.store.items.setNotBefore(item.id, batch.createdAt + BATCH_EXPIRY_MS);
    await poller().tick();
    expect(resumed).toEqual([item.id]);
    expect(h.store.items.get(item.id)!.notBefore).toBeNull();
    expect(h.store.batches.reservedUsd()).toBe(0);
    const reviewerUsage = reviewers!.requests.map((r) => r.usage!);
    // Caching applies inside the batch: the first request wrote the shared prefix, the others read it.
    expect(reviewerUsage[0]!.cache_creation_input_tokens).toBeGreaterThan(0);
    for (const u of reviewerUsage.slice(1)) expect(u.cache_read_input_tokens).toBeGreaterThan(0);
    expect(reviewRows()).toEqual([{ stage: 'review', usd: expect.any(Number) }]);

    // Resumed: the findings come from the stored results; triage goes out as the second batch.
    expect(await run()).toMatchObject({ kind: 'waiting', reason: expect.stringContaining('round 1 triage') });
    expect(h.store.findings.ofRound(item.id, 1).map((f) => f.angle).sort()).toEqual(ANGLES);
    expect(h.anthropic.batches).toHaveLength(2);
    expect(h.anthropic.batches[1]!.requests.map(stored)).toEqual(['triage']);
    h.anthropic.endBatch();
    await poller().tick();
    // A poll after the end was recorded (e.g. after a restart) records nothing twice.
    await poller().tick();
    expect(await run()).toEqual({ kind: 'done' });

    const findings = h.store.findings.ofRound(item.id, 1);
    expect(findings.map((f) => f.status).sort()).toEqual(['backlogged', 'ignored', 'ignored', 'ignored']);
    expect(h.store.findings.lastRound(item.id)).toMatchObject({ status: 'done' });
    expect(h.store.items.review(item.id).summary).toMatchObject({ verdict: 'ready', rounds: 1, byStatus: { backlogged: 1, ignored: 3 } });
    // Not one normal call; five ledger rows, each at half the normal price of its usage.
    expect(normalCalls()).toEqual([]);
    const usages = [...reviewerUsage, h.anthropic.batches[1]!.requests[0]!.usage!];
    const full = usages.reduce(
      (sum, u) => sum + costUsd({ inputTokens: u.input_tokens, cacheWrite5mTokens: u.cache_creation_input_tokens, cacheWrite1hTokens: 0, cacheReadTokens: u.cache_read_input_tokens, outputTokens: u.output_tokens }, OPUS),
      0,
    );
    const period = { from: 0, to: Number.MAX_SAFE_INTEGER };
    expect(h.store.ledger.periodTotal(period).calls).toBe(5);
    expect(h.store.ledger.periodBatchUsd(period)).toBeCloseTo(full / 2, 10);
    expect(h.store.ledger.stageUsd(item.id, 'review')).toBeCloseTo(full / 2, 10);
    expect(h.store.batches.requests(reviewers!.id).every((r) => r.usedAt !== null)).toBe(true);
  });

  it('asks an errored and an expired request again by one normal call each, and takes the rest from the batch', async () => {
    expect(await run()).toMatchObject({ kind: 'waiting' });
    h.anthropic.failBatchRequest(sentId('angle-security'), 'errored', { type: 'overloaded_error', message: 'Overloaded' });
    h.anthropic.failBatchRequest(sentId('angle-tests'), 'expired');
    h.anthropic.endBatch();
    await poller().tick();

    expect(await run()).toMatchObject({ kind: 'waiting', reason: expect.stringContaining('triage') });
    expect(normalCalls().map(angleOf).sort()).toEqual(['security', 'tests']);
    expect(h.store.findings.ofRound(item.id, 1).map((f) => f.angle).sort()).toEqual(ANGLES);
    const rows = h.store.ledger.periodTokens({ from: 0, to: Number.MAX_SAFE_INTEGER });
    expect(rows.map((r) => r.batch)).toEqual([false, true]);
    expect(h.store.ledger.periodTotal({ from: 0, to: Number.MAX_SAFE_INTEGER }).calls).toBe(4);

    h.anthropic.endBatch();
    await poller().tick();
    expect(await run()).toEqual({ kind: 'done' });
    expect(normalCalls()).toHaveLength(2);
  });

  it('asks triage by a normal call when its batch was lost, and never submits a second batch for the step', async () => {
    await run();
    h.anthropic.endBatch();
    await poller().tick();
    await run();
    // Triage's batch is unknown to the API (say, archived): the poller marks it failed.
    const triage = h.store.batches.pendingOfItem(item.id)!;
    expect(triage.step).toBe('round-1-triage');
    const fresh = await startStageHarness({ 'README.md': '# other\n' });
    try {
      const lostPoller = createBatchPoller({
        store: h.store,
        client: createBatchClient({ apiKey: fresh.anthropic.apiKey, baseUrl: fresh.anthropic.baseUrl, maxRetries: 0 }),
        prices: {},
        resume: (id) => void resumed.push(id),
        log: pino({ level: 'silent' }),
      });
      await lostPoller.tick();
    } finally {
      await fresh.close();
    }
    expect(h.store.batches.get(triage.id)?.status).toBe('failed');
    expect(resumed).toEqual([item.id, item.id]);
    expect(await run()).toEqual({ kind: 'done' });
    expect(h.anthropic.batches).toHaveLength(2);
    expect(normalCalls().map(choice)).toEqual(['report_triage']);
  });

  it('hands the PR over without a batch when not even one batched reviewer fits the review budget', async () => {
    const outcome = await run(stageDeps({ review: { rounds: 2, concurrency: 2, maxOutputTokens: 2000, budgetUsd: 0.001, fixBudgetUsd: 5 } }));
    expect(outcome).toEqual({ kind: 'done' });
    expect(h.anthropic.batches).toHaveLength(0);
    expect(h.anthropic.requests).toHaveLength(0);
    expect(h.store.items.review(item.id).summary).toMatchObject({ verdict: 'needs_judgment', judgment: expect.stringContaining('stage budget limit') });
  });

  it('waits for the reset of the daily budget before submitting, and then counts the batch against it', async () => {
    const { store, clock } = h;
    // The whole day's budget is nearly spent: no batched reviewer fits.
    store.ledger.record({ itemId: null, stage: 'drift', model: MODEL, inputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 0, batch: false, costUsd: 0.999 });
    const period = createPeriodBudget({ dailyUsd: 1, monthlyUsd: 100 }, 'UTC', () => clock.now);
    const deps = stageDeps({ agent: { ...h.deps.agent, period } });
    expect(await run(deps)).toEqual({ kind: 'retry-later', reason: expect.stringContaining('daily budget'), notBefore: Date.UTC(2026, 10, 26) });
    expect(h.anthropic.batches).toHaveLength(0);

    // The next day: submitted, and its reservation counts against the daily cap.
    clock.now = Date.UTC(2026, 10, 26, 1);
    expect(await run(deps)).toMatchObject({ kind: 'waiting' });
    const reserved = store.batches.reservedUsd();
    expect(reserved).toBeGreaterThan(0);
    expect(period.inFlight.usd).toBeCloseTo(0, 9);
    const tight = createPeriodBudget({ dailyUsd: reserved + 0.0001, monthlyUsd: 100 }, 'UTC', () => clock.now);
    const other = store.items.create(makeNewItem({ title: 'Other', state: 'reviewing' }));
    const blocked = await meteredCall({ ...h.deps.agent, period: tight }, { itemId: other.id, stage: 'review', stageBudgetUsd: 5, itemBudgetUsd: 5 }, {
      model: MODEL,
      system: [{ type: 'text', text: 'x' }],
      tools: [],
      messages: [{ role: 'user', content: 'y' }],
      maxTokens: 10,
    });
    expect(blocked).toMatchObject({ kind: 'retry-later', message: expect.stringContaining('in calls still running') });
  });
  it('waits while a reviewers batch submission is unclear, sends nothing again, and takes the adopted batch like any other', async () => {
    // The fake stamps batches with the real clock: the intent's window must hold them.
    h.clock.now = Date.now();
    h.anthropic.failNext({ kind: 'reset', afterCreate: true }, 1, 'batches');
    const first = await run();
    expect(first).toMatchObject({ kind: 'waiting', reason: expect.stringContaining('submission unclear') });
    expect(h.anthropic.batches).toHaveLength(1);
    const reserved = h.store.batches.reservedUsd(item.id, 'review');
    expect(reserved).toBeGreaterThan(0);
    // A restart or /resume meanwhile: still waiting, nothing sent.
    expect(await run()).toMatchObject({ kind: 'waiting', reason: expect.stringContaining('submission unclear') });
    expect(h.anthropic.batches).toHaveLength(1);
    expect(h.anthropic.batchCalls.filter((c) => c.body?.requests !== undefined)).toHaveLength(1);

    h.clock.now += BATCH_RECONCILE_AFTER_MS;
    h.anthropic.endBatch();
    await poller().tick();
    expect(resumed).toEqual([item.id]);
    expect(h.store.batches.reservedUsd()).toBe(0);
    expect(h.store.batches.latestOfStep(item.id, 'round-1-reviewers')).toMatchObject({ id: h.anthropic.batches[0]!.id, status: 'ended' });

    // Resumed: the findings come from the adopted batch; triage is the second batch, and no reviewer was asked by a normal call.
    expect(await run()).toMatchObject({ kind: 'waiting', reason: expect.stringContaining('round 1 triage') });
    expect(h.store.findings.ofRound(item.id, 1).map((f) => f.angle).sort()).toEqual(ANGLES);
    expect(h.anthropic.batches).toHaveLength(2);
    expect(normalCalls()).toEqual([]);
    expect(reviewRows()).toEqual([{ stage: 'review', usd: expect.any(Number) }]);
  });
});
