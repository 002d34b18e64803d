import { Composer } from 'grammy';
import type { DeferChoice } from '../../domain/defer-until.js';
import type { Decisions, TapResult } from '../../pipeline/decisions.js';
import type { Decider } from '../../store/cards.js';
import type { Store } from '../../store/open-store.js';
import type { CardDesk } from '../card-desk.js';
import type { BotContext } from '../context.js';
import { escapeHtml, html } from '../format.js';
import type { Respond } from '../respond.js';
import { approveOutcomeText, lessonsKeyboard, lessonsText, rejectReasonKeyboard, rejectReasonText } from '../review-card.js';

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
export function reviewFeature(deps: { store: Store; decisions: Decisions; desk: CardDesk; respond: Respond; /** A confirmed /run during peak hours; returns the reply (HTML). */ runNow?: (ctx: BotContext) => string; /** After Retry queued an item (the dispatcher may start it). */ afterRetry?: () => void }) {
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
    // A decision a crash cut short is settled before any tap is judged against it.
    await desk.settledAtStart();
    const by = decider(ctx);
    let result: TapResult | undefined;
    // The tap is claimed with its update id in one transaction: a redelivered tap does nothing.
    // A Reject's question is written in the same transaction, so it is never missing.
    const fresh = respond(ctx, () => {
      result = decisions.tap(ctx.callbackQuery.data, { chatId: ctx.chat!.id, messageId: message.message_id, by });
      if (result.kind !== 'ok' || result.action !== 'reject') return undefined;
      const buttons = store.cards.buttons(result.card!.id).filter((b) => b.action === 'reason' || b.action === 'reason-cancel');
      return { html: rejectReasonText(result.item!), keyboard: rejectReasonKeyboard(buttons), buttons: buttons.map((b) => b.token), itemId: result.item!.id };
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
    const { action, button, card, item } = result;
    ctx.log.info({ action, cardId: card?.id, itemId: item?.id }, 'tap');
    switch (action) {
      case 'approve':
      case 'merge-anyway': {
        await answer(ctx, action === 'merge-anyway' ? 'Merging despite the checks…' : 'Checking and merging…');
        const outcome = await decisions.approve(card!.id, action === 'merge-anyway');
        try {
          desk.showApproved(store.cards.get(card!.id)!, outcome);
        } catch (err) {
          // The card cannot show the outcome (the outbox could not record its edit: the disk is
          // full). The tap was answered already, so the tapper is told once, directly; unrecorded,
          // as nothing can be. "Try again" would be wrong: the merge may have happened.
          ctx.log.error({ err, outcome: outcome.kind }, 'could not show the outcome of the approve on the card; telling the tapper directly');
          await ctx.reply(approveOutcomeText(item!, outcome), { parse_mode: 'HTML' }).catch((replyErr: unknown) => ctx.log.error({ err: replyErr }, 'could not tell the tapper the outcome of the approve'));
        }
        return;
      }
      case 'reject':
        await answer(ctx, 'Why? Tap a reason or type it.');
        return;
      case 'reason':
        await answer(ctx, 'Rejecting…');
        await rejectWith(card!.id, button.arg ?? 'rejected', by, button.outboxId!);
        return;
      case 'reason-cancel':
        decisions.cancelReject(card!.id);
        await answer(ctx, 'Kept. The card is open again.');
        desk.closeQuestion(card!.chatId, button.outboxId!, 'Not rejected; the card is open again.');
        return;
      case 'defer-menu':
        await answer(ctx);
        desk.showDeferMenu(card!);
        return;
      case 'back':
        await answer(ctx);
        desk.showMain(card!);
        return;
      case 'defer':
        decisions.defer(card!.id, button.arg as DeferChoice);
        await answer(ctx, 'Deferred.');
        desk.presentDecided(card!);
        return;
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
      case 'pause':
        decisions.decideCheckpoint(card!.id, action);
        await answer(ctx, action === 'pause' ? `Building ${card!.repo} is paused.` : 'Noted: on track.');
        desk.presentDecided(card!);
        return;
      case 'resume-repo': {
        const resumed = decisions.resumeRepo(button);
        await answer(ctx, resumed ? `Building ${button.arg} again.` : 'It was not paused.');
        if (resumed) desk.edit(ctx.chat.id, button.outboxId!, html`▶️ Building ${button.arg ?? ''} resumed by ${by.name}.`);
        return;
      }
      case 'retry-item': {
        const outcome = decisions.retryItem(button);
        await answer(ctx, outcome.kind === 'queued' ? `#${outcome.item.id} is queued again.` : `#${button.arg} is ${outcome.item?.state ?? 'gone'}; nothing to retry.`);
        if (outcome.kind === 'queued') desk.edit(ctx.chat.id, button.outboxId!, html`🔁 #${outcome.item.id} ${outcome.item.title} is queued again; it goes on from where it stopped.`);
        deps.afterRetry?.();
        return;
      }
      case 'run-confirm': {
        const reply = deps.runNow?.(ctx) ?? 'Runs cannot be started from here.';
        await answer(ctx);
        desk.edit(ctx.chat.id, button.outboxId!, reply);
        return;
      }
      case 'delete-lesson': {
        const deleted = decisions.deleteLesson(button);
        await answer(ctx, deleted ? `Deleted lesson #${button.arg}.` : 'Already deleted.');
        const list = store.transaction(() => lessonsReply(button.outboxId!));
        desk.edit(ctx.chat.id, button.outboxId!, list.html, list.keyboard);
        return;
      }
    }
  });

  /** The /lessons text with one delete button per lesson (bound to `outboxId` when known). */
  function lessonsReply(outboxId?: number) {
    const lessons = store.lessons.list();
    const buttons = store.cards.addButtons(null, lessons.map((l) => ({ action: 'delete-lesson', arg: String(l.id) })));
    if (outboxId !== undefined) store.cards.attachButtons(buttons.map((b) => b.token), outboxId);
    return { html: lessonsText(lessons), keyboard: lessonsKeyboard(lessons, buttons), buttons: buttons.map((b) => b.token) };
  }

  async function rejectWith(cardId: number, reason: string, by: Decider, questionOutboxId: number | undefined): Promise<void> {
    const outcome = await decisions.reject(cardId, reason, by);
    const card = store.cards.get(cardId)!;
    if (outcome.kind === 'void') {
      store.outbox.enqueue({ chatId: card.chatId, text: escapeHtml(outcome.why) });
      if (questionOutboxId !== undefined) desk.closeQuestion(card.chatId, questionOutboxId, escapeHtml(outcome.why));
      return;
    }
    if (questionOutboxId !== undefined) desk.closeQuestion(card.chatId, questionOutboxId, `Reason: <i>${escapeHtml(outcome.reason)}</i>`);
    desk.presentDecided(card, outcome.closeError ? { closeError: outcome.closeError } : {});
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
    const question = store.cards.buttons(awaited.cardId).find((b) => b.action === 'reason')?.outboxId ?? undefined;
    await rejectWith(awaited.cardId, reason, decider(ctx), question);
  });

  composer.command('review', async (ctx) => {
    let next: { id: number; held: boolean } | undefined;
    const fresh = respond(ctx, () => {
      const held = store.cards.held().find((c) => c.kind === 'review');
      const open = held ? undefined : store.cards.openReviewCards()[0];
      next = held ? { id: held.id, held: true } : open ? { id: open.id, held: false } : undefined;
      return next === undefined ? { html: 'No review cards are waiting for you.' } : undefined;
    });
    if (!fresh || next === undefined) return;
    if (next.held) await desk.deliverHeld(next.id);
    else await desk.resend(next.id);
  });

  composer.command('lessons', (ctx) => {
    respond(ctx, () => lessonsReply());
  });

  return composer;
}
