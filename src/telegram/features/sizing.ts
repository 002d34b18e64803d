import { Composer } from 'grammy';
import { isSizingAction, type Sizer, type SizingTap } from '../../pipeline/sizer.js';
import type { Decider } from '../../store/cards.js';
import type { Store } from '../../store/open-store.js';
import type { BotContext } from '../context.js';
import type { Respond } from '../respond.js';
import type { SizingDesk } from '../sizing-desk.js';
import { answeredNote, sizingAnsweredText, sizingAnswerText, sizingOutcomeNote } from '../sizing-text.js';

/** Longest text of a callback answer (Telegram's limit is 200). */
const ANSWER_MAX_CHARS = 190;

function decider(ctx: BotContext): Decider {
  const from = ctx.from!;
  return { id: from.id, name: from.username ? `@${from.username}` : from.first_name };
}

/**
 * Sizing's side of the chat: `taps` takes the taps on sizing buttons (Accept split, Bundle,
 * Queue it / Keep as is / Queue as is, Cancel), each claimed with its update in one
 * transaction; `answers` takes the text that answers a sizing question. `taps` goes before the
 * review feature (which refuses buttons it does not know), `answers` after it (a Reject's
 * reason comes first) and before queueing.
 */
export function sizingFeature(deps: {
  store: Store;
  sizer: Sizer;
  desk: SizingDesk;
  respond: Respond;
  /** After a tap queued items (the dispatcher may start one). */
  queued?: () => void;
}) {
  const { store, sizer, desk, respond } = deps;
  const taps = new Composer<BotContext>();
  const answers = new Composer<BotContext>();

  const answer = (ctx: BotContext, text?: string) =>
    ctx.answerCallbackQuery(text ? { text: text.slice(0, ANSWER_MAX_CHARS) } : {}).catch((err: unknown) => ctx.log.warn({ err }, 'could not answer the callback query'));

  taps.on('callback_query:data', async (ctx, next) => {
    const token = ctx.callbackQuery.data;
    const stored = store.cards.button(token);
    if (!stored || stored.cardId !== null || !isSizingAction(stored.action)) return next();
    const message = ctx.callbackQuery.message;
    if (!message || !ctx.chat) {
      await answer(ctx, 'This button is not valid.');
      return;
    }
    const by = decider(ctx);
    let tap: SizingTap | undefined;
    // The decision, the note on its message and the update's claim are one transaction: a
    // redelivered tap does nothing, and a crash leaves all of it or none.
    const fresh = respond(ctx, () => {
      tap = sizer.decide(token, { chatId: ctx.chat!.id, messageId: message.message_id, by });
      if (tap.kind === 'ok') desk.close(ctx.chat!.id, tap.outboxId, sizingOutcomeNote(tap.decision, by.name));
      return undefined;
    });
    if (!fresh || !tap) {
      await answer(ctx);
      return;
    }
    if (tap.kind !== 'ok') {
      ctx.log.info({ why: tap.why }, 'sizing tap refused');
      await answer(ctx, tap.why);
      return;
    }
    const { decision } = tap;
    ctx.log.info({ decision: decision.kind, itemId: decision.item?.id }, 'sizing tap');
    await answer(ctx, sizingAnswerText(decision));
    if (decision.kind === 'queued' || decision.kind === 'split' || decision.kind === 'bundled') deps.queued?.();
  });

  answers.on('message:text', async (ctx, next) => {
    const startsWithCommand = ctx.message.entities?.some((e) => e.type === 'bot_command' && e.offset === 0);
    if (startsWithCommand) return next();
    const itemId = sizer.questionFor(ctx.chat.id, ctx.from.id, ctx.message.reply_to_message?.message_id);
    if (itemId === undefined) return next();
    const text = ctx.message.text;
    let answered = false;
    const fresh = respond(ctx, () => {
      const result = sizer.answer(itemId, text);
      // Cannot happen between the look-up above and here (no await between them); said plainly if it does.
      if (!result) return { html: `#${itemId} no longer waits for an answer; nothing was changed. Send it again to queue it as new work.` };
      answered = true;
      for (const outboxId of result.outboxIds) desk.close(ctx.chat.id, outboxId, answeredNote(text));
      ctx.log.info({ itemId }, 'sizing question answered');
      return { html: sizingAnsweredText(result.item), itemId };
    });
    if (fresh && answered) sizer.sizeSoon(itemId);
  });

  return { taps, answers };
}
