import { GrammyError, type Api } from 'grammy';
import type { Logger } from 'pino';
import type { ItemEvent, ItemNotifier } from '../pipeline/item-events.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import { escapeHtml, splitHtml } from './format.js';
import type { OutboxSender } from './outbox-sender.js';

/** Least time between two edits of one progress message (Telegram rate-limits edits). @default 3000 */
export const PROGRESS_EDIT_INTERVAL_MS = 3000;

/** Telegram HTML for an item event. */
export function itemEventText(item: Item, event: ItemEvent): string {
  const head = `#${item.id} ${escapeHtml(item.title)}`;
  switch (event.kind) {
    case 'started':
      return `🔨 <b>${head}</b>\n${event.stage} started · ${escapeHtml(item.repo)}`;
    case 'progress':
      return `🔨 <b>${head}</b>\n${event.stage} · turn ${event.turn}/${event.maxTurns} · $${event.itemUsd.toFixed(2)} so far`;
    case 'pr-opened':
      return (
        `✅ <b>${head}</b>\nPull request <a href="${escapeHtml(event.prUrl)}">#${event.prNumber}</a> ${event.adopted ? 'updated' : 'opened'} · $${event.itemUsd.toFixed(2)}` +
        (event.summary.trim() ? `\n\n${escapeHtml(event.summary.trim().slice(0, 1500))}` : '')
      );
    case 'ready':
      return `👀 <b>${head}</b>\nReviewed and ready for you` + (item.prUrl ? `: <a href="${escapeHtml(item.prUrl)}">PR #${item.prNumber}</a>` : '') + ` · $${event.itemUsd.toFixed(2)} · the card follows`;
    case 'retry-later': {
      const wait = `${Math.max(1, Math.round(event.retryInMs / 60_000))} min`;
      const attempt = event.attempt ? ` (attempt ${event.attempt.n + 1} of ${event.attempt.of} next)` : '';
      const when = event.waitsForRun ? `Back in the queue: /run starts it again after ${wait}${attempt}` : `Trying again in ${wait}${attempt}`;
      return `⏳ <b>${head}</b>\nInterrupted: ${escapeHtml(event.reason)}. ${when}; nothing done so far is lost.`;
    }
    case 'waiting':
      return `⏳ <b>${head}</b>\n${escapeHtml(event.reason)}`;
    case 'stopped':
      return `⏹ <b>${head}</b>\nStopped. Nothing done so far is lost; /resume continues it.`;
    case 'failed':
      return `⚠️ <b>${head}</b>\nFailed: ${escapeHtml(event.reason)}\nSpent $${event.itemUsd.toFixed(2)}. Retry starts it again from where it stopped; /cancel ${item.id} drops it.`;
    case 'unrecorded':
      return (
        `⚠️ <b>${head}</b>\nStopped: the result of the ${event.stage} could not be saved (${escapeHtml(event.reason)}). ` +
        'Nothing more happens to it until nightshift is restarted; it then goes on from its last saved step. If the disk of DATA_DIR is full, free space first.'
      );
  }
}

/**
 * Tells the user about their items: one progress message per item, edited as the run goes
 * (while it is still unsent, its outbox row is rewritten instead), and a new message for each
 * outcome. Never throws: a lost progress edit is not worth failing a run for.
 */
export function createItemNotifier(deps: {
  store: Store;
  sender: OutboxSender;
  api: () => Api | undefined;
  log: Logger;
  now?: () => number;
  /** Sends the review card of an item that became ready. */
  onReady: (item: Item) => void;
}): ItemNotifier {
  const { store, sender, log } = deps;
  const now = deps.now ?? Date.now;
  const lastEdit = new Map<number, number>();

  function progress(item: Item, text: string, force: boolean): void {
    const current = store.items.get(item.id);
    const outboxId = current?.progressOutboxId;
    if (!current || outboxId === null || outboxId === undefined) {
      store.transaction(() => {
        const [id] = store.outbox.enqueue({ chatId: item.chatId, text: splitHtml(text)[0]!, itemId: item.id });
        store.items.setProgressOutboxId(item.id, id!);
      });
      sender.kick();
      return;
    }
    if (store.outbox.updatePendingText(outboxId, splitHtml(text)[0]!)) return;
    const sent = store.outbox.get(outboxId);
    const api = deps.api();
    if (!api || sent?.status !== 'sent' || sent.telegramMessageId === null) return;
    if (!force && now() - (lastEdit.get(item.id) ?? 0) < PROGRESS_EDIT_INTERVAL_MS) return;
    lastEdit.set(item.id, now());
    api
      .editMessageText(item.chatId, sent.telegramMessageId, splitHtml(text)[0]!, { parse_mode: 'HTML', link_preview_options: { is_disabled: true } })
      .catch((error: unknown) => {
        if (error instanceof GrammyError && /not modified/i.test(error.description)) return;
        log.debug({ err: error, itemId: item.id }, 'could not edit the progress message');
      });
  }

  function sendDirectly(item: Item, event: ItemEvent): void {
    const api = deps.api();
    if (!api) return;
    api
      .sendMessage(item.chatId, splitHtml(itemEventText(item, event))[0]!, { parse_mode: 'HTML', link_preview_options: { is_disabled: true } })
      .then(() => log.warn({ itemId: item.id, event: event.kind }, 'sent the notice directly, unrecorded: the outbox could not record it'))
      .catch((err: unknown) => log.error({ err, itemId: item.id, event: event.kind }, 'could not send the notice directly either'));
  }

  return {
    notify(item, event) {
      try {
        const text = itemEventText(item, event);
        if (event.kind === 'started' || event.kind === 'progress' || event.kind === 'waiting') {
          // Waiting is where the run stands, not news: it edits the progress message too.
          progress(item, text, event.kind !== 'progress');
          return;
        }
        if (event.kind === 'ready') {
          // The progress message closes; the review card is the message that asks for a decision.
          progress(item, text, true);
          deps.onReady(item);
          return;
        }
        store.transaction(() => {
          const parts = splitHtml(text);
          // A failed item gets a Retry button (a one-shot token, like every button).
          const retry = event.kind === 'failed' ? store.cards.addButtons(null, [{ action: 'retry-item', arg: String(item.id) }]) : [];
          const ids = store.outbox.enqueue(
            ...parts.map((part, i) => ({
              chatId: item.chatId,
              text: part,
              itemId: item.id,
              ...(i === parts.length - 1 && retry[0] ? { replyMarkup: { inline_keyboard: [[{ text: '🔁 Retry', callback_data: retry[0].token }]] } } : {}),
            })),
          );
          if (retry[0]) store.cards.attachButtons([retry[0].token], ids[ids.length - 1]!);
        });
        sender.kick();
      } catch (error) {
        log.error({ err: error, itemId: item.id, event: event.kind }, 'could not notify the user');
        // An outcome the outbox could not record (the database failed: nothing was enqueued) is
        // still news the user must get: sent directly, once. Progress is not worth it.
        if (event.kind !== 'started' && event.kind !== 'progress' && event.kind !== 'waiting') sendDirectly(item, event);
      }
    },
  };
}
