import type { Database } from 'better-sqlite3';
import { z } from 'zod';
import { ACTIVE_STATES, ITEM_STATES, TERMINAL_STATES, transition, type ItemState } from '../domain/item-state.js';

/** A write from a worker whose lease on the item was taken over by a newer claim. */
export class StaleLease extends Error {
  override readonly name = 'StaleLease';
  constructor(
    readonly itemId: number,
    readonly fence: number,
    readonly current: number,
  ) {
    super(`item ${itemId}: lease ${fence} is stale (now ${current}); the write was refused`);
  }
}

/** A work item as stored. */
export interface Item {
  readonly id: number;
  readonly repo: string;
  readonly title: string;
  readonly request: string;
  readonly state: ItemState;
  readonly stateReason: string | null;
  readonly chatId: number;
  readonly createdBy: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly branch: string | null;
  readonly prNumber: number | null;
  readonly prUrl: string | null;
  readonly headSha: string | null;
  /** The outbox row of the item's progress message, edited as the run goes. */
  readonly progressOutboxId: number | null;
  /** When a deferred item comes back (ms epoch). */
  readonly wakeAt: number | null;
  readonly mergeCommitSha: string | null;
  /** The item whose review proposed this one. */
  readonly parentItemId: number | null;
  /** Not to start before (a retry's backoff, a budget's reset), ms epoch. */
  readonly notBefore: number | null;
  /** Failed attempts of its current stage (rate limits and budget waits do not count). */
  readonly attempts: number;
  /** Where the item's sizing stands (see {@link SizingStatus}); null: never sized. */
  readonly sizing: SizingStatus | null;
  /** The estimated cost range from sizing, in dollars. */
  readonly estimateLowUsd: number | null;
  readonly estimateHighUsd: number | null;
}

/** Sizing statuses, as migration 7 allows them. */
export const SIZING_STATUSES = ['pending', 'asked', 'parked', 'done'] as const;
/**
 * pending: to be sized (again) · asked: the verdict waits for the user's tap or answer ·
 * parked: sizing could not finish, the user decides · done.
 */
export type SizingStatus = (typeof SIZING_STATUSES)[number];

/** What a new item needs. */
export interface NewItem {
  readonly repo: string;
  readonly title: string;
  readonly request: string;
  readonly chatId: number;
  readonly createdBy: number;
  readonly sourceUpdateId?: number;
  /** @default 'queued' */
  readonly state?: ItemState;
  /** The item whose review proposed this one (or that was split into it). */
  readonly parentItemId?: number;
  /** `pending`: sized before it is queued (the item starts `proposed`). */
  readonly sizing?: 'pending';
}

const itemRow = z.object({
  id: z.number().int(),
  repo: z.string(),
  title: z.string(),
  request: z.string(),
  state: z.enum(ITEM_STATES),
  state_reason: z.string().nullable(),
  chat_id: z.number(),
  created_by: z.number(),
  created_at: z.number(),
  updated_at: z.number(),
  branch: z.string().nullable(),
  pr_number: z.number().nullable(),
  pr_url: z.string().nullable(),
  head_sha: z.string().nullable(),
  progress_outbox_id: z.number().nullable(),
  wake_at: z.number().nullable(),
  merge_commit_sha: z.string().nullable(),
  parent_item_id: z.number().nullable(),
  not_before: z.number().nullable(),
  attempts: z.number().int().nonnegative(),
  sizing: z.enum(SIZING_STATUSES).nullable(),
  estimate_low_usd: z.number().nullable(),
  estimate_high_usd: z.number().nullable(),
});

function toItem(row: unknown): Item {
  const r = itemRow.parse(row);
  return {
    id: r.id,
    repo: r.repo,
    title: r.title,
    request: r.request,
    state: r.state,
    stateReason: r.state_reason,
    chatId: r.chat_id,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    branch: r.branch,
    prNumber: r.pr_number,
    prUrl: r.pr_url,
    headSha: r.head_sha,
    progressOutboxId: r.progress_outbox_id,
    wakeAt: r.wake_at,
    mergeCommitSha: r.merge_commit_sha,
    parentItemId: r.parent_item_id,
    notBefore: r.not_before,
    attempts: r.attempts,
    sizing: r.sizing,
    estimateLowUsd: r.estimate_low_usd,
    estimateHighUsd: r.estimate_high_usd,
  };
}

const inList = (states: ReadonlySet<ItemState>) => [...states].map((s) => `'${s}'`).join(', ');

/** Item queries and state changes. Every state change also writes an `item_events` row. */
export function createItemStore(db: Database, now: () => number) {
  const insert = db.prepare(
    `INSERT INTO items (repo, title, request, state, chat_id, created_by, source_update_id, parent_item_id, sizing, created_at, updated_at)
     VALUES (@repo, @title, @request, @state, @chatId, @createdBy, @sourceUpdateId, @parentItemId, @sizing, @now, @now)`,
  );
  const insertEvent = db.prepare(
    'INSERT INTO item_events (item_id, from_state, to_state, reason, at) VALUES (?, ?, ?, ?, ?)',
  );
  const byId = db.prepare('SELECT * FROM items WHERE id = ?');
  const setState = db.prepare(
    'UPDATE items SET state = ?, state_reason = ?, updated_at = ? WHERE id = ? AND state = ?',
  );
  const openItems = db.prepare(
    `SELECT * FROM items WHERE state NOT IN (${inList(TERMINAL_STATES)}) ORDER BY id DESC LIMIT ? OFFSET ?`,
  );
  const openCount = db.prepare(`SELECT count(*) AS n FROM items WHERE state NOT IN (${inList(TERMINAL_STATES)})`);
  const activeItems = db.prepare(`SELECT * FROM items WHERE state IN (${inList(ACTIVE_STATES)}) ORDER BY id`);
  const countsByState = db.prepare('SELECT state, count(*) AS n FROM items GROUP BY state');
  // Items of a repo whose building the human paused wait; so do items waiting out a backoff.
  const oldestQueued = db.prepare(
    `SELECT * FROM items WHERE state = 'queued' AND repo NOT IN (SELECT repo FROM paused_repos)
       AND (not_before IS NULL OR not_before <= @now) AND repo NOT IN (SELECT value FROM json_each(@busy))
     ORDER BY id LIMIT 1`,
  );
  const lease = db.prepare(
    'UPDATE items SET lease_owner = ?, lease_expires_at = ?, lease_fence = lease_fence + 1 WHERE id = ? RETURNING lease_fence AS fence',
  );
  const renew = db.prepare('UPDATE items SET lease_expires_at = ? WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))');
  const unlease = db.prepare('UPDATE items SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_fence = ?');
  const fenceOf = db.prepare('SELECT lease_fence AS fence FROM items WHERE id = ?');
  const setNotBefore = db.prepare('UPDATE items SET not_before = ?, updated_at = ? WHERE id = ?');
  const addAttempt = db.prepare('UPDATE items SET attempts = attempts + 1, updated_at = ? WHERE id = ? RETURNING attempts');
  const clearAttempts = db.prepare('UPDATE items SET attempts = 0 WHERE id = ? AND attempts <> 0');
  const setWake = db.prepare('UPDATE items SET wake_at = ?, updated_at = ? WHERE id = ?');
  const dueDeferred = db.prepare(`SELECT * FROM items WHERE state = 'deferred' AND wake_at <= ? ORDER BY wake_at, id`);
  const setMerged = db.prepare('UPDATE items SET merge_commit_sha = ?, updated_at = ? WHERE id = ?');
  const setPull = db.prepare('UPDATE items SET branch = ?, pr_number = ?, pr_url = ?, head_sha = ?, updated_at = ? WHERE id = ?');
  const setBranch = db.prepare('UPDATE items SET branch = ?, updated_at = ? WHERE id = ?');
  const setHead = db.prepare('UPDATE items SET head_sha = ?, updated_at = ? WHERE id = ?');
  const setProgress = db.prepare('UPDATE items SET progress_outbox_id = ? WHERE id = ?');
  const setReview = db.prepare('UPDATE items SET review_summary = ?, updated_at = ? WHERE id = ?');
  const setComment = db.prepare('UPDATE items SET review_comment_id = ? WHERE id = ?');
  const reviewOf = db.prepare('SELECT review_summary, review_comment_id FROM items WHERE id = ?');
  const dueSizing = db.prepare(
    `SELECT * FROM items WHERE state = 'proposed' AND sizing = 'pending' AND (not_before IS NULL OR not_before <= ?) ORDER BY id`,
  );
  const setSized = db.prepare(
    `UPDATE items SET sizing = @sizing, size_report = @report, estimate_low_usd = @low, estimate_high_usd = @high,
       sizing_attempts = 0, not_before = NULL, updated_at = @at WHERE id = @id`,
  );
  const setSizingStatus = db.prepare('UPDATE items SET sizing = ?, updated_at = ? WHERE id = ?');
  const retrySizing = db.prepare(
    'UPDATE items SET sizing_attempts = sizing_attempts + ?, not_before = ?, updated_at = ? WHERE id = ? RETURNING sizing_attempts AS attempts',
  );
  const sizeReportOf = db.prepare('SELECT size_report, sizing_attempts FROM items WHERE id = ?');
  const resize = db.prepare(
    `UPDATE items SET request = ?, sizing = 'pending', size_report = NULL, estimate_low_usd = NULL, estimate_high_usd = NULL,
       sizing_attempts = 0, not_before = NULL, updated_at = ? WHERE id = ?`,
  );
  const setRequest = db.prepare('UPDATE items SET request = ?, updated_at = ? WHERE id = ?');
  const sizingCounts = db.prepare(`SELECT sizing, count(*) AS n FROM items WHERE state = 'proposed' AND sizing IS NOT NULL GROUP BY sizing`);
  const bundleable = db.prepare(
    `SELECT * FROM items WHERE repo = ? AND id != ? AND state = 'queued' AND branch IS NULL ORDER BY id DESC LIMIT ?`,
  );

  return {
    /** Inserts an item and its first event; returns it. */
    create(item: NewItem): Item {
      return db.transaction(() => {
        const state = item.state ?? 'queued';
        const at = now();
        const { lastInsertRowid } = insert.run({
          repo: item.repo,
          title: item.title,
          request: item.request,
          state,
          chatId: item.chatId,
          createdBy: item.createdBy,
          sourceUpdateId: item.sourceUpdateId ?? null,
          parentItemId: item.parentItemId ?? null,
          sizing: item.sizing ?? null,
          now: at,
        });
        const id = Number(lastInsertRowid);
        insertEvent.run(id, null, state, null, at);
        return toItem(byId.get(id));
      })();
    },

    /** The item with this id, or undefined. */
    get(id: number): Item | undefined {
      const row = byId.get(id);
      return row === undefined ? undefined : toItem(row);
    },

    /**
     * Moves an item to `to` if that move is legal from its current state (throws
     * `IllegalTransition` otherwise). The update is conditional on the state read, so a
     * concurrent change is never overwritten.
     */
    transition(id: number, to: ItemState, reason?: string): Item {
      return db.transaction(() => {
        const current = this.get(id);
        if (!current) throw new Error(`item ${id} does not exist`);
        transition(current.state, to);
        const at = now();
        const { changes } = setState.run(to, reason ?? null, at, id, current.state);
        if (changes !== 1) throw new Error(`item ${id} changed state while moving to ${to}`);
        insertEvent.run(id, current.state, to, reason ?? null, at);
        return toItem(byId.get(id));
      })();
    },

    /** Open (non-terminal) items, newest first. */
    listOpen(limit: number, offset: number): Item[] {
      return openItems.all(limit, offset).map(toItem);
    },

    /** How many items are open. */
    countOpen(): number {
      return (openCount.get() as { n: number }).n;
    },

    /** Items a stage is working on (building, reviewing, fixing). */
    listActive(): Item[] {
      return activeItems.all().map(toItem);
    },

    /** The queued item that has waited longest, if any, skipping paused repos, `busyRepos` and items in backoff. */
    oldestQueued(busyRepos: readonly string[] = []): Item | undefined {
      const row = oldestQueued.get({ now: now(), busy: JSON.stringify(busyRepos) });
      return row === undefined ? undefined : toItem(row);
    },

    /**
     * Leases the item to `owner` until `expiresAt` and returns the new fencing token: every
     * claim gets a larger one, so a write carrying an older token is from a stale worker.
     */
    lease(id: number, owner: string, expiresAt: number): number {
      return (lease.get(owner, expiresAt, id) as { fence: number }).fence;
    },

    /** Extends `owner`'s leases on these items (the heartbeat). */
    renewLeases(owner: string, ids: readonly number[], expiresAt: number): void {
      renew.run(expiresAt, owner, JSON.stringify(ids));
    },

    /** Ends a lease, if `fence` is still the current one. */
    releaseLease(id: number, fence: number): void {
      unlease.run(id, fence);
    },

    /** The item's current fencing token. */
    fence(id: number): number {
      return (fenceOf.get(id) as { fence: number } | undefined)?.fence ?? 0;
    },

    /**
     * Moves the item like `transition`, but only for the holder of fencing token `fence`:
     * a worker whose lease was taken over gets `StaleLease` and changes nothing.
     */
    transitionFenced(id: number, fence: number, to: ItemState, reason?: string): Item {
      return db.transaction(() => {
        const current = this.fence(id);
        if (current !== fence) throw new StaleLease(id, fence, current);
        return this.transition(id, to, reason);
      })();
    },

    /** Keeps the item from starting before `at` (a retry's backoff, a budget reset); null clears it. */
    setNotBefore(id: number, at: number | null): void {
      setNotBefore.run(at, now(), id);
    },

    /** Counts one more failed attempt of the item's current stage; returns the count. */
    addAttempt(id: number): number {
      return (addAttempt.get(now(), id) as { attempts: number }).attempts;
    },

    /** Forgets the failed attempts (its stage succeeded, or the user asked for a retry). */
    clearAttempts(id: number): void {
      clearAttempts.run(id);
    },

    /** Records the item's branch. */
    setBranch(id: number, branch: string): void {
      setBranch.run(branch, now(), id);
    },

    /** Records the item's pull request and the head it was opened at. */
    setPullRequest(id: number, pr: { branch: string; number: number; url: string; headSha: string }): void {
      setPull.run(pr.branch, pr.number, pr.url, pr.headSha, now(), id);
    },

    /** Records the PR head the item's review ended on (the head its card offers to merge). */
    setHeadSha(id: number, sha: string): void {
      setHead.run(sha, now(), id);
    },

    /** Remembers which outbox message is the item's progress message. */
    setProgressOutboxId(id: number, outboxId: number): void {
      setProgress.run(outboxId, id);
    },

    /** Stores the compact triage summary (JSON) for the review card. */
    setReviewSummary(id: number, summary: unknown): void {
      setReview.run(JSON.stringify(summary), now(), id);
    },

    /** The stored review summary and sticky comment id. */
    review(id: number): { summary: unknown; commentId: number | null } {
      const row = reviewOf.get(id) as { review_summary: string | null; review_comment_id: number | null } | undefined;
      return { summary: row?.review_summary ? (JSON.parse(row.review_summary) as unknown) : null, commentId: row?.review_comment_id ?? null };
    },

    /** Remembers the id of the item's sticky PR comment. */
    setReviewCommentId(id: number, commentId: number): void {
      setComment.run(commentId, id);
    },

    /** Sets (or clears) when a deferred item comes back. */
    setWakeAt(id: number, wakeAt: number | null): void {
      setWake.run(wakeAt, now(), id);
    },

    /** Deferred items whose wake time has come, earliest first. */
    dueDeferred(at: number): Item[] {
      return dueDeferred.all(at).map(toItem);
    },

    /** Records the commit a merge made. */
    setMergeCommit(id: number, sha: string): void {
      setMerged.run(sha, now(), id);
    },

    /** Proposed items whose sizing is pending and not waiting out a backoff at `at`, oldest first. */
    dueForSizing(at: number): Item[] {
      return dueSizing.all(at).map(toItem);
    },

    /**
     * Records a sizing result: the status, the report (JSON) and the estimated range; the
     * failed-attempt count and any backoff are cleared.
     */
    recordSizing(id: number, result: { sizing: SizingStatus; report?: unknown; lowUsd?: number; highUsd?: number }): void {
      setSized.run({
        id,
        sizing: result.sizing,
        report: result.report === undefined ? null : JSON.stringify(result.report),
        low: result.lowUsd ?? null,
        high: result.highUsd ?? null,
        at: now(),
      });
    },

    /** Sets where the item's sizing stands, keeping its report. */
    setSizing(id: number, sizing: SizingStatus): void {
      setSizingStatus.run(sizing, now(), id);
    },

    /** A sizing call to try again at `notBefore`; `counted` adds one failed attempt. Returns the failed attempts so far. */
    retrySizing(id: number, notBefore: number, counted: boolean): number {
      return (retrySizing.get(counted ? 1 : 0, notBefore, now(), id) as { attempts: number } | undefined)?.attempts ?? 0;
    },

    /** The stored sizing report (parsed JSON, unvalidated), or null. */
    sizeReport(id: number): unknown {
      const row = sizeReportOf.get(id) as { size_report: string | null } | undefined;
      return row?.size_report ? (JSON.parse(row.size_report) as unknown) : null;
    },

    /** Replaces the request and sizes the item again from scratch (an answer was added to it). */
    resize(id: number, request: string): void {
      resize.run(request, now(), id);
    },

    /** Replaces the item's request (other requests were bundled into it). */
    setRequest(id: number, request: string): void {
      setRequest.run(request, now(), id);
    },

    /** Proposed items per sizing status; statuses with none are absent. */
    countSizing(): Partial<Record<SizingStatus, number>> {
      const counts: Partial<Record<SizingStatus, number>> = {};
      for (const row of sizingCounts.all() as Array<{ sizing: SizingStatus; n: number }>) counts[row.sizing] = row.n;
      return counts;
    },

    /** Queued items of `repo` that have not started (no branch yet), other than `exceptId`, newest first: what a small item may be bundled with. */
    bundleable(repo: string, exceptId: number, limit: number): Item[] {
      return bundleable.all(repo, exceptId, limit).map(toItem);
    },

    /** Item counts per state; states with no items are absent. */
    countByState(): Partial<Record<ItemState, number>> {
      const counts: Partial<Record<ItemState, number>> = {};
      for (const row of countsByState.all() as Array<{ state: ItemState; n: number }>) counts[row.state] = row.n;
      return counts;
    },
  };
}

/** The item part of the store. */
export type ItemStore = ReturnType<typeof createItemStore>;
