import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { costUsd, DEFAULT_PRICES } from '../../src/domain/pricing.js';
import type { FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import { ALICE } from '../helpers/bot-process.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';

// NIGHTSHIFT_ECONOMY=batch through the real process: an item is built, its reviewers go out as
// one Message Batch, the process is killed while the batch is pending, and the restarted one
// polls it, takes its results, sends triage as a second batch, and brings the item to `ready`
// with its card: one batch per step, no normal review calls but the one fallback.

const OPUS = DEFAULT_PRICES.find((p) => p.family === 'Opus 4.x')!.price;

let harness: PipelineHarness;

const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const text = (t: string): FakeReply => ({ content: [{ type: 'text', text: t }] });
const body = (r: RecordedRequest) => r.body as { tools?: Array<{ name: string }>; tool_choice?: { name?: string } };
const isAgent = (r: RecordedRequest) => (body(r).tools ?? []).some((t) => t.name === 'bash');
const choice = (r: RecordedRequest) => body(r).tool_choice?.name;
const angleOf = (r: RecordedRequest) => /Review angle: ([a-z0-9-]+)/.exec(JSON.stringify(r.body))?.[1];

function script(): void {
  let build = 0;
  harness.anthropic.onRequest((req) => {
    if (isAgent(req)) {
      build += 1;
      if (build === 1) return tool('str_replace_based_edit_tool', { command: 'create', path: 'src/avg.js', file_text: 'export const avg = (xs) => xs.reduce((a, b) => a + b, 0) / (xs.length + 1);\n' });
      return text('Summary: added avg.\nTests: none.\nNotes: none');
    }
    if (choice(req) === 'report_findings') {
      return tool('report_findings', { findings: [{ file: 'src/avg.js', line_start: 1, severity: 'low', title: `${angleOf(req)}: name avg is terse`, evidence: 'avg', failure: 'readers may not know what avg means', suggested_fix: 'average', confidence: 0.5 }] });
    }
    if (choice(req) === 'report_triage') {
      const ids = [...JSON.stringify(req.body).matchAll(/\\"id\\": (\d+)/g)].map((m) => Number(m[1]));
      return tool('report_triage', { verdict: 'ready', findings: ids.map((id) => ({ id, verdict: 'ignore', reason: 'style preference' })) });
    }
    return undefined;
  });
}

beforeEach(async () => {
  harness = await startPipelineHarness({ 'README.md': '# app\n', 'src/sum.js': 'export const sum = (a, b) => a + b;\n' });
  script();
});

afterEach(async () => harness.close());

const ENV = { NIGHTSHIFT_ECONOMY: 'batch', NIGHTSHIFT_BATCH_POLL_SECONDS: '1' };
const storedBatches = () => harness.query((db) => db.prepare('SELECT id, step, status FROM batches ORDER BY rowid').all() as Array<{ id: string; step: string; status: string }>, []);

describe('batch economy, end to end', () => {
  it('survives kill -9 while the reviewers batch is pending and reaches ready with one batch per step', { timeout: 120_000 }, async () => {
    const { anthropic, telegram } = harness;
    const first = await harness.startBot(ENV);
    telegram.pushMessage(ALICE, 'Add an average function');
    await harness.waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    // The reviewers' batch is created and persisted, and the item waits for it.
    await anthropic.waitFor(() => anthropic.batches.length === 1, { what: 'the reviewers batch', timeoutMs: 60_000 });
    const reviewersId = anthropic.batches[0]!.id;
    await anthropic.waitFor(() => storedBatches().some((b) => b.id === reviewersId), { what: 'the batch to be persisted' });
    await first.waitForLine(/waiting for work handed off/);
    // The item's progress message says what it waits for.
    await telegram.waitFor(() => telegram.sent(ALICE.id).some((m) => [m.text, ...m.edits.map((e) => e.text)].some((t) => t !== undefined && /submitted as a batch \(half price\); results within 24 h/.test(t))), { what: 'the waiting line' });
    expect(harness.query((db) => db.prepare('SELECT state, not_before FROM items WHERE id = 1').get(), undefined)).toMatchObject({ state: 'reviewing', not_before: expect.any(Number) });
    await first.kill9();

    const second = await harness.startBot(ENV);
    // The new process polls the batch it did not submit.
    const polled = anthropic.batchCalls.length;
    await anthropic.waitFor(() => anthropic.batchCalls.slice(polled).some((c) => c.path.endsWith(reviewersId)), { what: 'a poll after the restart' });
    // One reviewer is not answered in the batch: it is asked by a normal call instead.
    anthropic.failBatchRequest(anthropic.batches[0]!.requests.map((r) => r.customId!).find((id) => id.startsWith('angle-security-'))!, 'expired');
    anthropic.endBatch(reviewersId);

    await anthropic.waitFor(() => anthropic.batches.length === 2, { what: 'the triage batch', timeoutMs: 60_000 });
    expect(anthropic.batches[1]!.requests.map((r) => r.customId)).toEqual([expect.stringMatching(/^triage-[0-9a-f]{16}$/)]);
    await anthropic.waitFor(() => storedBatches().length === 2, { what: 'the triage batch to be persisted' });
    anthropic.endBatch(anthropic.batches[1]!.id);

    await harness.waitForMessage(/Reviewed and ready for you/, 'the item to be ready').catch((error: unknown) => {
      console.log(second.lines.filter((l) => /"level":(40|50)/.test(l)).join('\n'));
      throw error;
    });
    // The review card follows.
    await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => /Approve/.test(JSON.stringify(m.reply_markup ?? ''))), { what: 'the review card', timeoutMs: 30_000 });
    await second.stop();

    // One batch per step, both ended; no normal review call but the fallback.
    expect(anthropic.batches).toHaveLength(2);
    expect(storedBatches()).toEqual([
      { id: reviewersId, step: 'round-1-reviewers', status: 'ended' },
      { id: anthropic.batches[1]!.id, step: 'round-1-triage', status: 'ended' },
    ]);
    const normalReview = anthropic.requests.filter((r) => !r.batch && (choice(r) === 'report_findings' || choice(r) === 'report_triage'));
    expect(normalReview.map(angleOf)).toEqual(['security']);

    // The ledger: the batched calls flagged and at half the price of their usage.
    const rows = harness.query((db) => db.prepare(`SELECT batch, cost_usd AS usd FROM llm_calls WHERE stage = 'review' ORDER BY id`).all() as Array<{ batch: number; usd: number }>, []);
    expect(rows.map((r) => r.batch).sort()).toEqual([0, 1, 1, 1, 1]);
    const answered = anthropic.requests.filter((r) => r.batch && r.usage);
    expect(answered).toHaveLength(4);
    const full = answered.reduce((sum, r) => {
      const u = r.usage!;
      return sum + costUsd({ inputTokens: u.input_tokens, cacheWrite5mTokens: u.cache_creation_input_tokens, cacheWrite1hTokens: 0, cacheReadTokens: u.cache_read_input_tokens, outputTokens: u.output_tokens }, OPUS);
    }, 0);
    const batchUsd = rows.filter((r) => r.batch === 1).reduce((sum, r) => sum + r.usd, 0);
    expect(batchUsd).toBeCloseTo(full / 2, 10);
    const item = harness.query((db) => db.prepare('SELECT state, review_summary FROM items WHERE id = 1').get() as { state: string; review_summary: string }, undefined)!;
    expect(item.state).toBe('ready');
    expect(JSON.parse(item.review_summary)).toMatchObject({ verdict: 'ready', byStatus: { ignored: 4 } });
  });
});
