import type { Logger } from 'pino';
import { z } from 'zod';
import { titleFromRequest, type RepoName } from '../domain/parse-request.js';
import {
  CONTEXT_LEVELS,
  estimateCost,
  HISTORY_MAX_ITEMS,
  JUDGMENT_LEVELS,
  RISK_LEVELS,
  sizeClassOf,
  SIZE_CLASSES,
  type ContextLevel,
  type CostEstimate,
  type JudgmentLevel,
  type RiskLevel,
  type SizeClass,
} from '../domain/size-estimate.js';
import { meteredCall, type CallBudget, type MeteredDeps } from '../llm/metered-call.js';
import type { ToolParam } from '../llm/model-client.js';
import { loadPrompt, renderPrompt } from '../llm/render-prompt.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import type { Workspace } from '../workspace/create-workspace.js';
import { fenceData, formatLessons, readGuidelines } from './build-stage.js';
import { classifyStageError } from './classify-stage-error.js';

/** The ledger stage sizing calls are billed to (with the item's id). */
export const SIZING_STAGE = 'sizing';
/** Most output tokens of one sizing report. @default 2000 */
export const SIZING_MAX_OUTPUT_TOKENS = 2_000;
/** Most characters of the repository's file list in the sizing prompt. @default 16000 */
export const SIZING_FILES_MAX_CHARS = 16_000;
/** Most open items offered to the model as bundling partners (the newest). @default 30 */
export const SIZING_OPEN_ITEMS_MAX = 30;
/** Most parts a split may have. @default 5 */
export const SPLIT_MAX_PARTS = 5;
/** Longest question or reason kept from a report, in characters. @default 1000 */
export const REPORT_TEXT_MAX_CHARS = 1_000;

/** What the planning model may say about an item. */
export const VERDICTS = ['fits', 'too_small', 'too_large', 'needs_decision'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** One proposed part of a split. */
export interface SplitPart {
  readonly title: string;
  readonly request: string;
}

/** A validated sizing report as stored in `items.size_report`; `class` is computed by code. */
export interface SizeReport {
  readonly contextNeeded: ContextLevel;
  readonly judgmentNeeded: JudgmentLevel;
  readonly risk: RiskLevel;
  readonly verdict: Verdict;
  /** One line: why this verdict. */
  readonly reason: string;
  /** too_large: 2 to {@link SPLIT_MAX_PARTS} parts; otherwise empty. */
  readonly split: readonly SplitPart[];
  /** too_small: ids of open items to bundle with (only ones that were offered); otherwise empty. */
  readonly bundleWith: readonly number[];
  /** needs_decision: the question to answer first; otherwise null. */
  readonly question: string | null;
  /** The size class the estimate groups by (see `sizeClassOf`). */
  readonly class: SizeClass;
}

/** How sizing one item ended. */
export type SizingOutcome =
  | { readonly kind: 'sized'; readonly report: SizeReport }
  /**
   * Worth trying again: `notBefore` is a daily or monthly budget's reset; `counted` is false for
   * rate limits, overload, budget waits and aborts, which say nothing about the item.
   */
  | { readonly kind: 'retry-later'; readonly reason: string; readonly notBefore?: number; readonly counted: boolean }
  /** No point trying again by itself (a bad reply, a spent sizing budget, a refused request): the user decides. */
  | { readonly kind: 'parked'; readonly reason: string };

/** What the sizing stage needs. */
export interface SizingStageDeps {
  readonly store: Store;
  readonly workspace: Workspace;
  readonly agent: MeteredDeps;
  readonly repos: readonly RepoName[];
  /** The planning (review) model. */
  readonly model: string;
  /** `NIGHTSHIFT_BUDGET_SIZING_USD`: what sizing one item may spend, all its calls. */
  readonly budgetUsd: number;
  readonly itemBudgetUsd: number;
  readonly log: Logger;
}

const storedReport = z.object({
  contextNeeded: z.enum(CONTEXT_LEVELS),
  judgmentNeeded: z.enum(JUDGMENT_LEVELS),
  risk: z.enum(RISK_LEVELS),
  verdict: z.enum(VERDICTS),
  reason: z.string(),
  split: z.array(z.object({ title: z.string().min(1), request: z.string().min(1) })),
  bundleWith: z.array(z.number().int()),
  question: z.string().nullable(),
  class: z.enum(SIZE_CLASSES),
});

/** A stored report read back, or undefined when it is not one (the column is free-form JSON). */
export function parseSizeReport(value: unknown): SizeReport | undefined {
  const parsed = storedReport.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

const toolInput = z.object({
  context_needed: z.enum(CONTEXT_LEVELS),
  judgment_needed: z.enum(JUDGMENT_LEVELS),
  risk: z.enum(RISK_LEVELS),
  verdict: z.enum(VERDICTS),
  reason: z.string().trim().min(1),
  split: z.array(z.object({ title: z.string().trim().min(1), request: z.string().trim().min(1) })).optional(),
  bundle_with: z.array(z.number().int()).optional(),
  question: z.string().trim().optional(),
});

const SIZE_TOOL: ToolParam = {
  name: 'report_size',
  description: 'Report how much context and judgment the request needs, its risk, and whether it fits one run, is too small, too large (with a split) or needs a decision first (with the question).',
  input_schema: {
    type: 'object',
    properties: {
      context_needed: { type: 'string', enum: [...CONTEXT_LEVELS] },
      judgment_needed: { type: 'string', enum: [...JUDGMENT_LEVELS] },
      risk: { type: 'string', enum: [...RISK_LEVELS] },
      verdict: { type: 'string', enum: [...VERDICTS] },
      reason: { type: 'string', description: 'one line: why this verdict' },
      split: {
        type: 'array',
        description: `too_large only: 2 to ${SPLIT_MAX_PARTS} parts in build order, each buildable and reviewable on its own`,
        items: {
          type: 'object',
          properties: {
            title: { type: 'string', description: 'imperative, under 70 characters' },
            request: { type: 'string', description: 'complete in itself: the agent building it sees nothing else' },
          },
          required: ['title', 'request'],
        },
      },
      bundle_with: { type: 'array', description: 'too_small only: ids of the open items listed to bundle it with', items: { type: 'integer' } },
      question: { type: 'string', description: 'needs_decision only: the one question to answer first, naming the options' },
    },
    required: ['context_needed', 'judgment_needed', 'risk', 'verdict', 'reason'],
  },
};

/**
 * Sizes one item: the planning model reads the request with the repository's file list,
 * guidelines, lessons and the open items it could be bundled with, and reports through the
 * forced `report_size` tool. One metered call, billed to {@link SIZING_STAGE} of the item, under
 * the sizing, item, daily and monthly caps. Nothing is stored here: the sizer records the
 * outcome. Never throws.
 */
export async function runSizingStage(deps: SizingStageDeps, item: Item, signal: AbortSignal): Promise<SizingOutcome> {
  const log = deps.log.child({ itemId: item.id, stage: SIZING_STAGE });
  try {
    return await sizeItem(deps, item, signal, log);
  } catch (error) {
    const outcome = classifyStageError(error);
    log.warn({ err: error, outcome: outcome.kind }, 'sizing error');
    return outcome.kind === 'retry-later' ? { kind: 'retry-later', reason: outcome.reason, counted: true } : { kind: 'parked', reason: outcome.reason };
  }
}

const stopped: SizingOutcome = { kind: 'retry-later', reason: 'stopped by request', counted: false };

async function sizeItem(deps: SizingStageDeps, item: Item, signal: AbortSignal, log: Logger): Promise<SizingOutcome> {
  const repo = deps.repos.find((r) => r.fullName === item.repo);
  if (!repo) return { kind: 'parked', reason: `${item.repo} is no longer in NIGHTSHIFT_REPOS` };
  const files = summariseFiles(await deps.workspace.listAllFromDefaultBranch(repo), SIZING_FILES_MAX_CHARS);
  const candidates = deps.store.items.bundleable(repo.fullName, item.id, SIZING_OPEN_ITEMS_MAX);
  const system = renderPrompt(loadPrompt('sizing'), {
    repo: repo.fullName,
    item_id: item.id,
    request: fenceData(item.request, 'request'),
    files_note: files.note,
    files: fenceData(files.text, 'files'),
    guidelines: fenceData(await readGuidelines(deps.workspace, repo), 'guidelines'),
    lessons: formatLessons(deps.store.lessons.list(repo.fullName)),
    // Titles are one line each (see titleFromRequest), so one item cannot pass as several.
    open_items: fenceData(candidates.length === 0 ? '(none)' : candidates.map((c) => `#${c.id} ${c.title}`).join('\n'), 'open_items'),
  });
  if (signal.aborted) return stopped;
  const budget: CallBudget = { itemId: item.id, stage: SIZING_STAGE, stageBudgetUsd: deps.budgetUsd, itemBudgetUsd: deps.itemBudgetUsd };
  const result = await meteredCall(deps.agent, budget, {
    model: deps.model,
    maxTokens: SIZING_MAX_OUTPUT_TOKENS,
    tools: [SIZE_TOOL],
    system: [{ type: 'text', text: system }],
    messages: [{ role: 'user', content: [{ type: 'text', text: `Size item #${item.id}.` }] }],
    toolChoice: { type: 'tool', name: 'report_size' },
    signal,
  });
  if (signal.aborted) return stopped;
  switch (result.kind) {
    case 'limit':
      return { kind: 'parked', reason: `sizing was stopped by its ${result.stop.limit.replace('-', ' ')} limit: ${result.stop.message}` };
    case 'retry-later':
      return result.notBefore === undefined
        ? { kind: 'retry-later', reason: result.message, counted: result.throttled !== true }
        : { kind: 'retry-later', reason: result.message, notBefore: result.notBefore, counted: false };
    case 'failed':
      return { kind: 'parked', reason: result.message };
    case 'ok':
      break;
  }
  const call = result.response.content.find((b) => b.type === 'tool_use');
  const report = toReport(call?.type === 'tool_use' ? call.input : undefined, new Set(candidates.map((c) => c.id)));
  if (typeof report === 'string') {
    log.warn({ problem: report }, 'the sizing reply was not a valid report');
    return { kind: 'parked', reason: `the planning model's reply was not a valid size report (${report})` };
  }
  log.info({ verdict: report.verdict, class: report.class }, 'item sized');
  return { kind: 'sized', report };
}

/** The model's tool input as a report, or what is wrong with it. Bundle ids not offered are dropped. */
function toReport(input: unknown, offered: ReadonlySet<number>): SizeReport | string {
  const parsed = toolInput.safeParse(input);
  if (!parsed.success) return `bad ${[...new Set(parsed.error.issues.map((i) => i.path.join('.') || 'input'))].join(', ')}`;
  const r = parsed.data;
  const split = r.verdict === 'too_large' ? (r.split ?? []).map((p) => ({ title: titleFromRequest(p.title), request: p.request })) : [];
  if (r.verdict === 'too_large' && (split.length < 2 || split.length > SPLIT_MAX_PARTS)) {
    return `a too_large verdict needs a split of 2 to ${SPLIT_MAX_PARTS} parts, it had ${split.length}`;
  }
  const question = r.verdict === 'needs_decision' ? (r.question ?? '') : '';
  if (r.verdict === 'needs_decision' && question === '') return 'a needs_decision verdict without a question';
  return {
    contextNeeded: r.context_needed,
    judgmentNeeded: r.judgment_needed,
    risk: r.risk,
    verdict: r.verdict,
    reason: shorten(r.reason.replace(/\s+/g, ' '), REPORT_TEXT_MAX_CHARS),
    split,
    // A model may name an item it was never shown (or this one): only offered ones count.
    bundleWith: r.verdict === 'too_small' ? [...new Set(r.bundle_with ?? [])].filter((id) => offered.has(id)) : [],
    question: question === '' ? null : shorten(question, REPORT_TEXT_MAX_CHARS),
    class: sizeClassOf(r.context_needed, r.judgment_needed),
  };
}

/**
 * The repository's file list for a prompt, within `maxChars`: every path when they fit; else
 * directories as deep as fits, each with its file count (files above that depth as they are);
 * else that list cut short. `note` says which, for the prompt.
 */
export function summariseFiles(paths: readonly string[], maxChars: number): { text: string; note: string } {
  if (paths.length === 0) return { text: '(the default branch has no files)', note: 'none' };
  const all = paths.join('\n');
  if (all.length <= maxChars) return { text: all, note: `all ${paths.length} files` };
  const maxDepth = Math.max(...paths.map((p) => p.split('/').length - 1));
  let lines: string[] = [];
  for (let depth = maxDepth; depth >= 1; depth--) {
    lines = groupByDirectory(paths, depth);
    const text = lines.join('\n');
    if (text.length <= maxChars) return { text, note: `${paths.length} files; directories ${depth} level${depth === 1 ? '' : 's'} deep are shown with their file counts` };
  }
  const kept: string[] = [];
  let size = 0;
  for (const line of lines) {
    if (size + line.length + 1 > maxChars) break;
    kept.push(line);
    size += line.length + 1;
  }
  return { text: kept.join('\n'), note: `${paths.length} files; top-level directories with their file counts, cut after ${kept.length} of ${lines.length} entries` };
}

/** Paths grouped by their first `depth` directories ("src/pipeline/ (14 files)"); shallower files as they are. */
function groupByDirectory(paths: readonly string[], depth: number): string[] {
  const counts = new Map<string, number>();
  for (const path of paths) {
    const parts = path.split('/');
    const key = parts.length - 1 >= depth ? `${parts.slice(0, depth).join('/')}/` : path;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => (key.endsWith('/') ? `${key} (${n} file${n === 1 ? '' : 's'})` : key));
}

/**
 * The cost range of an item of `sizeClass`: from what finished items of the class cost (the
 * ledger), or shares of `ceilingUsd` until there are enough of them (see `estimateCost`).
 */
export function estimateItemCost(store: Store, sizeClass: SizeClass, ceilingUsd: number): CostEstimate {
  return estimateCost(sizeClass, store.ledger.finishedItemsUsd(sizeClass, HISTORY_MAX_ITEMS), ceilingUsd);
}

function shorten(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}
