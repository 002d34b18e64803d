import { GrammyError, HttpError, type Api } from 'grammy';
import type { Logger } from 'pino';
import type { OutboxMessage } from '../store/outbox.js';
import type { Store } from '../store/open-store.js';
import { TELEGRAM_TEXT_LIMIT } from './format.js';
import { RESENT_AFTER_RESTART_NOTE } from './messages.js';

/** First wait after a failed send; doubles per attempt. @default 1000 */
export const OUTBOX_RETRY_BASE_MS = 1000;
/** Longest wait between two attempts at one message. @default 10 minutes */
export const OUTBOX_RETRY_MAX_MS = 10 * 60 * 1000;
/** A message still unsent after this long is given up (and logged), not sent late. @default 24 hours */
export const OUTBOX_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** Longest pause after the outbox itself failed (e.g. the database is unwritable). @default 5 minutes */
export const OUTBOX_STALL_MAX_MS = 5 * 60 * 1000;

/** Delivers outbox messages, in order per chat, and retries the ones that failed. */
export interface OutboxSender {
  /** Starts delivering through `api`. */
  start(api: Api): void;
  /** Sends whatever is due now (call after enqueueing); a no-op before `start`. */
  kick(): void;
  /** Aborts the send in flight and stops; unsent messages stay in the outbox for the next start. */
  stop(): Promise<void>;
}

/** Creates the outbox sender; nothing is sent until `start`. */
export function createOutboxSender(deps: { store: Store; log: Logger; now?: () => number }): OutboxSender {
  const { store, log } = deps;
  const now = deps.now ?? Date.now;
  const abort = new AbortController();
  // grammY types its signal parameter with the `abort-controller` polyfill; Node's is the same at runtime.
  const signal = abort.signal as unknown as Parameters<Api['sendMessage']>[3];
  let api: Api | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  // In-memory backoff for failures of the outbox itself: if the database cannot record a
  // send, retrying at once would send the same message again and again.
  let stallMs = 0;
  // Sends Telegram accepted but the database could not record (outbox id → Telegram message id):
  // the next flush records them instead of sending them again. In memory only, so a restart
  // while the disk is still full sends such a message once more (at-least-once, as after kill -9).
  const unrecorded = new Map<number, number>();

  // Marks the message sent, remembering the Telegram id first in case the write fails.
  function recordSent(messageId: number, telegramMessageId: number): void {
    unrecorded.set(messageId, telegramMessageId);
    store.outbox.markSent(messageId, telegramMessageId);
    unrecorded.delete(messageId);
  }

  async function send(api: Api, message: OutboxMessage): Promise<void> {
    const mlog = log.child({ outboxId: message.id, chatId: message.chatId, itemId: message.itemId ?? undefined });
    const markup = message.replyMarkup === undefined ? {} : { reply_markup: message.replyMarkup as never };
    const delivered = unrecorded.get(message.id);
    if (delivered !== undefined) return recordSent(message.id, delivered);
    if (message.editOf !== null) return edit(api, message, markup, mlog);
    // A send the last process started and never saw the end of may have arrived. Sending it
    // again keeps it from being lost; a message with buttons says it may be a second copy.
    let text = message.text;
    if (message.sendingAt !== null) {
      mlog.warn('the process died while sending this message; sending it again (Telegram may show it twice)');
      const noted = `${text}\n\n${RESENT_AFTER_RESTART_NOTE}`;
      if (message.replyMarkup !== undefined && noted.length <= TELEGRAM_TEXT_LIMIT) text = noted;
    }
    store.outbox.markSending(message.id, message.sendingAt !== null);
    let sentId: number;
    try {
      sentId = (await api.sendMessage(message.chatId, text, { parse_mode: 'HTML', link_preview_options: { is_disabled: true }, ...markup }, signal))
        .message_id;
    } catch (error) {
      if (abort.signal.aborted) return;
      if (!(error instanceof GrammyError && /can't parse entities/i.test(error.description))) return handleFailure(message, error, mlog);
      // Our own HTML was malformed. The user still gets the message, as plain text.
      mlog.error({ err: error }, 'Telegram rejected our HTML; sending the message as plain text');
      try {
        sentId = (await api.sendMessage(message.chatId, htmlToPlain(text), { link_preview_options: { is_disabled: true }, ...markup }, signal))
          .message_id;
      } catch (plainError) {
        if (abort.signal.aborted) return;
        return handleFailure(message, plainError, mlog);
      }
    }
    recordSent(message.id, sentId);
  }

  // An edit of an earlier message (a card turned into its outcome). Messages to one chat go
  // out in order, so the message it edits was sent (or given up on) before this row is due.
  async function edit(api: Api, message: OutboxMessage, markup: { reply_markup?: never }, mlog: Logger): Promise<void> {
    const target = store.outbox.get(message.editOf!);
    if (target?.status !== 'sent' || target.telegramMessageId === null) {
      mlog.warn({ editOf: message.editOf }, 'the message to edit was never sent; dropping the edit');
      store.outbox.markFailed(message.id, 'the message to edit was never sent');
      return;
    }
    const messageId = target.telegramMessageId;
    const options = { link_preview_options: { is_disabled: true }, ...markup };
    try {
      await api.editMessageText(message.chatId, messageId, message.text, { parse_mode: 'HTML', ...options }, signal);
    } catch (error) {
      if (abort.signal.aborted) return;
      if (error instanceof GrammyError && /not modified/i.test(error.description)) {
        // The same edit landed before a crash (or a reply was lost): done.
      } else if (error instanceof GrammyError && /can't parse entities/i.test(error.description)) {
        mlog.error({ err: error }, 'Telegram rejected our HTML; editing with plain text');
        try {
          await api.editMessageText(message.chatId, messageId, htmlToPlain(message.text), options, signal);
        } catch (plainError) {
          if (abort.signal.aborted) return;
          return handleFailure(message, plainError, mlog);
        }
      } else {
        return handleFailure(message, error, mlog);
      }
    }
    recordSent(message.id, messageId);
  }

  function handleFailure(message: OutboxMessage, error: unknown, mlog: Logger): void {
    const code = error instanceof GrammyError ? error.error_code : undefined;
    const reason = error instanceof GrammyError ? `${code} ${error.description}` : error instanceof HttpError ? `network: ${error.message}` : String(error);
    // 400 (chat not found, bad request) and 403 (the user blocked the bot) are about this
    // message: sending it again won't help. 401 and 404 mean our token or API root is wrong,
    // which an operator can fix, so those messages stay pending.
    if (code === 400 || code === 403) {
      mlog.error({ err: error }, 'Telegram refused the message for good; giving up on it');
      store.outbox.markFailed(message.id, reason);
      return;
    }
    if (now() - message.createdAt > OUTBOX_MAX_AGE_MS) {
      mlog.error({ err: error, attempts: message.attempts + 1 }, 'message could not be sent for a day; giving up on it');
      store.outbox.markFailed(message.id, reason);
      return;
    }
    const retryAfterMs =
      error instanceof GrammyError && typeof error.parameters.retry_after === 'number' ? error.parameters.retry_after * 1000 : 0;
    const delay = Math.max(Math.min(OUTBOX_RETRY_MAX_MS, OUTBOX_RETRY_BASE_MS * 2 ** message.attempts), retryAfterMs);
    const logAt = code === 401 || code === 404 ? 'error' : 'warn';
    mlog[logAt]({ err: error, attempts: message.attempts + 1, retryInMs: delay }, 'sending failed; will retry');
    store.outbox.markRetry(message.id, reason, now() + delay);
  }

  async function flush(api: Api): Promise<void> {
    do {
      again = false;
      // A failed send is rescheduled into the future, so this ends once nothing is due now.
      for (let batch = store.outbox.due(); batch.length > 0; batch = store.outbox.due()) {
        for (const message of batch) {
          if (abort.signal.aborted) return;
          await send(api, message);
        }
      }
    } while (again && !abort.signal.aborted);
  }

  function schedule(delayMs?: number): void {
    if (abort.signal.aborted) return;
    clearTimeout(timer);
    const at = store.outbox.nextDueAt();
    if (delayMs === undefined && at === undefined) return;
    timer = setTimeout(kick, delayMs ?? Math.max(10, at! - now()));
  }

  // Deferred to a microtask: a kick from inside a transaction runs after it committed, so a
  // rolled-back message is never sent.
  function kick(): void {
    queueMicrotask(flushNow);
  }

  function flushNow(): void {
    if (abort.signal.aborted || !api) return;
    if (running) {
      again = true;
      return;
    }
    running = flush(api).then(
      () => {
        stallMs = 0;
        running = undefined;
        schedule();
      },
      (error: unknown) => {
        stallMs = Math.min(OUTBOX_STALL_MAX_MS, Math.max(1000, stallMs * 2));
        log.error({ err: error, retryInMs: stallMs }, 'the outbox failed; pausing delivery');
        running = undefined;
        schedule(stallMs);
      },
    );
  }

  return {
    start(telegramApi) {
      api = telegramApi;
      kick();
    },
    kick,
    async stop() {
      abort.abort();
      clearTimeout(timer);
      await running;
    },
  };
}

/** Telegram HTML to plain text: tags dropped, entities decoded. */
export function htmlToPlain(text: string): string {
  return text
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&amp;/g, '&');
}
