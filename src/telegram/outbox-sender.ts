import { GrammyError, HttpError, type Api } from 'grammy';
import type { Logger } from 'pino';
import type { OutboxMessage } from '../store/outbox.js';
import type { Store } from '../store/open-store.js';

/** First wait after a failed send; doubles per attempt. @default 1000 */
export const OUTBOX_RETRY_BASE_MS = 1000;
/** Longest wait between two attempts at one message. @default 10 minutes */
export const OUTBOX_RETRY_MAX_MS = 10 * 60 * 1000;
/** A message still unsent after this long is given up (and logged), not sent late. @default 24 hours */
export const OUTBOX_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** Delivers outbox messages, in order per chat, and retries the ones that failed. */
export interface OutboxSender {
  /** Starts delivering through `api` (which should carry the auto-retry transformer). */
  start(api: Api): void;
  /** Sends whatever is due now (call after enqueueing); a no-op before `start`. */
  kick(): void;
  /** Stops after the send in flight; pending messages stay in the outbox for the next start. */
  stop(): Promise<void>;
}

/** Creates the outbox sender; nothing is sent until `start`. */
export function createOutboxSender(deps: {
  store: Store;
  log: Logger;
  /** Applied to every text before it leaves the process. */
  redact: (text: string) => string;
  now?: () => number;
}): OutboxSender {
  const { store, log, redact } = deps;
  const now = deps.now ?? Date.now;
  let api: Api | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  async function send(api: Api, message: OutboxMessage): Promise<void> {
    const mlog = log.child({ outboxId: message.id, chatId: message.chatId, itemId: message.itemId ?? undefined });
    try {
      const sent = await api.sendMessage(message.chatId, redact(message.text), {
        parse_mode: 'HTML',
        link_preview_options: { is_disabled: true },
        ...(message.replyMarkup === undefined ? {} : { reply_markup: message.replyMarkup as never }),
      });
      store.outbox.markSent(message.id, sent.message_id);
      return;
    } catch (error) {
      if (error instanceof GrammyError && /can't parse entities/i.test(error.description)) {
        // Our own HTML was malformed. The user still gets the message, as plain text.
        mlog.error({ err: error }, 'Telegram rejected our HTML; sending the message as plain text');
        try {
          const sent = await api.sendMessage(message.chatId, redact(htmlToPlain(message.text)), {
            link_preview_options: { is_disabled: true },
            ...(message.replyMarkup === undefined ? {} : { reply_markup: message.replyMarkup as never }),
          });
          store.outbox.markSent(message.id, sent.message_id);
          return;
        } catch (plainError) {
          return handleFailure(message, plainError, mlog);
        }
      }
      return handleFailure(message, error, mlog);
    }
  }

  function handleFailure(message: OutboxMessage, error: unknown, mlog: Logger): void {
    const permanent = error instanceof GrammyError && error.error_code >= 400 && error.error_code < 500 && error.error_code !== 429;
    const reason = error instanceof GrammyError ? `${error.error_code} ${error.description}` : error instanceof HttpError ? `network: ${error.message}` : String(error);
    if (permanent) {
      // 403 (blocked by the user), 400 (chat not found, bad request): sending again won't help.
      mlog.error({ err: error }, 'Telegram refused the message for good; giving up on it');
      store.outbox.markFailed(message.id, redact(reason));
      return;
    }
    if (now() - message.createdAt > OUTBOX_MAX_AGE_MS) {
      mlog.error({ err: error, attempts: message.attempts + 1 }, 'message could not be sent for a day; giving up on it');
      store.outbox.markFailed(message.id, redact(reason));
      return;
    }
    const retryAfterMs =
      error instanceof GrammyError && typeof error.parameters.retry_after === 'number' ? error.parameters.retry_after * 1000 : 0;
    const backoff = Math.min(OUTBOX_RETRY_MAX_MS, OUTBOX_RETRY_BASE_MS * 2 ** message.attempts);
    const delay = Math.max(backoff, retryAfterMs);
    mlog.warn({ err: error, attempts: message.attempts + 1, retryInMs: delay }, 'sending failed; will retry');
    store.outbox.markRetry(message.id, redact(reason), now() + delay);
  }

  async function flush(api: Api): Promise<void> {
    do {
      again = false;
      for (const message of store.outbox.due()) {
        if (stopped) return;
        // Parts of a long message, and messages to one chat, arrive in order or not at all yet.
        if (store.outbox.hasEarlierPending(message)) continue;
        await send(api, message);
      }
    } while (again && !stopped);
  }

  function schedule(): void {
    if (stopped) return;
    clearTimeout(timer);
    const at = store.outbox.nextDueAt();
    if (at === undefined) return;
    timer = setTimeout(kick, Math.max(0, at - now()));
  }

  function kick(): void {
    if (stopped || !api) return;
    if (running) {
      again = true;
      return;
    }
    running = flush(api)
      .catch((error: unknown) => log.error({ err: error }, 'outbox delivery failed'))
      .finally(() => {
        running = undefined;
        schedule();
      });
  }

  return {
    start(telegramApi) {
      api = telegramApi;
      kick();
    },
    kick,
    async stop() {
      stopped = true;
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
