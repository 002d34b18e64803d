import { randomBytes } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import { z } from 'zod';

/** What a card asks the human to decide. */
export type CardKind = 'review' | 'checkpoint';
/**
 * held: waiting for the next review session · open: shown, buttons live · deciding: a tap won
 * and its work is in progress (a merge, a reject waiting for its reason) · decided · superseded:
 * a newer card (or a moved head) replaced it; its buttons are refused.
 */
export type CardStatus = 'held' | 'open' | 'deciding' | 'decided' | 'superseded';

/** A card as stored. */
export interface Card {
  readonly id: number;
  readonly kind: CardKind;
  readonly itemId: number | null;
  readonly checkpointId: number | null;
  readonly repo: string;
  readonly chatId: number;
  /** The PR head the card shows; every button of a review card is bound to it. */
  readonly headSha: string | null;
  readonly status: CardStatus;
  readonly deliverAt: number | null;
  /** The outbox row of the message that carries the buttons. */
  readonly outboxId: number | null;
  /** The card's text as delivered (without notes added later). */
  readonly html: string | null;
  readonly decision: string | null;
  readonly decidedBy: number | null;
  readonly decidedByName: string | null;
  readonly outcome: string | null;
  readonly createdAt: number;
  readonly shownAt: number | null;
  readonly decidedAt: number | null;
  readonly followedUpAt: number | null;
  readonly presentedAt: number | null;
}

/** One button: `token` is the button's whole callback_data. */
export interface CardButton {
  readonly token: string;
  readonly cardId: number | null;
  readonly action: string;
  readonly arg: string | null;
  /** The outbox row of the message that carries the button; a tap on any other message is refused. */
  readonly outboxId: number | null;
  readonly usedAt: number | null;
}

/** Who tapped. */
export interface Decider {
  readonly id: number;
  /** "@username" or the first name. */
  readonly name: string;
}

/** A Reject's question: its reason is the user's next text message. */
export interface AwaitingReply {
  readonly chatId: number;
  readonly userId: number;
  readonly kind: 'reject-reason';
  readonly cardId: number;
  readonly expiresAt: number;
}

/** A sizing question about an item: the user's next text message (until `expiresAt`) is its answer. */
export interface AwaitingAnswer {
  readonly chatId: number;
  readonly userId: number;
  readonly itemId: number;
  readonly expiresAt: number;
}

const cardRow = z.object({
  id: z.number(),
  kind: z.enum(['review', 'checkpoint']),
  item_id: z.number().nullable(),
  checkpoint_id: z.number().nullable(),
  repo: z.string(),
  chat_id: z.number(),
  head_sha: z.string().nullable(),
  status: z.enum(['held', 'open', 'deciding', 'decided', 'superseded']),
  deliver_at: z.number().nullable(),
  outbox_id: z.number().nullable(),
  html: z.string().nullable(),
  decision: z.string().nullable(),
  decided_by: z.number().nullable(),
  decided_by_name: z.string().nullable(),
  outcome: z.string().nullable(),
  created_at: z.number(),
  shown_at: z.number().nullable(),
  decided_at: z.number().nullable(),
  followed_up_at: z.number().nullable(),
  presented_at: z.number().nullable(),
});

function toCard(row: unknown): Card {
  const r = cardRow.parse(row);
  return {
    id: r.id,
    kind: r.kind,
    itemId: r.item_id,
    checkpointId: r.checkpoint_id,
    repo: r.repo,
    chatId: r.chat_id,
    headSha: r.head_sha,
    status: r.status,
    deliverAt: r.deliver_at,
    outboxId: r.outbox_id,
    html: r.html,
    decision: r.decision,
    decidedBy: r.decided_by,
    decidedByName: r.decided_by_name,
    outcome: r.outcome,
    createdAt: r.created_at,
    shownAt: r.shown_at,
    decidedAt: r.decided_at,
    followedUpAt: r.followed_up_at,
    presentedAt: r.presented_at,
  };
}

/** Random bytes per button token: 16 base64url characters, far under Telegram's 64-byte limit. */
export const BUTTON_TOKEN_BYTES = 12;

/** Cards, their buttons, and the questions waiting for a typed answer. */
export function createCards(db: Database, now: () => number) {
  const insert = db.prepare(
    `INSERT INTO cards (kind, item_id, checkpoint_id, repo, chat_id, head_sha, status, deliver_at, created_at)
     VALUES (@kind, @itemId, @checkpointId, @repo, @chatId, @headSha, @status, @deliverAt, @at)`,
  );
  const byId = db.prepare('SELECT * FROM cards WHERE id = ?');
  const supersedeOthers = db.prepare(
    `UPDATE cards SET status = 'superseded' WHERE item_id = ? AND id != ? AND status IN ('held', 'open')`,
  );
  const setShown = db.prepare(
    `UPDATE cards SET status = 'open', outbox_id = @outboxId, html = @html, shown_at = @at, head_sha = coalesce(@headSha, head_sha)
     WHERE id = @id AND status IN ('held', 'open')`,
  );
  const markFollowedUp = db.prepare('UPDATE cards SET followed_up_at = ? WHERE id = ?');
  const markPresented = db.prepare('UPDATE cards SET presented_at = ? WHERE id = ?');
  const unfinished = db.prepare(`SELECT * FROM cards WHERE status = 'decided' AND (followed_up_at IS NULL OR presented_at IS NULL) ORDER BY id`);
  const undelivered = db.prepare(
    `SELECT c.* FROM cards c JOIN outbox o ON o.id = c.outbox_id WHERE c.status = 'open' AND o.status = 'failed' ORDER BY c.id`,
  );
  const liveOfItem = db.prepare(`SELECT * FROM cards WHERE item_id = ? AND status IN ('held', 'open', 'deciding') ORDER BY id DESC LIMIT 1`);
  const decidingOfItem = db.prepare(`SELECT id FROM cards WHERE item_id = ? AND status = 'deciding' LIMIT 1`);
  const supersedeItem = db.prepare(`UPDATE cards SET status = 'superseded', outcome = ? WHERE item_id = ? AND status IN ('held', 'open')`);
  const insertButton = db.prepare('INSERT INTO buttons (token, card_id, action, arg) VALUES (?, ?, ?, ?)');
  const buttonByToken = db.prepare('SELECT * FROM buttons WHERE token = ?');
  const buttonsOf = db.prepare('SELECT * FROM buttons WHERE card_id = ? ORDER BY rowid');
  const attach = db.prepare('UPDATE buttons SET outbox_id = ? WHERE token = ?');
  const use = db.prepare('UPDATE buttons SET used_at = ? WHERE token = ? AND used_at IS NULL');
  const useOfMessage = db.prepare('UPDATE buttons SET used_at = ? WHERE outbox_id = ? AND used_at IS NULL');
  const retireOfItem = db.prepare(
    `UPDATE buttons SET used_at = ? WHERE card_id IS NULL AND arg = ? AND used_at IS NULL AND action IN (SELECT value FROM json_each(?))
     RETURNING outbox_id`,
  );
  const claim = db.prepare(
    `UPDATE cards SET status = 'deciding', decision = @decision, decided_by = @userId, decided_by_name = @userName, decided_at = @at
     WHERE id = @id AND status = 'open'`,
  );
  const release = db.prepare(
    `UPDATE cards SET status = 'open', decision = NULL, decided_by = NULL, decided_by_name = NULL, decided_at = NULL
     WHERE id = ? AND status = 'deciding'`,
  );
  const decide = db.prepare(
    `UPDATE cards SET status = 'decided', decision = @decision, outcome = @outcome,
       decided_by = coalesce(decided_by, @userId), decided_by_name = coalesce(decided_by_name, @userName), decided_at = coalesce(decided_at, @at)
     WHERE id = @id AND status IN ('open', 'deciding')`,
  );
  const supersede = db.prepare(`UPDATE cards SET status = 'superseded', outcome = ? WHERE id = ? AND status IN ('held', 'open', 'deciding')`);
  const held = db.prepare(`SELECT * FROM cards WHERE status = 'held' ORDER BY id`);
  const openReview = db.prepare(`SELECT * FROM cards WHERE status = 'open' AND kind = 'review' ORDER BY id`);
  const deciding = db.prepare(`SELECT * FROM cards WHERE status = 'deciding' ORDER BY id`);
  const waiting = db.prepare(`SELECT count(*) AS n FROM cards WHERE kind = 'review' AND status IN ('held', 'open')`);
  // From the moment the card reached the phone (or was shown, when the send time is unknown) to
  // the tap, for review cards a person decided.
  const decisionTimes = db.prepare(
    `SELECT c.decided_at - coalesce(o.sent_at, c.shown_at) AS ms FROM cards c LEFT JOIN outbox o ON o.id = c.outbox_id
     WHERE c.kind = 'review' AND c.status = 'decided' AND c.decided_by IS NOT NULL AND c.shown_at IS NOT NULL
       AND c.decided_at >= ? AND c.decided_at < ? ORDER BY ms`,
  );
  const readyWithoutCard = db.prepare(
    `SELECT id FROM items WHERE state = 'ready'
       AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.item_id = items.id AND c.status IN ('held', 'open', 'deciding'))
     ORDER BY id`,
  );
  // One question of each kind per user: a Reject's reason (about a card) and a sizing question (about an item).
  const putReply = db.prepare(
    `INSERT INTO awaiting_replies (chat_id, user_id, kind, card_id, item_id, expires_at) VALUES (@chatId, @userId, @kind, @cardId, @itemId, @expiresAt)
     ON CONFLICT (chat_id, user_id, kind) DO UPDATE SET card_id = excluded.card_id, item_id = excluded.item_id, expires_at = excluded.expires_at`,
  );
  const getReply = db.prepare(`SELECT * FROM awaiting_replies WHERE chat_id = ? AND user_id = ? AND kind = 'reject-reason'`);
  const dropReply = db.prepare(`DELETE FROM awaiting_replies WHERE chat_id = ? AND user_id = ? AND kind = 'reject-reason'`);
  const dropRepliesOf = db.prepare('DELETE FROM awaiting_replies WHERE card_id = ?');
  const expiredReplies = db.prepare(`SELECT * FROM awaiting_replies WHERE expires_at <= ? AND kind = 'reject-reason'`);
  const getAnswer = db.prepare(`SELECT * FROM awaiting_replies WHERE chat_id = ? AND user_id = ? AND kind = 'sizing-answer'`);
  const dropAnswersOf = db.prepare(`DELETE FROM awaiting_replies WHERE item_id = ? AND kind = 'sizing-answer'`);
  const dropExpiredAnswers = db.prepare(`DELETE FROM awaiting_replies WHERE expires_at <= ? AND kind = 'sizing-answer'`);

  const toReply = (row: unknown): AwaitingReply => {
    const r = z.object({ chat_id: z.number(), user_id: z.number(), kind: z.literal('reject-reason'), card_id: z.number(), expires_at: z.number() }).parse(row);
    return { chatId: r.chat_id, userId: r.user_id, kind: r.kind, cardId: r.card_id, expiresAt: r.expires_at };
  };
  const toButton = (row: unknown): CardButton => {
    const r = z
      .object({ token: z.string(), card_id: z.number().nullable(), action: z.string(), arg: z.string().nullable(), outbox_id: z.number().nullable(), used_at: z.number().nullable() })
      .parse(row);
    return { token: r.token, cardId: r.card_id, action: r.action, arg: r.arg, outboxId: r.outbox_id, usedAt: r.used_at };
  };

  return {
    /** A new card; a review card supersedes the item's earlier cards that were still held or open. */
    create(card: { kind: CardKind; repo: string; chatId: number; itemId?: number; checkpointId?: number; headSha?: string; held?: boolean; deliverAt?: number }): Card {
      return db.transaction(() => {
        const { lastInsertRowid } = insert.run({
          kind: card.kind,
          itemId: card.itemId ?? null,
          checkpointId: card.checkpointId ?? null,
          repo: card.repo,
          chatId: card.chatId,
          headSha: card.headSha ?? null,
          status: card.held ? 'held' : 'open',
          deliverAt: card.deliverAt ?? null,
          at: now(),
        });
        const id = Number(lastInsertRowid);
        if (card.itemId !== undefined) supersedeOthers.run(card.itemId, id);
        return toCard(byId.get(id));
      })();
    },
    get(id: number): Card | undefined {
      const row = byId.get(id);
      return row === undefined ? undefined : toCard(row);
    },
    /** Records the message that shows the card (its buttons are on `outboxId`); the card is open. */
    shown(id: number, shown: { outboxId: number; html: string; headSha?: string }): void {
      setShown.run({ id, outboxId: shown.outboxId, html: shown.html, headSha: shown.headSha ?? null, at: now() });
    },
    /** The decided card's follow-ups are done. */
    followedUp(id: number): void {
      markFollowedUp.run(now(), id);
    },
    /** The decided card's outcome is in the outbox. */
    presented(id: number): void {
      markPresented.run(now(), id);
    },
    /** Decided cards whose follow-ups or outcome message a crash interrupted. */
    unfinished(): Card[] {
      return unfinished.all().map(toCard);
    },
    /** Open cards whose message Telegram refused for good (blocked bot, a day offline). */
    undelivered(): Card[] {
      return undelivered.all().map(toCard);
    },
    /** The item's newest live (held, open or deciding) card. */
    liveOfItem(itemId: number): Card | undefined {
      const row = liveOfItem.get(itemId);
      return row === undefined ? undefined : toCard(row);
    },
    /** Supersedes the item's held and open cards (it was cancelled); false if one is being decided. */
    supersedeOfItem(itemId: number, why: string): boolean {
      if (decidingOfItem.get(itemId) !== undefined) return false;
      supersedeItem.run(why, itemId);
      return true;
    },
    /** Creates one button per action (of a card, or of no card when `cardId` is null), each with a fresh random token. */
    addButtons(cardId: number | null, actions: ReadonlyArray<{ action: string; arg?: string }>): CardButton[] {
      return actions.map(({ action, arg }) => {
        const token = randomBytes(BUTTON_TOKEN_BYTES).toString('base64url');
        insertButton.run(token, cardId, action, arg ?? null);
        return { token, cardId, action, arg: arg ?? null, outboxId: null, usedAt: null };
      });
    },
    /** Binds buttons to the message (outbox row) that carries them. */
    attachButtons(tokens: readonly string[], outboxId: number): void {
      for (const token of tokens) attach.run(outboxId, token);
    },
    /**
     * Marks every unused button of one message (outbox row) used: the message takes one
     * decision. Returns how many were unused; 0 means another tap got there first.
     */
    useButtonsOf(outboxId: number): number {
      return useOfMessage.run(now(), outboxId).changes;
    },
    /**
     * Marks the unused card-less buttons with these actions about an item (`arg` is its id)
     * used, and returns the outbox rows of the messages that carried them.
     */
    retireItemButtons(itemId: number, actions: readonly string[]): number[] {
      const rows = retireOfItem.all(now(), String(itemId), JSON.stringify(actions)) as Array<{ outbox_id: number | null }>;
      return [...new Set(rows.map((r) => r.outbox_id).filter((id): id is number => id !== null))];
    },
    /** Marks a one-shot button used; false if it already was. */
    useButton(token: string): boolean {
      return use.run(now(), token).changes === 1;
    },
    /** The button with this token, or undefined (forged, or never made). */
    button(token: string): CardButton | undefined {
      const row = buttonByToken.get(token);
      return row === undefined ? undefined : toButton(row);
    },
    buttons(cardId: number): CardButton[] {
      return buttonsOf.all(cardId).map(toButton);
    },
    /** Claims the card's one decision; false when another tap got there first. */
    claim(id: number, decision: string, by: Decider): boolean {
      return claim.run({ id, decision, userId: by.id, userName: by.name, at: now() }).changes === 1;
    },
    /** Gives a claimed decision back (its work was refused, e.g. checks failing): the card is open again. */
    release(id: number): boolean {
      return release.run(id).changes === 1;
    },
    /** Records the card's final decision and outcome; false if it was already decided or superseded. */
    decide(id: number, decision: string, outcome: string, by?: Decider): boolean {
      return decide.run({ id, decision, outcome, userId: by?.id ?? null, userName: by?.name ?? null, at: now() }).changes === 1;
    },
    /** The card no longer stands (a newer card, a moved head); its buttons are refused. */
    supersede(id: number, why: string): boolean {
      return supersede.run(why, id).changes === 1;
    },
    /** Cards waiting for a review session, oldest first. */
    held(): Card[] {
      return held.all().map(toCard);
    },
    /** Review cards shown and waiting for a decision, oldest first. */
    openReviewCards(): Card[] {
      return openReview.all().map(toCard);
    },
    /** Cards whose decision was claimed but not finished (a crash in the middle). */
    deciding(): Card[] {
      return deciding.all().map(toCard);
    },
    /** Items in `ready` with no live card (a crash between the review's end and its card). */
    readyItemsWithoutCard(): number[] {
      return (readyWithoutCard.all() as Array<{ id: number }>).map((r) => r.id);
    },
    /** Review cards waiting for a decision (held or shown). */
    countWaiting(): number {
      return (waiting.get() as { n: number }).n;
    },
    /** Median ms from showing a card to a human deciding it, over cards decided since `since`. */
    /** Ms from delivery to decision of each review card a person decided in [from, to), shortest first. */
    decisionTimes(from: number, to: number = Number.MAX_SAFE_INTEGER): number[] {
      return (decisionTimes.all(from, to) as Array<{ ms: number | null }>).map((r) => r.ms).filter((ms): ms is number => ms !== null && ms >= 0);
    },
    medianDecisionMs(since: number): number | undefined {
      const times = this.decisionTimes(since);
      if (times.length === 0) return undefined;
      const mid = Math.floor(times.length / 2);
      return times.length % 2 === 1 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
    },
    /** Waits for the user's next text message in the chat as the answer to `kind`. */
    awaitReply(reply: AwaitingReply): void {
      putReply.run({ ...reply, itemId: null });
    },
    /** The question the user's text answers, if one is waiting (expired ones are ignored). */
    awaitedReply(chatId: number, userId: number): AwaitingReply | undefined {
      const row = getReply.get(chatId, userId);
      if (row === undefined) return undefined;
      const reply = toReply(row);
      return reply.expiresAt > now() ? reply : undefined;
    },
    /** Stops waiting for the user's answer. */
    dropReply(chatId: number, userId: number): void {
      dropReply.run(chatId, userId);
    },
    /** Stops waiting for answers about a card. */
    dropRepliesOf(cardId: number): void {
      dropRepliesOf.run(cardId);
    },
    /** Questions nobody answered in time. */
    expiredReplies(): AwaitingReply[] {
      return expiredReplies.all(now()).map(toReply);
    },
    /** Waits for the user's next text message in the chat as the answer to an item's sizing question (replacing an earlier one). */
    awaitAnswer(answer: AwaitingAnswer): void {
      putReply.run({ ...answer, kind: 'sizing-answer', cardId: null });
    },
    /** The sizing question the user's text answers, if one is waiting (expired ones are ignored). */
    awaitedAnswer(chatId: number, userId: number): AwaitingAnswer | undefined {
      const row = getAnswer.get(chatId, userId);
      if (row === undefined) return undefined;
      const r = z.object({ chat_id: z.number(), user_id: z.number(), item_id: z.number(), expires_at: z.number() }).parse(row);
      return r.expires_at > now() ? { chatId: r.chat_id, userId: r.user_id, itemId: r.item_id, expiresAt: r.expires_at } : undefined;
    },
    /** Stops waiting for answers about an item. */
    dropAnswersOf(itemId: number): void {
      dropAnswersOf.run(itemId);
    },
    /** Forgets sizing questions nobody answered in time (their items keep their buttons). */
    dropExpiredAnswers(): number {
      return dropExpiredAnswers.run(now()).changes;
    },
  };
}

/** The cards part of the store. */
export type Cards = ReturnType<typeof createCards>;
