import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log/create-logger.js';
import { startNightshift, type Nightshift } from '../../src/main.js';
import type { FakeAnthropic, FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import type { FakeGitHub } from '../fakes/github-server.js';
import type { FakeTelegram, SentMessage } from '../fakes/telegram-server.js';
import { ALICE, botEnv, MALLORY } from '../helpers/bot-process.js';
import { git, type BareRepo } from '../helpers/git-fixture.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';

// The review card through the real process: an item is built and reviewed (a clean review),
// its card reaches the phone, and taps alone take it to merged, rejected-with-a-lesson or
// deferred; every unsafe path is refused.

const MERGE = 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge';

let telegram: FakeTelegram;
let anthropic: FakeAnthropic;
let github: FakeGitHub;
let bare: BareRepo;
let dataDir: string;
let harness: PipelineHarness;
let inProcess: Nightshift[] = [];

const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const text = (t: string): FakeReply => ({ content: [{ type: 'text', text: t }] });
const body = (r: RecordedRequest) => r.body as { tools?: Array<{ name: string }>; system?: Array<{ text: string }>; messages: Array<{ content: unknown }>; tool_choice?: { name?: string } };
const isAgent = (r: RecordedRequest) => (body(r).tools ?? []).some((t) => t.name === 'bash');
const requestText = (r: RecordedRequest) => JSON.stringify(body(r));

/** Every build writes one file; every review is clean; a drift checkpoint reports on track. */
function script(): void {
  anthropic.onRequest((req) => {
    const b = body(req);
    if (isAgent(req)) {
      // A build's first turn writes the file, its second turn sums up.
      const turns = b.messages.length;
      if (turns === 1) {
        const n = anthropic.requests.filter((r) => isAgent(r) && body(r).messages.length === 1).length;
        return tool('str_replace_based_edit_tool', { command: 'create', path: `src/feature${n}.js`, file_text: `export const feature${n} = () => ${n};\n` });
      }
      return text('Summary: added the feature.\nTests: none.\nNotes: none');
    }
    if (b.tool_choice?.name === 'report_findings') return tool('report_findings', { findings: [] });
    if (b.tool_choice?.name === 'report_direction') {
      return tool('report_direction', { direction: 'Small, well-contained features added one by one.', concerns: [{ severity: 'low', text: 'feature files are named by number' }], on_track: true });
    }
    return undefined;
  });
}

beforeEach(async () => {
  harness = await startPipelineHarness({ 'README.md': '# app\n', 'src/sum.js': 'export const sum = (a, b) => a + b;\n' });
  ({ telegram, anthropic, github, bare, dataDir } = harness);
  script();
});

afterEach(async () => {
  await Promise.all(inProcess.splice(0).map((app) => app.stop('test over')));
  await harness.close();
});

const itemRow = (id: number) =>
  query((d) => d.prepare('SELECT state, head_sha, merge_commit_sha, branch FROM items WHERE id = ?').get(id) as { state: string; head_sha: string; merge_commit_sha: string | null; branch: string }, undefined)!;

const buttons = (m: SentMessage) => ((m.reply_markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat();
const button = (m: SentMessage, label: RegExp) => {
  const found = buttons(m).find((b) => label.test(b.text));
  if (!found) throw new Error(`no button ${label} under message ${m.message_id}: ${buttons(m).map((b) => b.text).join(', ')}`);
  return found.callback_data;
};
/** Reads the bot's database (read-only); `fallback` before it exists. */
const query = <T>(read: (d: Database.Database) => T, fallback: T): T => harness.query(read, fallback);
/** The review cards sent so far (as they read now), oldest first. */
const cards = () =>
  query((d) => d.prepare(`SELECT o.telegram_message_id AS id FROM cards c JOIN outbox o ON o.id = c.outbox_id WHERE c.kind = 'review' AND o.telegram_message_id IS NOT NULL ORDER BY c.id`).all() as Array<{ id: number }>, [])
    .map((r) => telegram.sent(ALICE.id).find((m) => m.message_id === r.id))
    .filter((m): m is SentMessage => m !== undefined);
const heldCards = () => query((d) => (d.prepare(`SELECT count(*) AS n FROM cards WHERE status = 'held'`).get() as { n: number }).n, 0);
/** The n-th review card sent (1-based). */
const waitForCard = (n = 1) => telegram.waitFor(() => cards()[n - 1], { what: `review card ${n}`, timeoutMs: 60_000 });
const current = (m: SentMessage) => telegram.sent(ALICE.id).find((s) => s.message_id === m.message_id)!;
const tap = (m: SentMessage, label: RegExp, from: { id: number; username: string; first_name: string } = ALICE) =>
  telegram.pushCallback(from, { message_id: m.message_id, chat_id: ALICE.id }, button(current(m), label));
const answerOf = (callbackId: string) => telegram.callsOf('answerCallbackQuery').find((c) => c.params.callback_query_id === callbackId);
const waitForAnswer = (callbackId: string) => telegram.waitFor(() => answerOf(callbackId), { what: `the answer to ${callbackId}` });
const waitForText = (m: SentMessage, pattern: RegExp) => telegram.waitFor(() => pattern.test(current(m).text) && current(m), { what: `message ${m.message_id} to read ${pattern}`, timeoutMs: 30_000 });

/** Queues an item, runs it, and returns its card. */
async function itemToCard(n: number, what = `Add feature ${n}`): Promise<SentMessage> {
  telegram.pushMessage(ALICE, what);
  await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => new RegExp(`Queued #${n}\\b`).test(m.text)), { what: `item ${n} queued` });
  telegram.pushMessage(ALICE, '/run');
  return waitForCard(cards().length + 1);
}

describe('the review card', () => {
  it('shows facts computed by code and merges exactly the reviewed head on Approve', { timeout: 90_000 }, async () => {
    await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const card = await itemToCard(1);
    const item = itemRow(1);
    expect(item.state).toBe('ready');
    // The facts: verdict, changes from git, checks, cost, time; and the three decisions.
    expect(card.text).toContain('Reviewed: ready to merge');
    expect(card.text).toMatch(/<b>Changes<\/b> 1 file · \+1 −0/);
    expect(card.text).toContain(`head <code>${item.head_sha.slice(0, 7)}</code>`);
    expect(card.text).toMatch(/<b>Checks<\/b> — none reported/);
    expect(card.text).toMatch(/<b>Cost<\/b> \$\d+\.\d\d \(build/);
    expect(buttons(card).map((b) => b.text)).toEqual(['✅ Approve', '❌ Reject', '💤 Defer']);
    for (const b of buttons(card)) expect(Buffer.byteLength(b.callback_data)).toBeLessThanOrEqual(64);

    const tapped = tap(card, /Approve/);
    await waitForAnswer(tapped.callback_query!.id);
    const merged = await waitForText(card, /Merged by @alice at \d\d:\d\d · squash · /);
    expect(buttons(merged)).toEqual([]);
    const puts = github.callsOf(MERGE);
    expect(puts).toHaveLength(1);
    expect(puts[0]!.body).toMatchObject({ sha: item.head_sha, merge_method: 'squash' });
    const after = itemRow(1);
    expect(after.state).toBe('merged');
    expect(merged.text).toContain(after.merge_commit_sha!.slice(0, 7));
    // The branch and the worktree are gone.
    await github.waitFor(() => github.callsOf('DELETE /repos/{owner}/{repo}/git/refs/{ref}').length === 1, { what: 'the branch to be deleted' });
    await telegram.waitFor(() => !existsSync(join(dataDir, 'worktrees', '1')), { what: 'the worktree to be removed' });
  });

  it('lets exactly one decision win a double tap and an Approve/Reject race, and ignores strangers and forged buttons', { timeout: 90_000 }, async () => {
    await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const card = await itemToCard(1);
    // A stranger taps the real button: silence, nothing done.
    const stranger = tap(card, /Approve/, MALLORY);
    // A forged token, and a real token under the wrong message.
    const forged = telegram.pushCallback(ALICE, { message_id: card.message_id, chat_id: ALICE.id }, 'AAAAAAAAAAAAAAAAAAAAAA'.slice(0, 16));
    const queued = telegram.sent(ALICE.id).find((m) => /Queued #1/.test(m.text))!;
    const misplaced = telegram.pushCallback(ALICE, { message_id: queued.message_id, chat_id: ALICE.id }, button(card, /Approve/));
    await waitForAnswer(forged.callback_query!.id);
    await waitForAnswer(misplaced.callback_query!.id);
    expect(answerOf(forged.callback_query!.id)!.params.text).toMatch(/not valid/);
    expect(answerOf(misplaced.callback_query!.id)!.params.text).toMatch(/does not belong/);
    expect(answerOf(stranger.callback_query!.id)).toBeUndefined();
    expect(github.callsOf(MERGE)).toHaveLength(0);

    // Approve twice and Reject, all before the bot polls again.
    const first = tap(card, /Approve/);
    const second = tap(card, /Approve/);
    const reject = tap(card, /Reject/);
    await waitForAnswer(reject.callback_query!.id);
    await waitForText(card, /Merged by @alice/);
    expect(github.callsOf(MERGE)).toHaveLength(1);
    expect(answerOf(first.callback_query!.id)!.params.text).toMatch(/merging/i);
    expect(answerOf(second.callback_query!.id)!.params.text).toMatch(/Already/);
    expect(answerOf(reject.callback_query!.id)!.params.text).toMatch(/Already/);
    expect(itemRow(1).state).toBe('merged');
    expect(telegram.sent(ALICE.id).some((m) => /Why reject/.test(m.text))).toBe(false);
  });

  it('refuses a head that moved after review, reviews the new head, and sends a new card', { timeout: 120_000 }, async () => {
    await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const card = await itemToCard(1);
    const approve = button(card, /Approve/);
    const reviewed = itemRow(1);
    // Someone pushes to the PR branch after the review.
    const clone = mkdtempSync(join(tmpdir(), 'ns-push-'));
    git(clone, 'clone', '--quiet', '--branch', reviewed.branch, bare.path, 'w');
    const w = join(clone, 'w');
    git(w, '-c', 'user.name=Other', '-c', 'user.email=o@example.invalid', 'commit', '--quiet', '--allow-empty', '-m', 'sneaky change');
    git(w, 'push', '--quiet', 'origin', reviewed.branch);

    tap(card, /Approve/);
    await waitForText(card, /head moved from/);
    expect(github.callsOf(MERGE)).toHaveLength(0);
    const second = await waitForCard(2);
    const again = itemRow(1);
    expect(again.state).toBe('ready');
    expect(again.head_sha).not.toBe(reviewed.head_sha);
    expect(second.text).toContain(`head <code>${again.head_sha.slice(0, 7)}</code>`);
    // The old card's buttons are refused now.
    const stale = telegram.pushCallback(ALICE, { message_id: card.message_id, chat_id: ALICE.id }, approve);
    await waitForAnswer(stale.callback_query!.id);
    expect(answerOf(stale.callback_query!.id)!.params.text).toMatch(/out of date|no longer/);
    expect(github.callsOf(MERGE)).toHaveLength(0);
  });

  it('does not merge while required checks fail, and settles a merge whose reply was lost by reading the PR', { timeout: 90_000 }, async () => {
    await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const card = await itemToCard(1);
    const { head_sha: head } = itemRow(1);
    github.setRequiredChecks('me/app', 'main', ['ci']);
    github.setChecks(head, [{ name: 'ci', status: 'completed', conclusion: 'failure' }]);
    tap(card, /Approve/);
    const refused = await waitForText(card, /Not merged.*checks for this head are failing/);
    expect(refused.text).toContain('ci');
    expect(github.callsOf(MERGE)).toHaveLength(0);
    expect(itemRow(1).state).toBe('ready');

    // Checks pass now; the merge happens but its reply is lost (502): the PR says merged.
    github.setChecks(head, [{ name: 'ci', status: 'completed', conclusion: 'success' }]);
    github.failNext(MERGE, { kind: 'after', status: 502 });
    tap(card, /Approve/);
    await waitForText(card, /Merged by @alice/);
    expect(github.callsOf(MERGE)).toHaveLength(1);
    expect(itemRow(1).state).toBe('merged');
  });

  it('survives kill -9 in the middle of an approve: the card can be decided again and merges once', { timeout: 90_000 }, async () => {
    const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const card = await itemToCard(1);
    github.failNext(MERGE, { kind: 'stall' });
    tap(card, /Approve/);
    await github.waitFor(() => github.callsOf(MERGE).length === 1, { what: 'the merge call' });
    await proc.kill9();
    expect(itemRow(1).state).toBe('ready');
    await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    // On start the PR is read (not merged), and the card is open again with a note.
    await waitForText(card, /interrupted before it finished\. Nothing was merged/);
    tap(card, /Approve/);
    await waitForText(card, /Merged by @alice/);
    expect(github.callsOf(MERGE).filter((c) => c.status === 200)).toHaveLength(1);
    expect(itemRow(1).state).toBe('merged');
  });

  it('after a kill mid-approve, a tap that arrives while the restart settles the decision waits for it and merges', { timeout: 90_000 }, async () => {
    const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const card = await itemToCard(1);
    github.failNext(MERGE, { kind: 'stall' });
    tap(card, /Approve/);
    await github.waitFor(() => github.callsOf(MERGE).length === 1, { what: 'the merge call' });
    await proc.kill9();
    // The restart's read of the PR fails twice (retried with backoff), so the tap lands while
    // the decision the kill cut short is still being settled (found by the kill harness: the
    // tap was refused as "already being handled" and the card then read as before, so nothing
    // told the user to tap again).
    const PULL = 'GET /repos/{owner}/{repo}/pulls/{pull_number}';
    const readsBefore = github.callsOf(PULL).length;
    github.failNext(PULL, { kind: 'server-error', status: 502 }, 2);
    await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    await github.waitFor(() => github.callsOf(PULL).length > readsBefore, { what: 'the restart reading the PR' });
    const callbackId = tap(card, /Approve/).callback_query!.id;
    const answer = await waitForAnswer(callbackId);
    expect(String(answer.params.text)).not.toMatch(/Already being handled/);
    await waitForText(card, /Merged by @alice/);
    expect(github.callsOf(MERGE).filter((c) => c.status === 200)).toHaveLength(1);
    expect(itemRow(1).state).toBe('merged');
  });

  it('turns a rejection into a lesson that the next review sees, closes the PR, and re-queues with the feedback', { timeout: 120_000 }, async () => {
    await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const card = await itemToCard(1);
    tap(card, /Reject/);
    const question = await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => /Why reject #1/.test(m.text)), { what: 'the reason question' });
    expect(buttons(question).map((b) => b.text)).toEqual(expect.arrayContaining(['too big', 'wrong approach']));
    telegram.pushMessage(ALICE, 'Use the existing sum helper instead of new files');
    await waitForText(card, /Rejected by @alice: .*Use the existing sum helper/);
    const offer = await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => /Re-queue #1/.test(m.text)), { what: 'the re-queue offer' });
    expect(itemRow(1).state).toBe('rejected');
    const pr = github.pulls[0]!;
    expect(pr.state).toBe('closed');
    expect(pr.merged).toBe(false);
    expect(pr.comments.some((c) => c.body.includes('> Use the existing sum helper'))).toBe(true);
    // The lesson is listed by /lessons with a delete button.
    telegram.pushMessage(ALICE, '/lessons');
    const lessons = await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => /^Lessons/.test(m.text) || m.text.startsWith('<b>Lessons')), { what: '/lessons' });
    expect(lessons.text).toContain('Use the existing sum helper');
    expect(buttons(lessons)[0]!.text).toMatch(/Delete #1/);

    // Re-queue: a new item with the feedback, whose review prompt carries the lesson.
    tap(offer, /Re-queue/);
    await waitForText(offer, /Re-queued as #2/);
    const before = anthropic.requests.length;
    telegram.pushMessage(ALICE, '/run');
    await waitForCard(2);
    const later = anthropic.requests.slice(before);
    const reviewer = later.find((r) => body(r).tool_choice?.name === 'report_findings')!;
    expect(requestText(reviewer)).toContain('Use the existing sum helper instead of new files');
    const build = later.find(isAgent)!;
    expect(requestText(build)).toContain('Feedback on an earlier attempt (#1');
  });

  it('takes a drift checkpoint after the N-th merge, and pausing stops building the repo', { timeout: 120_000 }, async () => {
    await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '2' });
    tap(await itemToCard(1), /Approve/);
    await telegram.waitFor(() => itemRow(1).state === 'merged', { what: 'item 1 merged' });
    expect(anthropic.requests.some((r) => body(r).tool_choice?.name === 'report_direction')).toBe(false);
    tap(await itemToCard(2), /Approve/);
    const checkpoint = await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => /Drift checkpoint/.test(m.text)), { what: 'the checkpoint card', timeoutMs: 30_000 });
    const drift = anthropic.requests.filter((r) => body(r).tool_choice?.name === 'report_direction');
    expect(drift).toHaveLength(1);
    expect(requestText(drift[0]!)).toContain('Add feature 1');
    expect(requestText(drift[0]!)).toContain('Add feature 2');
    expect(checkpoint.text).toContain('2 merges since the last one');
    tap(checkpoint, /Pause building/);
    await waitForText(checkpoint, /Building me\/app is paused/);
    // A queued item of the paused repo waits.
    telegram.pushMessage(ALICE, 'Add feature 3');
    await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => /Queued #3/.test(m.text)), { what: 'item 3 queued' });
    telegram.pushMessage(ALICE, '/status');
    const status = await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => /Building paused: me\/app/.test(m.text)), { what: '/status' });
    expect(status.text).toMatch(/median time to decide this week/);
  });
});

describe('cards and the clock (in process, injected clock)', () => {
  const clock = { now: Date.UTC(2026, 10, 25, 7, 0) };

  async function start(overrides: Record<string, string> = {}): Promise<Nightshift> {
    const config = loadConfig(
      botEnv(telegram.apiRoot, dataDir, { ANTHROPIC_BASE_URL: anthropic.baseUrl, GITHUB_API_URL: github.baseUrl, GITHUB_SERVER_URL: bare.serverUrl, NIGHTSHIFT_REPOS: 'me/app', NIGHTSHIFT_DRIFT_EVERY: '0', ...overrides }),
    );
    const polls = telegram.callsOf('getUpdates').length;
    const app = await startNightshift(config, createLogger({ level: 'silent', secrets: config.secrets }), { now: () => clock.now, tickIntervalMs: 50 });
    inProcess.push(app);
    await telegram.waitFor(() => telegram.callsOf('getUpdates').length > polls, { what: 'the bot to poll' });
    return app;
  }

  it('defers a card to the chosen time, and sends a fresh one then, across a restart', { timeout: 90_000 }, async () => {
    clock.now = Date.UTC(2026, 10, 25, 10, 0);
    const app = await start();
    const card = await itemToCard(1);
    tap(card, /Defer/);
    await telegram.waitFor(() => buttons(current(card)).some((b) => b.text === '1 hour'), { what: 'the defer choices' });
    tap(card, /^1 hour$/);
    await waitForText(card, /Deferred by @alice until today 11:00/);
    expect(itemRow(1).state).toBe('deferred');

    await app.stop('restart');
    inProcess = inProcess.filter((a) => a !== app);
    clock.now = Date.UTC(2026, 10, 25, 10, 59);
    await start();
    // Not yet: the restarted bot answers, the item still sleeps, and no new card came.
    telegram.pushMessage(ALICE, '/status');
    await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => /card(s)? waiting/.test(m.text)), { what: '/status after the restart' });
    expect(itemRow(1).state).toBe('deferred');
    expect(cards()).toHaveLength(1);
    clock.now = Date.UTC(2026, 10, 25, 11, 0, 1);
    const fresh = await waitForCard(2);
    expect(fresh.message_id).not.toBe(card.message_id);
    expect(itemRow(1).state).toBe('ready');
    tap(fresh, /Approve/);
    await waitForText(fresh, /Merged by @alice at 11:00/);
  });

  it('holds cards for the review session, delivers them after a digest, and /review sends one early', { timeout: 120_000 }, async () => {
    clock.now = Date.UTC(2026, 10, 25, 7, 0);
    await start({ NIGHTSHIFT_REVIEW_HOURS: '08:30,13:00' });
    telegram.pushMessage(ALICE, 'Add feature 1');
    telegram.pushMessage(ALICE, '/run');
    await telegram.waitFor(() => heldCards() === 1, { what: 'the card of item 1 to be held', timeoutMs: 60_000 });
    expect(itemRow(1).state).toBe('ready');
    expect(cards()).toHaveLength(0);
    telegram.pushMessage(ALICE, '/review');
    await waitForCard(1);
    expect(telegram.sent(ALICE.id).some((m) => /PRs? ready/.test(m.text))).toBe(false);

    telegram.pushMessage(ALICE, 'Add feature 2');
    telegram.pushMessage(ALICE, '/run');
    await telegram.waitFor(() => heldCards() === 1, { what: 'the card of item 2 to be held', timeoutMs: 60_000 });
    expect(cards()).toHaveLength(1);
    clock.now = Date.UTC(2026, 10, 25, 8, 30);
    const second = await waitForCard(2);
    const digest = telegram.sent(ALICE.id).find((m) => /1 PR ready: 1 low-risk/.test(m.text));
    expect(digest).toBeDefined();
    expect(digest!.message_id).toBeLessThan(second.message_id);
  });
});
