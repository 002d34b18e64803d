import type { InlineKeyboardMarkup } from 'grammy/types';
import type { Store } from '../store/open-store.js';
import type { BotContext } from './context.js';
import { splitHtml } from './format.js';
import type { OutboxSender } from './outbox-sender.js';

/** One reply: Telegram HTML of any length (it is split), optional buttons under its last part. */
export interface Reply {
  readonly html: string;
  readonly keyboard?: InlineKeyboardMarkup;
  readonly itemId?: number;
  /** Tokens of stored buttons in `keyboard`, bound to the message that carries them. */
  readonly buttons?: readonly string[];
}

/**
 * Handles an update at most once. `effects` runs in one SQLite transaction with the inbox claim
 * of the update id and the outbox rows of its replies: a redelivered update does nothing, and a
 * crash leaves either all of it or none of it. Returns false for a duplicate.
 */
export type Respond = (ctx: BotContext, effects: () => Reply | readonly Reply[] | undefined) => boolean;

/** Builds the `respond` used by every feature. */
export function createRespond(deps: { store: Store; sender: OutboxSender }): Respond {
  const { store, sender } = deps;
  return (ctx, effects) => {
    const chatId = ctx.chat?.id;
    if (chatId === undefined) throw new Error('respond needs an update with a chat');
    const fresh = store.transaction(() => {
      if (!store.inbox.claim(ctx.update.update_id)) return false;
      const result = effects();
      const replies = result === undefined ? [] : Array.isArray(result) ? result : [result as Reply];
      for (const reply of replies) {
        const parts = splitHtml(reply.html);
        const ids = store.outbox.enqueue(
          ...parts.map((text, i) => ({
            chatId,
            text,
            ...(i === parts.length - 1 && reply.keyboard ? { replyMarkup: reply.keyboard } : {}),
            ...(reply.itemId === undefined ? {} : { itemId: reply.itemId }),
          })),
        );
        if (reply.buttons) store.cards.attachButtons(reply.buttons, ids[ids.length - 1]!);
      }
      return true;
    });
    if (fresh) sender.kick();
    else ctx.log.info('update already processed; ignoring the redelivery');
    return fresh;
  };
}
