import type { Logger } from 'pino';
import { z } from 'zod';
import { meteredCall, type CallBudget } from '../llm/metered-call.js';
import type { ToolParam } from '../llm/model-client.js';
import { loadPrompt, renderPrompt } from '../llm/render-prompt.js';
import type { Checkpoint } from '../store/checkpoints.js';
import type { Store } from '../store/open-store.js';
import { WorkspaceError, type DiffStatEntry } from '../workspace/create-workspace.js';
import { fenceData, formatLessons, readGuidelines, type StageDeps } from './build-stage.js';
import { classifyStageError } from './classify-stage-error.js';

/** The ledger stage drift checkpoints are billed to (with no item id). */
export const DRIFT_STAGE = 'drift';
/** Most characters of merged diffs shown to the design reviewer, shared fairly between the merges. @default 60000 */
export const DRIFT_DIFF_MAX_CHARS = 60_000;
/** Most output tokens of the design reviewer's report. @default 4000 */
export const DRIFT_MAX_OUTPUT_TOKENS = 4_000;

/** What the design reviewer says about a stretch of merges, plus the facts code computed. */
export interface DriftReport {
  /** One paragraph: what direction the code has taken across these merges. */
  readonly direction: string;
  /** Things that look globally wrong (design drift, contradictions with guidelines or lessons), most severe first. */
  readonly concerns: ReadonlyArray<{ readonly severity: 'high' | 'medium' | 'low'; readonly text: string }>;
  readonly onTrack: boolean;
  /** Computed by code, not the model: the merged items and the size of what changed. */
  readonly merged: ReadonlyArray<{ readonly id: number; readonly title: string; readonly prNumber: number | null }>;
  /** Distinct paths changed across the merges read. */
  readonly files: number;
  /** Lines added and removed across the merges read (binary files count 0). */
  readonly added: number;
  readonly removed: number;
}

/** How a drift checkpoint ended: `retry-later` leaves it pending; the caller records the rest. */
export type DriftOutcome =
  | { kind: 'done'; report: DriftReport }
  | { kind: 'retry-later'; reason: string }
  | { kind: 'failed'; reason: string };

const SEVERITIES = ['high', 'medium', 'low'] as const;

const reportSchema = z.object({
  direction: z.string().trim().min(1),
  concerns: z.array(z.object({ severity: z.enum(SEVERITIES), text: z.string().trim().min(1) })),
  on_track: z.boolean(),
});

const DIRECTION_TOOL: ToolParam = {
  name: 'report_direction',
  description: 'Report where the code has been heading across these merges, what looks globally wrong, and whether it is on track.',
  input_schema: {
    type: 'object',
    properties: {
      direction: { type: 'string', description: 'one paragraph, plain words' },
      concerns: {
        type: 'array',
        description: 'most severe first; an empty list is a valid answer',
        items: {
          type: 'object',
          properties: {
            severity: { type: 'string', enum: [...SEVERITIES] },
            text: { type: 'string', description: 'one or two sentences naming the pull requests and files' },
          },
          required: ['severity', 'text'],
        },
      },
      on_track: { type: 'boolean' },
    },
    required: ['direction', 'concerns', 'on_track'],
  },
};

/**
 * A drift checkpoint of one repo: the design reviewer (the review model) reads what every item
 * merged since the repo's previous checkpoint changed, against the guidelines and lessons, and
 * reports the direction. One model call, billed to {@link DRIFT_STAGE} with no item. Nothing is
 * stored here: the caller finishes the checkpoint with the outcome. Never throws.
 */
export async function runDriftCheckpoint(
  deps: StageDeps & { model: string; budgetUsd: number },
  checkpoint: Checkpoint,
  signal: AbortSignal,
): Promise<DriftOutcome> {
  const log = deps.log.child({ checkpointId: checkpoint.id, repo: checkpoint.repo, stage: DRIFT_STAGE });
  try {
    return await checkDrift(deps, checkpoint, signal, log);
  } catch (error) {
    const outcome = classifyStageError(error);
    log.warn({ err: error, outcome: outcome.kind }, 'drift checkpoint error');
    return outcome;
  }
}

async function checkDrift(deps: StageDeps & { model: string; budgetUsd: number }, checkpoint: Checkpoint, signal: AbortSignal, log: Logger): Promise<DriftOutcome> {
  const repo = deps.repos.find((r) => r.fullName === checkpoint.repo);
  if (!repo) return { kind: 'failed', reason: `${checkpoint.repo} is no longer in NIGHTSHIFT_REPOS` };
  const merges = mergedInWindow(deps.store, checkpoint);
  if (merges.length === 0) return { kind: 'failed', reason: `no item of ${repo.fullName} was merged since the previous checkpoint` };

  const changes: Array<{ header: string; diff: string }> = [];
  const stat: DiffStatEntry[] = [];
  let read = 0;
  for (const m of merges) {
    if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
    const header = `=== item #${m.id} · ${m.prNumber === null ? 'no PR' : `PR #${m.prNumber}`}${m.mergeCommitSha ? ` · ${m.mergeCommitSha.slice(0, 7)}` : ''} · ${m.title} ===`;
    if (m.mergeCommitSha === null) {
      changes.push({ header, diff: '(no merge commit was recorded for this item)' });
      continue;
    }
    try {
      const change = await deps.workspace.commitDiff(repo, m.mergeCommitSha);
      changes.push({ header, diff: change.diff.trimEnd() });
      stat.push(...change.stat);
      read += 1;
    } catch (error) {
      // A commit the remote no longer has (a rewritten branch) costs one merge, not the checkpoint.
      if (!(error instanceof WorkspaceError)) throw error;
      log.warn({ itemId: m.id, sha: m.mergeCommitSha, err: error }, 'could not read a merge commit');
      changes.push({ header, diff: `(the merge commit could not be read: ${error.message})` });
    }
  }
  if (read === 0) return { kind: 'failed', reason: `none of the ${merges.length} items merged since the previous checkpoint has a merge commit that could be read` };

  const { text: diff, cut } = fitChanges(changes, DRIFT_DIFF_MAX_CHARS);
  const system = renderPrompt(loadPrompt('drift'), {
    repo: repo.fullName,
    guidelines: fenceData(await readGuidelines(deps.workspace, repo), 'guidelines'),
    lessons: formatLessons(deps.store.lessons.list(repo.fullName)),
    merges: fenceData(merges.map((m) => `- ${m.prNumber === null ? 'no PR' : `PR #${m.prNumber}`} (item #${m.id}): ${m.title}`).join('\n'), 'merges'),
    diff_note:
      cut === 0
        ? 'The diff is complete.'
        : `The diff was cut to ${DRIFT_DIFF_MAX_CHARS} characters: ${cut} of the ${changes.length} changes are shown only in part, each ending with a note saying so.`,
    diff: fenceData(diff, 'diff'),
  });
  if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
  const budget: CallBudget = { itemId: null, stage: DRIFT_STAGE, stageBudgetUsd: deps.budgetUsd };
  const result = await meteredCall(deps.agent, budget, {
    model: deps.model,
    maxTokens: DRIFT_MAX_OUTPUT_TOKENS,
    tools: [DIRECTION_TOOL],
    system: [{ type: 'text', text: system }],
    messages: [{ role: 'user', content: [{ type: 'text', text: `Report the direction of the ${merges.length} merges since the last checkpoint.` }] }],
    toolChoice: { type: 'tool', name: 'report_direction' },
    signal,
  });
  if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
  if (result.kind === 'limit') return { kind: 'failed', reason: `the drift checkpoint was stopped by its ${result.stop.limit.replace('-', ' ')} limit: ${result.stop.message}` };
  if (result.kind !== 'ok') return { kind: result.kind, reason: result.message };

  const call = result.response.content.find((b) => b.type === 'tool_use');
  const parsed = reportSchema.safeParse(call?.type === 'tool_use' ? call.input : undefined);
  if (!parsed.success) {
    const where = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || '(the whole input)'))].join(', ');
    return { kind: 'failed', reason: `the design reviewer's reply was not a valid direction report (bad ${where})` };
  }
  const rank = (s: (typeof SEVERITIES)[number]) => SEVERITIES.indexOf(s);
  const report: DriftReport = {
    direction: parsed.data.direction,
    concerns: [...parsed.data.concerns].sort((a, b) => rank(a.severity) - rank(b.severity)),
    onTrack: parsed.data.on_track,
    merged: merges.map((m) => ({ id: m.id, title: m.title, prNumber: m.prNumber })),
    files: new Set(stat.map((s) => s.path)).size,
    added: stat.reduce((n, s) => n + (s.added ?? 0), 0),
    removed: stat.reduce((n, s) => n + (s.removed ?? 0), 0),
  };
  log.info({ merges: merges.length, concerns: report.concerns.length, onTrack: report.onTrack }, 'drift checkpoint done');
  return { kind: 'done', report };
}

/**
 * The repo's items merged after its previous checkpoint was taken and up to this one: each
 * merge belongs to exactly one checkpoint, also when this one runs late (retried) and more
 * merges have landed since.
 */
function mergedInWindow(store: Store, checkpoint: Checkpoint) {
  const previous = previousCheckpoint(store, checkpoint);
  return store.checkpoints.mergedSince(checkpoint.repo, previous ? previous.createdAt + 1 : 0).filter((m) => m.at <= checkpoint.createdAt);
}

/** The repo's checkpoint before `checkpoint`, by id. */
function previousCheckpoint(store: Store, checkpoint: Checkpoint): Checkpoint | undefined {
  const last = store.checkpoints.last(checkpoint.repo);
  if (last && last.id < checkpoint.id) return last;
  // The store has no "previous" query: step back through ids (one checkpoint per N merges, so few).
  for (let id = checkpoint.id - 1; id > 0; id--) {
    const c = store.checkpoints.get(id);
    if (c?.repo === checkpoint.repo) return c;
  }
  return undefined;
}

/**
 * Joins the changes under their headers within `max` characters of diff, shared fairly: small
 * changes are shown whole, the large ones get equal shares of what is left and end with a note.
 */
function fitChanges(changes: ReadonlyArray<{ header: string; diff: string }>, max: number): { text: string; cut: number } {
  const shares = new Array<number>(changes.length).fill(0);
  let left = max;
  let remaining = changes.length;
  const bySize = changes.map((_, i) => i).sort((a, b) => changes[a]!.diff.length - changes[b]!.diff.length);
  for (const i of bySize) {
    shares[i] = Math.min(changes[i]!.diff.length, Math.floor(left / remaining));
    left -= shares[i]!;
    remaining -= 1;
  }
  let cut = 0;
  const text = changes
    .map((c, i) => {
      const share = shares[i]!;
      if (share >= c.diff.length) return `${c.header}\n${c.diff}`;
      cut += 1;
      return `${c.header}\n${c.diff.slice(0, share)}\n… (cut: ${share} of ${c.diff.length} characters of this change shown)`;
    })
    .join('\n\n');
  return { text, cut };
}
