import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FAILED_UPDATE_TEXT } from '../../src/telegram/create-bot.js';
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
});

/** Waits for the `count`-th log line saying the outbox itself failed. */
function waitForOutboxFailures(proc: BotProcess, count: number): Promise<string> {
  return proc.waitForLine(/the outbox failed/, { count, timeoutMs: 20_000 });
}
