import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { costUsd, DEFAULT_PRICES } from '../../src/domain/pricing.js';
import { type FakeAnthropic, type FakeReply, type RecordedRequest } from '../fakes/anthropic-server.js';
import type { FakeGitHub } from '../fakes/github-server.js';
import type { FakeTelegram } from '../fakes/telegram-server.js';
import { ALICE } from '../helpers/bot-process.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';
import { readFileAt, type BareRepo } from '../helpers/git-fixture.js';

// Review → triage → fix through the real process: a PR with a planted bug is reviewed from
// every angle, triaged (a duplicate merged, one ignored, one for the backlog, one to fix now),
// fixed by the agent (whose fix also deletes a test: the guard flags it), the fix alone is
// reviewed again, and the item ends `ready` after at most two rounds.

const OPUS = DEFAULT_PRICES.find((p) => p.family === 'Opus 4.x')!.price;
const BRANCH = 'nightshift/1-add-an-average-function';

let telegram: FakeTelegram;
let anthropic: FakeAnthropic;
let github: FakeGitHub;
let bare: BareRepo;
let dataDir: string;
let harness: PipelineHarness;
const startBot = (overrides?: Record<string, string>) => harness.startBot(overrides);
const waitForMessage = (pattern: RegExp, what?: string) => harness.waitForMessage(pattern, what);

const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const text = (t: string): FakeReply => ({ content: [{ type: 'text', text: t }] });
const body = (r: RecordedRequest) => r.body as { tools?: Array<{ name: string }>; system?: Array<{ text: string }>; messages: Array<{ content: unknown }>; tool_choice?: { name?: string } };
const isAgent = (r: RecordedRequest) => (body(r).tools ?? []).some((t) => t.name === 'bash');
const isFix = (r: RecordedRequest) => isAgent(r) && (body(r).system?.[0]?.text ?? '').includes('fixing problems that critical reviewers found');
const reviewerCalls = () => anthropic.requests.filter((r) => body(r).tool_choice?.name === 'report_findings');
const angleOf = (r: RecordedRequest) => /Review angle: ([a-z0-9-]+)/.exec(JSON.stringify(body(r).messages))?.[1] ?? '?';

const finding = (file: string, line: number, severity: string, title: string) => ({
  file,
  line_start: line,
  line_end: line,
  severity,
  title,
  evidence: 'return total / (values.length + 1);',
  failure: 'avg([2, 4]) returns 2 instead of 3',
  suggested_fix: 'divide by values.length',
  confidence: 0.9,
});

const CONTRIBUTING = `# Contributing\n\n${Array.from({ length: 160 }, (_, i) => `- Rule ${i + 1}: functions validate their input, return early on bad values, and have a test for the edge case they guard.`).join('\n')}\n`;

/** When the first reviewer's reply was made (the other reviewers must come after it). */
let firstReviewerAnsweredAt = Number.POSITIVE_INFINITY;

/** The model's side of the whole story, answered by what each request is. */
function script(options: { fixDoesNothing?: boolean; stallThirdReviewer?: boolean } = {}): void {
  let build = 0;
  let fix = 0;
  firstReviewerAnsweredAt = Number.POSITIVE_INFINITY;
  anthropic.onRequest((req) => {
    const b = body(req);
    if (isFix(req) && options.fixDoesNothing) return text('not changed: I do not think this is a bug.');
    if (isFix(req)) {
      fix += 1;
      if (fix === 1) return tool('str_replace_based_edit_tool', { command: 'str_replace', path: 'src/avg.js', old_str: '(values.length + 1)', new_str: 'values.length' });
      if (fix === 2) return tool('bash', { command: 'rm tests/sum.test.js' });
      return text('fixed: divide by values.length. Tests: npm test passed.');
    }
    if (isAgent(req)) {
      build += 1;
      if (build === 1) return tool('str_replace_based_edit_tool', { command: 'create', path: 'src/avg.js', file_text: 'export function avg(values) {\n  const total = values.reduce((a, b) => a + b, 0);\n  return total / (values.length + 1);\n}\n' });
      return text('Summary: added avg.\nTests: none.\nNotes: none');
    }
    if (b.tool_choice?.name === 'report_findings') {
      if (reviewerCalls().length === 1) firstReviewerAnsweredAt = Date.now();
      // Answering the second reviewer arms the third to hang (reviewers run one at a time here).
      if (options.stallThirdReviewer && reviewerCalls().length === 2) anthropic.failNext({ kind: 'stall' });
      // Which round this angle is in: its earlier answered calls (a call lost to a crash doesn't count).
      const round = reviewerCalls().filter((r) => r !== req && r.usage && angleOf(r) === angleOf(req)).length + 1;
      if (round > 1) return tool('report_findings', { findings: [] });
      switch (angleOf(req)) {
        case 'correctness':
          return tool('report_findings', { findings: [finding('src/avg.js', 3, 'high', 'avg divides by one too many')] });
        case 'security':
          return tool('report_findings', { findings: [finding('src/avg.js', 3, 'high', 'wrong divisor in avg')] });
        case 'tests':
          return tool('report_findings', { findings: [{ ...finding('src/avg.js', 1, 'medium', 'avg has no test'), failure: 'a regression in avg goes unnoticed' }] });
        case 'design':
          return tool('report_findings', { findings: [{ ...finding('src/avg.js', 1, 'low', 'name avg is terse'), failure: 'readers may not know what avg means' }] });
        default:
          return tool('report_findings', { findings: [] });
      }
    }
    if (b.tool_choice?.name === 'report_triage') {
      const prompt = b.system?.[0]?.text ?? '';
      const fenced = prompt.slice(prompt.lastIndexOf('<findings>') + '<findings>'.length, prompt.lastIndexOf('</findings>'));
      const listed = JSON.parse(fenced) as Array<{ id: number; angle: string; title: string }>;
      const id = (angle: string) => listed.find((f) => f.angle === angle)?.id;
      if (listed.some((f) => f.angle === 'guard')) {
        return tool('report_triage', {
          verdict: 'needs_judgment',
          judgment: 'the fix deleted a test file',
          findings: listed.map((f) => ({ id: f.id, verdict: 'fix_now', reason: 'a deleted test must come back' })),
        });
      }
      return tool('report_triage', {
        verdict: 'ready_with_open_items',
        findings: [
          { id: id('correctness'), verdict: 'fix_now', reason: 'validated: the divisor is wrong' },
          { id: id('security'), verdict: 'fix_now', reason: 'same bug', merged_into: id('correctness') },
          { id: id('tests'), verdict: 'backlog', reason: 'real, separate work' },
          { id: id('design'), verdict: 'ignore', reason: 'style preference' },
        ],
      });
    }
    return undefined;
  });
}

beforeEach(async () => {
  harness = await startPipelineHarness({
    'README.md': '# app\n',
    // Guidelines long enough that the shared review context passes Opus's minimum cacheable
    // length (4096 tokens): a tiny PR's context alone would not be cached, as with the real API.
    'CONTRIBUTING.md': CONTRIBUTING,
    'src/sum.js': 'export const sum = (a, b) => a + b;\n',
    'tests/sum.test.js': "import { sum } from '../src/sum.js';\nif (sum(1, 2) !== 3) throw new Error('sum');\n",
  });
  ({ telegram, anthropic, github, bare, dataDir } = harness);
});

afterEach(async () => harness.close());

describe('review → triage → fix, end to end', () => {
  it('reviews from every angle, triages, fixes, re-reviews only the fix, and ends ready', { timeout: 90_000 }, async () => {
    script();
    const proc = await startBot();
    telegram.pushMessage(ALICE, 'Add an average function');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    await waitForMessage(/Reviewed and ready for you/, 'the item to be ready').catch((error: unknown) => {
      // What went wrong is in the process's warnings and the model calls' outcomes.
      console.log(proc.lines.filter((l) => /"level":(40|50)/.test(l)).join('\n'));
      console.log(anthropic.requests.map((r) => `${r.seq} ${body(r).tool_choice?.name ?? 'agent'} ${r.usage ? 'ok' : 'error'}`).join('\n'));
      throw error;
    });
    await proc.stop();

    // Round 1: every angle; round 2: every angle again, on the fix diff only.
    const reviewers = reviewerCalls();
    expect(reviewers.map(angleOf).slice(0, 4).sort()).toEqual(['correctness', 'design', 'security', 'tests']);
    expect(reviewers).toHaveLength(8);
    const round2 = JSON.stringify(body(reviewers[4]!).system);
    expect(round2).toContain('-  return total / (values.length + 1);');
    expect(round2).not.toContain('+  const total = values.reduce');

    // One cached prefix: tools and system are byte-identical across a round's reviewers, and
    // the fan-out came after the first reviewer's cache write, so the others read it.
    const first = reviewers.slice(0, 4);
    for (const r of first) {
      expect(JSON.stringify(body(r).tools)).toBe(JSON.stringify(body(first[0]!).tools));
      expect(JSON.stringify(body(r).system)).toBe(JSON.stringify(body(first[0]!).system));
    }
    expect(first[0]!.usage!.cache_creation_input_tokens).toBeGreaterThan(0);
    for (const r of first.slice(1)) expect(r.at).toBeGreaterThanOrEqual(firstReviewerAnsweredAt);
    for (const r of first.slice(1)) {
      expect(r.usage!.cache_read_input_tokens).toBeGreaterThan(0);
      expect(r.usage!.cache_creation_input_tokens).toBe(0);
    }

    // The fix landed on the branch; the deleted test was flagged; no third round.
    expect(readFileAt(bare, BRANCH, 'src/avg.js')).toContain('return total / values.length;');
    expect(readFileAt(bare, BRANCH, 'tests/sum.test.js')).toBeUndefined();
    const db = new Database(join(dataDir, 'nightshift.db'), { readonly: true });
    const findings = db.prepare('SELECT round, angle, verdict, status, merged_into FROM findings ORDER BY id').all() as Array<{ round: number; angle: string; verdict: string; status: string; merged_into: number | null }>;
    expect(findings.filter((f) => f.round === 1).map((f) => [f.angle, f.verdict, f.status]).sort()).toEqual([
      ['correctness', 'fix_now', 'fixed'],
      ['design', 'ignore', 'ignored'],
      ['security', 'fix_now', 'merged'],
      ['tests', 'backlog', 'backlogged'],
    ]);
    const guard = findings.filter((f) => f.angle === 'guard');
    expect(guard.length).toBeGreaterThan(0);
    expect(guard.every((f) => f.round === 2 && f.status === 'open')).toBe(true);
    expect(Math.max(...findings.map((f) => f.round))).toBe(2);
    expect(anthropic.requests.filter(isFix).length).toBe(3);
    const item = db.prepare('SELECT state, review_summary FROM items WHERE id = 1').get() as { state: string; review_summary: string };
    expect(item.state).toBe('ready');
    expect(JSON.parse(item.review_summary)).toMatchObject({ verdict: 'needs_judgment', rounds: 2, guardFlags: guard.length });
    const proposed = db.prepare(`SELECT state, parent_item_id, title FROM items WHERE id = 2`).get();
    expect(proposed).toEqual({ state: 'proposed', parent_item_id: 1, title: 'avg has no test' });

    // One sticky comment, updated after each round.
    expect(github.pulls[0]!.comments).toHaveLength(1);
    expect(github.calls.filter((c) => c.route === 'PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}').length).toBeGreaterThan(0);
    const comment = github.pulls[0]!.comments[0]!.body;
    expect(comment).toContain('Fixed now');
    expect(comment).toContain('Left for the backlog');
    expect(comment).toContain('Ignored');
    expect(comment).toContain('Still open');
    // What the item cost, by stage, as the ledger has it when the comment was last written.
    const spent = db.prepare(`SELECT stage, sum(cost_usd) AS usd FROM llm_calls WHERE item_id = 1 GROUP BY stage`).all() as Array<{ stage: string; usd: number }>;
    const stageUsd = (name: string) => spent.filter((r) => r.stage.replace(/-\d+$/, '') === name).reduce((sum, r) => sum + r.usd, 0);
    expect(comment).toMatch(/\nCost so far: \$\d+\.\d\d \(build \$\d+\.\d\d · review \$\d+\.\d\d · fix \$\d+\.\d\d\)/);
    expect(comment).toContain(`build $${stageUsd('build').toFixed(2)}`);

    // The reviewers' cache reads show in the ledger: the review stage costs less than the same
    // calls would without a shared prefix.
    const ledger = (db.prepare(`SELECT sum(cost_usd) AS usd FROM llm_calls WHERE stage = 'review'`).get() as { usd: number }).usd;
    db.close();
    const uncached = anthropic.requests
      .filter((r) => ['report_findings', 'report_triage'].includes(body(r).tool_choice?.name ?? ''))
      .reduce((sum, r) => {
        const u = r.usage!;
        const input = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
        return sum + costUsd({ inputTokens: input, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: u.output_tokens }, OPUS);
      }, 0);
    console.log(`review stage: $${ledger.toFixed(4)} with the shared cached prefix, $${uncached.toFixed(4)} without`);
    expect(ledger).toBeLessThan(uncached);
  });

  it('leaves findings open when the fix changes nothing, and does not review an empty diff', { timeout: 90_000 }, async () => {
    script({ fixDoesNothing: true });
    const proc = await startBot();
    telegram.pushMessage(ALICE, 'Add an average function');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    await waitForMessage(/Reviewed and ready for you/, 'the item to be ready');
    await proc.stop();
    expect(reviewerCalls()).toHaveLength(4);
    const db = new Database(join(dataDir, 'nightshift.db'), { readonly: true });
    const correctness = db.prepare(`SELECT status, fixed_sha, pr_number FROM findings WHERE angle = 'correctness'`).get();
    const summary = JSON.parse((db.prepare('SELECT review_summary FROM items WHERE id = 1').get() as { review_summary: string }).review_summary) as { verdict: string };
    db.close();
    expect(correctness).toEqual({ status: 'open', fixed_sha: null, pr_number: 1 });
    expect(summary.verdict).toBe('ready_with_open_items');
    expect(github.pulls[0]!.comments[0]!.body).toContain('Still open');
  });

  it('hands the PR to the human with the reason when the review budget runs out', { timeout: 90_000 }, async () => {
    script();
    const proc = await startBot({ NIGHTSHIFT_BUDGET_REVIEW_USD: '0.05' });
    telegram.pushMessage(ALICE, 'Add an average function');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    await waitForMessage(/Reviewed and ready for you/, 'the item to be ready');
    await proc.stop();
    expect(reviewerCalls()).toHaveLength(0);
    const db = new Database(join(dataDir, 'nightshift.db'), { readonly: true });
    const row = db.prepare('SELECT state, review_summary FROM items WHERE id = 1').get() as { state: string; review_summary: string };
    db.close();
    expect(row.state).toBe('ready');
    expect(JSON.parse(row.review_summary)).toMatchObject({ verdict: 'needs_judgment', judgment: expect.stringContaining('stage budget limit') });
    expect(github.pulls[0]!.comments[0]!.body).toContain('Needs your judgment');
  });

  it('resumes a review after kill -9 without paying again for reviewers that finished', { timeout: 90_000 }, async () => {
    script({ stallThirdReviewer: true });
    const first = await startBot({ NIGHTSHIFT_REVIEW_CONCURRENCY: '1' });
    telegram.pushMessage(ALICE, 'Add an average function');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    await anthropic.waitFor(() => reviewerCalls().length === 3, { what: 'the third reviewer in flight', timeoutMs: 30_000 });
    await first.kill9();

    const second = await startBot({ NIGHTSHIFT_REVIEW_CONCURRENCY: '1' });
    await waitForMessage(/Reviewed and ready for you/, 'the item to be ready after the restart').catch((error: unknown) => {
      console.log(second.lines.filter((l) => /"level":(40|50)/.test(l)).join('\n'));
      throw error;
    });
    await second.stop();
    // Each angle was paid once per round (two rounds), never again for the restart.
    const answered = reviewerCalls().filter((r) => r.usage);
    const perAngle = new Map<string, number>();
    for (const r of answered) perAngle.set(angleOf(r), (perAngle.get(angleOf(r)) ?? 0) + 1);
    expect([...perAngle.values()]).toEqual([2, 2, 2, 2]);
    expect(github.pulls).toHaveLength(1);
    expect(github.pulls[0]!.comments).toHaveLength(1);
  });
});
