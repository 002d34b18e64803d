import type { Database } from 'better-sqlite3';

/** How long processed update ids are kept. Telegram keeps undelivered updates for 24 h. @default 7 days */
export const INBOX_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** Processed Telegram `update_id`s, so a redelivered update has no second effect. */
export function createInbox(db: Database, now: () => number) {
  const insert = db.prepare('INSERT OR IGNORE INTO inbox (update_id, received_at) VALUES (?, ?)');
  const prune = db.prepare('DELETE FROM inbox WHERE received_at < ?');
  return {
    /**
     * Records the update as processed. Returns false if it already was. Call it in the same
     * transaction as the update's effects, so "processed" and "done" can never disagree.
     */
    claim(updateId: number): boolean {
      return insert.run(updateId, now()).changes === 1;
    },
    /** Forgets ids older than the retention period; returns how many. */
    prune(): number {
      return prune.run(now() - INBOX_RETENTION_MS).changes;
    },
  };
}

/** The inbox part of the store. */
export type Inbox = ReturnType<typeof createInbox>;
