import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeTelegram, type FakeTelegram, type SentMessage } from '../fakes/telegram-server.js';
import { ALICE, botEnv, CANARY, MALLORY, startBotProcess, tempDir, type BotProcess } from '../helpers/bot-process.js';

// These tests run the compiled process (`node dist/main.js`) against the fake Bot API on
// 127.0.0.1 and drive it as a user would. They wait on recorded calls, never on a timer.

let fake: FakeTelegram;
let dataDir: string;
const procs: BotProcess[] = [];

function start(overrides: Record<string, string> = {}): BotProcess {
  const proc = startBotProcess(botEnv(fake.apiRoot, dataDir, overrides));
  procs.push(proc);
  return proc;
}

/** Starts the bot and waits until it is long-polling. */
async function startPolling(overrides: Record<string, string> = {}): Promise<BotProcess> {
  const proc = start(overrides);
  const polls = fake.callsOf('getUpdates').length;
  await fake.waitFor(() => fake.callsOf('getUpdates').length > polls, { what: 'the bot to poll for updates' });
  return proc;
}

const textsTo = (chatId: number) => fake.sent(chatId).map((m) => m.text);

/** Waits for a message to `chatId` whose text matches, sent after the first `after` messages. */
function waitForMessage(chatId: number, pattern: RegExp, after = 0): Promise<SentMessage> {
  return fake.waitFor(() => fake.sent(chatId).slice(after).find((m) => pattern.test(m.text)), {
    what: `a message to ${chatId} matching ${pattern}`,
  });
}

/** Sends `text` as Alice and waits for the reply that follows it. */
async function say(text: string, reply: RegExp): Promise<SentMessage> {
  const before = fake.sent(ALICE.id).length;
  fake.pushMessage(ALICE, text);
  return waitForMessage(ALICE.id, reply, before);
}

beforeEach(async () => {
  fake = await startFakeTelegram({ token: CANARY.telegramToken });
  dataDir = tempDir();
});

afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.kill9()));
  await fake.close();
});

/** Stops the process (so all its output is in) and checks that no secret left it. */
async function expectNoCanaries(proc: BotProcess) {
  await proc.stop();
  expect(proc.output()).not.toBe('');
  const everything = proc.output() + JSON.stringify(fake.sent()) + JSON.stringify(fake.calls.map((c) => c.params));
  for (const secret of Object.values(CANARY)) expect(everything).not.toContain(secret);
  // The token is in every Bot API URL; make sure it is not in the logs in encoded form either.
  expect(everything).not.toContain(encodeURIComponent(CANARY.telegramToken));
}

describe('nightshift bot, end to end over loopback', () => {
  it('queues plain text and /queue for the right repo, and registers its commands', async () => {
    const proc = await startPolling();
    await fake.waitFor(() => fake.callsOf('setMyCommands')[0], { what: 'setMyCommands' });
    expect(JSON.stringify(fake.callsOf('setMyCommands')[0]!.params)).toContain('backlog');

    const first = await say('Add a --json flag to export', /Queued #1 for me\/app/);
    expect(first.text).toContain('Add a --json flag to export');
    expect(first.parse_mode).toBe('HTML');

    await say('/queue site: fix the <footer> & header', /Queued #2 for me\/site/);
    expect(textsTo(ALICE.id).at(-1)).toContain('fix the &lt;footer&gt; &amp; header');

    const unknown = await say('sitte: do a thing', /don't know the repo/);
    expect(unknown.text).toContain('me/app, me/site');

    await say('/queue', /Usage: \/queue/);
    await say('/frobnicate', /don't know \/frobnicate/);
    await expectNoCanaries(proc);
  });

  it('pages /backlog with buttons that edit the message in place', async () => {
    await startPolling();
    for (let i = 1; i <= 10; i++) await say(`task number ${i}`, new RegExp(`Queued #${i} `));

    const list = await say('/backlog', /Backlog/);
    expect(list.text).toContain('10 open · page 1/2');
    expect(list.text).toContain('task number 10');
    expect(list.text).not.toContain('task number 1\n');
    const markup = list.reply_markup as { inline_keyboard: Array<Array<{ text: string; callback_data: string }>> };
    const older = markup.inline_keyboard.flat().find((b) => b.text.includes('Older'));
    expect(older).toBeDefined();

    fake.pushCallback(ALICE, { message_id: list.message_id, chat_id: ALICE.id }, older!.callback_data);
    await fake.waitFor(() => fake.callsOf('answerCallbackQuery')[0], { what: 'the tap to be answered' });
    const edited = await fake.waitFor(() => fake.sent(ALICE.id).find((m) => m.message_id === list.message_id)?.edits.at(-1), {
      what: 'the backlog message to be edited',
    });
    expect(edited.text).toContain('page 2/2');
    expect(edited.text).toContain('task number 1');
  });

  it('cancels items and answers bad /cancel input with the usage', async () => {
    await startPolling();
    await say('something to cancel', /Queued #1/);
    await say('/cancel 1', /Cancelled #1: something to cancel/);
    await say('/cancel #1', /#1 is already cancelled/);
    await say('/cancel 999', /There is no item #999/);
    await say('/cancel soon', /Usage: \/cancel &lt;id&gt;/);
    const status = await say('/status', /Status/);
    expect(status.text).toContain('1 cancelled');
    expect(status.text).toContain('Nothing is running.');
  });

  it('ignores strangers and group chats completely', async () => {
    const proc = await startPolling();
    fake.pushMessage(MALLORY, 'secret plan from mallory');
    fake.pushMessage(MALLORY, '/backlog');
    fake.pushCallback(MALLORY, { message_id: 1, chat_id: MALLORY.id }, 'backlog:1');
    fake.pushMessage(MALLORY, 'a photo', { photo: true });
    fake.pushMessage(ALICE, 'queue this in a group', { chatType: 'group', chatId: -100200 });
    // Updates are handled in order: once Alice's private message is answered, all of the above were seen.
    await say('/backlog', /The backlog is empty/);

    expect(fake.sent(MALLORY.id)).toEqual([]);
    expect(fake.sent(-100200)).toEqual([]);
    expect(fake.callsOf('answerCallbackQuery')).toEqual([]);
    await proc.waitForLine(/not allowed/, { count: 5 });
    expect(proc.lines.filter((l) => l.includes('not allowed'))).toHaveLength(5);
    expect(proc.output()).not.toContain('secret plan from mallory');
    // No row either: only Alice's /backlog was recorded.
    expect(await proc.stop()).toBe(0);
    const db = new Database(join(dataDir, 'nightshift.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) AS n FROM items').get()).toEqual({ n: 0 });
    expect(db.prepare('SELECT count(*) AS n FROM inbox').get()).toEqual({ n: 1 });
    db.close();
  });

  it('reads its configuration from .env in the working directory', async () => {
    const cwd = tempDir('ns-dotenv-');
    const env = botEnv(fake.apiRoot, dataDir);
    writeFileSync(join(cwd, '.env'), Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n'));
    procs.push(startBotProcess({}, cwd));
    await fake.waitFor(() => fake.callsOf('getUpdates')[0], { what: 'the bot to poll' });
    await say('configured by dotenv', /Queued #1 for me\/app/);
  });

  it('tells the user that an edit does not change the queued item', async () => {
    await startPolling();
    const update = fake.pushMessage(ALICE, 'first version');
    await waitForMessage(ALICE.id, /Queued #1/);
    const before = fake.sent(ALICE.id).length;
    fake.pushUpdate({ edited_message: { ...update.message!, text: 'second version', edit_date: update.message!.date + 5 } });
    await waitForMessage(ALICE.id, /Edits don't change a queued item/, before);
  });

  it('creates one item for an update Telegram delivers twice', async () => {
    const proc = await startPolling();
    const update = fake.pushMessage(ALICE, 'only once please');
    await waitForMessage(ALICE.id, /Queued #1/);
    fake.redeliver(update.update_id);
    await proc.waitForLine(/already processed/);
    const list = await say('/backlog', /Backlog/);
    expect(list.text).toContain('1 open');
    expect(textsTo(ALICE.id).filter((t) => t.includes('Queued'))).toHaveLength(1);
  });

  it('retries a sendMessage that hit a 429 and delivers it', async () => {
    await startPolling();
    fake.failNext('sendMessage', { kind: 'rate-limit', retryAfter: 1 });
    await say('rate limited reply', /Queued #1/);
    expect(fake.callsOf('sendMessage').length).toBe(2);
  });

  it('keeps a reply through connection resets until it is delivered', async () => {
    const proc = await startPolling();
    fake.failNext('sendMessage', { kind: 'reset' }, 2);
    await say('flaky network', /Queued #1/);
    expect(fake.callsOf('sendMessage').length).toBe(3);
    await expectNoCanaries(proc);
    // The network error names the Bot API URL, token included: the logger must have caught it.
    expect(proc.output()).toContain('bot[REDACTED]/sendMessage');
  });

  it('stops cleanly on SIGTERM and loses nothing across a restart', async () => {
    const first = await startPolling();
    await say('before the restart', /Queued #1/);
    expect(await first.stop()).toBe(0);
    expect(first.output()).toMatch(/stopped/);

    fake.pushMessage(ALICE, 'sent while the bot was down');
    await startPolling();
    await waitForMessage(ALICE.id, /Queued #2 for me\/app/);
    const list = await say('/backlog', /Backlog/);
    expect(list.text).toContain('before the restart');
    expect(list.text).toContain('sent while the bot was down');
    expect(textsTo(ALICE.id).filter((t) => t.includes('Queued'))).toHaveLength(2);
  });

  it('stops quickly on SIGTERM with a reply stuck in flight, and sends it after the restart', async () => {
    const first = await startPolling();
    fake.failNext('sendMessage', { kind: 'stall' });
    fake.pushMessage(ALICE, 'stuck reply');
    await fake.waitFor(() => fake.callsOf('sendMessage')[0], { what: 'the reply to be in flight' });
    expect(await first.stop()).toBe(0);

    await startPolling();
    await waitForMessage(ALICE.id, /Queued #1 for me\/app/);
  });

  it('sends a reply that was pending when the process was killed, exactly one item', async () => {
    const first = await startPolling();
    fake.failNext('sendMessage', { kind: 'stall' });
    fake.pushMessage(ALICE, 'survive a crash');
    await fake.waitFor(() => fake.callsOf('sendMessage')[0], { what: 'the reply to be in flight' });
    await first.kill9();

    await startPolling();
    await waitForMessage(ALICE.id, /Queued #1 for me\/app/);
    const list = await say('/backlog', /Backlog/);
    expect(list.text).toContain('1 open');
  });

  it('refuses to start a second process on the same data directory, and the first keeps working', async () => {
    await startPolling();
    const second = start();
    expect(await second.exited).toBe(75);
    expect(second.output()).toMatch(/another nightshift \(pid \d+\) is running on/);
    fake.pushMessage(ALICE, 'still here');
    await waitForMessage(ALICE.id, /Queued #1 for me\/app/);
  });

  it('tells the user what is wrong with the configuration and exits non-zero', async () => {
    const proc = start({ TELEGRAM_ALLOWED_USERS: '', NIGHTSHIFT_REPOS: 'not a repo', GITHUB_TOKEN: '' });
    expect(await proc.exited).toBe(78);
    const out = proc.output();
    expect(out).toMatch(/3 problems/);
    for (const v of ['TELEGRAM_ALLOWED_USERS', 'NIGHTSHIFT_REPOS', 'GITHUB_TOKEN']) expect(out).toContain(v);
    expect(fake.calls).toEqual([]);
    await expectNoCanaries(proc);
  });

  it('exits with a clear message when Telegram rejects the token', async () => {
    const wrong = '999999:CANARY-wrong-token-0123456789abcdefghij';
    const proc = start({ TELEGRAM_BOT_TOKEN: wrong });
    expect(await proc.exited).toBe(1);
    expect(proc.output()).toContain('Telegram rejected TELEGRAM_BOT_TOKEN');
    expect(proc.output()).not.toContain(wrong);
  });
});
