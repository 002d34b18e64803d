import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log/create-logger.js';
import { DATABASE_FILE, startNightshift, type Nightshift } from '../../src/main.js';
import { openStore } from '../../src/store/open-store.js';
import type { FakeAnthropic, FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import type { FakeGitHub } from '../fakes/github-server.js';
import type { FakeTelegram, SentMessage } from '../fakes/telegram-server.js';
import { ALICE, botEnv } from '../helpers/bot-process.js';
import type { BareRepo } from '../helpers/git-fixture.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';

// When runs start, through the real composition root against the fakes: off-peak auto-dispatch,
// /run's confirmation during peak hours, /stop and /resume, the daily budget, leases across a
// kill -9, and the Retry button of a failed item. The clock is injected (in process), so a
// test moves it to 22:00 or past midnight instead of waiting.

let telegram: FakeTelegram;
let anthropic: FakeAnthropic;
let github: FakeGitHub;
let bare: BareRepo;
let dataDir: string;
let harness: PipelineHarness;
const inProcess: Nightshift[] = [];

/** Wednesday 25 November 2026, `hh:mm` UTC (the tests run in NIGHTSHIFT_TIMEZONE=UTC). */
const at = (hh: number, mm = 0, day = 25) => Date.UTC(2026, 10, day, hh, mm);

// The injected clock. `decisions` counts its reads made from inside the dispatcher (one per
// decision; a tick that starts an item makes more), so a test can wait until the dispatcher has
// looked at the queue instead of sleeping.
const clock = { now: at(15), decisions: 0 };
function readClock(): number {
  if (new Error().stack?.includes('create-dispatcher')) clock.decisions += 1;
  return clock.now;
}

const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const text = (t: string): FakeReply => ({ content: [{ type: 'text', text: t }] });
const body = (r: RecordedRequest) => r.body as { tools?: Array<{ name: string }>; messages: Array<{ content: unknown }>; tool_choice?: { name?: string } };
const isAgent = (r: RecordedRequest) => (body(r).tools ?? []).some((t) => t.name === 'bash');
const agentCalls = () => anthropic.requests.filter(isAgent);

/**
 * Every build writes one file in its first turn and sums up in its second; reviewers find
 * nothing. With `oneTurnAfterFirst`, only the very first build call writes: later builds sum up
 * at once (the file is already in the reused worktree).
 */
function script(opts: { oneTurnAfterFirst?: boolean } = {}): void {
  anthropic.onRequest((req) => {
    const b = body(req);
    if (isAgent(req)) {
      const firstTurns = anthropic.requests.filter((r) => isAgent(r) && body(r).messages.length === 1 && r.outcome !== 'stall');
      const writes = b.messages.length === 1 && (!opts.oneTurnAfterFirst || firstTurns.length === 1);
      return writes ? tool('str_replace_based_edit_tool', { command: 'create', path: 'src/feature.js', file_text: 'export const feature = () => 1;\n' }) : text('Summary: added the feature.\nTests: none.\nNotes: none');
    }
    if (b.tool_choice?.name === 'report_findings') return tool('report_findings', { findings: [] });
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

/** Reads the bot's database (read-only); `fallback` before it exists. */
const query = <T>(read: (d: Database.Database) => T, fallback: T): T => harness.query(read, fallback);
const itemRow = (id: number) =>
  query((d) => d.prepare('SELECT state, lease_owner AS leaseOwner, lease_fence AS fence FROM items WHERE id = ?').get(id) as { state: string; leaseOwner: string | null; fence: number } | undefined, undefined);
const stateOf = (id: number) => itemRow(id)?.state;
/** When the item (last) started building, on the injected clock. */
const startedAt = (id: number) =>
  query((d) => (d.prepare(`SELECT max(at) AS at FROM item_events WHERE item_id = ? AND to_state = 'building'`).get(id) as { at: number | null }).at, null);

const buttons = (m: SentMessage) => ((m.reply_markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat();
const button = (m: SentMessage, label: RegExp) => {
  const found = buttons(m).find((b) => label.test(b.text));
  if (!found) throw new Error(`no button ${label} under message ${m.message_id}: ${buttons(m).map((b) => b.text).join(', ')}`);
  return found.callback_data;
};
const tapData = (m: SentMessage, data: string) => telegram.pushCallback(ALICE, { message_id: m.message_id, chat_id: ALICE.id }, data);
const waitForAnswer = (callbackId: string) =>
  telegram.waitFor(() => telegram.callsOf('answerCallbackQuery').find((c) => c.params.callback_query_id === callbackId), { what: `the answer to ${callbackId}` });
const current = (m: SentMessage) => telegram.sent(ALICE.id).find((s) => s.message_id === m.message_id)!;
const waitForText = (m: SentMessage, pattern: RegExp) => telegram.waitFor(() => pattern.test(current(m).text) && current(m), { what: `message ${m.message_id} to read ${pattern}` });
const waitForMessage = (pattern: RegExp, what?: string, timeoutMs = 30_000) =>
  telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => pattern.test(m.text)), { what: what ?? String(pattern), timeoutMs });
const waitForPr = () => waitForMessage(/Pull request .*#1.* opened/, 'the PR notice', 60_000);

/** Resolves once the dispatcher has made `n` more decisions (each tick makes one; 50 ms apart). */
async function dispatcherLooked(n = 3): Promise<void> {
  const target = clock.decisions + n;
  await telegram.waitFor(() => clock.decisions >= target, { what: `${n} more dispatch decisions` });
}

/** Starts nightshift in this process on the injected clock: auto-run on, peak 14:00-22:00 UTC. */
async function start(overrides: Record<string, string> = {}): Promise<Nightshift> {
  const config = loadConfig(
    botEnv(telegram.apiRoot, dataDir, {
      ANTHROPIC_BASE_URL: anthropic.baseUrl,
      GITHUB_API_URL: github.baseUrl,
      GITHUB_SERVER_URL: bare.serverUrl,
      NIGHTSHIFT_REPOS: 'me/app',
      NIGHTSHIFT_DRIFT_EVERY: '0',
      NIGHTSHIFT_AUTO_RUN: 'true',
      NIGHTSHIFT_PEAK_HOURS: '14:00-22:00',
      ...overrides,
    }),
  );
  const polls = telegram.callsOf('getUpdates').length;
  const app = await startNightshift(config, createLogger({ level: 'silent', secrets: config.secrets }), { now: readClock, tickIntervalMs: 50 });
  inProcess.push(app);
  await telegram.waitFor(() => telegram.callsOf('getUpdates').length > polls, { what: 'the bot to poll' });
  return app;
}

async function queue(what: string, id: number): Promise<void> {
  telegram.pushMessage(ALICE, what);
  await waitForMessage(new RegExp(`Queued #${id}\\b`), `item ${id} queued`);
}

describe('dispatch (in process, injected clock)', () => {
  it('holds a queued item through peak hours and starts it by itself at 22:00', { timeout: 60_000 }, async () => {
    clock.now = at(15);
    await start();
    await queue('Add a feature', 1);
    await dispatcherLooked();
    clock.now = at(21, 59);
    await dispatcherLooked();
    expect(stateOf(1)).toBe('queued');
    expect(anthropic.requests).toHaveLength(0);

    clock.now = at(22);
    const pr = await waitForPr();
    expect(pr.text).toContain('Add a feature');
    expect(startedAt(1)).toBe(at(22));
    expect(github.pulls).toHaveLength(1);
  });

  it('asks before /run starts an item during peak hours; the "Run now" button works once', { timeout: 60_000 }, async () => {
    clock.now = at(15);
    await start();
    await queue('Add a feature', 1);
    telegram.pushMessage(ALICE, '/run');
    const question = await waitForMessage(/peak time/, 'the peak question');
    expect(question.text).toMatch(/It is peak time until today 22:00\..*Start the oldest queued item anyway\?/s);
    expect(buttons(question).map((b) => b.text)).toEqual(['▶️ Run now']);
    await dispatcherLooked();
    expect(stateOf(1)).toBe('queued');

    const runNow = button(question, /Run now/);
    const first = tapData(question, runNow);
    await waitForText(question, /Starting #1: Add a feature/);
    await waitForAnswer(first.callback_query!.id);
    expect(startedAt(1)).toBe(at(15));
    await waitForPr();

    const second = tapData(question, runNow);
    const refused = await waitForAnswer(second.callback_query!.id);
    expect(refused.params.text).toBe('Already done.');
    expect(anthropic.requests.filter((r) => isAgent(r) && body(r).messages.length === 1)).toHaveLength(1);
  });

  it('/stop aborts a stalled model call within seconds and waits; /resume finishes the item', { timeout: 60_000 }, async () => {
    clock.now = at(23);
    anthropic.failNext({ kind: 'stall' });
    await start();
    await queue('Add a feature', 1);
    // Auto-dispatch starts it off-peak; its first model call hangs.
    await anthropic.waitFor(() => agentCalls()[0], { what: 'the first build call in flight' });

    telegram.pushMessage(ALICE, '/stop');
    await waitForMessage(/Stopping #1 now; what they did is kept\. Building is paused/, 'the /stop reply');
    // "Within seconds": the stalled call is aborted, not waited out (the deadline is the wait's own).
    await waitForMessage(/#1 Add a feature.*\nStopped\. Nothing done so far is lost; \/resume continues it\./s, 'the Stopped notice', 5_000);
    expect(agentCalls()[0]!.outcome).toBe('stall');
    expect(stateOf(1)).toBe('building');
    expect(itemRow(1)!.leaseOwner).toBeNull();
    // The agent run stays open: /resume goes on from its transcript.
    expect(query((d) => d.prepare(`SELECT status FROM agent_runs WHERE item_id = 1`).all(), [])).toEqual([{ status: 'running' }]);

    // Paused: no retry, no dispatch.
    await dispatcherLooked();
    expect(stateOf(1)).toBe('building');
    expect(agentCalls()).toHaveLength(1);
    expect(telegram.sent(ALICE.id).some((m) => /Trying again in/.test(m.text))).toBe(false);

    telegram.pushMessage(ALICE, '/resume');
    await waitForMessage(/^Building resumed\.$/, 'the /resume reply');
    await waitForPr();
    expect(agentCalls()).toHaveLength(3);
    expect(body(agentCalls()[1]!).messages).toHaveLength(1);
  });

  it('starts nothing once the daily budget is spent, says when it resets, and goes on after local midnight', { timeout: 60_000 }, async () => {
    clock.now = at(20);
    // $0.60 of today's $1 is spent already: less than a run's minimum is left.
    const seed = openStore(join(dataDir, DATABASE_FILE), { now: () => clock.now });
    seed.ledger.record({ itemId: null, stage: 'drift', model: 'claude-opus-4-6', inputTokens: 1000, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 1000, batch: false, costUsd: 0.6 });
    seed.close();
    await start({ NIGHTSHIFT_PEAK_HOURS: 'none', NIGHTSHIFT_BUDGET_DAILY_USD: '1' });
    await queue('Add a feature', 1);
    await dispatcherLooked();
    expect(stateOf(1)).toBe('queued');

    telegram.pushMessage(ALICE, '/run');
    await waitForMessage(/^Today's budget is spent; it resets tomorrow 00:00\.$/, "/run's answer");
    clock.now = at(23, 59);
    await dispatcherLooked();
    expect(stateOf(1)).toBe('queued');
    expect(anthropic.requests).toHaveLength(0);

    clock.now = at(0, 0, 26);
    await waitForPr();
    expect(startedAt(1)).toBe(at(0, 0, 26));
  });

  it('puts a failed item back in the queue from the Retry button of its notice, once', { timeout: 60_000 }, async () => {
    // One turn per build: the first build needs two (write, then sum up), so it fails.
    script({ oneTurnAfterFirst: true });
    clock.now = at(10);
    await start({ NIGHTSHIFT_AUTO_RUN: 'false', NIGHTSHIFT_PEAK_HOURS: 'none', NIGHTSHIFT_BUILD_MAX_TURNS: '1' });
    await queue('Add a feature', 1);
    telegram.pushMessage(ALICE, '/run');
    const failed = await waitForMessage(/Failed:/, 'the failure notice');
    expect(failed.text).toContain('turns limit');
    expect(stateOf(1)).toBe('failed');
    const retry = button(failed, /Retry/);

    const tapped = tapData(failed, retry);
    const answer = await waitForAnswer(tapped.callback_query!.id);
    expect(answer.params.text).toBe('#1 is queued again.');
    await waitForText(failed, /#1 Add a feature is queued again/);
    expect(stateOf(1)).toBe('queued');

    const again = tapData(failed, retry);
    expect((await waitForAnswer(again.callback_query!.id)).params.text).toBe('Already done.');
    // Auto-run is off: nothing starts it until /run.
    expect(stateOf(1)).toBe('queued');
    expect(agentCalls()).toHaveLength(1);
    telegram.pushMessage(ALICE, '/run');
    await waitForMessage(/Starting #1: Add a feature/, 'the second /run');
    await waitForPr();
    expect(agentCalls()).toHaveLength(2);
  });
});

describe('leases across a crash (real process)', () => {
  it('reclaims the item of a killed process with a larger fencing token and finishes it', { timeout: 60_000 }, async () => {
    anthropic.failNext({ kind: 'stall' });
    const first = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    await queue('Add a feature', 1);
    telegram.pushMessage(ALICE, '/run');
    await anthropic.waitFor(() => agentCalls()[0], { what: 'the first build call in flight' });
    const held = itemRow(1)!;
    expect(held).toMatchObject({ state: 'building', fence: 1 });
    expect(held.leaseOwner).toMatch(new RegExp(`:${first.child.pid}:`));
    await first.kill9();

    const second = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    await second.waitForLine(/resuming an item interrupted by a restart/);
    await waitForPr();
    expect(itemRow(1)!.fence).toBe(2);
    expect(github.pulls).toHaveLength(1);
    // The lost call was asked again; no paid turn was.
    expect(agentCalls()).toHaveLength(3);
    expect(query((d) => d.prepare(`SELECT from_state AS "from", to_state AS "to" FROM item_events WHERE item_id = 1 AND to_state = 'reviewing'`).all(), [])).toEqual([{ from: 'building', to: 'reviewing' }]);
  });
});
