import { Composer } from 'grammy';
import { DEFER_CHOICES, type DeferChoice } from '../../domain/defer-until.js';
import type { ButtonAction, Decisions, TapResult } from '../../pipeline/decisions.js';
import type { Decider } from '../../store/cards.js';
import type { Store } from '../../store/open-store.js';
import type { CardDesk } from '../card-desk.js';
import type { BotContext } from '../context.js';
import { escapeHtml } from '../format.js';
import type { Respond } from '../respond.js';
import { lessonsKeyboard, lessonsText } from '../review-card.js';

/** The shape of a stored button's token (see `BUTTON_TOKEN_BYTES`). */
const BUTTON_TOKEN_RE = /^[A-Za-z0-9_-]{16}$/;

/** Longest text of a callback answer (Telegram's limit is 200). */
const ANSWER_MAX_CHARS = 190;

function decider(ctx: BotContext): Decider {
  const from = ctx.from!;
  return { id: from.id, name: from.username ? `@${from.username}` : from.first_name };
}

/**
 * Review cards: every button tap (validated against SQLite and answered at once, then acted
 * on), the reason typed after Reject, `/review` and `/lessons`.
 */
export function reviewFeature(deps: { store: Store; decisions: Decisions; desk: CardDesk; respond: Respond }) {
  const { store, decisions, desk, respond } = deps;
  const composer = new Composer<BotContext>();

  const answer = (ctx: BotContext, text?: string) =>
    ctx.answerCallbackQuery(text ? { text: text.slice(0, ANSWER_MAX_CHARS) } : {}).catch((err: unknown) => ctx.log.warn({ err }, 'could not answer the callback query'));

  composer.on('callback_query:data', async (ctx, next) => {
    // Other features' buttons (backlog pages) carry readable data; card buttons carry a token.
    if (!BUTTON_TOKEN_RE.test(ctx.callbackQuery.data)) return next();
    const message = ctx.callbackQuery.message;
    if (!message || !ctx.chat) {
      await answer(ctx, 'This button is not valid.');
      return;
    }
    const by = decider(ctx);
    let result: TapResult | undefined;
    // The tap is claimed with its update id in one transaction: a redelivered tap does nothing.
    const fresh = respond(ctx, () => {
      result = decisions.tap(ctx.callbackQuery.data, { chatId: ctx.chat!.id, messageId: message.message_id, by });
      return undefined;
    });
    if (!fresh || !result) {
      await answer(ctx);
      return;
    }
    if (result.kind !== 'ok') {
      ctx.log.info({ why: result.why }, 'tap refused');
      await answer(ctx, result.why);
      return;
    }
    const { button, card, item } = result;
    const action = button.action as ButtonAction;
    ctx.log.info({ action, cardId: card?.id, itemId: item?.id }, 'tap');
    switch (action) {
      case 'approve':
      case 'merge-anyway': {
        await answer(ctx, action === 'merge-anyway' ? 'Merging despite the checks…' : 'Checking and merging…');
        const outcome = await decisions.approve(card!.id, action === 'merge-anyway');
        desk.showApproved(store.cards.get(card!.id)!, outcome);
        return;
      }
      case 'reject':
        await answer(ctx, 'Why? Tap a reason or type it.');
        desk.askReason(card!, item!);
        return;
      case 'reason': {
        await answer(ctx, 'Rejecting…');
        await rejectWith(card!.id, button.arg ?? 'rejected', by, { outboxId: button.outboxId!, text: `Reason: <i>${escapeHtml(button.arg ?? '')}</i>` });
        return;
      }
      case 'reason-cancel':
        decisions.cancelReject(card!.id);
        await answer(ctx, 'Kept. The card is open again.');
        desk.edit(card!.chatId, button.outboxId!, 'Not rejected; the card is open again.');
        return;
      case 'defer-menu':
        await answer(ctx);
        desk.showDeferMenu(card!);
        return;
      case 'back':
        await answer(ctx);
        desk.showMain(card!);
        return;
      case 'defer': {
        const choice = button.arg as DeferChoice;
        if (!DEFER_CHOICES.includes(choice)) throw new Error(`unknown defer choice ${button.arg}`);
        const { item: deferred, wakeAt } = decisions.defer(card!.id, choice);
        await answer(ctx, 'Deferred.');
        desk.showDeferred(card!, deferred, wakeAt, by.name);
        return;
      }
      case 'requeue': {
        const queued = decisions.requeue(button);
        await answer(ctx, queued ? `Queued as #${queued.id}.` : 'Already done.');
        if (queued) desk.edit(ctx.chat.id, button.outboxId!, `🔁 Re-queued as #${queued.id} with your feedback.`);
        return;
      }
      case 'drop':
        await answer(ctx, decisions.drop(button) ? 'Dropped.' : 'Already done.');
        desk.edit(ctx.chat.id, button.outboxId!, '🗑 Dropped.');
        return;
      case 'queue-item': {
        const outcome = decisions.queueProposed(button);
        await answer(ctx, outcome.kind === 'queued' ? `Queued #${outcome.item.id}.` : `#${button.arg} is ${outcome.item?.state ?? 'gone'}; nothing to do.`);
        return;
      }
      case 'on-track':
      case 'pause': {
        const decided = decisions.decideCheckpoint(card!.id, action);
        await answer(ctx, action === 'pause' ? `Building ${card!.repo} is paused.` : 'Noted: on track.');
        desk.showCheckpointDecided(decided, by.name);
        return;
      }
      case 'resume-repo': {
        const resumed = decisions.resumeRepo(button);
        await answer(ctx, resumed ? `Building ${button.arg} again.` : 'It was not paused.');
        if (resumed) desk.edit(ctx.chat.id, button.outboxId!, `▶️ Building ${escapeHtml(button.arg ?? '')} resumed by ${escapeHtml(by.name)}.`);
        return;
      }
      case 'delete-lesson': {
        const deleted = decisions.deleteLesson(button);
        await answer(ctx, deleted ? `Deleted lesson #${button.arg}.` : 'Already deleted.');
        const lessons = store.lessons.list();
        const buttons = store.transaction(() => store.cards.addButtons(null, lessons.map((l) => ({ action: 'delete-lesson', arg: String(l.id) }))));
        store.cards.attachButtons(buttons.map((b) => b.token), button.outboxId!);
        desk.edit(ctx.chat.id, button.outboxId!, lessonsText(lessons), lessonsKeyboard(lessons, buttons));
        return;
      }
    }
  });

  async function rejectWith(cardId: number, reason: string, by: Decider, question?: { outboxId: number; text: string }): Promise<void> {
    const outcome = await decisions.reject(cardId, reason, by);
    const card = store.cards.get(cardId)!;
    if (outcome) desk.showRejected(card, outcome, by.name, question);
  }

  // The reason typed after Reject. Commands still work; other text is queued as usual.
  composer.on('message:text', async (ctx, next) => {
    const startsWithCommand = ctx.message.entities?.some((e) => e.type === 'bot_command' && e.offset === 0);
    const awaited = startsWithCommand ? undefined : store.cards.awaitedReply(ctx.chat.id, ctx.from.id);
    if (!awaited) return next();
    const reason = ctx.message.text.trim();
    const fresh = respond(ctx, () => {
      store.cards.dropReply(ctx.chat.id, ctx.from.id);
      return undefined;
    });
    if (!fresh) return;
    const question = store.cards.buttons(awaited.cardId).find((b) => b.action === 'reason')?.outboxId;
    await rejectWith(awaited.cardId, reason, decider(ctx), question === undefined || question === null ? undefined : { outboxId: question, text: `Reason: <i>${escapeHtml(reason.slice(0, 300))}</i>` });
  });

  composer.command('review', async (ctx) => {
    let next: number | undefined;
    const fresh = respond(ctx, () => {
      next = store.cards.held().find((c) => c.kind === 'review')?.id;
      return next === undefined ? { html: `No cards are waiting for a review session; ${store.cards.countWaiting()} open above.` } : undefined;
    });
    if (fresh && next !== undefined) await desk.deliverHeld(next);
  });

  composer.command('lessons', (ctx) => {
    respond(ctx, () => {
      const lessons = store.lessons.list();
      const buttons = store.cards.addButtons(null, lessons.map((l) => ({ action: 'delete-lesson', arg: String(l.id) })));
      return { html: lessonsText(lessons), keyboard: lessonsKeyboard(lessons, buttons), buttons: buttons.map((b) => b.token) };
    });
  });

  return composer;
}
