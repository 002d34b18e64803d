import type { Database } from 'better-sqlite3';
import { z } from 'zod';

/** A drift checkpoint of one repo. */
export interface Checkpoint {
  readonly id: number;
  readonly repo: string;
  /** How many of the repo's items had been merged when it was taken. */
  readonly mergesTotal: number;
  readonly status: 'pending' | 'done' | 'failed';
  /** The design reviewer's report (JSON), once done. */
  readonly report: unknown;
  readonly createdAt: number;
}

const checkpointRow = z.object({
  id: z.number(),
  repo: z.string(),
  merges_total: z.number(),
  status: z.enum(['pending', 'done', 'failed']),
  report: z.string().nullable(),
  created_at: z.number(),
});

function toCheckpoint(row: unknown): Checkpoint {
  const r = checkpointRow.parse(row);
  return { id: r.id, repo: r.repo, mergesTotal: r.merges_total, status: r.status, report: r.report === null ? null : JSON.parse(r.report), createdAt: r.created_at };
}

/** Drift checkpoints and the repos whose building is paused. */
export function createCheckpoints(db: Database, now: () => number) {
  const insert = db.prepare(`INSERT INTO checkpoints (repo, merges_total, status, created_at) VALUES (?, ?, 'pending', ?)`);
  const byId = db.prepare('SELECT * FROM checkpoints WHERE id = ?');
  const last = db.prepare('SELECT * FROM checkpoints WHERE repo = ? ORDER BY id DESC LIMIT 1');
  const pending = db.prepare(`SELECT * FROM checkpoints WHERE status = 'pending' ORDER BY id`);
  const finish = db.prepare(`UPDATE checkpoints SET status = ?, report = ? WHERE id = ?`);
  const merged = db.prepare(`SELECT count(*) AS n FROM items WHERE repo = ? AND state = 'merged'`);
  const mergedSince = db.prepare(
    `SELECT i.id, i.title, i.pr_number AS prNumber, i.merge_commit_sha AS mergeCommitSha, e.at
     FROM items i JOIN item_events e ON e.item_id = i.id AND e.to_state = 'merged'
     WHERE i.repo = ? AND e.at >= ? ORDER BY e.at`,
  );
  const pause = db.prepare('INSERT INTO paused_repos (repo, reason, paused_at) VALUES (?, ?, ?) ON CONFLICT (repo) DO NOTHING');
  const resume = db.prepare('DELETE FROM paused_repos WHERE repo = ?');
  const paused = db.prepare('SELECT repo, reason, paused_at AS pausedAt FROM paused_repos ORDER BY repo');
  return {
    /** Starts a checkpoint at the repo's current merge count. */
    create(repo: string, mergesTotal: number): Checkpoint {
      return toCheckpoint(byId.get(Number(insert.run(repo, mergesTotal, now()).lastInsertRowid)));
    },
    get(id: number): Checkpoint | undefined {
      const row = byId.get(id);
      return row === undefined ? undefined : toCheckpoint(row);
    },
    /** The repo's latest checkpoint. */
    last(repo: string): Checkpoint | undefined {
      const row = last.get(repo);
      return row === undefined ? undefined : toCheckpoint(row);
    },
    /** Checkpoints started but not finished (a crash, or a model call that must be retried). */
    pending(): Checkpoint[] {
      return pending.all().map(toCheckpoint);
    },
    finish(id: number, status: 'done' | 'failed', report: unknown): void {
      finish.run(status, JSON.stringify(report), id);
    },
    /** How many of the repo's items are merged. */
    mergedCount(repo: string): number {
      return (merged.get(repo) as { n: number }).n;
    },
    /** The repo's items merged at or after `since` (ms epoch), oldest first. */
    mergedSince(repo: string, since: number): Array<{ id: number; title: string; prNumber: number | null; mergeCommitSha: string | null; at: number }> {
      return mergedSince.all(repo, since) as Array<{ id: number; title: string; prNumber: number | null; mergeCommitSha: string | null; at: number }>;
    },
    /** Stops building items of `repo` until `resume`. */
    pause(repo: string, reason: string): void {
      pause.run(repo, reason, now());
    },
    resume(repo: string): boolean {
      return resume.run(repo).changes === 1;
    },
    paused(): Array<{ repo: string; reason: string; pausedAt: number }> {
      return paused.all() as Array<{ repo: string; reason: string; pausedAt: number }>;
    },
  };
}

/** The checkpoints part of the store. */
export type Checkpoints = ReturnType<typeof createCheckpoints>;
