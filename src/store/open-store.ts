import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { createAgentRuns } from './agent-runs.js';
import { createBatches } from './batches.js';
import { createCards } from './cards.js';
import { createCheckpoints } from './checkpoints.js';
import { createFindings } from './findings.js';
import { createInbox } from './inbox.js';
import { createItemStore } from './items.js';
import { createLedger } from './ledger.js';
import { createLessons } from './lessons.js';
import { migrate } from './migrations.js';
import { createOutbox } from './outbox.js';
import { createProcessLock } from './process-lock.js';
import { createSettings } from './settings.js';

/** How long a write waits for another connection's lock before failing. @default 5000 */
export const BUSY_TIMEOUT_MS = 5000;

/** Options for `openStore`. */
export interface StoreOptions {
  /** Clock for timestamps. @default Date.now */
  readonly now?: () => number;
}

/**
 * Opens (creating if needed) the SQLite database at `path` in WAL mode with foreign keys and
 * a busy timeout, and brings its schema up to date.
 */
export function openStore(path: string, options: StoreOptions = {}) {
  const now = options.now ?? Date.now;
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // NORMAL (WAL): a commit survives a crash of the process (kill -9) but is not fsynced
    // until the next checkpoint, so a power loss or OS crash can undo the last few commits
    // (the database stays consistent). FULL fsyncs every commit: 4–20 ms each on a busy disk,
    // twice per Telegram update (its claim, then the reply marked sent), which made a burst of
    // taps wait hundreds of milliseconds for answers (bench/README.md, responsiveness).
    db.pragma('synchronous = NORMAL');
    migrate(db);
  } catch (error) {
    db.close();
    throw error;
  }
  return {
    items: createItemStore(db, now),
    inbox: createInbox(db, now),
    outbox: createOutbox(db, now),
    ledger: createLedger(db, now),
    agentRuns: createAgentRuns(db, now),
    findings: createFindings(db, now),
    cards: createCards(db, now),
    lessons: createLessons(db, now),
    checkpoints: createCheckpoints(db, now),
    lock: createProcessLock(db, now),
    settings: createSettings(db),
    batches: createBatches(db, now),
    /** Runs `fn` in one transaction (a savepoint when nested). `fn` must be synchronous. */
    transaction<T>(fn: () => T): T {
      return db.transaction(fn)();
    },
    /** Closes the database; later calls throw. */
    close(): void {
      if (db.open) db.close();
    },
  };
}

/** The whole store. */
export type Store = ReturnType<typeof openStore>;
