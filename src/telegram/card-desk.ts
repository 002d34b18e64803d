import type { InlineKeyboardMarkup } from 'grammy/types';
import type { Logger } from 'pino';
import { DEFER_CHOICES } from '../domain/defer-until.js';
import { nextReviewSlot, type ReviewSlot } from '../domain/review-hours.js';
import { riskOf, type CardFacts } from '../pipeline/card-facts.js';
import { MERGED_ON_GITHUB, QUICK_REASONS, STUCK_DECISION_MS, type ApproveOutcome, type Decisions } from '../pipeline/decisions.js';
import type { DriftReport } from '../pipeline/drift-checkpoint.js';
import type { Card, CardButton } from '../store/cards.js';
import type { Checkpoint } from '../store/checkpoints.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import { html, splitHtml } from './format.js';
import type { OutboxSender } from './outbox-sender.js';
import {
  checkpointKeyboard,
  checkpointText,
  deferKeyboard,
  deferredCardText,
  digestText,
  approveNote,
  headMovedCardText,
  mergedCardText,
  rejectedCardText,
  requeueText,
  reviewCardKeyboard,
  reviewCardText,
} from './review-card.js';

/** A card Telegram refused for good is sent again, as a new card, at most this often. @default 10 minutes */
export const RESEND_FAILED_CARD_MS = 10 * 60_000;

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
        store.cards.shown(card.id, { outboxId, html: text, headSha: facts.headSha });
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

  /** Presents a decided card's outcome (and, after a rejection, the re-queue offer) once. */
  function presentDecided(card: Card, extra: { closeError?: string } = {}): void {
    store.transaction(() => {
      const fresh = store.cards.get(card.id);
      if (!fresh || fresh.status !== 'decided' || fresh.presentedAt !== null) return;
      const by = fresh.decidedByName ?? 'you';
      if (fresh.kind === 'checkpoint') {
        const paused = fresh.decision === 'pause';
        const resume = paused ? store.cards.addButtons(null, [{ action: 'resume-repo', arg: fresh.repo }]) : [];
        const line = paused ? html`⏸ Building ${fresh.repo} is paused (by ${by}). Queued items wait until you resume.` : html`👍 On track (${by}).`;
        if (fresh.outboxId !== null && fresh.html) {
          enqueueEdit(fresh.chatId, fresh.outboxId, `${fresh.html}\n\n${line}`, paused ? { inline_keyboard: [[{ text: '▶️ Resume building', callback_data: resume[0]!.token }]] } : undefined);
          if (paused) store.cards.attachButtons([resume[0]!.token], fresh.outboxId);
        }
        store.cards.presented(fresh.id);
        return;
      }
      const item = fresh.itemId === null ? undefined : store.items.get(fresh.itemId);
      if (!item || fresh.outboxId === null) {
        store.cards.presented(fresh.id);
        return;
      }
      const at = fresh.decidedAt ?? deps.now();
      let text: string;
      if (fresh.decision === 'approve') {
        const how = fresh.outcome === MERGED_ON_GITHUB ? 'already merged on GitHub' : /^merged \((\w+)\)$/.exec(fresh.outcome ?? '')?.[1] ?? 'merged';
        text = mergedCardText(item, { by, at, how }, deps.timeZone);
      } else if (fresh.decision === 'reject') {
        const lesson = store.lessons.list(item.repo).find((l) => l.itemId === item.id);
        text = rejectedCardText(item, {
          by,
          reason: fresh.outcome?.replace(/^rejected: /, '') ?? '',
          ...(lesson ? { lessonId: lesson.id } : {}),
          ...(extra.closeError ? { closeError: extra.closeError } : {}),
        });
        const offer = store.cards.addButtons(fresh.id, [{ action: 'requeue' }, { action: 'drop' }]);
        enqueue(
          fresh.chatId,
          requeueText(item),
          { inline_keyboard: [[{ text: '🔁 Re-queue with feedback', callback_data: offer[0]!.token }, { text: '🗑 Drop', callback_data: offer[1]!.token }]] },
          offer.map((b) => b.token),
          item.id,
        );
      } else {
        text = deferredCardText(item, item.wakeAt ?? at, at, by, deps.timeZone);
      }
      enqueueEdit(fresh.chatId, fresh.outboxId, text, queueRows(fresh));
      store.cards.presented(fresh.id);
    });
    sender.kick();
  }

  // The start-up reconcile, while it runs.
  let startup: Promise<void> = Promise.resolve();

  /** Shows what decisions settled by `decisions.reconcile` ended in. */
  async function settle(opts: { olderThanMs?: number } = {}): Promise<void> {
    for (const { card, outcome } of await deps.decisions.reconcile(opts)) {
      const fresh = store.cards.get(card.id)!;
      if (outcome === 'released') showOpen(fresh, '⏸ The last decision on this card was interrupted before it finished. Nothing was merged; decide again.');
      else showApproved(fresh, outcome);
    }
    for (const card of store.cards.unfinished()) if (card.presentedAt === null && card.followedUpAt !== null) presentDecided(card);
  }

  /** Runs one step of a tick; a failure is logged and the other steps go on. */
  async function step(what: string, work: () => Promise<void> | void): Promise<void> {
    try {
      await work();
    } catch (err) {
      log.error({ err }, `tick: ${what} failed; trying again on the next tick`);
    }
  }

  return {
    itemReady,
    /** /review: delivers this held card now, outside its session. */
    async deliverHeld(cardId: number): Promise<void> {
      const card = store.cards.get(cardId);
      if (card?.status === 'held') await deliver(card);
    },

    /** /review with nothing held: the oldest open card again, as a fresh message. */
    async resend(cardId: number): Promise<void> {
      const card = store.cards.get(cardId);
      const item = card?.itemId == null ? undefined : store.items.get(card.itemId);
      if (card?.status !== 'open' || item?.state !== 'ready') return;
      store.cards.supersede(card.id, 'sent again');
      if (card.outboxId !== null && card.html) edit(card.chatId, card.outboxId, `${card.html}\n\n↓ Sent again below.`);
      await itemReady(item, { now: true });
    },

    /**
     * One tick of the clock: deferred items wake with a fresh card, held cards go out at their
     * session, unanswered reject questions lapse, a ready item without a card (or whose card
     * Telegram refused) gets one, and decisions stuck after a failure are settled.
     */
    async tick(): Promise<void> {
      await step('waking deferred items', async () => {
        for (const item of deps.decisions.wakeDeferred()) {
          log.info({ itemId: item.id }, 'deferral ended; sending a fresh card');
          await itemReady(item, { now: true });
        }
      });
      await step('lapsing reject questions', () => {
        for (const reply of store.cards.expiredReplies()) {
          store.cards.dropReply(reply.chatId, reply.userId);
          const card = store.cards.get(reply.cardId);
          if (card && deps.decisions.cancelReject(card.id)) showOpen(store.cards.get(card.id)!, '⏸ No reason came for the rejection, so nothing was rejected. Decide again.');
        }
      });
      await step('cards for ready items', async () => {
        for (const card of store.cards.undelivered()) {
          if (deps.now() - (card.shownAt ?? 0) < RESEND_FAILED_CARD_MS) continue;
          store.cards.supersede(card.id, 'Telegram refused the message');
        }
        for (const itemId of store.cards.readyItemsWithoutCard()) {
          const item = store.items.get(itemId);
          if (item) await itemReady(item);
        }
      });
      await step('settling stuck decisions', () => settle({ olderThanMs: STUCK_DECISION_MS }));
      await step('delivering held cards', deliverDue);
    },

    /** After a restart: settles decisions a crash interrupted, then shows what they ended in. */
    reconcile(): Promise<void> {
      startup = settle();
      return startup;
    },

    /**
     * Resolves once the start-up `reconcile` is done (at once without one). A tap waits for it:
     * a decision the last process died in is given back first, so the tap is not refused as
     * "already being handled" by work that is no longer running.
     */
    settledAtStart: (): Promise<void> => startup.then(() => undefined, () => undefined),

    /** Shows an approve's outcome on the card. */
    showApproved,
    presentDecided,

    /** Shows the Defer choices in place of the card's buttons. */
    showDeferMenu(card: Card): void {
      if (card.outboxId === null || !card.html) return;
      edit(card.chatId, card.outboxId, card.html, deferKeyboard(store.cards.buttons(card.id)));
    },

    /** Puts the card's main buttons back. */
    showMain(card: Card): void {
      showOpen(card);
    },

    /** The reason question closed (answered or backed out of). */
    closeQuestion(chatId: number, outboxId: number, text: string): void {
      edit(chatId, outboxId, text);
    },

    /** A drift checkpoint, as a card with On track / Pause building. */
    presentCheckpoint(checkpoint: Checkpoint, report: DriftReport, chatIds: readonly number[]): void {
      for (const chatId of chatIds) {
        const card = store.cards.create({ kind: 'checkpoint', checkpointId: checkpoint.id, repo: checkpoint.repo, chatId });
        const buttons = store.cards.addButtons(card.id, [{ action: 'on-track' }, { action: 'pause' }]);
        const text = checkpointText(checkpoint.repo, report);
        const outboxId = enqueue(chatId, text, checkpointKeyboard(buttons), buttons.map((b) => b.token));
        store.cards.shown(card.id, { outboxId, html: text });
      }
      sender.kick();
    },

    /** Edits any sent message (by outbox row). */
    edit,
  };

  /** The card open again, with a note (why the last tap did not go through) and its buttons. */
  function showOpen(card: Card, note?: string, opts: { mergeAnyway?: boolean } = {}): void {
    if (card.outboxId === null || !card.html) return;
    const keyboard = reviewCardKeyboard(store.cards.buttons(card.id), { proposed: card.itemId === null ? [] : proposedOf(card.itemId), ...opts });
    edit(card.chatId, card.outboxId, note ? `${card.html}\n\n${note}` : card.html, keyboard);
  }

  function showApproved(card: Card, outcome: ApproveOutcome): void {
    const item = card.itemId === null ? undefined : store.items.get(card.itemId);
    if (!item || card.outboxId === null) return;
    switch (outcome.kind) {
      case 'merged':
        presentDecided(card);
        return;
      case 'head-moved':
        edit(card.chatId, card.outboxId, headMovedCardText(item, card.headSha, outcome.headSha), queueRows(card));
        return;
      case 'merged-unrecorded':
        edit(card.chatId, card.outboxId, `${card.html ?? ''}\n\n${approveNote(outcome)}`);
        return;
      default:
        showOpen(store.cards.get(card.id) ?? card, approveNote(outcome), { mergeAnyway: outcome.kind === 'checks' && outcome.canForce });
    }
  }
}

/** The card desk. */
export type CardDesk = ReturnType<typeof createCardDesk>;
