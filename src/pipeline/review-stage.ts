import type { Logger } from 'pino';
import { z } from 'zod';
import { runAgent } from '../agent/run-agent.js';
import type { AgentLimitsConfig } from '../config.js';
import { inspectFixDiff } from '../domain/inspect-fix-diff.js';
import type { RepoName } from '../domain/parse-request.js';
import { BATCH_EXPIRY_MS, BATCH_RECONCILE_AFTER_MS, parseStoredResult, type BatchClient, type BatchItemResult } from '../llm/batch-client.js';
import { submitMeteredBatch } from '../llm/metered-batch.js';
import { meteredCall, type BudgetStop, type CallBudget, type MeteredOutcome } from '../llm/metered-call.js';
import type { ModelRequest, ToolParam } from '../llm/model-client.js';
import { loadPrompt, renderPrompt } from '../llm/render-prompt.js';
import { SEVERITIES, VERDICTS, type Finding, type NewFinding } from '../store/findings.js';
import type { Batch, BatchIntent } from '../store/batches.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import type { Workspace } from '../workspace/create-workspace.js';
import { fenceData, formatLessons, readGuidelines, type StageDeps, type StageOutcome } from './build-stage.js';
import { guardStage, retryLater, unfinishedAgentOutcome } from './classify-stage-error.js';
import { loadAngles, type ReviewAngle } from './review/load-angles.js';

/** Most characters of diff shown to reviewers. @default 150000 */
export const REVIEW_DIFF_MAX_CHARS = 150_000;
/** Most characters of changed files (with line numbers) shown to reviewers. @default 200000 */
export const REVIEW_FILES_MAX_CHARS = 200_000;
/** The folder on a repo's default branch whose `*.md` files add review angles. */
export const REPO_ANGLES_DIR = '.nightshift/review';
/** Most guard findings recorded for one fix. @default 20 */
export const MAX_GUARD_FINDINGS = 20;
/** The angle name of the code-side guard's findings on a fix diff. */
export const GUARD_ANGLE = 'guard';

/** What the review stage needs. */
export interface ReviewStageDeps extends StageDeps {
  readonly models: { readonly review: string; readonly fix: string };
  readonly review: { readonly rounds: number; readonly concurrency: number; readonly maxOutputTokens: number; readonly budgetUsd: number; readonly fixBudgetUsd: number };
  readonly fixLimits: AgentLimitsConfig;
  /**
   * Set with `NIGHTSHIFT_ECONOMY=batch`: each round's reviewers go out as one Message Batch and
   * triage as a second, and the stage waits for them (see `createBatchPoller`). @default unset: normal calls
   */
  readonly batches?: Pick<BatchClient, 'submit'> | undefined;
}

/** The compact triage summary kept for the review card. */
export interface ReviewSummary {
  readonly verdict: 'ready' | 'ready_with_open_items' | 'needs_judgment';
  readonly judgment: string | null;
  readonly rounds: number;
  readonly bySeverity: Record<string, number>;
  readonly byStatus: Record<string, number>;
  readonly guardFlags: number;
  /** The three most important lines, most severe first. */
  readonly top: readonly string[];
}

const findingSchema = z.object({
  file: z.string().min(1),
  line_start: z.number().int().nullable().optional(),
  line_end: z.number().int().nullable().optional(),
  severity: z.enum(SEVERITIES),
  title: z.string().min(1),
  evidence: z.string(),
  failure: z.string(),
  suggested_fix: z.string(),
  confidence: z.number().min(0).max(1),
});
// The report's shape is checked as a whole; each finding on its own, so one malformed finding
// (a confidence of 1.2, a missing file) is dropped instead of failing a paid round.
const reportSchema = z.object({ findings: z.array(z.unknown()) });
const triageSchema = z.object({
  verdict: z.enum(['ready', 'ready_with_open_items', 'needs_judgment']),
  judgment: z.string().nullable().optional(),
  findings: z.array(z.object({ id: z.number().int(), verdict: z.enum(VERDICTS), reason: z.string(), merged_into: z.number().int().nullable().optional() })),
});

const REPORT_TOOL: ToolParam = {
  name: 'report_findings',
  description: 'Report every finding of this review angle. An empty list is a valid answer.',
  input_schema: {
    type: 'object',
    properties: {
      findings: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            file: { type: 'string', description: 'path of the file, as in the diff' },
            line_start: { type: ['integer', 'null'], description: 'first line in the new file' },
            line_end: { type: ['integer', 'null'] },
            severity: { type: 'string', enum: [...SEVERITIES] },
            title: { type: 'string', description: 'one line' },
            evidence: { type: 'string', description: 'the code quoted' },
            failure: { type: 'string', description: 'the concrete failure it causes: input, wrong outcome' },
            suggested_fix: { type: 'string' },
            confidence: { type: 'number', minimum: 0, maximum: 1 },
          },
          required: ['file', 'severity', 'title', 'evidence', 'failure', 'suggested_fix', 'confidence'],
        },
      },
    },
    required: ['findings'],
  },
};

const TRIAGE_TOOL: ToolParam = {
  name: 'report_triage',
  description: 'Report the verdict on every finding, and the overall verdict.',
  input_schema: {
    type: 'object',
    properties: {
      verdict: { type: 'string', enum: ['ready', 'ready_with_open_items', 'needs_judgment'] },
      judgment: { type: ['string', 'null'], description: 'what the human must decide, for needs_judgment' },
      findings: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            id: { type: 'integer' },
            verdict: { type: 'string', enum: [...VERDICTS] },
            reason: { type: 'string', description: 'one line' },
            merged_into: { type: ['integer', 'null'], description: 'id of the finding this duplicates' },
          },
          required: ['id', 'verdict', 'reason'],
        },
      },
    },
    required: ['verdict', 'findings'],
  },
};

/**
 * Review → triage → fix, in rounds, each step persisted so a restart resumes it: every angle
 * reviews the diff of the round (round 1: the whole PR; later rounds: only the fix), triage
 * gives every finding a verdict, and `fix_now` findings are fixed by the build agent, guarded
 * by a code check of the fix diff, while review rounds are left to look at the fix.
 */
export function runReviewStage(deps: ReviewStageDeps, item: Item, signal: AbortSignal): Promise<StageOutcome> {
  return guardStage(deps.log, item.id, 'review', () => review(deps, item, signal));
}

async function review(deps: ReviewStageDeps, stale: Item, signal: AbortSignal): Promise<StageOutcome> {
  const { store } = deps;
  // The runner's copy may predate the build that just opened the PR.
  const item = store.items.get(stale.id) ?? stale;
  // A batch of the item still runs at Anthropic: nothing to do until the batch poller has its
  // results (whatever the economy now: they are paid for). Checked before anything is awaited,
  // so a poller that records the batch's end meanwhile resumes the item after this run settled.
  const pendingBatch = store.batches.pendingOfItem(item.id);
  if (pendingBatch) return waitingFor(pendingBatch);
  // A submission whose batch may exist (its create's outcome was unclear, or the process died
  // during it): nothing is sent again until the poller has found the batch or found none.
  const intent = store.batches.intentOfItem(item.id);
  if (intent) return waitingForIntent(intent);
  const log = deps.log.child({ itemId: item.id, stage: 'review' });
  const repo = deps.repos.find((r) => r.fullName === item.repo);
  if (!repo) return { kind: 'failed', reason: `${item.repo} is no longer in NIGHTSHIFT_REPOS` };
  const ws = await deps.workspace.prepare({ id: item.id, title: item.title, repo });
  const budget: CallBudget = { itemId: item.id, stage: 'review', stageBudgetUsd: deps.review.budgetUsd, itemBudgetUsd: deps.itemBudgetUsd };
  const repoFiles = new Map<string, string>();
  for (const path of await deps.workspace.listFromDefaultBranch(repo, REPO_ANGLES_DIR)) {
    if (!path.endsWith('.md')) continue;
    const text = await deps.workspace.readFromDefaultBranch(repo, path);
    if (text !== undefined) repoFiles.set(path, text);
  }
  const loaded = loadAngles({ repoFiles });
  // "guard" is the code check's own angle; an angle file may not speak in its name.
  const angles = loaded.angles.filter((a) => a.name !== GUARD_ANGLE);
  const skipped = [...loaded.skipped, ...loaded.angles.filter((a) => a.name === GUARD_ANGLE).map((a) => ({ path: a.name, reason: 'the name guard is reserved' }))];
  if (skipped.length > 0) log.warn({ skipped }, 'some review angles were skipped');

  for (;;) {
    if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
    let round = store.findings.lastRound(item.id);
    if (round?.status === 'done') {
      // Reviewed already, unless the head moved since (back from ready, or rebuilt): then
      // what changed since the reviewed head is reviewed in a new round.
      const head = await deps.workspace.headSha(ws.path);
      if (head === (round.fixSha ?? round.headSha)) break;
    }
    if (!round || round.status === 'fixed' || round.status === 'done') {
      const number = (round?.round ?? 0) + 1;
      const head = await deps.workspace.headSha(ws.path);
      // After a fix, the new round reviews the fix alone (from the head the last round reviewed).
      const base = !round ? ws.baseSha : round.status === 'fixed' ? round.headSha : (round.fixSha ?? round.headSha);
      round = store.findings.startRound(item.id, number, base, head);
      log.info({ round: number, base: round.baseSha, head }, 'review round started');
    }
    const current = store.findings.lastRound(item.id)!;
    const diff = await deps.workspace.diff(ws.path, current.baseSha);

    if (current.status === 'reviewing' && diff.trim() === '') {
      // Nothing changed since the last reviewed head: nothing to pay reviewers for.
      store.findings.setRoundStatus(item.id, current.round, 'triaged');
    } else if (current.status === 'reviewing') {
      // The guard's flags on the fix that led to this round are findings of this round.
      if (current.round > 1 && !current.anglesDone.includes(GUARD_ANGLE)) {
        // One finding per file and kind (a rewritten test file can yield hundreds of flags).
        const flags = [...new Map(inspectFixDiff(diff).map((f) => [`${f.kind} ${f.file}`, f])).values()].slice(0, MAX_GUARD_FINDINGS);
        store.findings.recordAngle({
          itemId: item.id,
          round: current.round,
          prNumber: item.prNumber,
          headSha: current.headSha,
          angle: GUARD_ANGLE,
          findings: flags.map((f) => ({
            angle: GUARD_ANGLE,
            file: f.file,
            lineStart: f.line ?? null,
            lineEnd: f.line ?? null,
            severity: 'high',
            title: `The fix ${f.detail}`,
            evidence: f.evidence,
            failure: `A check was weakened instead of the code being fixed (${f.kind}).`,
            suggestedFix: 'Restore the check and fix the code it tests.',
            confidence: 1,
          })),
        });
        if (flags.length > 0) log.warn({ flags: flags.map((f) => f.kind) }, 'the fix touched tests or checks');
      }
      const context = renderPrompt(loadPrompt('review/context'), {
        repo: repo.fullName,
        guidelines: fenceData(await readGuidelines(deps.workspace, repo), 'guidelines'),
        // Read per round: a lesson taught while this item waited reaches its reviewers.
        lessons: formatLessons(store.lessons.list(repo.fullName)),
        request: fenceData(item.request, 'request'),
        diff: fenceData(truncate(diff, REVIEW_DIFF_MAX_CHARS), 'diff'),
        files: fenceData(await changedFiles(deps.workspace, ws.path, diff), 'files'),
      });
      const outcome = (await runReviewers(deps, item, current.round, current.headSha, angles, current.anglesDone, context, budget, signal, log)) ?? (await triage(deps, item, current.round, diff, budget, signal, log));
      if (outcome?.kind === 'budget') {
        // Out of review budget: the PR goes to the human as it is, with what was found so far
        // open and the reason on the card, rather than failing after the money was spent.
        const { reason } = outcome;
        log.warn({ reason }, 'review stopped by its budget; handing the PR to the human');
        store.transaction(() => {
          store.items.setReviewSummary(item.id, { verdict: 'needs_judgment', judgment: reason });
          store.findings.setRoundStatus(item.id, current.round, 'done');
        });
        break;
      }
      if (outcome) return outcome;
      // The PR shows where the review stands after every round, in one comment.
      await publishSummary(deps, item, repo);
    }

    const afterTriage = store.findings.lastRound(item.id)!;
    const fixNow = store.findings.ofRound(item.id, afterTriage.round).filter((f) => f.verdict === 'fix_now' && f.status === 'open');
    if (fixNow.length === 0 || afterTriage.round >= deps.review.rounds) {
      // A clean round, or no rounds left to review a fix: what is still open stays open, on the card.
      store.findings.setRoundStatus(item.id, afterTriage.round, 'done');
      break;
    }
    const fixed = await fix(deps, item, ws.path, ws.branch, afterTriage.round, afterTriage.headSha, fixNow, signal, log);
    if (fixed) return fixed;
  }

  const summary = await publishSummary(deps, item, repo);
  log.info({ verdict: summary.verdict, byStatus: summary.byStatus }, 'review finished');
  return { kind: 'done' };
}

/** A step of the review loop: a stage outcome, or "the review budget ran out" (the human decides). */
type ReviewStep = StageOutcome | { readonly kind: 'budget'; readonly reason: string };

function budgetStop(stop: BudgetStop): ReviewStep {
  return { kind: 'budget', reason: `the review was stopped by the ${stop.limit.replace('-', ' ')} limit: ${stop.message}` };
}

/** Stores the card summary and brings the sticky PR comment up to date. */
async function publishSummary(deps: ReviewStageDeps, item: Item, repo: RepoName): Promise<ReviewSummary> {
  const { store } = deps;
  const summary = summarize(store.findings.ofItem(item.id), store.findings.lastRound(item.id)?.round ?? 0, store.items.review(item.id).summary as { verdict?: string; judgment?: string | null } | null);
  store.items.setReviewSummary(item.id, summary);
  const current = store.items.get(item.id)!;
  if (current.prNumber !== null) {
    const commentId = await deps.github.ensureStickyComment({
      repo,
      number: current.prNumber,
      marker: reviewMarker(item.id),
      body: stickyComment(summary, store.findings.ofItem(item.id), store.ledger.itemByStage(item.id)),
      knownId: store.items.review(item.id).commentId,
    });
    store.items.setReviewCommentId(item.id, commentId);
  }
  return summary;
}

async function runReviewers(
  deps: ReviewStageDeps,
  item: Item,
  round: number,
  headSha: string,
  angles: readonly ReviewAngle[],
  done: readonly string[],
  context: string,
  budget: CallBudget,
  signal: AbortSignal,
  log: Logger,
): Promise<ReviewStep | undefined> {
  const { store } = deps;
  const pending = angles.filter((a) => !done.includes(a.name));
  if (pending.length === 0) return undefined;
  const requestFor = (angle: ReviewAngle): Omit<ModelRequest, 'signal'> => ({
    model: deps.models.review,
    maxTokens: deps.review.maxOutputTokens,
    // Tools and the shared context are one cached prefix, identical for every angle; only
    // the angle's checklist comes after the breakpoint.
    tools: [REPORT_TOOL],
    system: [{ type: 'text', text: context, cache_control: { type: 'ephemeral' } }],
    messages: [{ role: 'user', content: [{ type: 'text', text: `Review angle: ${angle.name}\n\n${angle.checklist}` }] }],
    toolChoice: { type: 'tool', name: 'report_findings' },
  });
  let finished = 0;
  /** Takes a reviewer's reply (a call's, or a batch's stored answer, `used`) as the angle's findings. */
  const record = (angle: ReviewAngle, result: MeteredOutcome, used?: BatchAnswer): ReviewStep | undefined => {
    if (result.kind !== 'ok') return callStep(result);
    const call = result.response.content.find((b) => b.type === 'tool_use');
    const parsed = reportSchema.safeParse(call?.type === 'tool_use' ? call.input : undefined);
    if (!parsed.success) {
      // A stored answer is not read twice: a retry of the item asks again.
      if (used) store.batches.markUsed(used.batchId, used.customId);
      return { kind: 'failed', reason: `the ${angle.name} reviewer's reply was not a valid findings report` };
    }
    const valid = parsed.data.findings.flatMap((raw) => {
      const one = findingSchema.safeParse(raw);
      if (!one.success) log.warn({ angle: angle.name, issues: one.error.issues.map((i) => i.path.join('.')) }, 'dropped a malformed finding');
      return one.success ? [one.data] : [];
    });
    const findings: NewFinding[] = valid.map((f) => ({
      angle: angle.name,
      file: f.file,
      lineStart: f.line_start ?? null,
      lineEnd: f.line_end ?? f.line_start ?? null,
      severity: f.severity,
      title: f.title,
      evidence: f.evidence,
      failure: f.failure,
      suggestedFix: f.suggested_fix,
      confidence: f.confidence,
    }));
    store.transaction(() => {
      store.findings.recordAngle({ itemId: item.id, round, prNumber: item.prNumber, headSha, angle: angle.name, findings });
      if (used) store.batches.markUsed(used.batchId, used.customId);
    });
    log.info({ angle: angle.name, findings: findings.length, batch: used?.batchId }, 'reviewer done');
    deps.notifier.notify(item, { kind: 'progress', stage: `review round ${round}`, turn: angles.length - pending.length + (++finished), maxTurns: angles.length, itemUsd: store.ledger.itemUsd(item.id) });
    return undefined;
  };

  let interactive = pending;
  const step = reviewersStep(round);
  const batch = store.batches.latestOfStep(item.id, step);
  if (batch?.status === 'pending') return waitingFor(batch);
  if (batch) {
    // The round's batch has ended (a pending one stops the stage before it gets here): its
    // answers are taken like replies; what it did not answer is asked by a normal call.
    const answers = batchAnswers(store, batch);
    interactive = [];
    for (const angle of pending) {
      const answer = answers.get(angleCustomId(angle.name));
      if (answer?.result.kind !== 'succeeded') {
        log.warn({ angle: angle.name, batch: batch.id, result: describeUnanswered(answer?.result) }, 'the batch did not answer this reviewer; asking it by a normal call');
        interactive.push(angle);
        continue;
      }
      const outcome = record(angle, { kind: 'ok', response: answer.result.response }, answer);
      if (outcome) return outcome;
    }
  } else if (deps.batches) {
    if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
    const submitted = await submitMeteredBatch({ ...deps.agent, batches: deps.batches }, budget, step, pending.map((angle) => ({ customId: angleCustomId(angle.name), request: requestFor(angle) })));
    if (submitted.kind === 'unclear') {
      log.warn({ nonce: submitted.intent.nonce, reason: submitted.message }, 'reviewers batch submission unclear');
      return waitingForIntent(submitted.intent);
    }
    if (submitted.kind !== 'submitted') return callStep(submitted);
    log.info({ batch: submitted.batch.id, angles: pending.length - submitted.left.length, notAdmitted: submitted.left.length }, 'reviewers submitted as a batch');
    // Nothing awaited between the batch being persisted and this outcome reaching the runner.
    return waitingFor(submitted.batch);
  }

  // Reviewers in flight count against the budget together, not each on its own.
  const reservation = { usd: 0 };
  const reviewOne = async (angle: ReviewAngle): Promise<ReviewStep | undefined> => record(angle, await meteredCall(deps.agent, budget, { ...requestFor(angle), signal }, reservation));
  const [first, ...rest] = interactive;
  if (!first) return undefined;
  // The first reviewer writes the shared prefix to the cache; the others start once its
  // reply (and so its cache write) has landed, and read it instead of each writing it.
  const firstOutcome = await reviewOne(first);
  if (firstOutcome) return firstOutcome;
  let outcome: ReviewStep | undefined;
  const queue = [...rest];
  const worker = async () => {
    for (let angle = queue.shift(); angle && !outcome && !signal.aborted; angle = queue.shift()) outcome ??= await reviewOne(angle);
  };
  await Promise.all(Array.from({ length: Math.min(deps.review.concurrency, queue.length) }, worker));
  if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
  return outcome;
}

/** A stored answer of a batch request, with what identifies it for `markUsed`. */
interface BatchAnswer {
  readonly batchId: string;
  readonly customId: string;
  readonly result: BatchItemResult;
}

/** The batch's results the stage has not taken yet, by custom id (a failed batch has none). */
function batchAnswers(store: Store, batch: Batch): Map<string, BatchAnswer> {
  const answers = new Map<string, BatchAnswer>();
  for (const r of store.batches.requests(batch.id)) {
    const result = r.usedAt === null ? parseStoredResult(r.result) : undefined;
    if (result) answers.set(r.customId, { batchId: batch.id, customId: r.customId, result });
  }
  return answers;
}

function describeUnanswered(result: BatchItemResult | undefined): string {
  if (!result) return 'no result (the batch failed, or it was taken already)';
  return result.kind === 'errored' ? `errored: ${result.errorType}: ${result.message}` : result.kind;
}

/** The step key of a round's reviewers batch. */
function reviewersStep(round: number): string {
  return `round-${round}-reviewers`;
}

/** The step key of a round's triage batch. */
function triageStep(round: number): string {
  return `round-${round}-triage`;
}

/** An angle's custom id in a reviewers batch (angle names are `[a-z0-9-]{1,41}`). */
function angleCustomId(angle: string): string {
  return `angle-${angle}`;
}

const TRIAGE_CUSTOM_ID = 'triage';

/** The stage waits for its batch, at most until the batch expires. */
function waitingFor(batch: Batch): StageOutcome {
  return {
    kind: 'waiting',
    reason: `review ${batch.step.replaceAll('-', ' ')} submitted as a batch (half price); results within 24 h`,
    until: batch.createdAt + BATCH_EXPIRY_MS,
  };
}

/**
 * The stage waits while the poller looks for the batch of an unclear submission: found, it is
 * waited for like any batch (so at most until a batch created now would expire); absent, the
 * poller resumes the stage to submit again.
 */
function waitingForIntent(intent: BatchIntent): StageOutcome {
  return {
    kind: 'waiting',
    reason: `review ${intent.step.replaceAll('-', ' ')} batch submission unclear; checking whether Anthropic created it before sending again`,
    until: intent.createdAt + BATCH_RECONCILE_AFTER_MS + BATCH_EXPIRY_MS,
  };
}

/** What a call that brought no reply means for the review loop. */
function callStep(result: Exclude<MeteredOutcome, { kind: 'ok' }>): ReviewStep {
  if (result.kind === 'limit') return budgetStop(result.stop);
  if (result.kind === 'retry-later') return retryLater(result);
  return { kind: 'failed', reason: result.message };
}

async function triage(deps: ReviewStageDeps, item: Item, round: number, diff: string, budget: CallBudget, signal: AbortSignal, log: Logger): Promise<ReviewStep | undefined> {
  const { store } = deps;
  const findings = store.findings.ofRound(item.id, round);
  // Triage's stored batch answer, when that is what the verdicts come from.
  let used: BatchAnswer | undefined;
  let verdict: ReviewSummary['verdict'] = 'ready';
  let judgment: string | null = null;
  let updates: Array<{ id: number; verdict: (typeof VERDICTS)[number]; reason: string; mergedInto: number | null }> = [];
  if (findings.length > 0) {
    const listing = findings.map((f) => ({ id: f.id, angle: f.angle, file: f.file, lines: [f.lineStart, f.lineEnd], severity: f.severity, title: f.title, evidence: f.evidence, failure: f.failure, suggested_fix: f.suggestedFix, confidence: f.confidence }));
    const request: Omit<ModelRequest, 'signal'> = {
      model: deps.models.review,
      maxTokens: deps.review.maxOutputTokens,
      tools: [TRIAGE_TOOL],
      system: [{ type: 'text', text: renderPrompt(loadPrompt('triage'), { request: fenceData(item.request, 'request'), findings: fenceData(JSON.stringify(listing, null, 1), 'findings'), diff: fenceData(truncate(diff, REVIEW_DIFF_MAX_CHARS), 'diff') }) }],
      messages: [{ role: 'user', content: [{ type: 'text', text: `Triage the ${findings.length} findings of review round ${round}.` }] }],
      toolChoice: { type: 'tool', name: 'report_triage' },
    };
    let result: MeteredOutcome;
    const step = triageStep(round);
    const batch = store.batches.latestOfStep(item.id, step);
    if (batch?.status === 'pending') return waitingFor(batch);
    if (batch) {
      // Triage's batch has ended: its answer is taken like a reply; without one, a normal call asks.
      used = batchAnswers(store, batch).get(TRIAGE_CUSTOM_ID);
      if (used?.result.kind !== 'succeeded') {
        log.warn({ batch: batch.id, result: describeUnanswered(used?.result) }, 'the batch did not answer triage; asking by a normal call');
        used = undefined;
      }
    } else if (deps.batches) {
      if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
      const submitted = await submitMeteredBatch({ ...deps.agent, batches: deps.batches }, budget, step, [{ customId: TRIAGE_CUSTOM_ID, request }]);
      if (submitted.kind === 'unclear') {
        log.warn({ nonce: submitted.intent.nonce, reason: submitted.message }, 'triage batch submission unclear');
        return waitingForIntent(submitted.intent);
      }
      if (submitted.kind !== 'submitted') return callStep(submitted);
      log.info({ batch: submitted.batch.id, findings: findings.length }, 'triage submitted as a batch');
      // Nothing awaited between the batch being persisted and this outcome reaching the runner.
      return waitingFor(submitted.batch);
    }
    if (used?.result.kind === 'succeeded') result = { kind: 'ok', response: used.result.response };
    else result = await meteredCall(deps.agent, budget, { ...request, signal });
    if (result.kind !== 'ok') return callStep(result);
    const call = result.response.content.find((b) => b.type === 'tool_use');
    const parsed = triageSchema.safeParse(call?.type === 'tool_use' ? call.input : undefined);
    if (!parsed.success) {
      // A stored answer is not read twice: a retry of the item asks again.
      if (used) store.batches.markUsed(used.batchId, used.customId);
      return { kind: 'failed', reason: 'the triage reply was not a valid verdict report' };
    }
    verdict = parsed.data.verdict;
    judgment = parsed.data.judgment ?? null;
    const byId = new Map(findings.map((f) => [f.id, f]));
    const replies = new Map(parsed.data.findings.filter((v) => byId.has(v.id)).map((v) => [v.id, v]));
    // A duplicate merges only into a finding that is itself kept (no chains, no cycles), and
    // the code guard's findings are facts: triage can neither merge nor ignore them.
    const mergeTarget = (id: number): number | null => {
      const target = replies.get(id)?.merged_into;
      if (target === undefined || target === null || target === id || !byId.has(target)) return null;
      const targetMerges = replies.get(target)?.merged_into;
      return targetMerges === undefined || targetMerges === null || targetMerges === target ? target : null;
    };
    updates = [...replies.values()].map((v) => {
      const guard = byId.get(v.id)!.angle === GUARD_ANGLE;
      return {
        id: v.id,
        verdict: guard && v.verdict === 'ignore' ? ('fix_now' as const) : v.verdict,
        reason: v.reason,
        mergedInto: guard ? null : mergeTarget(v.id),
      };
    });
  }
  // Verdicts, backlog items and the round's state in one transaction: a crash never leads to
  // a second, paid triage or to a proposed item made twice.
  const previous = store.items.review(item.id).summary as { verdict?: string; judgment?: string | null } | null;
  store.transaction(() => {
    for (const u of updates) store.findings.setVerdict(u.id, u.verdict, u.reason, u.mergedInto);
    // Real but separate work becomes a proposed item, linked to this one, for the human to accept.
    for (const f of store.findings.ofRound(item.id, round)) {
      if (f.verdict !== 'backlog' || f.status !== 'open') continue;
      const proposed = store.items.create({
        repo: item.repo,
        title: f.title.slice(0, 80),
        request: `Found while reviewing #${item.id} (${f.angle}, ${f.severity}) in ${f.file}${f.lineStart ? `:${f.lineStart}` : ''}.\n\n${f.failure}\n\nEvidence:\n${f.evidence}\n\nSuggested fix: ${f.suggestedFix}`,
        chatId: item.chatId,
        createdBy: item.createdBy,
        state: 'proposed',
        parentItemId: item.id,
      });
      store.findings.markBacklogged(f.id, proposed.id);
    }
    // A question for the human, once asked, stays on the card through later rounds.
    const keepJudgment = previous?.verdict === 'needs_judgment';
    store.items.setReviewSummary(item.id, {
      verdict: keepJudgment ? 'needs_judgment' : verdict,
      judgment: [keepJudgment ? previous?.judgment : null, judgment].filter(Boolean).join(' · ') || null,
    });
    store.findings.setRoundStatus(item.id, round, 'triaged');
    if (used) store.batches.markUsed(used.batchId, used.customId);
  });
  return undefined;
}

async function fix(
  deps: ReviewStageDeps,
  item: Item,
  path: string,
  branch: string,
  round: number,
  reviewedHead: string,
  fixNow: readonly Finding[],
  signal: AbortSignal,
  log: Logger,
): Promise<StageOutcome | undefined> {
  const { store } = deps;
  if (store.items.get(item.id)?.state === 'reviewing') store.items.transition(item.id, 'fixing', `fixing ${fixNow.length} findings of round ${round}`);
  const tools = await deps.createTools(path);
  let outcome;
  try {
    outcome = await runAgent(
      { ...deps.agent, log },
      {
        itemId: item.id,
        stage: `fix-${round}`,
        model: deps.models.fix,
        system: renderPrompt(loadPrompt('fix'), { lessons: formatLessons(store.lessons.list(item.repo)) }),
        initialMessage: fixRequest(fixNow),
        tools: tools.tools,
        executors: tools.executors,
        limits: { ...deps.fixLimits, stageBudgetUsd: deps.review.fixBudgetUsd, itemBudgetUsd: deps.itemBudgetUsd },
        signal,
        onTurn: (p) => deps.notifier.notify(item, { kind: 'progress', stage: `fix round ${round}`, ...p }),
      },
    );
  } finally {
    await tools.close();
  }
  if (outcome.kind !== 'done') return unfinishedAgentOutcome(outcome, 'the fix')!;
  if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
  await deps.workspace.commitAll(path, `Fix review findings (round ${round})\n\nnightshift item #${item.id}`);
  const sha = await deps.workspace.headSha(path);
  if (sha === reviewedHead) {
    // The fix changed nothing: its findings stay open (on the card), and there is nothing new to review.
    if (store.items.get(item.id)?.state === 'fixing') store.items.transition(item.id, 'reviewing', 'the fix changed nothing');
    store.findings.setRoundStatus(item.id, round, 'done');
    log.warn({ round }, 'the fix agent changed nothing; findings stay open');
    return undefined;
  }
  await deps.workspace.push(path, branch);
  // Only a finding whose file the fix touched counts as fixed; the rest stay open on the card
  // (the agent may have judged them wrong and left them, as its prompt allows).
  const touched = new Set((await deps.workspace.diffStat(path, reviewedHead)).map((f) => f.path));
  const notTouched = fixNow.filter((f) => !touched.has(f.file));
  if (notTouched.length > 0) log.warn({ open: notTouched.map((f) => f.id) }, 'the fix left some findings untouched');
  store.transaction(() => {
    for (const f of fixNow) if (touched.has(f.file)) store.findings.markFixed(f.id, sha);
    store.findings.setRoundFixed(item.id, round, sha);
    const current = store.items.get(item.id)!;
    if (current.prNumber !== null && current.prUrl !== null && current.branch !== null) {
      store.items.setPullRequest(item.id, { branch: current.branch, number: current.prNumber, url: current.prUrl, headSha: sha });
    }
    if (current.state === 'fixing') store.items.transition(item.id, 'reviewing', `fix pushed (${sha.slice(0, 7)}); reviewing the fix`);
  });
  log.info({ round, sha, fixed: fixNow.length }, 'fix pushed');
  return undefined;
}

function fixRequest(findings: readonly Finding[]): string {
  const list = findings
    .map((f, i) => `${i + 1}. [${f.severity}] ${f.title}\n   ${f.file}${f.lineStart ? `:${f.lineStart}${f.lineEnd && f.lineEnd !== f.lineStart ? `-${f.lineEnd}` : ''}` : ''}\n   Failure: ${f.failure}\n   Evidence:\n${indent(f.evidence)}\n   Suggested fix: ${f.suggestedFix}`)
    .join('\n\n');
  return `Reviewers found these problems in the change on this branch. Fix each of them.\n\n<findings>\n${fenceData(list, 'findings')}\n</findings>`;
}

function indent(text: string): string {
  return text.split('\n').map((l) => `      ${l}`).join('\n');
}

/** The changed files as committed at HEAD, with line numbers, within a size budget. */
async function changedFiles(workspace: Workspace, path: string, diff: string): Promise<string> {
  const files = [...new Set([...diff.matchAll(/^\+\+\+ b\/(.+)$/gm)].map((m) => m[1]!))];
  const parts: string[] = [];
  let size = 0;
  for (const file of files) {
    const text = await workspace.readAtHead(path, file);
    if (text === undefined) continue;
    const numbered = text.split('\n').map((line, i) => `${String(i + 1).padStart(5)}  ${line}`).join('\n');
    const part = `--- ${file} ---\n${numbered}`;
    if (size + part.length > REVIEW_FILES_MAX_CHARS) {
      parts.push(`--- ${file} --- (omitted: the files shown already fill the review context)`);
      continue;
    }
    size += part.length;
    parts.push(part);
  }
  return parts.join('\n\n') || '(no text files changed)';
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}\n… (cut at ${max} characters)`;
}

/** Marker of the sticky review comment of an item's PR. */
export function reviewMarker(itemId: number): string {
  return `<!-- nightshift:review:${itemId} -->`;
}

const SEVERITY_RANK: Record<string, number> = { critical: 0, high: 1, medium: 2, low: 3 };

/** The compact summary: verdict first, counts, and the three lines that matter most. */
export function summarize(findings: readonly Finding[], rounds: number, triaged: { verdict?: string; judgment?: string | null } | null): ReviewSummary {
  const live = findings.filter((f) => f.status !== 'merged');
  const count = (key: (f: Finding) => string) => live.reduce<Record<string, number>>((acc, f) => ({ ...acc, [key(f)]: (acc[key(f)] ?? 0) + 1 }), {});
  const open = live.filter((f) => f.status === 'open' && f.verdict !== 'ignore');
  const guardFlags = live.filter((f) => f.angle === GUARD_ANGLE).length;
  const verdict: ReviewSummary['verdict'] =
    triaged?.verdict === 'needs_judgment' || guardFlags > 0 ? 'needs_judgment' : open.length > 0 ? 'ready_with_open_items' : 'ready';
  const important = [...live]
    .filter((f) => f.status !== 'ignored')
    .sort((a, b) => (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9))
    .slice(0, 3)
    .map((f) => `${f.status === 'fixed' ? 'fixed' : f.status === 'backlogged' ? 'backlog' : 'OPEN'} · ${f.severity} · ${f.title} (${f.file}${f.lineStart ? `:${f.lineStart}` : ''})`);
  return {
    verdict,
    judgment: triaged?.judgment ?? (guardFlags > 0 ? 'the fix changed tests or checks; look at it' : null),
    rounds,
    bySeverity: count((f) => f.severity),
    byStatus: count((f) => f.status),
    guardFlags,
    top: important,
  };
}

/** The sticky PR comment: fixed (with commit), backlog, ignored with reasons, still open, and what the item has cost. */
export function stickyComment(summary: ReviewSummary, findings: readonly Finding[], spend: ReadonlyArray<{ readonly stage: string; readonly usd: number }> = []): string {
  const line = (f: Finding) => `- **${f.severity}** ${f.title} (\`${f.file}${f.lineStart ? `:${f.lineStart}` : ''}\`, ${f.angle})`;
  const section = (title: string, list: readonly Finding[], extra: (f: Finding) => string) =>
    list.length === 0 ? [] : [`### ${title} (${list.length})`, ...list.map((f) => `${line(f)}${extra(f)}`), ''];
  const live = findings.filter((f) => f.status !== 'merged');
  return [
    `## nightshift review: ${summary.verdict.replaceAll('_', ' ')}`,
    summary.judgment ? `\n**Needs your judgment:** ${summary.judgment}\n` : '',
    `${live.length} findings over ${summary.rounds} round${summary.rounds === 1 ? '' : 's'}.`,
    '',
    ...section('Fixed now', live.filter((f) => f.status === 'fixed'), (f) => ` — fixed in ${f.fixedSha?.slice(0, 7) ?? '?'}`),
    ...section('Still open', live.filter((f) => f.status === 'open' && f.verdict !== 'ignore'), (f) => (f.verdictReason ? ` — ${f.verdictReason}` : '')),
    ...section('Left for the backlog', live.filter((f) => f.status === 'backlogged'), (f) => ` — proposed as #${f.backlogItemId}`),
    ...section('Ignored', live.filter((f) => f.status === 'ignored'), (f) => ` — ${f.verdictReason ?? ''}`),
    ...costLine(spend),
  ].join('\n');
}

/** "Cost so far: $0.84 (build $0.31 · review $0.45 · fix $0.08)", fix rounds together; nothing before any spend. */
function costLine(spend: ReadonlyArray<{ readonly stage: string; readonly usd: number }>): string[] {
  const byStage = new Map<string, number>();
  for (const s of spend) byStage.set(s.stage.replace(/-\d+$/, ''), (byStage.get(s.stage.replace(/-\d+$/, '')) ?? 0) + s.usd);
  const total = [...byStage.values()].reduce((a, b) => a + b, 0);
  if (byStage.size === 0) return [];
  return [`Cost so far: $${total.toFixed(2)} (${[...byStage].map(([stage, usd]) => `${stage} $${usd.toFixed(2)}`).join(' · ')})`];
}
