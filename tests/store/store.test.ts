import { readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { IllegalTransition } from '../../src/domain/item-state.js';
import { INBOX_RETENTION_MS } from '../../src/store/inbox.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { DatabaseUnusable, openStore } from '../../src/store/open-store.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

describe('openStore', () => {
  it('uses WAL, foreign keys and a busy timeout, and records the schema version', () => {
    const { store, path } = makeStore();
    store.close();
    const db = new Database(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    db.close();
  });

  it('reopens an existing database without re-running migrations and keeps the data', () => {
    const { store, path } = makeStore();
    const item = store.items.create(makeNewItem());
    store.close();
    const again = openStore(path);
    expect(again.items.get(item.id)?.title).toBe('Add a flag');
    again.close();
  });

  it('refuses a database from a newer nightshift', () => {
    const { store, path } = makeStore();
    store.close();
    const db = new Database(path);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => openStore(path)).toThrow(/newer than this nightshift/);
  });

  it('refuses a file that is not a database with DatabaseUnusable naming it, and leaves it as it is', () => {
    const { store, path } = makeStore();
    store.close();
    const junk = Buffer.from('not a database, just text '.repeat(400));
    writeFileSync(path, junk);
    let error: unknown;
    try {
      openStore(path);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(DatabaseUnusable);
    expect(error).toMatchObject({ path, problem: 'corrupt', code: 'SQLITE_NOTADB', exitCode: 65 });
    expect((error as Error).message).toContain(path);
    expect(readFileSync(path).equals(junk)).toBe(true);
  });
});

describe('items', () => {
  it('creates queued items with an event, and lists open ones newest first', () => {
    const { store } = makeStore();
    const a = store.items.create(makeNewItem({ title: 'a' }));
    const b = store.items.create(makeNewItem({ title: 'b' }));
    store.items.transition(a.id, 'cancelled', 'by test');
    expect(store.items.listOpen(10, 0).map((i) => i.title)).toEqual(['b']);
    expect(store.items.countOpen()).toBe(1);
    expect(store.items.get(a.id)).toMatchObject({ state: 'cancelled', stateReason: 'by test' });
    expect(b.state).toBe('queued');
    expect(store.items.countByState()).toEqual({ queued: 1, cancelled: 1 });
  });

  it('refuses illegal transitions and leaves the item unchanged', () => {
    const { store } = makeStore();
    const item = store.items.create(makeNewItem());
    expect(() => store.items.transition(item.id, 'merged')).toThrow(IllegalTransition);
    expect(store.items.get(item.id)?.state).toBe('queued');
  });

  it('refuses a second item for the same Telegram update', () => {
    const { store } = makeStore();
    store.items.create(makeNewItem({ sourceUpdateId: 7 }));
    expect(() => store.items.create(makeNewItem({ sourceUpdateId: 7 }))).toThrow(/UNIQUE/);
  });

  it('lists active items for /status', () => {
    const { store } = makeStore();
    const item = store.items.create(makeNewItem());
    store.items.transition(item.id, 'building');
    expect(store.items.listActive().map((i) => i.id)).toEqual([item.id]);
  });
});

describe('inbox', () => {
  it('claims an update id once and forgets it after the retention period', () => {
    const { store, clock } = makeStore();
    expect(store.inbox.claim(42)).toBe(true);
    expect(store.inbox.claim(42)).toBe(false);
    clock.now += INBOX_RETENTION_MS + 1;
    expect(store.inbox.prune()).toBe(1);
    expect(store.inbox.claim(42)).toBe(true);
  });

  it('rolls the claim back with the effects when the transaction fails', () => {
    const { store } = makeStore();
    expect(() =>
      store.transaction(() => {
        store.inbox.claim(5);
        store.items.create(makeNewItem());
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(store.inbox.claim(5)).toBe(true);
    expect(store.items.countOpen()).toBe(0);
  });
});

describe('outbox', () => {
  it('keeps a message pending until it is marked sent', () => {
    const { store } = makeStore();
    const [id] = store.outbox.enqueue({ chatId: 1, text: 'hi', replyMarkup: { inline_keyboard: [] } });
    expect(store.outbox.due().map((m) => m.id)).toEqual([id]);
    expect(store.outbox.due()[0]?.replyMarkup).toEqual({ inline_keyboard: [] });
    store.outbox.markSent(id!, 99);
    expect(store.outbox.due()).toEqual([]);
    expect(store.outbox.get(id!)).toMatchObject({ status: 'sent', telegramMessageId: 99 });
  });

  it('retries later, and keeps order within a chat', () => {
    const { store, clock } = makeStore();
    const [first, second] = store.outbox.enqueue({ chatId: 1, text: 'part 1' }, { chatId: 1, text: 'part 2' });
    const [other] = store.outbox.enqueue({ chatId: 2, text: 'elsewhere' });
    expect(store.outbox.due().map((m) => m.id)).toEqual([first, other]);
    store.outbox.markRetry(first!, 'network', clock.now + 1000);
    // Part 2 waits behind part 1; the other chat is not held up.
    expect(store.outbox.due().map((m) => m.id)).toEqual([other]);
    store.outbox.markSent(other!, 5);
    expect(store.outbox.nextDueAt()).toBe(clock.now + 1000);
    clock.now += 1000;
    expect(store.outbox.due().map((m) => m.id)).toEqual([first]);
    expect(store.outbox.get(first!)).toMatchObject({ attempts: 1, lastError: 'network' });
    store.outbox.markSent(first!, 6);
    expect(store.outbox.due().map((m) => m.id)).toEqual([second]);
    expect(store.outbox.get(first!)).toMatchObject({ status: 'sent', attempts: 2, lastError: null });
  });

  it('gives up on a message for good', () => {
    const { store } = makeStore();
    const [id] = store.outbox.enqueue({ chatId: 1, text: 'x' });
    store.outbox.markFailed(id!, '403 Forbidden: bot was blocked by the user');
    expect(store.outbox.due()).toEqual([]);
    expect(store.outbox.get(id!)?.status).toBe('failed');
    expect(store.outbox.nextDueAt()).toBeUndefined();
  });
});
