import type { InlineKeyboardMarkup } from 'grammy/types';
import type { Logger } from 'pino';
import { DEFER_CHOICES } from '../domain/defer-until.js';
import { nextReviewSlot, type ReviewSlot } from '../domain/review-hours.js';
import { riskOf, type CardFacts } from '../pipeline/card-facts.js';
import { QUICK_REASONS, type ApproveOutcome, type Decisions, type RejectOutcome } from '../pipeline/decisions.js';
import type { DriftReport } from '../pipeline/drift-checkpoint.js';
import type { Card, CardButton } from '../store/cards.js';
import type { Checkpoint } from '../store/checkpoints.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import { splitHtml } from './format.js';
import type { OutboxSender } from './outbox-sender.js';
import {
  approveNote,
  checkpointKeyboard,
  checkpointText,
  deferKeyboard,
  deferredCardText,
  digestText,
  headMovedCardText,
  mergedCardText,
  rejectedCardText,
  rejectReasonKeyboard,
  rejectReasonText,
  requeueText,
  reviewCardKeyboard,
  reviewCardText,
} from './review-card.js';

/** Collaborators of {@link createCardDesk}. */
export interface CardDeskDeps {
  readonly store: Store;
  readonly sender: Pick<OutboxSender, 'kick'>;
  readonly decisions: Pick<Decisions, 'wakeDeferred' | 'cancelReject' | 'reconcile'>;
  readonly facts: (item: Item) => Promise<CardFacts>;
  /** Review session times; unset: cards go out as items become ready. */
  readonly reviewHours: readonly ReviewSlot[] | undefined;
  readonly timeZone: string;
  /** Whether a card refused for failing checks offers "Merge anyway". */
  readonly allowMergeAnyway: boolean;
  readonly now: () => number;
  readonly log: Logger;
}

/**
 * Sends cards and turns them into their outcomes. A card is a row before it is a message, so
 * a crash between an item becoming ready and its card reaching the phone loses nothing: the
 * next tick finds the row (or the ready item without one) and delivers it.
 */
export function createCardDesk(deps: CardDeskDeps) {
  const { store, sender, log } = deps;
  const delivering = new Set<number>();

  function enqueue(chatId: number, htmlText: string, keyboard: InlineKeyboardMarkup | undefined, tokens: readonly string[], itemId?: number): number {
    const parts = splitHtml(htmlText);
    const ids = store.outbox.enqueue(
      ...parts.map((text, i) => ({ chatId, text, ...(i === parts.length - 1 && keyboard ? { replyMarkup: keyboard } : {}), ...(itemId === undefined ? {} : { itemId }) })),
    );
    const last = ids[ids.length - 1]!;
    if (tokens.length > 0) store.cards.attachButtons(tokens, last);
    return last;
  }

  /** Edits a sent message (by its outbox row): new text, and these buttons (none: buttons removed). */
  function edit(chatId: number, outboxId: number, htmlText: string, keyboard?: InlineKeyboardMarkup): void {
    enqueueEdit(chatId, outboxId, htmlText, keyboard);
    sender.kick();
  }

  // Inside a transaction: the sender is kicked after it commits, so nothing goes out that a rollback would take back.
  function enqueueEdit(chatId: number, outboxId: number, htmlText: string, keyboard?: InlineKeyboardMarkup): void {
    store.outbox.enqueue({ chatId, text: splitHtml(htmlText)[0]!, editOf: outboxId, ...(keyboard && keyboard.inline_keyboard.length > 0 ? { replyMarkup: keyboard } : {}) });
  }

  /** Items the review proposed that still wait for the human's OK. */
  function proposedOf(itemId: number): Item[] {
    const ids = new Set(store.findings.ofItem(itemId).map((f) => f.backlogItemId).filter((id): id is number => id !== null));
    return [...ids].map((id) => store.items.get(id)).filter((i): i is Item => i?.state === 'proposed');
  }

  /** The "Queue #n" rows that outlive the decision. */
  function queueRows(card: Card): InlineKeyboardMarkup {
    const buttons = store.cards.buttons(card.id);
    return reviewCardKeyboard(buttons.filter((b) => b.action === 'queue-item'), { proposed: card.itemId === null ? [] : proposedOf(card.itemId) });
  }

  /** Builds and sends one card now (facts are gathered at delivery, so a held card is fresh). */
  async function deliver(card: Card, known?: CardFacts): Promise<string | undefined> {
    if (delivering.has(card.id)) return undefined;
    delivering.add(card.id);
    try {
      const item = card.itemId === null ? undefined : store.items.get(card.itemId);
      if (!item || item.state !== 'ready') {
        store.cards.supersede(card.id, 'the item is no longer ready');
        return undefined;
      }
      const facts = known ?? (await deps.facts(item));
      const proposed = facts.backlog.filter((b) => b.item.state === 'proposed').map((b) => b.item);
      const text = reviewCardText(facts);
      const risk = riskOf(facts);
      const sent = store.transaction(() => {
        const current = store.cards.get(card.id);
        if (current?.status !== 'held' && !(current?.status === 'open' && current.outboxId === null)) return false;
        const buttons = store.cards.addButtons(card.id, [
          { action: 'approve' },
          { action: 'reject' },
          { action: 'defer-menu' },
          ...DEFER_CHOICES.map((c) => ({ action: 'defer', arg: c })),
          { action: 'back' },
          ...(deps.allowMergeAnyway ? [{ action: 'merge-anyway' }] : []),
          ...QUICK_REASONS.map((r) => ({ action: 'reason', arg: r })),
          { action: 'reason-cancel' },
          ...proposed.map((p) => ({ action: 'queue-item', arg: String(p.id) })),
        ]);
        const onCard = buttons.filter((b) => !['reason', 'reason-cancel'].includes(b.action));
        const outboxId = enqueue(card.chatId, text, reviewCardKeyboard(buttons, { proposed }), onCard.map((b) => b.token), item.id);
        store.cards.shown(card.id, { outboxId, html: text, risk, headSha: facts.headSha });
        return true;
      });
      if (sent) sender.kick();
      log.info({ itemId: item.id, cardId: card.id, risk }, 'review card sent');
      return sent ? risk : undefined;
    } finally {
      delivering.delete(card.id);
    }
  }

  /** Delivers the held cards whose time has come; with review hours, a one-line digest first. */
  async function deliverDue(): Promise<void> {
    const due = store.cards.held().filter((c) => c.kind === 'review' && (c.deliverAt ?? 0) <= deps.now());
    if (due.length === 0) return;
    const session = deps.reviewHours !== undefined && due.some((c) => c.deliverAt !== null && c.deliverAt > c.createdAt);
    if (session) {
      // The digest goes first: gather every card's facts, then send the digest and the cards in order.
      const facts = new Map<number, CardFacts>();
      for (const card of due) {
        const item = card.itemId === null ? undefined : store.items.get(card.itemId);
        if (item?.state === 'ready') facts.set(card.id, await deps.facts(item));
      }
      const risks = [...facts.values()].map(riskOf);
      if (risks.length > 0) {
        const byChat = new Map<number, number>();
        for (const c of due) byChat.set(c.chatId, (byChat.get(c.chatId) ?? 0) + 1);
        for (const chatId of byChat.keys()) store.outbox.enqueue({ chatId, text: digestText(risks) });
      }
      for (const card of due) await deliver(card, facts.get(card.id));
      return;
    }
    for (const card of due) await deliver(card);
  }

  /** Creates the item's card: held for the next review session, or delivered now. */
  async function itemReady(item: Item, opts: { now?: boolean } = {}): Promise<void> {
    const at = deps.now();
    const deliverAt = opts.now || deps.reviewHours === undefined ? at : nextReviewSlot(at, deps.reviewHours, deps.timeZone);
    const card = store.cards.create({ kind: 'review', itemId: item.id, repo: item.repo, chatId: item.chatId, ...(item.headSha ? { headSha: item.headSha } : {}), held: true, deliverAt });
    if (deliverAt <= at) await deliver(card);
    else log.info({ itemId: item.id, deliverAt: new Date(deliverAt).toISOString() }, 'card held for the next review session');
  }

  return {
    itemReady,
    /** /review: delivers this held card now, outside its session. */
    async deliverHeld(cardId: number): Promise<void> {
      const card = store.cards.get(cardId);
      if (card?.status === 'held') await deliver(card);
    },

    /**
     * One tick of the clock: deferred items wake with a fresh card, held cards go out at their
     * session, unanswered reject questions lapse, and a ready item without a card gets one.
     */
    async tick(): Promise<void> {
      for (const item of deps.decisions.wakeDeferred()) {
        log.info({ itemId: item.id }, 'deferral ended; sending a fresh card');
        await itemReady(item, { now: true });
      }
      for (const reply of store.cards.expiredReplies()) {
        store.cards.dropReply(reply.chatId, reply.userId);
        const card = store.cards.get(reply.cardId);
        if (card && deps.decisions.cancelReject(card.id)) {
          store.outbox.enqueue({ chatId: card.chatId, text: `No reason came for rejecting #${card.itemId}, so the card is open again.` });
          sender.kick();
        }
      }
      for (const itemId of store.cards.readyItemsWithoutCard()) {
        const item = store.items.get(itemId);
        if (item) await itemReady(item);
      }
      await deliverDue();
    },

    /** After a restart: settles decisions a crash interrupted, then shows what they ended in. */
    async reconcile(): Promise<void> {
      for (const { card, outcome } of await deps.decisions.reconcile()) {
        const fresh = store.cards.get(card.id)!;
        if (outcome === 'released') {
          if (fresh.outboxId !== null && fresh.html) {
            showOpen(fresh, '⏸ A restart interrupted the last decision on this card; nothing was merged. Decide again.');
          }
        } else showApproved(fresh, outcome);
      }
    },

    /** Shows an approve's outcome on the card. */
    showApproved,

    /** Shows the Defer choices in place of the card's buttons. */
    showDeferMenu(card: Card): void {
      if (card.outboxId === null || !card.html) return;
      edit(card.chatId, card.outboxId, card.html, deferKeyboard(store.cards.buttons(card.id)));
    },

    /** Puts the card's main buttons back. */
    showMain(card: Card): void {
      showOpen(card);
    },

    /** Asks why, after Reject; the quick reasons are buttons on the question. */
    askReason(card: Card, item: Item): void {
      store.transaction(() => {
        const buttons = store.cards.buttons(card.id).filter((b) => b.action === 'reason' || b.action === 'reason-cancel');
        enqueue(card.chatId, rejectReasonText(item), rejectReasonKeyboard(buttons), buttons.map((b) => b.token), item.id);
      });
      sender.kick();
    },

    /** The card after a rejection, the question closed, and the re-queue offer. */
    showRejected(card: Card, outcome: RejectOutcome, by: string, question?: { outboxId: number; text: string }): void {
      store.transaction(() => {
        if (card.outboxId !== null) enqueueEdit(card.chatId, card.outboxId, rejectedCardText(outcome, by), queueRows(card));
        if (question) enqueueEdit(card.chatId, question.outboxId, question.text);
        const buttons = store.cards.addButtons(card.id, [{ action: 'requeue' }, { action: 'drop' }]);
        enqueue(
          card.chatId,
          requeueText(outcome.item),
          { inline_keyboard: [[{ text: '🔁 Re-queue with feedback', callback_data: buttons[0]!.token }, { text: '🗑 Drop', callback_data: buttons[1]!.token }]] },
          buttons.map((b) => b.token),
          outcome.item.id,
        );
      });
      sender.kick();
    },

    /** The card after Defer. */
    showDeferred(card: Card, item: Item, wakeAt: number, by: string): void {
      if (card.outboxId !== null) edit(card.chatId, card.outboxId, deferredCardText(item, wakeAt, deps.now(), by, deps.timeZone), queueRows(card));
    },

    /** A finished drift checkpoint, as a card with On track / Pause building. */
    presentCheckpoint(checkpoint: Checkpoint, report: DriftReport, chatIds: readonly number[]): void {
      store.transaction(() => {
        for (const chatId of chatIds) {
          const card = store.cards.create({ kind: 'checkpoint', checkpointId: checkpoint.id, repo: checkpoint.repo, chatId });
          const buttons = store.cards.addButtons(card.id, [{ action: 'on-track' }, { action: 'pause' }]);
          const text = checkpointText(checkpoint.repo, report);
          const outboxId = enqueue(chatId, text, checkpointKeyboard(buttons), buttons.map((b) => b.token));
          store.cards.shown(card.id, { outboxId, html: text });
        }
      });
      sender.kick();
    },

    /** The checkpoint card after its answer; a pause leaves a Resume button. */
    showCheckpointDecided(card: Card, by: string): void {
      if (card.outboxId === null || !card.html) return;
      store.transaction(() => {
        const paused = card.decision === 'pause';
        const resume = paused ? store.cards.addButtons(null, [{ action: 'resume-repo', arg: card.repo }]) : [];
        const line = paused ? `⏸ Building ${card.repo} is paused (by ${by}). Queued items wait until you resume.` : `👍 On track (${by}).`;
        store.outbox.enqueue({
          chatId: card.chatId,
          text: splitHtml(`${card.html}\n\n${line}`)[0]!,
          editOf: card.outboxId!,
          ...(paused ? { replyMarkup: { inline_keyboard: [[{ text: '▶️ Resume building', callback_data: resume[0]!.token }]] } } : {}),
        });
        if (paused) store.cards.attachButtons([resume[0]!.token], card.outboxId!);
      });
      sender.kick();
    },

    /** Edits any sent message (by outbox row). */
    edit,
    /** The card's buttons with their tokens. */
    buttons(card: Card): CardButton[] {
      return store.cards.buttons(card.id);
    },
    proposedOf,
  };

  /** The card open again, with a note (why the last tap did not go through) and its buttons. */
  function showOpen(card: Card, note?: string, opts: { mergeAnyway?: boolean } = {}): void {
    if (card.outboxId === null || !card.html) return;
    const base = card.html.split('\n\n⏸')[0]!.split('\n\n⛔')[0]!;
    const text = note ? `${base}\n\n${note}` : base;
    store.cards.setHtml(card.id, text);
    const keyboard = reviewCardKeyboard(store.cards.buttons(card.id), { proposed: card.itemId === null ? [] : proposedOf(card.itemId), ...opts });
    edit(card.chatId, card.outboxId, text, keyboard);
  }

  function showApproved(card: Card, outcome: ApproveOutcome): void {
    const item = card.itemId === null ? undefined : store.items.get(card.itemId);
    if (!item || card.outboxId === null) return;
    const by = card.decidedByName ?? 'you';
    switch (outcome.kind) {
      case 'merged':
        edit(card.chatId, card.outboxId, mergedCardText(item, outcome, by, deps.timeZone), queueRows(card));
        return;
      case 'head-moved':
        edit(card.chatId, card.outboxId, headMovedCardText(item, card.headSha, outcome.headSha), queueRows(card));
        return;
      default:
        showOpen(store.cards.get(card.id) ?? card, approveNote(outcome), { mergeAnyway: outcome.kind === 'checks' && outcome.canForce });
    }
  }
}

/** The card desk. */
export type CardDesk = ReturnType<typeof createCardDesk>;
