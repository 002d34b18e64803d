import type { Database } from 'better-sqlite3';
import { z } from 'zod';

/** A message waiting to be sent (or sent, or given up on). */
export interface OutboxMessage {
  readonly id: number;
  readonly chatId: number;
  /** Telegram HTML, at most one message long. */
  readonly text: string;
  readonly replyMarkup: unknown;
  readonly itemId: number | null;
  readonly attempts: number;
  readonly createdAt: number;
  /** Set when this row edits an earlier message (that row's id) instead of sending a new one. */
  readonly editOf: number | null;
  /**
   * Set when a send of this message was started and its outcome never recorded: the process
   * died with the call in flight, so Telegram may already have shown it.
   */
  readonly sendingAt: number | null;
  /** Sent again after such a crash: an earlier copy may be in the chat, above the recorded one. */
  readonly resent: boolean;
}

/**
 * Whether a tap from Telegram message `messageId` in `chatId` is on `message`: its recorded
 * message, or, when it was sent again after a crash mid-send, an earlier copy of it above.
 */
export function isTapOn(message: OutboxMessage & { telegramMessageId: number | null }, chatId: number, messageId: number): boolean {
  if (message.chatId !== chatId || message.telegramMessageId === null) return false;
  return message.telegramMessageId === messageId || (message.resent && messageId < message.telegramMessageId);
}

/** What to enqueue. */
export interface NewOutboxMessage {
  readonly chatId: number;
  readonly text: string;
  readonly replyMarkup?: unknown;
  readonly itemId?: number;
  /** Edit the message of this outbox row (text and buttons; no `replyMarkup` removes the buttons). */
  readonly editOf?: number;
}

const outboxRow = z.object({
  id: z.number().int(),
  chat_id: z.number(),
  text: z.string(),
  reply_markup: z.string().nullable(),
  item_id: z.number().nullable(),
  attempts: z.number().int(),
  created_at: z.number(),
  edit_of: z.number().nullable(),
  sending_at: z.number().nullable(),
  resent: z.number().int(),
});

function toMessage(row: unknown): OutboxMessage {
  const r = outboxRow.parse(row);
  return {
    id: r.id,
    chatId: r.chat_id,
    text: r.text,
    replyMarkup: r.reply_markup === null ? undefined : JSON.parse(r.reply_markup),
    itemId: r.item_id,
    attempts: r.attempts,
    createdAt: r.created_at,
    editOf: r.edit_of,
    sendingAt: r.sending_at,
    resent: r.resent === 1,
  };
}

/**
 * Outgoing Telegram messages. A message is written here before it is sent (in the same
 * transaction as whatever caused it), then marked sent with Telegram's message id, so a crash
 * between the two re-sends it instead of losing it. The start of each send is recorded too
 * (`markSending`), so a re-send after such a crash knows it may be a second copy.
 */
export function createOutbox(db: Database, now: () => number) {
  const insert = db.prepare(
    `INSERT INTO outbox (chat_id, text, reply_markup, item_id, edit_of, next_attempt_at, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  // The oldest pending message of each chat: messages to one chat go out in order, so a
  // message waiting to be retried holds back the ones queued after it (and only those).
  const headsOfLine = `
    SELECT * FROM outbox o
    WHERE status = 'pending'
      AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.status = 'pending' AND e.chat_id = o.chat_id AND e.id < o.id)`;
  const due = db.prepare(`${headsOfLine} AND next_attempt_at <= ? ORDER BY id LIMIT ?`);
  const nextDue = db.prepare(`SELECT min(next_attempt_at) AS at FROM (${headsOfLine})`);
  const sent = db.prepare(
    `UPDATE outbox SET status = 'sent', telegram_message_id = ?, sent_at = ?, attempts = attempts + 1, last_error = NULL, sending_at = NULL
     WHERE id = ? AND status = 'pending'`,
  );
  const retry = db.prepare(
    `UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, sending_at = NULL WHERE id = ? AND status = 'pending'`,
  );
  const failed = db.prepare(
    `UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?, sending_at = NULL WHERE id = ? AND status = 'pending'`,
  );
  const byId = db.prepare('SELECT * FROM outbox WHERE id = ?');
  const updatePending = db.prepare(`UPDATE outbox SET text = ? WHERE id = ? AND status = 'pending'`);
  const sending = db.prepare(`UPDATE outbox SET sending_at = ?, resent = max(resent, ?) WHERE id = ? AND status = 'pending'`);
  const byTelegramId = db.prepare(
    'SELECT id, item_id FROM outbox WHERE chat_id = ? AND telegram_message_id = ? AND edit_of IS NULL ORDER BY id DESC LIMIT 1',
  );

  return {
    /** Adds messages (parts of one logical message, in order); returns their ids. */
    enqueue(...messages: NewOutboxMessage[]): number[] {
      const at = now();
      return messages.map((m) =>
        Number(
          insert.run(
            m.chatId,
            m.text,
            m.replyMarkup === undefined ? null : JSON.stringify(m.replyMarkup),
            m.itemId ?? null,
            m.editOf ?? null,
            at,
            at,
          ).lastInsertRowid,
        ),
      );
    },
    /** Messages to send now: per chat, the oldest pending one if it is due; oldest first. */
    due(limit = 50): OutboxMessage[] {
      return due.all(now(), limit).map(toMessage);
    },
    /** When `due` will next return something (ms epoch), or undefined if nothing is pending. */
    nextDueAt(): number | undefined {
      return (nextDue.get() as { at: number | null }).at ?? undefined;
    },
    /** Records that a send of the message starts now (see `OutboxMessage.sendingAt`); `resent` when it may be a second copy. */
    markSending(id: number, resent = false): void {
      sending.run(now(), resent ? 1 : 0, id);
    },
    markSent(id: number, telegramMessageId: number): void {
      sent.run(telegramMessageId, now(), id);
    },
    /** Keeps the message pending and tries again at `nextAttemptAt`. */
    markRetry(id: number, error: string, nextAttemptAt: number): void {
      retry.run(error, nextAttemptAt, id);
    },
    /** Gives up on the message (Telegram refused it for good, e.g. the user blocked the bot). */
    markFailed(id: number, error: string): void {
      failed.run(error, id);
    },
    /** Replaces the text of a message not sent yet; false if it was already sent (or given up). */
    updatePendingText(id: number, text: string): boolean {
      return updatePending.run(text, id).changes === 1;
    },
    /** The row that sent Telegram message `messageId` to `chatId` (not an edit of it), with the item it is about. */
    byTelegramMessage(chatId: number, messageId: number): { id: number; itemId: number | null } | undefined {
      const row = byTelegramId.get(chatId, messageId) as { id: number; item_id: number | null } | undefined;
      return row && { id: row.id, itemId: row.item_id };
    },
    /** Reads one message back with its status, for diagnostics and tests. */
    get(id: number) {
      const row = byId.get(id) as
        | { status: string; telegram_message_id: number | null; last_error: string | null }
        | undefined;
      return row && { ...toMessage(row), status: row.status, telegramMessageId: row.telegram_message_id, lastError: row.last_error };
    },
  };
}

/** The outbox part of the store. */
export type Outbox = ReturnType<typeof createOutbox>;
