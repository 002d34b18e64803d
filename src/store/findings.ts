import type { Database } from 'better-sqlite3';
import { z } from 'zod';

export const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const VERDICTS = ['fix_now', 'backlog', 'ignore'] as const;
export type Verdict = (typeof VERDICTS)[number];
export type FindingStatus = 'open' | 'fixed' | 'backlogged' | 'ignored' | 'merged';

/** A reviewer's finding as reported. */
export interface NewFinding {
  readonly angle: string;
  readonly file: string;
  readonly lineStart: number | null;
  readonly lineEnd: number | null;
  readonly severity: Severity;
  readonly title: string;
  readonly evidence: string;
  readonly failure: string;
  readonly suggestedFix: string;
  readonly confidence: number;
}

/** A stored finding with its triage and fix state. */
export interface Finding extends NewFinding {
  readonly id: number;
  readonly itemId: number;
  readonly round: number;
  readonly headSha: string;
  readonly verdict: Verdict | null;
  readonly verdictReason: string | null;
  readonly mergedInto: number | null;
  readonly status: FindingStatus;
  readonly fixedSha: string | null;
  readonly backlogItemId: number | null;
}

/** A review round. */
export interface ReviewRound {
  readonly itemId: number;
  readonly round: number;
  readonly baseSha: string;
  readonly headSha: string;
  readonly status: 'reviewing' | 'triaged' | 'fixed' | 'done';
  readonly anglesDone: readonly string[];
  readonly fixSha: string | null;
}

const findingRow = z.object({
  id: z.number(),
  item_id: z.number(),
  round: z.number(),
  head_sha: z.string(),
  angle: z.string(),
  file: z.string(),
  line_start: z.number().nullable(),
  line_end: z.number().nullable(),
  severity: z.enum(SEVERITIES),
  title: z.string(),
  evidence: z.string(),
  failure: z.string(),
  suggested_fix: z.string(),
  confidence: z.number(),
  verdict: z.enum(VERDICTS).nullable(),
  verdict_reason: z.string().nullable(),
  merged_into: z.number().nullable(),
  status: z.enum(['open', 'fixed', 'backlogged', 'ignored', 'merged']),
  fixed_sha: z.string().nullable(),
  backlog_item_id: z.number().nullable(),
});

function toFinding(row: unknown): Finding {
  const r = findingRow.parse(row);
  return {
    id: r.id,
    itemId: r.item_id,
    round: r.round,
    headSha: r.head_sha,
    angle: r.angle,
    file: r.file,
    lineStart: r.line_start,
    lineEnd: r.line_end,
    severity: r.severity,
    title: r.title,
    evidence: r.evidence,
    failure: r.failure,
    suggestedFix: r.suggested_fix,
    confidence: r.confidence,
    verdict: r.verdict,
    verdictReason: r.verdict_reason,
    mergedInto: r.merged_into,
    status: r.status,
    fixedSha: r.fixed_sha,
    backlogItemId: r.backlog_item_id,
  };
}

const roundRow = z.object({
  item_id: z.number(),
  round: z.number(),
  base_sha: z.string(),
  head_sha: z.string(),
  status: z.enum(['reviewing', 'triaged', 'fixed', 'done']),
  angles_done: z.string(),
  fix_sha: z.string().nullable(),
});

function toRound(row: unknown): ReviewRound {
  const r = roundRow.parse(row);
  return { itemId: r.item_id, round: r.round, baseSha: r.base_sha, headSha: r.head_sha, status: r.status, anglesDone: JSON.parse(r.angles_done) as string[], fixSha: r.fix_sha };
}

/** The finding ledger and review rounds. */
export function createFindings(db: Database, now: () => number) {
  const insert = db.prepare(
    `INSERT INTO findings (item_id, pr_number, head_sha, round, angle, file, line_start, line_end, severity, title, evidence, failure, suggested_fix, confidence, created_at)
     VALUES (@itemId, @prNumber, @headSha, @round, @angle, @file, @lineStart, @lineEnd, @severity, @title, @evidence, @failure, @suggestedFix, @confidence, @at)`,
  );
  const ofRound = db.prepare('SELECT * FROM findings WHERE item_id = ? AND round = ? ORDER BY id');
  const ofItem = db.prepare('SELECT * FROM findings WHERE item_id = ? ORDER BY id');
  const setVerdict = db.prepare('UPDATE findings SET verdict = ?, verdict_reason = ?, merged_into = ?, status = ? WHERE id = ?');
  const setFixed = db.prepare(`UPDATE findings SET status = 'fixed', fixed_sha = ? WHERE id = ?`);
  const setBacklog = db.prepare(`UPDATE findings SET status = 'backlogged', backlog_item_id = ? WHERE id = ?`);
  const roundGet = db.prepare('SELECT * FROM review_rounds WHERE item_id = ? AND round = ?');
  const lastRound = db.prepare('SELECT * FROM review_rounds WHERE item_id = ? ORDER BY round DESC LIMIT 1');
  const roundInsert = db.prepare(`INSERT INTO review_rounds (item_id, round, base_sha, head_sha, status) VALUES (?, ?, ?, ?, 'reviewing')`);
  const roundStatus = db.prepare('UPDATE review_rounds SET status = ? WHERE item_id = ? AND round = ?');
  const roundAngles = db.prepare('UPDATE review_rounds SET angles_done = ? WHERE item_id = ? AND round = ?');
  const roundFix = db.prepare(`UPDATE review_rounds SET status = 'fixed', fix_sha = ? WHERE item_id = ? AND round = ?`);

  return {
    /** Stores one angle's findings and marks the angle done for the round, together. */
    recordAngle(input: { itemId: number; round: number; prNumber: number | null; headSha: string; angle: string; findings: readonly NewFinding[] }): void {
      db.transaction(() => {
        for (const f of input.findings) insert.run({ ...f, itemId: input.itemId, prNumber: input.prNumber, headSha: input.headSha, round: input.round, at: now() });
        const round = toRound(roundGet.get(input.itemId, input.round));
        roundAngles.run(JSON.stringify([...new Set([...round.anglesDone, input.angle])]), input.itemId, input.round);
      })();
    },
    ofRound(itemId: number, round: number): Finding[] {
      return ofRound.all(itemId, round).map(toFinding);
    },
    ofItem(itemId: number): Finding[] {
      return ofItem.all(itemId).map(toFinding);
    },
    /** Records a triage verdict (and, for duplicates, the finding it was merged into). */
    setVerdict(id: number, verdict: Verdict, reason: string, mergedInto: number | null): void {
      const status: FindingStatus = mergedInto !== null ? 'merged' : verdict === 'ignore' ? 'ignored' : 'open';
      setVerdict.run(verdict, reason, mergedInto, status, id);
    },
    markFixed(id: number, sha: string): void {
      setFixed.run(sha, id);
    },
    markBacklogged(id: number, backlogItemId: number): void {
      setBacklog.run(backlogItemId, id);
    },
    round(itemId: number, round: number): ReviewRound | undefined {
      const row = roundGet.get(itemId, round);
      return row === undefined ? undefined : toRound(row);
    },
    lastRound(itemId: number): ReviewRound | undefined {
      const row = lastRound.get(itemId);
      return row === undefined ? undefined : toRound(row);
    },
    startRound(itemId: number, round: number, baseSha: string, headSha: string): ReviewRound {
      roundInsert.run(itemId, round, baseSha, headSha);
      return toRound(roundGet.get(itemId, round));
    },
    setRoundStatus(itemId: number, round: number, status: ReviewRound['status']): void {
      roundStatus.run(status, itemId, round);
    },
    setRoundFixed(itemId: number, round: number, fixSha: string): void {
      roundFix.run(fixSha, itemId, round);
    },
  };
}

/** The finding part of the store. */
export type Findings = ReturnType<typeof createFindings>;
