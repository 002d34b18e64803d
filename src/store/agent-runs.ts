import type { Database } from 'better-sqlite3';
import { z } from 'zod';

/** A stored agent run. */
export interface AgentRun {
  readonly id: number;
  readonly itemId: number;
  readonly stage: string;
  readonly status: 'running' | 'done' | 'stopped' | 'failed';
  readonly outcome: string | null;
  readonly turns: number;
  readonly elapsedMs: number;
  readonly startedAt: number;
}

/** One transcript message as stored (content is the API's content block array). */
export interface AgentMessage {
  readonly role: 'user' | 'assistant';
  readonly content: unknown[];
}

const runRow = z.object({
  id: z.number(),
  item_id: z.number(),
  stage: z.string(),
  status: z.enum(['running', 'done', 'stopped', 'failed']),
  outcome: z.string().nullable(),
  turns: z.number(),
  elapsed_ms: z.number(),
  started_at: z.number(),
});

function toRun(row: unknown): AgentRun {
  const r = runRow.parse(row);
  return { id: r.id, itemId: r.item_id, stage: r.stage, status: r.status, outcome: r.outcome, turns: r.turns, elapsedMs: r.elapsed_ms, startedAt: r.started_at };
}

/** Agent runs and their transcripts. */
export function createAgentRuns(db: Database, now: () => number) {
  const insertRun = db.prepare(`INSERT INTO agent_runs (item_id, stage, status, started_at) VALUES (?, ?, 'running', ?)`);
  const openRun = db.prepare(`SELECT * FROM agent_runs WHERE item_id = ? AND stage = ? AND status = 'running' ORDER BY id DESC LIMIT 1`);
  const byId = db.prepare('SELECT * FROM agent_runs WHERE id = ?');
  const latest = db.prepare('SELECT * FROM agent_runs WHERE item_id = ? AND stage = ? ORDER BY id DESC LIMIT 1');
  const messages = db.prepare('SELECT role, content FROM agent_messages WHERE run_id = ? ORDER BY seq');
  const nextSeq = db.prepare('SELECT coalesce(max(seq), 0) + 1 AS seq FROM agent_messages WHERE run_id = ?');
  const insertMessage = db.prepare('INSERT INTO agent_messages (run_id, seq, role, content) VALUES (?, ?, ?, ?)');
  const progress = db.prepare('UPDATE agent_runs SET turns = turns + ?, elapsed_ms = elapsed_ms + ? WHERE id = ?');
  const finish = db.prepare(`UPDATE agent_runs SET status = ?, outcome = ?, ended_at = ? WHERE id = ? AND status = 'running'`);

  return {
    /** The unfinished run of this stage for this item (to resume), or a new one. */
    openOrCreate(itemId: number, stage: string): { run: AgentRun; resumed: boolean } {
      return db.transaction(() => {
        const existing = openRun.get(itemId, stage);
        if (existing) return { run: toRun(existing), resumed: true };
        const id = Number(insertRun.run(itemId, stage, now()).lastInsertRowid);
        return { run: toRun(byId.get(id)), resumed: false };
      })();
    },
    /** The newest run of this stage for this item, whatever its status. */
    latest(itemId: number, stage: string): AgentRun | undefined {
      const row = latest.get(itemId, stage);
      return row === undefined ? undefined : toRun(row);
    },
    get(runId: number): AgentRun | undefined {
      const row = byId.get(runId);
      return row === undefined ? undefined : toRun(row);
    },
    /** The transcript so far. */
    messages(runId: number): AgentMessage[] {
      return (messages.all(runId) as Array<{ role: 'user' | 'assistant'; content: string }>).map((m) => ({
        role: m.role,
        content: JSON.parse(m.content) as unknown[],
      }));
    },
    /** Appends a message; `turns` counts a paid model turn, `elapsedMs` adds to the run's clock. */
    append(runId: number, message: AgentMessage, progressBy: { turns?: number; elapsedMs?: number } = {}): void {
      db.transaction(() => {
        const { seq } = nextSeq.get(runId) as { seq: number };
        insertMessage.run(runId, seq, message.role, JSON.stringify(message.content));
        if (progressBy.turns || progressBy.elapsedMs) progress.run(progressBy.turns ?? 0, Math.round(progressBy.elapsedMs ?? 0), runId);
      })();
    },
    /** Adds time spent outside a model call (tools) to the run's clock. */
    addElapsed(runId: number, elapsedMs: number): void {
      progress.run(0, Math.round(elapsedMs), runId);
    },
    finish(runId: number, status: 'done' | 'stopped' | 'failed', outcome: string): void {
      finish.run(status, outcome, now(), runId);
    },
  };
}

/** The agent-run part of the store. */
export type AgentRuns = ReturnType<typeof createAgentRuns>;
