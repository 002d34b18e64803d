import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Chat, Update } from 'grammy/types';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import type { SentMessage } from '../fakes/telegram-server.js';
import { ALICE, MALLORY, type BotProcess } from '../helpers/bot-process.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';

// Hostile Telegram input against the real process (`node dist/main.js` on the fakes): strangers
// and group chats, malformed and oversized updates, metacharacters, redelivery across a restart,
// and a user who blocked the bot. After each, the invariants are checked from the outside: what
// the fakes recorded, the process's log, and the rows of every table of its database.
// The fake Bot API validates HTML entities and the 4096-character limit the way Telegram does,
// so a reply that would fail for real fails here too.

const FEATURES_DIR = resolve(import.meta.dirname, '../../src/telegram/features');
const IGNORED = /ignored an update from a user or chat that is not allowed/;
const BOB = { id: 1002, username: 'bob', first_name: 'Bob' } as const;

let harness: PipelineHarness;

beforeEach(async () => {
  harness = await startPipelineHarness({ 'README.md': '# app\n' });
});

afterEach(async () => harness.close());

/** Every command some feature handles, read from the source, so a new command is attacked without editing this test. */
function handledCommands(): string[] {
  const names = new Set<string>();
  for (const file of readdirSync(FEATURES_DIR).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(join(FEATURES_DIR, file), 'utf8');
    for (const [, list] of source.matchAll(/\.command\(\s*(\[[^\]]*\]|'[^']*')/g)) {
      for (const [, name] of list!.matchAll(/'([^']+)'/g)) names.add(name!);
    }
  }
  return [...names].sort();
}

/** Rows per table of the bot's database. */
function rowCounts(): Record<string, number> {
  return harness.query((db) => {
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[];
    return Object.fromEntries(tables.map((t) => [t, db.prepare(`SELECT count(*) FROM "${t}"`).pluck().get() as number]));
  }, {});
}

/** The chats a user's message can come from (a channel post has no user). */
type UserChat = Exclude<Chat, Chat.ChannelChat>;
const privateChat = (user: { id: number; first_name: string }): UserChat => ({ id: user.id, type: 'private', first_name: user.first_name });
const asUser = (user: { id: number; username: string; first_name: string }) => ({ id: user.id, is_bot: false, first_name: user.first_name, username: user.username });
const nowSec = () => Math.floor(Date.now() / 1000);

/** Every message sent was accepted by the (strict) fake: as many sendMessage calls as messages stored, and each is within Telegram's limit. */
function expectEverySendAccepted(): void {
  const { telegram } = harness;
  const sends = ['sendMessage', 'sendPhoto', 'sendDocument'].flatMap((m) => telegram.callsOf(m));
  expect(sends).toHaveLength(telegram.sent().length);
  for (const m of telegram.sent()) expect([...m.text].length).toBeLessThanOrEqual(4096);
}

/** Sends `text` as Alice and waits for the first reply to her after it. */
async function say(text: string, reply: RegExp): Promise<SentMessage> {
  const { telegram } = harness;
  const before = telegram.sent(ALICE.id).length;
  telegram.pushMessage(ALICE, text);
  return telegram.waitFor(() => telegram.sent(ALICE.id).slice(before).find((m) => reply.test(m.text)), { what: `a reply to ${JSON.stringify(text.slice(0, 40))} matching ${reply}` });
}

describe('I-AUTH: strangers and group chats get silence', () => {
  it('ignores every command, text, photo, document, edit and button from a stranger, and from Alice in a group', { timeout: 60_000 }, async () => {
    const { telegram, anthropic, github } = harness;
    const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    await telegram.waitFor(() => telegram.commands.length > 0, { what: 'setMyCommands' });
    const registered = telegram.commands.map((c) => c.command);
    const handled = handledCommands();
    // The menu and the handlers agree (/start is Telegram's own entry point, handled but not listed).
    expect(handled.filter((c) => c !== 'start')).toEqual([...registered].sort());
    const commands = [...new Set([...registered, ...handled])];
    expect(commands.length).toBeGreaterThanOrEqual(12);

    // Alice has a page button and an item, so the stranger's taps and /cancel have real targets.
    for (let i = 1; i <= 9; i += 1) await say(`task ${i}`, new RegExp(`Queued #${i}\\b`));
    const list = await say('/backlog', /Backlog/);
    const pageButton = (list.reply_markup as { inline_keyboard: Array<Array<{ callback_data: string }>> }).inline_keyboard.flat()[0]!.callback_data;
    const before = rowCounts();
    expect(before.items).toBe(9);
    const sentBefore = telegram.sent().length;
    const answersBefore = telegram.callsOf('answerCallbackQuery').length;
    const githubBefore = github.calls.length;
    const anthropicBefore = anthropic.requests.length;

    const hostile: Update[] = [];
    const sources: Array<{ who: typeof ALICE | typeof MALLORY; chatType: 'private' | 'group' | 'supergroup' }> = [
      { who: MALLORY, chatType: 'private' },
      { who: MALLORY, chatType: 'group' },
      { who: ALICE, chatType: 'group' },
      { who: ALICE, chatType: 'supergroup' },
    ];
    for (const { who, chatType } of sources) {
      for (const command of commands) hostile.push(telegram.pushMessage(who, `/${command} 1`, { chatType }));
      hostile.push(telegram.pushMessage(who, `/queue app: ${who.username} wants this`, { chatType }));
      hostile.push(telegram.pushMessage(who, 'plain text work from outside', { chatType }));
      hostile.push(telegram.pushMessage(who, '/run', { chatType }));
      hostile.push(telegram.pushMessage(who, 'look at this', { chatType, photo: true }));
      const chat = chatType === 'private' ? privateChat(who) : (hostile.at(-1)!.message!.chat as UserChat);
      hostile.push(telegram.pushUpdate({ message: { message_id: 9_000 + hostile.length, date: nowSec(), chat, from: asUser(who), document: { file_id: 'doc-1', file_unique_id: 'd1', file_name: 'plan.pdf' }, caption: '/queue from a file' } }));
      hostile.push(telegram.pushUpdate({ edited_message: { message_id: 9_000 + hostile.length, date: nowSec() - 5, edit_date: nowSec(), chat, from: asUser(who), text: '/cancel 1' } }));
      // Alice's real page button, tapped from elsewhere; then a made-up card token.
      if (chatType === 'private') {
        hostile.push(telegram.pushCallback(who, { message_id: list.message_id, chat_id: ALICE.id }, pageButton));
        hostile.push(telegram.pushCallback(who, { message_id: list.message_id, chat_id: ALICE.id }, 'AAAAAAAAAAAAAAAA'));
      }
    }
    // A channel post has no `from` at all.
    hostile.push(telegram.pushMessage(MALLORY, '/queue from a channel', { chatType: 'channel' }));

    // Each ignored update is logged once, with its update_id and without its text.
    await proc.waitForLine(IGNORED, { count: hostile.length, timeoutMs: 30_000 });
    const ignoredIds = proc.lines.filter((l) => IGNORED.test(l)).map((l) => (JSON.parse(l) as { update_id: number }).update_id);
    expect(ignoredIds.sort()).toEqual(hostile.map((u) => u.update_id).sort());
    // Alice, in private, is still answered: the stranger's updates were all handled before hers.
    await say('/status', /Status/);
    // No row anywhere but Alice's /status (its inbox entry and its reply).
    expect(rowCounts()).toEqual({ ...before, inbox: before.inbox! + 1, outbox: before.outbox! + 1 });
    expect(await proc.stop()).toBe(0);

    expect(telegram.sent().slice(sentBefore).map((m) => m.chat_id)).toEqual([ALICE.id]);
    expect(telegram.callsOf('answerCallbackQuery')).toHaveLength(answersBefore);
    expect(telegram.callsOf('editMessageText')).toHaveLength(0);
    expect(github.calls.length).toBe(githubBefore);
    expect(anthropic.requests.length).toBe(anthropicBefore);
    expect(proc.output()).not.toContain('wants this');
    expect(proc.output()).not.toContain('plain text work from outside');
    expectEverySendAccepted();
  });
});

/** The request and title each item was stored with, by id. */
const storedItems = () =>
  harness.query((db) => db.prepare('SELECT id, title, request FROM items ORDER BY id').all() as Array<{ id: number; title: string; request: string }>, []);

describe('malformed, oversized and metacharacter-laden updates', () => {
  it('keeps the bot up, queues the text intact, and sends only valid HTML under 4096 characters', { timeout: 60_000 }, async () => {
    const { telegram, anthropic, github } = harness;
    const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    const long = `Refactor the <parser> & the _lexer_ ${'so *every* [token] </code> counts; '.repeat(300)}`.slice(0, 10_000);
    const requests = [
      long,
      'Fix <b>bold</b> & <i>italic</b> in </code> the <script>alert("x")</script> &amp; &lt; &#0; header',
      '_*[]()~`>#+-=|{}.! markdown *soup_ with [a](tg://user?id=1) link',
      'Add zero\u200bwidth\u200c\u200d\u2060 and \u202eRTL override\u202c, \u2067isolate\u2069, \ufeffBOM, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 👩‍👩‍👧‍👦',
      `/queue app: ${long}`,
    ];
    for (const text of requests) telegram.pushMessage(ALICE, text);
    // Commands whose argument is echoed or parsed: oversized, tags, entities.
    telegram.pushMessage(ALICE, `/${'x'.repeat(5_000)}`);
    telegram.pushMessage(ALICE, '/cancel <b>1</b> &');
    telegram.pushMessage(ALICE, `me/nosuchrepo: <b>&amp; ${'y'.repeat(4_000)}`);
    // Updates with fields missing, and update types the bot never asked for.
    const chat = privateChat(ALICE);
    const from = asUser(ALICE);
    const bare = [
      telegram.pushUpdate({ message: { message_id: 9_001, date: nowSec(), chat, from } as never }),
      telegram.pushUpdate({ message: { message_id: 9_002, date: nowSec(), chat, text: 'no sender' } as never }),
      telegram.pushUpdate({ message: { message_id: 9_003, date: nowSec(), from, text: 'no chat' } as never }),
      telegram.pushUpdate({ callback_query: { id: 'cbq-no-message', from, chat_instance: 'ci', data: 'AAAAAAAAAAAAAAAA' } }),
      telegram.pushUpdate({ callback_query: { id: 'cbq-no-data', from, chat_instance: 'ci', game_short_name: 'g' } }),
      telegram.pushUpdate({ message_reaction: { chat, message_id: 1, user: from, date: nowSec(), old_reaction: [], new_reaction: [{ type: 'emoji', emoji: '👍' }] } }),
      telegram.pushUpdate({ frobnication: { from, text: 'a type from the future' } } as never),
      telegram.pushUpdate({} as never),
    ];
    await say('/status', /Status/);

    // The text is stored exactly as sent; the title is one short line of it.
    const items = storedItems();
    expect(items.map((i) => i.request)).toEqual([...requests.slice(0, 4), long]);
    for (const item of items) expect([...item.title].length).toBeLessThanOrEqual(80);
    expect(items[1]!.title).toMatch(/^Fix <b>bold<\/b> & <i>italic<\/b> in <\/code> the <script>/);
    expect(items[2]!.title).toBe(requests[2]);
    // Every reply was accepted by the strict fake, and each queued item was confirmed.
    expectEverySendAccepted();
    const texts = telegram.sent(ALICE.id).map((m) => m.text);
    for (const item of items) expect(texts.filter((t) => t.startsWith(`Queued #${item.id} `))).toHaveLength(1);
    expect(texts).toContainEqual(expect.stringMatching(/^I don't know \/x+…/));
    expect(texts).toContainEqual(expect.stringMatching(/Usage: \/cancel/));
    expect(texts).toContainEqual(expect.stringMatching(/don't know the repo/));
    // The malformed ones: the content-less message is told text is needed; what has no sender
    // or no chat (so cannot be shown to be Alice's private chat) is ignored like a stranger's.
    expect(texts).toContainEqual(expect.stringMatching(/text/i));
    const ignored = proc.lines.filter((l) => IGNORED.test(l)).map((l) => (JSON.parse(l) as { update_id: number }).update_id);
    // (Alice's own reaction in her private chat passes the filter; no feature handles it.)
    for (const u of [...bare.slice(1, 5), ...bare.slice(6)]) expect(ignored).toContain(u.update_id);
    expect(telegram.callsOf('answerCallbackQuery')).toEqual([]);
    expect(proc.lines.filter((l) => /handling the update failed/.test(l))).toEqual([]);
    expect(github.calls).toHaveLength(0);
    expect(anthropic.requests).toHaveLength(0);
    expect(await proc.stop()).toBe(0);
  });
});

describe('redelivered updates', () => {
  it('makes one item and one reply of an update Telegram delivers again after a restart', { timeout: 60_000 }, async () => {
    const { telegram } = harness;
    let proc: BotProcess = await harness.startBot();
    const update = telegram.pushMessage(ALICE, 'only once, even across a restart');
    await harness.waitForMessage(/Queued #1/);
    expect(await proc.stop()).toBe(0);
    // Telegram had not seen the offset confirmed (or lost it): the same update comes again.
    telegram.redeliver(update.update_id);
    proc = await harness.startBot();
    await proc.waitForLine(/already processed/);
    const list = await say('/backlog', /Backlog/);
    expect(list.text).toContain('1 open');
    expect(telegram.sent(ALICE.id).filter((m) => /Queued/.test(m.text))).toHaveLength(1);
    expect(storedItems()).toHaveLength(1);
  });
});

describe('a user who blocked the bot', () => {
  it('gives up on the refused message, keeps the item, and keeps serving everyone else', { timeout: 60_000 }, async () => {
    const { telegram } = harness;
    const proc = await harness.startBot({ TELEGRAM_ALLOWED_USERS: `${ALICE.id},${BOB.id}` });
    telegram.failNext('sendMessage', { kind: 'error', code: 403, description: 'Forbidden: bot was blocked by the user' });
    telegram.pushMessage(ALICE, 'work from alice, who then blocked the bot');
    await proc.waitForLine(/giving up on it/);
    telegram.pushMessage(BOB, 'work from bob');
    await telegram.waitFor(() => telegram.sent(BOB.id).find((m) => /Queued #2 /.test(m.text)), { what: "Bob's reply" });
    telegram.pushMessage(BOB, '/backlog');
    await telegram.waitFor(() => telegram.sent(BOB.id).find((m) => /2 open/.test(m.text)), { what: "Bob's backlog" });

    // Alice's item is kept; her reply was tried once, never again, and is marked failed with the reason.
    expect(storedItems().map((i) => i.request)).toEqual(['work from alice, who then blocked the bot', 'work from bob']);
    expect(telegram.callsOf('sendMessage').filter((c) => c.params.chat_id === ALICE.id)).toHaveLength(1);
    // The fake has the last reply before the bot has its answer and marks the row sent.
    const pending = () => harness.query((db) => db.prepare("SELECT count(*) FROM outbox WHERE status = 'pending'").pluck().get() as number, 1);
    await telegram.waitFor(() => pending() === 0, { what: 'the outbox to settle' });
    const outbox = harness.query((db) => db.prepare('SELECT chat_id, status, last_error FROM outbox ORDER BY id').all(), []);
    expect(outbox).toEqual([
      { chat_id: ALICE.id, status: 'failed', last_error: '403 Forbidden: bot was blocked by the user' },
      { chat_id: BOB.id, status: 'sent', last_error: null },
      { chat_id: BOB.id, status: 'sent', last_error: null },
    ]);
    expect(await proc.stop()).toBe(0);
  });
});

const MERGE = 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge';
const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const reply = (t: string): FakeReply => ({ content: [{ type: 'text', text: t }] });
const body = (r: RecordedRequest) => r.body as { tools?: Array<{ name: string }>; system?: Array<{ text: string }>; messages: unknown[]; tool_choice?: { name?: string } };
const buttons = (m: SentMessage) => ((m.reply_markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat();
/** Text that breaks HTML (and Markdown) when it is not escaped, and is far over any message limit. */
const HOSTILE = `<script>alert(1)</script> &amp; </b> <b>_*[]</code> ${'&<>'.repeat(3_400)}`;

describe('hostile text from the model reaching the review card', () => {
  it('sends a valid, short, decidable card and an intact PR comment; forged, misdirected, stale and redelivered taps change nothing', { timeout: 120_000 }, async () => {
    const { telegram, anthropic, github } = harness;
    anthropic.onRequest((req) => {
      const b = body(req);
      if ((b.tools ?? []).some((t) => t.name === 'bash')) {
        if (b.messages.length === 1) return tool('str_replace_based_edit_tool', { command: 'create', path: 'src/x.js', file_text: 'export const x = 1;\n' });
        return reply(`Summary: added x. ${HOSTILE}\nTests: none.\nNotes: ${HOSTILE}`);
      }
      if (b.tool_choice?.name === 'report_findings') {
        if (!/Review angle: correctness/.test(JSON.stringify(b.messages))) return tool('report_findings', { findings: [] });
        const finding = (n: number) => ({ file: 'src/x.js', line_start: 1, line_end: 1, severity: 'high', title: `${n} ${HOSTILE}`, evidence: HOSTILE, failure: HOSTILE, suggested_fix: HOSTILE, confidence: 0.9 });
        return tool('report_findings', { findings: [finding(1), finding(2), finding(3)] });
      }
      if (b.tool_choice?.name === 'report_triage') {
        const prompt = b.system?.[0]?.text ?? '';
        const listed = JSON.parse(prompt.slice(prompt.lastIndexOf('<findings>') + '<findings>'.length, prompt.lastIndexOf('</findings>'))) as Array<{ id: number }>;
        const verdicts = ['backlog', 'ignore', 'ignore'];
        return tool('report_triage', { verdict: 'needs_judgment', judgment: HOSTILE, findings: listed.map((f, i) => ({ id: f.id, verdict: verdicts[i] ?? 'ignore', reason: HOSTILE })) });
      }
      return undefined;
    });
    let proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    await say(`Add x ${HOSTILE}`, /Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    const card = await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => buttons(m).some((x) => /Approve/.test(x.text))), { what: 'the review card', timeoutMs: 90_000 });
    const current = () => telegram.sent(ALICE.id).find((m) => m.message_id === card.message_id)!;

    // The card got through the strict fake: valid HTML, under the limit, with its buttons.
    expect([...card.text].length).toBeLessThanOrEqual(4096);
    expect(card.parse_mode).toBe('HTML');
    // The hostile text is on it, escaped (as the judgment or a finding's title), not dropped.
    expect(card.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp; &lt;/b&gt;');
    expect(card.text).not.toContain('<script>');
    // The finding sent to the backlog became an item with the hostile title, its text intact.
    expect(storedItems().length).toBeGreaterThanOrEqual(2);
    expect(storedItems()[1]!.request).toContain('<script>alert(1)</script> &amp; </b>');
    expectEverySendAccepted();
    // The PR comment carries the findings' text unmangled.
    const comments = github.pulls[0]!.comments.map((c) => c.body).join('\n');
    expect(comments).toContain('<script>alert(1)</script> &amp; </b> <b>_*[]</code>');

    const approve = buttons(card).find((x) => /Approve/.test(x.text))!.callback_data;
    const reject = buttons(card).find((x) => /Reject/.test(x.text))!.callback_data;
    // The right button from the wrong people and places: a stranger, Alice in a group, a
    // made-up token, and a real token whose last character was changed.
    const tampered = approve.slice(0, -1) + (approve.endsWith('A') ? 'B' : 'A');
    const from = { message_id: card.message_id, chat_id: ALICE.id };
    const ignoredBefore = proc.lines.filter((l) => IGNORED.test(l)).length;
    telegram.pushCallback(MALLORY, from, approve);
    telegram.pushCallback(ALICE, { message_id: card.message_id, chat_id: -4_000_000_001 }, approve);
    const forged = telegram.pushCallback(ALICE, from, 'Zm9yZ2VkLXRva2Vu');
    const altered = telegram.pushCallback(ALICE, from, tampered);
    const answer = (u: Update) => telegram.waitFor(() => telegram.callsOf('answerCallbackQuery').find((c) => c.params.callback_query_id === u.callback_query!.id), { what: 'the answer' });
    expect((await answer(forged)).params.text).toMatch(/not valid/);
    expect((await answer(altered)).params.text).toMatch(/not valid/);
    await proc.waitForLine(IGNORED, { count: ignoredBefore + 2 });
    expect(github.callsOf(MERGE)).toHaveLength(0);
    expect(telegram.callsOf('answerCallbackQuery')).toHaveLength(2);

    // Approve wins; the stale Reject after the item moved on is told, and changes nothing.
    const approval = telegram.pushCallback(ALICE, from, approve);
    await telegram.waitFor(() => /Merged by @alice/.test(current().text), { what: 'the merge', timeoutMs: 30_000 });
    const stale = telegram.pushCallback(ALICE, from, reject);
    expect((await answer(stale)).params.text).toMatch(/Already|no longer/i);
    expect(github.callsOf(MERGE)).toHaveLength(1);
    expect(harness.query((d) => d.prepare('SELECT state FROM items WHERE id = 1').pluck().get(), undefined)).toBe('merged');
    expect([...current().text].length).toBeLessThanOrEqual(4096);
    expectEverySendAccepted();
    expect(proc.lines.filter((l) => /can't parse entities|handling the update failed/.test(l))).toEqual([]);

    // The approving tap comes again after a restart: already handled, no second merge.
    expect(await proc.stop()).toBe(0);
    telegram.redeliver(approval.update_id);
    proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    await proc.waitForLine(/already processed/);
    await say('/status', /Status/);
    expect(github.callsOf(MERGE)).toHaveLength(1);
    expect(current().edits.filter((e) => /Merged by/.test(e.text ?? ''))).toHaveLength(1);
  });
});
