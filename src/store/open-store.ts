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

/** What is wrong with a database file nightshift cannot use, and the process exit code that says so. */
export type DatabaseProblem = 'corrupt' | 'locked' | 'unopenable';

/**
 * The database at `path` cannot be used: corrupt, locked by another process past the busy
 * timeout, or not openable at all. The message names the file and what to do; the file is
 * never changed by the attempt (nightshift does not try to repair it).
 */
export class DatabaseUnusable extends Error {
  override readonly name = 'DatabaseUnusable';
  constructor(
    readonly path: string,
    readonly problem: DatabaseProblem,
    /** The SQLite (or file system) error code, e.g. SQLITE_NOTADB. */
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(explain(path, problem, code), options);
  }

  /** sysexits: EX_DATAERR for a corrupt file, EX_TEMPFAIL for a lock, EX_CANTCREAT otherwise. */
  get exitCode(): number {
    return this.problem === 'corrupt' ? 65 : this.problem === 'locked' ? 75 : 73;
  }
}

function explain(path: string, problem: DatabaseProblem, code: string): string {
  switch (problem) {
    case 'corrupt':
      return `the database ${path} is not a readable SQLite database (${code}); it was left as it is. Restore it from a backup, or move it aside to start with an empty database (all queued items and history in it are then gone)`;
    case 'locked':
      return `the database ${path} is locked by another process (${code}, waited ${BUSY_TIMEOUT_MS} ms); stop the other nightshift or sqlite3 shell holding it and start again`;
    case 'unopenable':
      return `the database ${path} cannot be opened (${code}); check that DATA_DIR is a directory this user can write to`;
  }
}

/**
 * Turns an error from opening or first using the database into `DatabaseUnusable` when it
 * means the file itself cannot be used; any other error is returned unchanged.
 */
export function databaseError(path: string, error: unknown): unknown {
  if (error instanceof DatabaseUnusable) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return error;
  // Extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_CORRUPT_INDEX, …) share their primary's meaning.
  const problem: DatabaseProblem | undefined =
    code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')
      ? 'corrupt'
      : code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')
        ? 'locked'
        : code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM') || ['EACCES', 'EPERM', 'ENOTDIR', 'EEXIST', 'EROFS'].includes(code)
          ? 'unopenable'
          : undefined;
  return problem ? new DatabaseUnusable(path, problem, code, { cause: error }) : error;
}

/**
 * A short, user-readable account of a failed database write, for notices: a full disk is named
 * as such (SQLite reports it as SQLITE_FULL, the file system as ENOSPC).
 */
export function describeStoreError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') return `the disk holding the database is full (${code})`;
  if (typeof code === 'string' && code.startsWith('SQLITE_IOERR')) return `the database could not be written (${code})`;
  return error instanceof Error ? error.message : String(error);
}

/** Options for `openStore`. */
export interface StoreOptions {
  /** Clock for timestamps. @default Date.now */
  readonly now?: () => number;
}

/**
 * Opens (creating if needed) the SQLite database at `path` in WAL mode with foreign keys and
 * a busy timeout, and brings its schema up to date. A corrupt, locked or unopenable file
 * throws `DatabaseUnusable`.
 */
export function openStore(path: string, options: StoreOptions = {}) {
  const now = options.now ?? Date.now;
  let db: Database.Database;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    // The constructor's own busy timeout covers the pragmas below, which run before ours is set.
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (error) {
    throw databaseError(path, error);
  }
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
    throw databaseError(path, error);
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
