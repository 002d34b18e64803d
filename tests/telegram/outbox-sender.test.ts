import { Writable } from 'node:stream';
import { Api } from 'grammy';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RESENT_AFTER_RESTART_NOTE } from '../../src/telegram/messages.js';
import { createOutboxSender, htmlToPlain, type OutboxSender } from '../../src/telegram/outbox-sender.js';
import { startFakeTelegram, type FakeTelegram } from '../fakes/telegram-server.js';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/open-store.js';
import { tempDir } from '../helpers/bot-process.js';

let fake: FakeTelegram;
let store: Store;
let sender: OutboxSender;
let logLines: string[];

function start(path = join(tempDir('ns-outbox-'), 'nightshift.db')): void {
  logLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  // The real clock: retries here wait their real (short) backoff, found by waiting on calls.
  store = openStore(path);
  sender = createOutboxSender({ store, log: pino({ level: 'debug' }, sink), now: Date.now });
  sender.start(new Api(fake.token, { apiRoot: fake.apiRoot }));
}

beforeEach(async () => {
  fake = await startFakeTelegram();
});

afterEach(async () => {
  await sender.stop();
  store.close();
  await fake.close();
});

describe('outbox sender', () => {
  it('sends messages in order per chat and records Telegram message ids', async () => {
    start();
    const ids = store.outbox.enqueue({ chatId: 1, text: 'one' }, { chatId: 1, text: 'two' }, { chatId: 2, text: '<b>three</b>' });
    sender.kick();
    await fake.waitFor(() => fake.sent().length === 3, { what: 'three messages' });
    expect(fake.sent(1).map((m) => m.text)).toEqual(['one', 'two']);
    expect(fake.sent(2)[0]).toMatchObject({ text: '<b>three</b>', parse_mode: 'HTML' });
    await fake.waitFor(() => ids.every((id) => store.outbox.get(id)?.status === 'sent'), { what: 'rows marked sent' });
    expect(store.outbox.get(ids[0]!)?.telegramMessageId).toBe(fake.sent(1)[0]!.message_id);
  });

  it('gives up on a message the user blocked, and goes on with the next', async () => {
    start();
    fake.failNext('sendMessage', { kind: 'error', code: 403, description: 'Forbidden: bot was blocked by the user' });
    const [blocked, next] = store.outbox.enqueue({ chatId: 1, text: 'blocked' }, { chatId: 1, text: 'next' });
    sender.kick();
    await fake.waitFor(() => fake.sent(1)[0], { what: 'the next message' });
    expect(store.outbox.get(blocked!)).toMatchObject({ status: 'failed', lastError: expect.stringContaining('403') });
    await fake.waitFor(() => store.outbox.get(next!)?.status === 'sent', { what: 'next marked sent' });
    expect(fake.callsOf('sendMessage')).toHaveLength(2);
  });

  it('retries after a connection reset, holding back later messages to that chat', async () => {
    start();
    fake.failNext('sendMessage', { kind: 'reset' });
    const [first] = store.outbox.enqueue({ chatId: 1, text: 'first' }, { chatId: 1, text: 'second' });
    sender.kick();
    await fake.waitFor(() => fake.sent(1).length === 2, { what: 'both messages after the retry' });
    expect(fake.sent(1).map((m) => m.text)).toEqual(['first', 'second']);
    expect(store.outbox.get(first!)).toMatchObject({ status: 'sent', attempts: 2 });
  });

  it('sends again a message whose send a crash left unclear, noting it under a message with buttons', async () => {
    // The last process started these sends and died before their outcomes were recorded.
    const path = join(tempDir('ns-outbox-'), 'nightshift.db');
    const before = openStore(path);
    const markup = { inline_keyboard: [[{ text: '✅ Approve', callback_data: 't1' }]] };
    const [card, notice] = before.outbox.enqueue({ chatId: 1, text: '<b>card</b>', replyMarkup: markup }, { chatId: 1, text: 'notice' });
    before.outbox.markSending(card!);
    before.outbox.markSending(notice!);
    before.close();
    start(path);
    sender.kick();
    await fake.waitFor(() => fake.sent(1).length === 2, { what: 'both again' });
    // A send that fails clearly in this process is retried without the note.
    fake.failNext('sendMessage', { kind: 'server-error', status: 502 });
    const [later] = store.outbox.enqueue({ chatId: 1, text: 'later card', replyMarkup: markup });
    sender.kick();
    await fake.waitFor(() => fake.sent(1).length === 3, { what: 'the later card after its retry' });
    expect(fake.sent(1).map((m) => m.text)).toEqual([`<b>card</b>\n\n${RESENT_AFTER_RESTART_NOTE}`, 'notice', 'later card']);
    await fake.waitFor(() => store.outbox.get(later!)?.status === 'sent', { what: 'the last row marked sent' });
    for (const id of [card!, notice!, later!]) expect(store.outbox.get(id)).toMatchObject({ status: 'sent', sendingAt: null });
    expect(logLines.filter((l) => l.includes('died while sending'))).toHaveLength(2);
  });

  it('sends malformed HTML as plain text instead of losing the message', async () => {
    start();
    store.outbox.enqueue({ chatId: 1, text: '<b>unclosed &amp; bold' });
    sender.kick();
    const sent = await fake.waitFor(() => fake.sent(1)[0], { what: 'the plain-text fallback' });
    expect(sent.text).toBe('unclosed & bold');
    expect(sent.parse_mode).toBeUndefined();
  });

  it('keeps a message pending through a revoked token (401) instead of dropping it', async () => {
    start();
    fake.failNext('sendMessage', { kind: 'error', code: 401, description: 'Unauthorized' });
    const [id] = store.outbox.enqueue({ chatId: 1, text: 'later' });
    sender.kick();
    await fake.waitFor(() => store.outbox.get(id!)?.status === 'sent', { what: 'the message sent after the 401' });
    expect(store.outbox.get(id!)?.attempts).toBe(2);
    expect(fake.sent(1)).toHaveLength(1);
  });

  it('backs off when the database cannot record a send, and records it later instead of sending it again', async () => {
    start();
    const markSent = store.outbox.markSent;
    let failures = 2;
    const attempts: number[] = [];
    store.outbox.markSent = (...args) => {
      attempts.push(Date.now());
      if (failures-- > 0) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      markSent(...args);
    };
    const [id] = store.outbox.enqueue({ chatId: 1, text: 'once' });
    sender.kick();
    await fake.waitFor(() => store.outbox.get(id!)?.status === 'sent', { what: 'the send recorded after the pauses' });
    // Telegram has the message once; only the record of it was tried again, a pause apart.
    expect(fake.callsOf('sendMessage')).toHaveLength(1);
    expect(store.outbox.get(id!)?.telegramMessageId).toBe(fake.sent(1)[0]!.message_id);
    expect(attempts).toHaveLength(3);
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(900);
    expect(logLines.join('')).toContain('the outbox failed; pausing delivery');
  });

  it('stops promptly with a send in flight and keeps the message for the next start', async () => {
    start();
    fake.failNext('sendMessage', { kind: 'stall' });
    const [id] = store.outbox.enqueue({ chatId: 1, text: 'stalled' });
    sender.kick();
    await fake.waitFor(() => fake.callsOf('sendMessage')[0], { what: 'the send to be in flight' });
    await sender.stop();
    expect(store.outbox.get(id!)).toMatchObject({ status: 'pending', attempts: 0 });
  });
});

describe('htmlToPlain', () => {
  it('drops tags and decodes entities once', () => {
    expect(htmlToPlain('<b>a &lt;b&gt; &amp;lt; &#65;</b>')).toBe('a <b> &lt; A');
  });
});
