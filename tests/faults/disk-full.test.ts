import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FAILED_UPDATE_TEXT } from '../../src/telegram/create-bot.js';
import type { FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import type { SentMessage } from '../fakes/telegram-server.js';
import { ALICE, type BotProcess } from '../helpers/bot-process.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';

// I-FAILCLOSED and I-LOST when the disk is full, through the real process: DATA_DIR is a small
// tmpfs of its own, and the test fills it to the last byte at chosen moments, so SQLite's own
// writes fail with SQLITE_FULL exactly as they would on a full disk. Then it frees the space and
// checks the bot carries on without a restart, with nothing lost and nothing said twice.

/** The size of the data directory's file system: room for the database, its WAL and a clone. */
const TMPFS_SIZE = '24m';

/** Mounts a tmpfs on `dir`; the reason it cannot, or undefined once mounted. */
function mountTmpfs(dir: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
}

// Probed once at collection time, so a machine that cannot mount skips with the reason.
const probeDir = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
const cannotMount = mountTmpfs(probeDir);
if (!cannotMount) execFileSync('umount', [probeDir]);
rmSync(probeDir, { recursive: true, force: true });

/** Fills the file system holding `dir` to the last byte with one file; `free()` deletes it. */
function fillDisk(dir: string): { free(): void } {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    // The last partial chunk: write byte by byte until not even one fits.
    try {
      for (;;) writeSync(fd, chunk, 0, 1);
    } catch (inner) {
      if ((inner as NodeJS.ErrnoException).code !== 'ENOSPC') throw inner;
    }
  } finally {
    closeSync(fd);
  }
  return { free: () => rmSync(path) };
}

let harness: PipelineHarness;
let mounted = false;

beforeEach(async () => {
  harness = await startPipelineHarness({ 'README.md': '# app\n', 'src/sum.js': 'export const sum = (a, b) => a + b;\n' });
  if (!cannotMount) mounted = mountTmpfs(harness.dataDir) === undefined;
});

afterEach(async () => {
  await harness.close();
  if (mounted) execFileSync('umount', [harness.dataDir]);
  mounted = false;
});

const textsTo = () => harness.telegram.sent(ALICE.id).map((m) => m.text);
const countOf = (pattern: RegExp) => textsTo().filter((t) => pattern.test(t)).length;
/** The outbox rows as the database holds them. */
const outbox = () => harness.query((d) => d.prepare('SELECT text, status, telegram_message_id AS sent FROM outbox ORDER BY id').all() as Array<{ text: string; status: string; sent: number | null }>, []);

const MERGE = 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge';
const READ_PR = 'GET /repos/{owner}/{repo}/pulls/{pull_number}';
const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const body = (r: RecordedRequest) => r.body as { tools?: Array<{ name: string }>; tool_choice?: { name?: string }; messages: Array<{ content: string | Array<{ type: string }> }> };
const buttons = (m: SentMessage) => ((m.reply_markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat();
const itemState = () => harness.query((d) => d.prepare('SELECT state FROM items WHERE id = 1').pluck().get() as string | undefined, undefined);

/**
 * Scripts the model for one clean item: the agent writes one file on the first turn of a run
 * (a request without a tool result yet; `onFirstTurn` runs then) and sums up on the next, and
 * review and triage find nothing.
 */
function scriptCleanItem(onFirstTurn: () => void = () => undefined): void {
  harness.anthropic.onRequest((req) => {
    const b = body(req);
    if ((b.tools ?? []).some((t) => t.name === 'bash')) {
      const last = b.messages[b.messages.length - 1]!;
      if (Array.isArray(last.content) && last.content.some((c) => c.type === 'tool_result')) return { content: [{ type: 'text', text: 'Summary: added avg.\nTests: none.\nNotes: none' }] };
      onFirstTurn();
      return tool('str_replace_based_edit_tool', { command: 'create', path: 'src/avg.js', file_text: 'export const avg = (v) => v.reduce((a, b) => a + b, 0) / v.length;\n' });
    }
    if (b.tool_choice?.name === 'report_findings') return tool('report_findings', { findings: [] });
    if (b.tool_choice?.name === 'report_triage') return tool('report_triage', { verdict: 'ready', findings: [] });
    return undefined;
  });
}

/** The review card, once it has come. */
const waitForCard = () =>
  harness.telegram.waitFor(() => harness.telegram.sent(ALICE.id).find((m) => buttons(m).some((x) => /Approve/.test(x.text))), { what: 'the review card', timeoutMs: 60_000 });

/** Queues one clean item and runs it to its review card; returns the card and its Approve data. */
async function runToCard(): Promise<{ card: SentMessage; approve: string }> {
  const { telegram } = harness;
  scriptCleanItem();
  telegram.pushMessage(ALICE, 'Add an average function');
  await harness.waitForMessage(/Queued #1/);
  telegram.pushMessage(ALICE, '/run');
  const card = await waitForCard();
  return { card, approve: buttons(card).find((x) => /Approve/.test(x.text))!.callback_data };
}

/** The text of the card now, after any edits. */
const cardText = (card: SentMessage) => harness.telegram.sent(ALICE.id).find((m) => m.message_id === card.message_id)!.text;

describe.skipIf(cannotMount !== undefined)(`a full disk under DATA_DIR${cannotMount ? ` (skipped: ${cannotMount})` : ''}`, () => {
  it('while idle: a new message is not saved, the user is told once to send it again, and after space is freed the same request is queued without a restart', { timeout: 60_000 }, async () => {
    const { telegram, dataDir } = harness;
    const proc = await harness.startBot();
    const disk = fillDisk(dataDir);

    telegram.pushMessage(ALICE, 'Add an average function');
    await harness.waitForMessage(/send it again/, 'the notice that the message was not saved');
    await proc.waitForLine(/handling the update failed/);
    expect(proc.output()).toMatch(/SQLITE_FULL/);
    expect(harness.query((d) => d.prepare('SELECT count(*) FROM items').pluck().get(), 0)).toBe(0);

    disk.free();
    telegram.pushMessage(ALICE, 'Add an average function');
    await harness.waitForMessage(/Queued #1/);
    expect(harness.query((d) => d.prepare('SELECT count(*) FROM items').pluck().get(), 0)).toBe(1);
    // One notice for the one lost message, and one answer for the one saved.
    expect(textsTo().filter((t) => t === FAILED_UPDATE_TEXT)).toHaveLength(1);
    expect(countOf(/Queued #1/)).toBe(1);
    expect(await proc.stop()).toBe(0);
  });

  it('when the outbox must record a send: the message goes out once, however often recording it fails, and is recorded once space is freed', { timeout: 60_000 }, async () => {
    const { telegram, dataDir } = harness;
    const proc = await harness.startBot();
    // The reply is enqueued (the disk has room) but its send is held up by flood control, and
    // the disk fills meanwhile: Telegram then has the message, the database cannot record that.
    telegram.failNext('sendMessage', { kind: 'rate-limit', retryAfter: 1 });
    telegram.pushMessage(ALICE, '/status');
    await telegram.waitFor(() => telegram.callsOf('sendMessage').length === 1, { what: 'the rate-limited send' });
    const disk = fillDisk(dataDir);
    await telegram.waitFor(() => telegram.sent(ALICE.id).length === 1, { what: 'the reply to /status' });
    // The sender backs off from its own failure (1 s, 2 s, …): wait for the third one.
    await waitForOutboxFailures(proc, 3);
    expect(telegram.sent(ALICE.id)).toHaveLength(1);
    expect(outbox()).toMatchObject([{ status: 'pending' }]);

    disk.free();
    await telegram.waitFor(() => outbox()[0]?.status === 'sent' || undefined, { what: 'the send to be recorded', timeoutMs: 20_000 });
    expect(outbox()).toMatchObject([{ status: 'sent', sent: telegram.sent(ALICE.id)[0]!.message_id }]);
    expect(telegram.sent(ALICE.id)).toHaveLength(1);
    expect(await proc.stop()).toBe(0);
  });

  it('when an Approve tap must be recorded: nothing is merged, the tapper is told once, and a tap after space is freed merges', { timeout: 120_000 }, async () => {
    const { telegram, github, dataDir } = harness;
    const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const { card, approve } = await runToCard();
    const reads = github.callsOf(READ_PR).length;
    const disk = fillDisk(dataDir);

    const tap = telegram.pushCallback(ALICE, { message_id: card.message_id, chat_id: ALICE.id }, approve);
    const answered = await telegram.waitFor(() => telegram.callsOf('answerCallbackQuery').find((c) => c.params.callback_query_id === tap.callback_query!.id), { what: 'the answer to the tap' });
    expect(answered.params.text).toMatch(/went wrong/);
    expect(github.callsOf(MERGE)).toHaveLength(0);
    expect(github.callsOf(READ_PR)).toHaveLength(reads);
    expect(itemState()).toBe('ready');
    expect(harness.query((d) => d.prepare('SELECT status FROM cards').pluck().all(), [])).toEqual(['open']);

    disk.free();
    telegram.pushCallback(ALICE, { message_id: card.message_id, chat_id: ALICE.id }, approve);
    await telegram.waitFor(() => /Merged by @alice/.test(cardText(card)), { what: 'the merge', timeoutMs: 30_000 });
    expect(github.callsOf(MERGE).filter((c) => c.status === 200)).toHaveLength(1);
    expect(telegram.callsOf('answerCallbackQuery').filter((c) => /went wrong/.test(String(c.params.text)))).toHaveLength(1);
    expect(await proc.stop()).toBe(0);
  });

  it('when the disk fills during an approved merge: merged once, never again, and recorded after a restart with space freed', { timeout: 120_000 }, async () => {
    const { telegram, github, dataDir } = harness;
    const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const { card, approve } = await runToCard();

    // The tap is recorded; the read of the PR is held up a second by a secondary rate limit,
    // and the disk fills meanwhile: GitHub merges, the database cannot record it.
    github.failNext(READ_PR, { kind: 'secondary-rate-limit' });
    telegram.pushCallback(ALICE, { message_id: card.message_id, chat_id: ALICE.id }, approve);
    await github.waitFor(() => github.callsOf(READ_PR).some((c) => c.status === 403), { what: 'the held-up read of the PR' });
    const disk = fillDisk(dataDir);
    await github.waitFor(() => github.callsOf(MERGE).length === 1, { what: 'the merge' });
    await proc.waitForLine(/merged on GitHub, but recording it failed/);
    expect(itemState()).toBe('ready');
    // The card cannot change (its edit cannot be recorded), so the tapper is told directly, once,
    // that the merge happened; not "try again" (a callback query takes one answer only anyway).
    const notice = await harness.waitForMessage(/Merged on GitHub.*Do not merge again/s, 'the notice that the merge is not recorded yet');
    expect(notice.text).toContain('#1 Add an average function');
    expect(telegram.callsOf('answerCallbackQuery').map((c) => c.params.text)).toEqual(['Checking and merging…']);

    disk.free();
    expect(await proc.stop()).toBe(0);
    const again = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    await telegram.waitFor(() => itemState() === 'merged' || undefined, { what: 'the merge recorded after the restart', timeoutMs: 30_000 });
    await telegram.waitFor(() => /Merged/.test(cardText(card)) || undefined, { what: 'the card to show the merge' });
    expect(github.callsOf(MERGE)).toHaveLength(1);
    expect(countOf(/Merged on GitHub/)).toBe(1);
    expect(await again.stop()).toBe(0);
  });

  it('mid-build: the agent cannot write, nothing is pushed or merged, the user is told once, and after a restart with space freed the item reaches its card', { timeout: 120_000 }, async () => {
    const { telegram, github, dataDir } = harness;
    const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    let disk: { free(): void } | undefined;
    // The disk fills while the model thinks about the first turn of the build.
    scriptCleanItem(() => (disk ??= fillDisk(dataDir)));
    telegram.pushMessage(ALICE, 'Add an average function');
    await harness.waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    // The agent's write fails, then recording its turn does: the run stops where it was last
    // recorded, and the user hears why, once (sent directly: the outbox cannot record it).
    const notice = await harness.waitForMessage(/could not be saved/, 'the notice that the build could not be saved');
    expect(notice.text).toContain('the disk holding the database is full (SQLITE_FULL)');
    await proc.waitForLine(/sent the notice directly/);
    expect(itemState()).toBe('building');
    expect(github.callsOf('POST /repos/{owner}/{repo}/pulls')).toHaveLength(0);
    expect(github.callsOf(MERGE)).toHaveLength(0);

    // Space freed and restarted: the item goes on from its last saved step to its card.
    disk!.free();
    expect(await proc.stop()).toBe(0);
    // The interrupted build resumes by itself on start.
    const again = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    await waitForCard();
    expect(countOf(/could not be saved/)).toBe(1);
    expect(github.callsOf('POST /repos/{owner}/{repo}/pulls').filter((c) => c.status === 201)).toHaveLength(1);
    expect(github.callsOf(MERGE)).toHaveLength(0);
    expect(await again.stop()).toBe(0);
  });
});

/** Waits for the `count`-th log line saying the outbox itself failed. */
function waitForOutboxFailures(proc: BotProcess, count: number): Promise<string> {
  return proc.waitForLine(/the outbox failed/, { count, timeoutMs: 20_000 });
}
