import { afterEach, describe, expect, it } from 'vitest';
import { BUTTON_TOKEN_BYTES, type Decider } from '../../src/store/cards.js';
import type { Item, NewItem } from '../../src/store/items.js';
import type { Store } from '../../src/store/open-store.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

const ALICE: Decider = { id: 111, name: '@alice' };
const BOB: Decider = { id: 222, name: 'Bob' };
const MINUTE = 60_000;

const stores: Store[] = [];
function fresh() {
  const made = makeStore();
  stores.push(made.store);
  return made;
}
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
});

/** An item moved through the legal states to `ready`. */
function readyItem(store: Store, overrides: Partial<NewItem> = {}): Item {
  const item = store.items.create(makeNewItem(overrides));
  store.items.transition(item.id, 'building');
  store.items.transition(item.id, 'reviewing');
  return store.items.transition(item.id, 'ready');
}

/** An outbox row marked sent, as the message a card is shown in. */
function sentMessage(store: Store, chatId = 111, messageId = 900): number {
  const [id] = store.outbox.enqueue({ chatId, text: 'card' });
  store.outbox.markSent(id!, messageId);
  return id!;
}

describe('cards', () => {
  it('supersedes the held and open cards of the item when a newer card is made, and leaves other items and claimed cards alone', () => {
    const { store } = fresh();
    const item = readyItem(store);
    const other = readyItem(store);
    const held = store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111, held: true });
    const open = store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111 });
    const claimed = store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111 });
    store.cards.claim(claimed.id, 'reject', ALICE);
    const ofOther = store.cards.create({ kind: 'review', itemId: other.id, repo: 'me/app', chatId: 111 });
    const checkpoint = store.cards.create({ kind: 'checkpoint', repo: 'me/app', chatId: 111, checkpointId: store.checkpoints.create('me/app', 2).id });

    const newest = store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111, headSha: 'b'.repeat(40) });

    expect(newest.status).toBe('open');
    expect(store.cards.get(held.id)?.status).toBe('superseded');
    expect(store.cards.get(open.id)?.status).toBe('superseded');
    // A decision in progress is not pulled from under its decider.
    expect(store.cards.get(claimed.id)?.status).toBe('deciding');
    expect(store.cards.get(ofOther.id)?.status).toBe('open');
    expect(store.cards.get(checkpoint.id)?.status).toBe('open');
    expect(store.cards.liveOfItem(item.id)?.id).toBe(newest.id);
  });

  it('opens a held card when it is shown, keeping its head unless a newer one is given, and never reopens a decided card', () => {
    const { store, clock } = fresh();
    const item = readyItem(store);
    const card = store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111, headSha: 'a'.repeat(40), held: true, deliverAt: clock.now + MINUTE });
    expect(card).toMatchObject({ status: 'held', deliverAt: clock.now + MINUTE, shownAt: null, outboxId: null });

    clock.now += MINUTE;
    const outboxId = sentMessage(store);
    store.cards.shown(card.id, { outboxId, html: '<b>card</b>' });
    expect(store.cards.get(card.id)).toMatchObject({ status: 'open', outboxId, html: '<b>card</b>', shownAt: clock.now, headSha: 'a'.repeat(40) });

    store.cards.shown(card.id, { outboxId, html: 'again', headSha: 'c'.repeat(40) });
    expect(store.cards.get(card.id)?.headSha).toBe('c'.repeat(40));

    store.cards.decide(card.id, 'approve', 'merged 1234567', ALICE);
    store.cards.shown(card.id, { outboxId, html: 'late redelivery' });
    expect(store.cards.get(card.id)).toMatchObject({ status: 'decided', html: 'again' });
  });

  it('makes buttons with fresh opaque tokens that fit callback_data, bound to the message that carries them', () => {
    const { store } = fresh();
    const card = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
    const buttons = store.cards.addButtons(card.id, [{ action: 'approve' }, { action: 'defer', arg: 'hour' }, { action: 'reject' }]);
    const loose = store.cards.addButtons(null, [{ action: 'delete-lesson', arg: '3' }]);

    const tokens = [...buttons, ...loose].map((b) => b.token);
    expect(new Set(tokens).size).toBe(4);
    for (const token of tokens) {
      expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(Buffer.from(token, 'base64url')).toHaveLength(BUTTON_TOKEN_BYTES);
      expect(Buffer.byteLength(token)).toBeLessThanOrEqual(64);
      // The token says nothing about what it does.
      expect(token).not.toMatch(/approve|defer|reject|lesson/);
    }
    expect(store.cards.buttons(card.id).map((b) => [b.action, b.arg])).toEqual([
      ['approve', null],
      ['defer', 'hour'],
      ['reject', null],
    ]);
    expect(store.cards.button(loose[0]!.token)).toMatchObject({ cardId: null, action: 'delete-lesson', arg: '3', outboxId: null, usedAt: null });

    const outboxId = sentMessage(store);
    store.cards.attachButtons(tokens.slice(0, 2), outboxId);
    expect(store.cards.button(tokens[0]!)?.outboxId).toBe(outboxId);
    expect(store.cards.button(tokens[1]!)?.outboxId).toBe(outboxId);
    expect(store.cards.button(tokens[2]!)?.outboxId).toBeNull();
    expect(store.cards.button('AAAAAAAAAAAAAAAA')).toBeUndefined();
  });

  it('uses a one-shot button once', () => {
    const { store, clock } = fresh();
    const [button] = store.cards.addButtons(null, [{ action: 'resume-repo', arg: 'me/app' }]);
    expect(store.cards.useButton(button!.token)).toBe(true);
    expect(store.cards.button(button!.token)?.usedAt).toBe(clock.now);
    clock.now += MINUTE;
    expect(store.cards.useButton(button!.token)).toBe(false);
    expect(store.cards.button(button!.token)?.usedAt).toBe(clock.now - MINUTE);
    expect(store.cards.useButton('never-made-token')).toBe(false);
  });

  it('gives a card exactly one claimed decision, and a released card can be claimed again', () => {
    const { store, clock } = fresh();
    const card = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });

    expect(store.cards.claim(card.id, 'approve', ALICE)).toBe(true);
    expect(store.cards.claim(card.id, 'reject', BOB)).toBe(false);
    expect(store.cards.claim(card.id, 'approve', ALICE)).toBe(false);
    expect(store.cards.get(card.id)).toMatchObject({ status: 'deciding', decision: 'approve', decidedBy: ALICE.id, decidedByName: '@alice', decidedAt: clock.now });
    expect(store.cards.deciding().map((c) => c.id)).toEqual([card.id]);

    expect(store.cards.release(card.id)).toBe(true);
    expect(store.cards.get(card.id)).toMatchObject({ status: 'open', decision: null, decidedBy: null, decidedByName: null, decidedAt: null });
    expect(store.cards.release(card.id)).toBe(false);
    expect(store.cards.deciding()).toEqual([]);

    expect(store.cards.claim(card.id, 'reject', BOB)).toBe(true);
    expect(store.cards.get(card.id)).toMatchObject({ decision: 'reject', decidedByName: 'Bob' });
  });

  it('records the decision once, keeping who claimed it and when', () => {
    const { store, clock } = fresh();
    const item = readyItem(store);
    const card = store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111 });
    const claimedAt = clock.now;
    store.cards.claim(card.id, 'approve', ALICE);
    clock.now += 5 * MINUTE;

    // A decision finished without a decider (a restart settling it) keeps the claimer.
    expect(store.cards.decide(card.id, 'approve', 'merged 1234567')).toBe(true);
    expect(store.cards.get(card.id)).toMatchObject({ status: 'decided', outcome: 'merged 1234567', decidedBy: ALICE.id, decidedByName: '@alice', decidedAt: claimedAt });
    expect(store.cards.decide(card.id, 'reject', 'rejected: late', BOB)).toBe(false);
    expect(store.cards.supersede(card.id, 'too late')).toBe(false);
    expect(store.cards.claim(card.id, 'reject', BOB)).toBe(false);
    expect(store.cards.get(card.id)?.outcome).toBe('merged 1234567');

    // An open card decided directly takes the decider given.
    const other = store.cards.create({ kind: 'checkpoint', repo: 'me/app', chatId: 111 });
    expect(store.cards.decide(other.id, 'on-track', 'on track', BOB)).toBe(true);
    expect(store.cards.get(other.id)).toMatchObject({ decidedBy: BOB.id, decidedAt: clock.now });
  });

  it('supersedes a held, open or claimed card with a reason, and a held card cannot be decided', () => {
    const { store } = fresh();
    const item = readyItem(store);
    const other = readyItem(store);
    const third = readyItem(store);
    const held = store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111, held: true });
    const claimed = store.cards.create({ kind: 'review', itemId: other.id, repo: 'me/app', chatId: 111 });
    store.cards.claim(claimed.id, 'approve', ALICE);
    const open = store.cards.create({ kind: 'review', itemId: third.id, repo: 'me/app', chatId: 111 });

    expect(store.cards.decide(held.id, 'approve', 'merged')).toBe(false);
    expect(store.cards.claim(held.id, 'approve', ALICE)).toBe(false);
    expect(store.cards.supersede(held.id, 'the item is no longer ready')).toBe(true);
    expect(store.cards.supersede(claimed.id, 'head moved to 1234567')).toBe(true);
    expect(store.cards.supersede(open.id, 'newer card')).toBe(true);
    expect(store.cards.get(claimed.id)).toMatchObject({ status: 'superseded', outcome: 'head moved to 1234567' });
    expect(store.cards.supersede(claimed.id, 'again')).toBe(false);
  });

  it('lists held cards oldest first and counts the review cards still waiting for a decision', () => {
    const { store } = fresh();
    const a = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111, held: true });
    const b = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111, held: true });
    store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
    const claimed = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
    store.cards.claim(claimed.id, 'approve', ALICE);
    store.cards.create({ kind: 'checkpoint', repo: 'me/app', chatId: 111 });

    expect(store.cards.held().map((c) => c.id)).toEqual([a.id, b.id]);
    // Held and open review cards; not the one being decided, not the checkpoint.
    expect(store.cards.countWaiting()).toBe(3);
  });

  it('finds ready items that have no live card (a crash between the review and its card)', () => {
    const { store } = fresh();
    const bare = readyItem(store);
    const withHeld = readyItem(store);
    const withClaimed = readyItem(store);
    const withDecided = readyItem(store);
    const withSuperseded = readyItem(store);
    store.items.create(makeNewItem()); // queued, never ready
    store.cards.create({ kind: 'review', itemId: withHeld.id, repo: 'me/app', chatId: 111, held: true });
    const claimed = store.cards.create({ kind: 'review', itemId: withClaimed.id, repo: 'me/app', chatId: 111 });
    store.cards.claim(claimed.id, 'reject', ALICE);
    const decided = store.cards.create({ kind: 'review', itemId: withDecided.id, repo: 'me/app', chatId: 111 });
    store.cards.decide(decided.id, 'defer', 'deferred', ALICE);
    const superseded = store.cards.create({ kind: 'review', itemId: withSuperseded.id, repo: 'me/app', chatId: 111 });
    store.cards.supersede(superseded.id, 'head moved');

    expect(store.cards.readyItemsWithoutCard()).toEqual([bare.id, withDecided.id, withSuperseded.id]);
  });

  it('finds the item’s newest live card, and supersedes its cards on cancel unless one is being decided', () => {
    const { store } = fresh();
    const item = readyItem(store);
    const decided = store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111 });
    store.cards.decide(decided.id, 'defer', 'deferred', ALICE);
    expect(store.cards.liveOfItem(item.id)).toBeUndefined();

    const open = store.cards.create({ kind: 'review', itemId: item.id, repo: 'me/app', chatId: 111 });
    expect(store.cards.liveOfItem(item.id)?.id).toBe(open.id);
    store.cards.claim(open.id, 'approve', ALICE);
    expect(store.cards.liveOfItem(item.id)?.status).toBe('deciding');
    expect(store.cards.supersedeOfItem(item.id, 'the item was cancelled')).toBe(false);
    expect(store.cards.get(open.id)?.status).toBe('deciding');

    store.cards.release(open.id);
    expect(store.cards.supersedeOfItem(item.id, 'the item was cancelled')).toBe(true);
    expect(store.cards.get(open.id)).toMatchObject({ status: 'superseded', outcome: 'the item was cancelled' });
    expect(store.cards.get(decided.id)?.status).toBe('decided');
    // An item with no card at all can be cancelled.
    expect(store.cards.supersedeOfItem(readyItem(store).id, 'the item was cancelled')).toBe(true);
  });

  it('lists decided cards until both their follow-ups and their outcome message are done', () => {
    const { store, clock } = fresh();
    const card = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
    const open = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
    expect(store.cards.unfinished()).toEqual([]);

    store.cards.claim(card.id, 'approve', ALICE);
    store.cards.decide(card.id, 'approve', 'merged (squash)');
    expect(store.cards.unfinished().map((c) => [c.id, c.followedUpAt, c.presentedAt])).toEqual([[card.id, null, null]]);
    store.cards.followedUp(card.id);
    expect(store.cards.unfinished().map((c) => [c.id, c.followedUpAt, c.presentedAt])).toEqual([[card.id, clock.now, null]]);
    store.cards.presented(card.id);
    expect(store.cards.unfinished()).toEqual([]);
    expect(store.cards.get(open.id)).toMatchObject({ followedUpAt: null, presentedAt: null });
  });

  it('finds open cards whose message Telegram refused for good', () => {
    const { store } = fresh();
    const show = (outboxId: number) => {
      const card = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
      store.cards.shown(card.id, { outboxId, html: 'card' });
      return card;
    };
    const [failedId, pendingId, failedDecidedId] = store.outbox.enqueue({ chatId: 111, text: 'a' }, { chatId: 222, text: 'b' }, { chatId: 333, text: 'c' });
    store.outbox.markFailed(failedId!, 'Forbidden: bot was blocked by the user');
    store.outbox.markFailed(failedDecidedId!, 'Forbidden: bot was blocked by the user');
    const refused = show(failedId!);
    show(pendingId!);
    show(sentMessage(store));
    const decided = show(failedDecidedId!);
    store.cards.decide(decided.id, 'approve', 'merged', ALICE);

    expect(store.cards.undelivered().map((c) => c.id)).toEqual([refused.id]);
  });

  it('lists the open review cards oldest first', () => {
    const { store } = fresh();
    const a = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
    store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111, held: true });
    const claimed = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
    store.cards.claim(claimed.id, 'approve', ALICE);
    store.cards.create({ kind: 'checkpoint', repo: 'me/app', chatId: 111 });
    const b = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
    expect(store.cards.openReviewCards().map((c) => c.id)).toEqual([a.id, b.id]);
  });

  describe('medianDecisionMs', () => {
    /** A card shown at `shownAt` (its message sent `sentAfter` later) and decided by a human at `decidedAt`. */
    function decidedCard(store: Store, clock: { now: number }, at: { shownAt: number; sentAfter?: number; decidedAt: number }, by: Decider | null = ALICE) {
      clock.now = at.shownAt;
      const card = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111, held: true });
      const [outboxId] = store.outbox.enqueue({ chatId: 111, text: 'card' });
      store.cards.shown(card.id, { outboxId: outboxId!, html: 'card' });
      if (at.sentAfter !== undefined) {
        clock.now = at.shownAt + at.sentAfter;
        store.outbox.markSent(outboxId!, 1000 + card.id);
      }
      clock.now = at.decidedAt;
      if (by) store.cards.claim(card.id, 'approve', by);
      store.cards.decide(card.id, 'approve', 'merged');
      return card;
    }

    it('is undefined with no human decision in the window', () => {
      const { store, clock } = fresh();
      expect(store.cards.medianDecisionMs(0)).toBeUndefined();
      // Decided without anyone tapping (no decider): not a human's decision time.
      decidedCard(store, clock, { shownAt: clock.now, decidedAt: clock.now + MINUTE }, null);
      expect(store.cards.medianDecisionMs(0)).toBeUndefined();
    });

    it('measures from when the message reached the phone, and takes the middle of an odd or the mean of the middle two of an even count', () => {
      const { store, clock } = fresh();
      const t0 = clock.now;
      // Shown at t0 but only sent 10 minutes later (an outage): 5 minutes to decide, not 15.
      decidedCard(store, clock, { shownAt: t0, sentAfter: 10 * MINUTE, decidedAt: t0 + 15 * MINUTE });
      decidedCard(store, clock, { shownAt: t0 + 20 * MINUTE, decidedAt: t0 + 21 * MINUTE });
      decidedCard(store, clock, { shownAt: t0 + 30 * MINUTE, decidedAt: t0 + 90 * MINUTE });
      expect(store.cards.medianDecisionMs(t0)).toBe(5 * MINUTE);

      decidedCard(store, clock, { shownAt: t0 + 100 * MINUTE, decidedAt: t0 + 109 * MINUTE });
      expect(store.cards.medianDecisionMs(t0)).toBe(7 * MINUTE);
    });

    it('counts only decisions made since the window start, and ignores cards still open', () => {
      const { store, clock } = fresh();
      const t0 = clock.now;
      decidedCard(store, clock, { shownAt: t0, decidedAt: t0 + 60 * MINUTE });
      decidedCard(store, clock, { shownAt: t0 + 100 * MINUTE, decidedAt: t0 + 102 * MINUTE });
      const open = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
      store.cards.shown(open.id, { outboxId: sentMessage(store), html: 'card' });
      expect(store.cards.medianDecisionMs(t0 + 61 * MINUTE)).toBe(2 * MINUTE);
    });
  });

  describe('awaiting replies', () => {
    it('waits for the user’s next text until it expires, and lists the expired ones', () => {
      const { store, clock } = fresh();
      const card = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
      const reply = { chatId: 111, userId: ALICE.id, kind: 'reject-reason' as const, cardId: card.id, expiresAt: clock.now + 30 * MINUTE };
      store.cards.awaitReply(reply);

      expect(store.cards.awaitedReply(111, ALICE.id)).toEqual(reply);
      expect(store.cards.awaitedReply(111, BOB.id)).toBeUndefined();
      expect(store.cards.awaitedReply(222, ALICE.id)).toBeUndefined();
      expect(store.cards.expiredReplies()).toEqual([]);

      clock.now += 30 * MINUTE;
      // At the expiry instant it is expired for both readers, never for one and not the other.
      expect(store.cards.awaitedReply(111, ALICE.id)).toBeUndefined();
      expect(store.cards.expiredReplies()).toEqual([reply]);
    });

    it('keeps one question per user and chat: a newer one replaces the older', () => {
      const { store, clock } = fresh();
      const first = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
      const second = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
      store.cards.awaitReply({ chatId: 111, userId: ALICE.id, kind: 'reject-reason', cardId: first.id, expiresAt: clock.now + MINUTE });
      store.cards.awaitReply({ chatId: 111, userId: ALICE.id, kind: 'reject-reason', cardId: second.id, expiresAt: clock.now + 2 * MINUTE });
      expect(store.cards.awaitedReply(111, ALICE.id)).toMatchObject({ cardId: second.id, expiresAt: clock.now + 2 * MINUTE });
    });

    it('stops waiting by user or by card', () => {
      const { store, clock } = fresh();
      const card = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
      const other = store.cards.create({ kind: 'review', itemId: readyItem(store).id, repo: 'me/app', chatId: 111 });
      const expiresAt = clock.now + MINUTE;
      store.cards.awaitReply({ chatId: 111, userId: ALICE.id, kind: 'reject-reason', cardId: card.id, expiresAt });
      store.cards.awaitReply({ chatId: 111, userId: BOB.id, kind: 'reject-reason', cardId: card.id, expiresAt });
      store.cards.awaitReply({ chatId: 333, userId: BOB.id, kind: 'reject-reason', cardId: other.id, expiresAt });

      store.cards.dropReply(111, ALICE.id);
      expect(store.cards.awaitedReply(111, ALICE.id)).toBeUndefined();
      expect(store.cards.awaitedReply(111, BOB.id)?.cardId).toBe(card.id);

      store.cards.dropRepliesOf(card.id);
      expect(store.cards.awaitedReply(111, BOB.id)).toBeUndefined();
      expect(store.cards.awaitedReply(333, BOB.id)?.cardId).toBe(other.id);
    });
  });
});

describe('lessons', () => {
  it('stores lessons per repo, oldest first, and deletes one softly and once', () => {
    const { store, clock } = fresh();
    const item = store.items.create(makeNewItem());
    const a = store.lessons.add({ repo: 'me/app', text: 'too big', itemId: item.id, createdBy: ALICE.id });
    clock.now += MINUTE;
    const other = store.lessons.add({ repo: 'me/api', text: 'wrong approach' });
    const b = store.lessons.add({ repo: 'me/app', text: 'not needed' });

    expect(a).toEqual({ id: a.id, repo: 'me/app', text: 'too big', itemId: item.id, createdAt: clock.now - MINUTE });
    expect(store.lessons.list('me/app').map((l) => l.text)).toEqual(['too big', 'not needed']);
    expect(store.lessons.list().map((l) => l.id)).toEqual([other.id, a.id, b.id]);
    expect(store.lessons.list('me/none')).toEqual([]);

    expect(store.lessons.remove(a.id)).toBe(true);
    expect(store.lessons.remove(a.id)).toBe(false);
    expect(store.lessons.remove(9999)).toBe(false);
    expect(store.lessons.get(a.id)).toBeUndefined();
    expect(store.lessons.list('me/app').map((l) => l.id)).toEqual([b.id]);
  });
});

describe('checkpoints', () => {
  it('starts a checkpoint pending, finishes it with its report, and knows the latest per repo', () => {
    const { store } = fresh();
    const first = store.checkpoints.create('me/app', 5);
    const other = store.checkpoints.create('me/api', 1);
    const second = store.checkpoints.create('me/app', 10);
    expect(first).toMatchObject({ repo: 'me/app', mergesTotal: 5, status: 'pending', report: null });
    expect(store.checkpoints.pending().map((c) => c.id)).toEqual([first.id, other.id, second.id]);

    const report = { direction: 'inward <ok> & "fine"', concerns: [{ severity: 'high', text: 'x' }], onTrack: false };
    store.checkpoints.finish(first.id, 'done', report);
    store.checkpoints.finish(other.id, 'failed', { error: 'model down' });
    expect(store.checkpoints.get(first.id)).toMatchObject({ status: 'done', report });
    expect(store.checkpoints.pending().map((c) => c.id)).toEqual([second.id]);
    expect(store.checkpoints.last('me/app')?.id).toBe(second.id);
    expect(store.checkpoints.last('me/none')).toBeUndefined();
  });

  it('counts a repo’s merged items and lists those merged since a time, oldest first', () => {
    const { store, clock } = fresh();
    const merge = (repo: string, title: string) => {
      const item = readyItem(store, { repo, title });
      store.items.setMergeCommit(item.id, `${item.id}`.padStart(40, '0'));
      return store.items.transition(item.id, 'merged', 'merged');
    };
    const early = merge('me/app', 'early');
    clock.now += MINUTE;
    const since = clock.now;
    const late = merge('me/app', 'late');
    merge('me/api', 'elsewhere');
    readyItem(store, { repo: 'me/app' });

    expect(store.checkpoints.mergedCount('me/app')).toBe(2);
    expect(store.checkpoints.mergedSince('me/app', since)).toEqual([{ id: late.id, title: 'late', prNumber: null, mergeCommitSha: late.mergeCommitSha, at: since }]);
    expect(store.checkpoints.mergedSince('me/app', 0).map((m) => m.id)).toEqual([early.id, late.id]);
  });

  it('pauses a repo once (the first reason stands), holds its queued items back, and resumes it', () => {
    const { store, clock } = fresh();
    const paused = store.items.create(makeNewItem({ repo: 'me/app' }));
    const elsewhere = store.items.create(makeNewItem({ repo: 'me/api' }));
    store.checkpoints.pause('me/app', 'paused at drift checkpoint 1');
    clock.now += MINUTE;
    store.checkpoints.pause('me/app', 'paused again');
    expect(store.checkpoints.paused()).toEqual([{ repo: 'me/app', reason: 'paused at drift checkpoint 1', pausedAt: clock.now - MINUTE }]);
    expect(store.items.oldestQueued()?.id).toBe(elsewhere.id);

    expect(store.checkpoints.resume('me/app')).toBe(true);
    expect(store.checkpoints.resume('me/app')).toBe(false);
    expect(store.checkpoints.paused()).toEqual([]);
    expect(store.items.oldestQueued()?.id).toBe(paused.id);
  });
});
