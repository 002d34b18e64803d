import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openStore } from '../../src/store/open-store.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

const MINUTE = 60_000;

describe('migration 7 (sizing)', () => {
  it('keeps a Reject waiting for its reason across the upgrade', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'ns-mig-')), 'nightshift.db');
    const db = new Database(path);
    db.pragma('foreign_keys = ON');
    for (const [i, sql] of MIGRATIONS.slice(0, 6).entries()) {
      db.exec(sql);
      db.pragma(`user_version = ${i + 1}`);
    }
    db.prepare(`INSERT INTO items (repo, title, request, state, chat_id, created_by, created_at, updated_at) VALUES ('me/app', 't', 'r', 'ready', 111, 111, 0, 0)`).run();
    db.prepare(`INSERT INTO cards (kind, item_id, repo, chat_id, status, created_at) VALUES ('review', 1, 'me/app', 111, 'deciding', 0)`).run();
    db.prepare(`INSERT INTO awaiting_replies (chat_id, user_id, kind, card_id, expires_at) VALUES (111, 1001, 'reject-reason', 1, ?)`).run(Date.UTC(2030, 0, 1));
    db.close();

    const store = openStore(path, { now: () => Date.UTC(2026, 10, 25) });
    expect(store.cards.awaitedReply(111, 1001)).toEqual({ chatId: 111, userId: 1001, kind: 'reject-reason', cardId: 1, expiresAt: Date.UTC(2030, 0, 1) });
    expect(store.items.get(1)).toMatchObject({ sizing: null, estimateLowUsd: null, estimateHighUsd: null });
    store.close();
  });
});

describe('sizing questions', () => {
  it('wait beside a Reject’s reason, one per user, until they expire', () => {
    const { store, clock } = makeStore();
    const item = store.items.create(makeNewItem({ state: 'proposed', sizing: 'pending' }));
    const other = store.items.create(makeNewItem({ state: 'proposed', sizing: 'pending' }));
    const ready = store.items.create(makeNewItem({ state: 'ready' }));
    const card = store.cards.create({ kind: 'review', itemId: ready.id, repo: 'me/app', chatId: 111 });
    store.cards.awaitReply({ chatId: 111, userId: 111, kind: 'reject-reason', cardId: card.id, expiresAt: clock.now + 10 * MINUTE });
    store.cards.awaitAnswer({ chatId: 111, userId: 111, itemId: item.id, expiresAt: clock.now + 30 * MINUTE });

    expect(store.cards.awaitedAnswer(111, 111)).toEqual({ chatId: 111, userId: 111, itemId: item.id, expiresAt: clock.now + 30 * MINUTE });
    expect(store.cards.awaitedReply(111, 111)?.cardId).toBe(card.id);
    // Dropping the reject reason leaves the sizing question.
    store.cards.dropReply(111, 111);
    expect(store.cards.awaitedAnswer(111, 111)?.itemId).toBe(item.id);

    // A newer question replaces the older one.
    store.cards.awaitAnswer({ chatId: 111, userId: 111, itemId: other.id, expiresAt: clock.now + 30 * MINUTE });
    expect(store.cards.awaitedAnswer(111, 111)?.itemId).toBe(other.id);
    store.cards.dropAnswersOf(item.id);
    expect(store.cards.awaitedAnswer(111, 111)?.itemId).toBe(other.id);

    clock.now += 30 * MINUTE;
    expect(store.cards.awaitedAnswer(111, 111)).toBeUndefined();
    expect(store.cards.expiredReplies()).toEqual([]);
    expect(store.cards.dropExpiredAnswers()).toBe(1);
    store.close();
  });
});

describe('sizing buttons', () => {
  it('one tap uses every button of its message; an item’s buttons can be retired together', () => {
    const { store } = makeStore();
    const [message, other] = store.outbox.enqueue({ chatId: 111, text: 'a' }, { chatId: 111, text: 'b' });
    const buttons = store.cards.addButtons(null, [{ action: 'size-queue', arg: '7' }, { action: 'size-cancel', arg: '7' }]);
    const elsewhere = store.cards.addButtons(null, [{ action: 'size-queue', arg: '7' }, { action: 'retry-item', arg: '7' }, { action: 'size-queue', arg: '8' }]);
    store.cards.attachButtons(buttons.map((b) => b.token), message!);
    store.cards.attachButtons(elsewhere.map((b) => b.token), other!);

    expect(store.cards.useButtonsOf(message!)).toBe(2);
    expect(store.cards.useButtonsOf(message!)).toBe(0);
    expect(store.cards.button(buttons[1]!.token)?.usedAt).not.toBeNull();

    expect(store.cards.retireItemButtons(7, ['size-queue', 'size-cancel'])).toEqual([other]);
    expect(store.cards.button(elsewhere[0]!.token)?.usedAt).not.toBeNull();
    // Other actions and other items keep theirs.
    expect(store.cards.button(elsewhere[1]!.token)?.usedAt).toBeNull();
    expect(store.cards.button(elsewhere[2]!.token)?.usedAt).toBeNull();
    expect(store.cards.retireItemButtons(7, ['size-queue', 'size-cancel'])).toEqual([]);
    store.close();
  });

  it('finds the message a reply points at, not an edit of it', () => {
    const { store } = makeStore();
    const item = store.items.create(makeNewItem());
    const [sent] = store.outbox.enqueue({ chatId: 111, text: 'question', itemId: item.id });
    store.outbox.markSent(sent!, 42);
    const [edit] = store.outbox.enqueue({ chatId: 111, text: 'answered', editOf: sent! });
    store.outbox.markSent(edit!, 42);

    expect(store.outbox.byTelegramMessage(111, 42)).toEqual({ id: sent, itemId: item.id });
    expect(store.outbox.byTelegramMessage(222, 42)).toBeUndefined();
    expect(store.outbox.byTelegramMessage(111, 43)).toBeUndefined();
    store.close();
  });
});

describe('items being sized', () => {
  it('records results, backoffs and answers, and counts them per status', () => {
    const { store, clock } = makeStore();
    const item = store.items.create(makeNewItem({ state: 'proposed', sizing: 'pending' }));
    const review = store.items.create(makeNewItem({ state: 'proposed' }));
    expect(review.sizing).toBeNull();
    expect(store.items.dueForSizing(clock.now).map((i) => i.id)).toEqual([item.id]);

    expect(store.items.retrySizing(item.id, clock.now + MINUTE, true)).toBe(1);
    expect(store.items.retrySizing(item.id, clock.now + MINUTE, false)).toBe(1);
    expect(store.items.dueForSizing(clock.now)).toEqual([]);
    expect(store.items.dueForSizing(clock.now + MINUTE).map((i) => i.id)).toEqual([item.id]);

    store.items.recordSizing(item.id, { sizing: 'asked', report: { verdict: 'needs_decision', class: 'small' }, lowUsd: 0.36, highUsd: 1.2 });
    expect(store.items.get(item.id)).toMatchObject({ sizing: 'asked', notBefore: null, estimateLowUsd: 0.36, estimateHighUsd: 1.2 });
    expect(store.items.sizeReport(item.id)).toEqual({ verdict: 'needs_decision', class: 'small' });
    expect(store.items.countSizing()).toEqual({ asked: 1 });
    // The failed attempts were cleared with the result.
    expect(store.items.retrySizing(item.id, clock.now, true)).toBe(1);

    store.items.resize(item.id, 'Add a flag\n\nanswer');
    expect(store.items.get(item.id)).toMatchObject({ request: 'Add a flag\n\nanswer', sizing: 'pending', estimateLowUsd: null, notBefore: null });
    expect(store.items.sizeReport(item.id)).toBeNull();
    expect(store.items.countSizing()).toEqual({ pending: 1 });
    store.close();
  });

  it('offers only queued, unstarted items of the same repo for bundling, newest first', () => {
    const { store } = makeStore();
    const item = store.items.create(makeNewItem({ state: 'proposed', sizing: 'pending' }));
    const a = store.items.create(makeNewItem({ title: 'a' }));
    const b = store.items.create(makeNewItem({ title: 'b' }));
    const started = store.items.create(makeNewItem({ title: 'started' }));
    store.items.setBranch(started.id, 'nightshift/x');
    store.items.create(makeNewItem({ title: 'site', repo: 'me/site' }));
    store.items.create(makeNewItem({ title: 'proposed', state: 'proposed', sizing: 'pending' }));

    expect(store.items.bundleable('me/app', item.id, 10).map((i) => i.title)).toEqual(['b', 'a']);
    expect(store.items.bundleable('me/app', item.id, 1).map((i) => i.id)).toEqual([b.id]);
    expect(store.items.bundleable('me/app', a.id, 10).map((i) => i.id)).toEqual([b.id]);
    store.close();
  });
});
