import { VIEW_ACTIONS, type SizingView } from '../pipeline/sizer.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import { splitHtml, TELEGRAM_TEXT_LIMIT } from './format.js';
import type { OutboxSender } from './outbox-sender.js';
import { sizingKeyboard, sizingText } from './sizing-text.js';

/**
 * Puts sizing on the phone: the message about an item's sizing with its one-shot buttons, and
 * the note that ends it once decided. Writes go to the outbox inside the caller's transaction;
 * `kick` sends them after it committed.
 */
export function createSizingDesk(deps: { store: Store; sender: Pick<OutboxSender, 'kick'> }) {
  const { store } = deps;
  return {
    /** The message showing `view` for `item` (to the chat it was queued from), with its buttons. */
    present(item: Item, view: SizingView): void {
      const text = sizingText(item, view);
      const buttons = store.cards.addButtons(null, VIEW_ACTIONS[view.kind].map((action) => ({ action, arg: String(item.id) })));
      const keyboard = sizingKeyboard(view, buttons);
      const parts = splitHtml(text);
      const ids = store.outbox.enqueue(
        ...parts.map((part, i) => ({
          chatId: item.chatId,
          text: part,
          itemId: item.id,
          ...(i === parts.length - 1 && buttons.length > 0 ? { replyMarkup: keyboard } : {}),
        })),
      );
      if (buttons.length > 0) store.cards.attachButtons(buttons.map((b) => b.token), ids[ids.length - 1]!);
    },

    /** Ends a sizing message: its text with `note` below (just the note if both would not fit), buttons removed. */
    close(chatId: number, outboxId: number, note: string): void {
      const original = store.outbox.get(outboxId)?.text;
      const text = original === undefined ? note : `${original}\n\n${note}`;
      store.outbox.enqueue({ chatId, text: text.length <= TELEGRAM_TEXT_LIMIT ? text : splitHtml(note)[0]!, editOf: outboxId });
    },

    /** Sends what was written, once the transaction that wrote it committed. */
    kick(): void {
      deps.sender.kick();
    },
  };
}

/** The sizing desk. */
export type SizingDesk = ReturnType<typeof createSizingDesk>;
