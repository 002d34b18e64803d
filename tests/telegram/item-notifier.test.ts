import { Writable } from 'node:stream';
import { Api } from 'grammy';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeStoreError } from '../../src/store/open-store.js';
import { createItemNotifier } from '../../src/telegram/item-notifier.js';
import { createOutboxSender } from '../../src/telegram/outbox-sender.js';
import { startFakeTelegram, type FakeTelegram } from '../fakes/telegram-server.js';
import { makeItem, makeStore } from '../helpers/factories.js';

let fake: FakeTelegram;
let logLines: string[];

beforeEach(async () => {
  fake = await startFakeTelegram();
  logLines = [];
});

afterEach(async () => fake.close());

/** A notifier on a store whose database is gone (closed: every read and write throws). */
function notifierOnBrokenStore() {
  const { store } = makeStore();
  const log = pino({ level: 'debug' }, new Writable({ write: (chunk: Buffer, _enc, done) => (logLines.push(chunk.toString()), done()) }));
  const sender = createOutboxSender({ store, log });
  store.close();
  const api = new Api(fake.token, { apiRoot: fake.apiRoot });
  return createItemNotifier({ store, sender, api: () => api, log, onReady: () => undefined });
}

describe('item notifier when the outbox cannot record a notice', () => {
  it('sends an outcome directly, once, and leaves progress unsaid', async () => {
    const notifier = notifierOnBrokenStore();
    const item = makeItem({ id: 7, title: 'Add avg', chatId: 111 });
    notifier.notify(item, { kind: 'progress', stage: 'build', turn: 2, maxTurns: 60, itemUsd: 0.1 });
    notifier.notify(item, { kind: 'unrecorded', stage: 'build', reason: describeStoreError(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' })) });
    const sent = await fake.waitFor(() => fake.sent(111)[0], { what: 'the direct notice' });
    expect(sent.text).toContain('#7 Add avg');
    expect(sent.text).toContain('the result of the build could not be saved (the disk holding the database is full (SQLITE_FULL))');
    await fake.waitFor(() => logLines.some((l) => l.includes('sent the notice directly')), { what: 'the log line' });
    expect(fake.callsOf('sendMessage')).toHaveLength(1);
    expect(fake.callsOf('editMessageText')).toHaveLength(0);
  });
});

describe('describeStoreError', () => {
  it('names a full disk and a failed write, and passes other errors through', () => {
    expect(describeStoreError(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe('the disk holding the database is full (ENOSPC)');
    expect(describeStoreError(Object.assign(new Error('x'), { code: 'SQLITE_IOERR_WRITE' }))).toBe('the database could not be written (SQLITE_IOERR_WRITE)');
    expect(describeStoreError(new Error('The database connection is not open'))).toBe('The database connection is not open');
  });
});
