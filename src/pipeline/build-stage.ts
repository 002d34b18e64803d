import type { Logger } from 'pino';
import type { BuildTools } from '../agent/build-tools.js';
import { runAgent, type AgentDeps } from '../agent/run-agent.js';
import type { AgentLimitsConfig } from '../config.js';
import type { RepoName } from '../domain/parse-request.js';
import type { GitHub } from '../github/create-github.js';
import { loadPrompt, renderPrompt } from '../llm/render-prompt.js';
import type { Item } from '../store/items.js';
import type { Lesson } from '../store/lessons.js';
import type { Store } from '../store/open-store.js';
import type { Workspace } from '../workspace/create-workspace.js';
import { guardStage, unfinishedAgentOutcome } from './classify-stage-error.js';
import type { ItemNotifier } from './item-events.js';

/** How a stage ended, as the runner needs to know it. */
export type StageOutcome =
  | { readonly kind: 'done' }
  /**
   * Try again later. `notBefore` (epoch ms): not before then (a daily or monthly budget's reset).
   * `throttled`: a rate limit or overload. Either way no attempt is used; any other retry-later
   * (a dropped connection, a 5xx) uses one of the item's `NIGHTSHIFT_MAX_ATTEMPTS`.
   */
  | { readonly kind: 'retry-later'; readonly reason: string; readonly notBefore?: number; readonly throttled?: true }
  | { readonly kind: 'failed'; readonly reason: string }
  /**
   * Work was handed off (a Message Batch) and the item waits for it without holding a run slot
   * or its repo; whatever receives the results resumes it. `until` (epoch ms): when it will
   * have arrived at the latest.
   */
  | { readonly kind: 'waiting'; readonly reason: string; readonly until: number };

/** Files read from the default branch as the repo's own guidelines, in this order. */
export const GUIDELINE_FILES = ['AGENTS.md', 'CLAUDE.md', 'CONTRIBUTING.md', '.github/CONTRIBUTING.md'] as const;
/** Most characters of guidelines given to the agent. @default 20000 */
export const GUIDELINES_MAX_CHARS = 20_000;
/** Most characters of lessons given to a prompt; the newest are kept. @default 8000 */
export const LESSONS_MAX_CHARS = 8_000;
/** What a prompt's `<lessons>` fence holds while the repo has none. */
export const NO_LESSONS = '(none yet)';

/** What every stage that works on a worktree with the agent needs. */
export interface StageDeps {
  readonly store: Store;
  readonly workspace: Workspace;
  readonly github: GitHub;
  readonly agent: Omit<AgentDeps, 'log'>;
  readonly createTools: (cwd: string) => Promise<BuildTools>;
  readonly repos: readonly RepoName[];
  readonly itemBudgetUsd: number;
  readonly notifier: ItemNotifier;
  readonly log: Logger;
}

/** What the build stage needs. */
export interface BuildStageDeps extends StageDeps {
  readonly model: string;
  readonly limits: AgentLimitsConfig;
}

/**
 * Builds an item: worktree, agent run, commit, push, pull request. Every step is safe to
 * repeat, so a resumed item picks up where it stopped: the worktree and the agent's transcript
 * are reused, and an existing branch or PR is found instead of made again.
 */
export function runBuildStage(deps: BuildStageDeps, item: Item, signal: AbortSignal): Promise<StageOutcome> {
  return guardStage(deps.log, item.id, 'build', () => buildItem(deps, item, signal));
}

async function buildItem(deps: BuildStageDeps, item: Item, signal: AbortSignal): Promise<StageOutcome> {
  const log = deps.log.child({ itemId: item.id, stage: 'build' });
  const repo = deps.repos.find((r) => r.fullName === item.repo);
  if (!repo) return { kind: 'failed', reason: `${item.repo} is no longer in NIGHTSHIFT_REPOS` };

  const ws = await deps.workspace.prepare({ id: item.id, title: item.title, repo });
  deps.store.items.setBranch(item.id, ws.branch);
  const guidelines = await readGuidelines(deps.workspace, repo);
  const system = renderPrompt(loadPrompt('build'), { repo: repo.fullName, default_branch: ws.defaultBranch });
  const task = renderPrompt(loadPrompt('build-task'), {
    item_id: item.id,
    request: fenceData(item.request, 'request'),
    guidelines: fenceData(guidelines, 'guidelines'),
    // Read now, not when the item was queued: a lesson taught since reaches this build.
    lessons: formatLessons(deps.store.lessons.list(repo.fullName)),
  });

  const tools = await deps.createTools(ws.path);
  let outcome;
  try {
    outcome = await runAgent(
      { ...deps.agent, log },
      {
        itemId: item.id,
        stage: 'build',
        model: deps.model,
        system,
        initialMessage: task,
        tools: tools.tools,
        executors: tools.executors,
        limits: {
          maxTurns: deps.limits.maxTurns,
          maxOutputTokens: deps.limits.maxOutputTokens,
          maxWallClockMs: deps.limits.maxWallClockMs,
          stageBudgetUsd: deps.limits.budgetUsd,
          itemBudgetUsd: deps.itemBudgetUsd,
        },
        signal,
        onTurn: (p) => deps.notifier.notify(item, { kind: 'progress', stage: 'build', ...p }),
      },
    );
  } finally {
    await tools.close();
  }

  if (outcome.kind !== 'done') return unfinishedAgentOutcome(outcome)!;

  // A /cancel or shutdown while the agent finished: nothing more goes out.
  if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
  await deps.workspace.commitAll(ws.path, commitMessage(item));
  if (await deps.workspace.isDirty(ws.path)) log.warn('files left uncommitted after the final commit (ignored files?)');
  const files = await deps.workspace.diffStat(ws.path, ws.baseSha);
  if (files.length === 0) {
    return { kind: 'failed', reason: `the agent made no change. It said: ${truncate(outcome.finalText, 600) || '(nothing)'}` };
  }
  if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
  await deps.workspace.push(ws.path, ws.branch);
  if (signal.aborted) return { kind: 'retry-later', reason: 'stopped by request' };
  const itemUsd = deps.store.ledger.itemUsd(item.id);
  const pr = await deps.github.ensurePullRequest({
    repo,
    head: ws.branch,
    base: ws.defaultBranch,
    title: item.title,
    body: pullRequestBody({ item, summary: outcome.finalText, files, itemUsd, turns: outcome.turns }),
  });
  // The head is what we pushed; GitHub's view of a just-pushed branch can lag behind it.
  const headSha = await deps.workspace.headSha(ws.path);
  if (pr.headSha !== headSha) log.warn({ pushed: headSha, github: pr.headSha }, "GitHub does not show the pushed head yet");
  deps.store.items.setPullRequest(item.id, { branch: ws.branch, number: pr.number, url: pr.url, headSha });
  log.info({ pr: pr.number, adopted: !pr.created }, 'pull request ready');
  deps.notifier.notify(item, { kind: 'pr-opened', prUrl: pr.url, prNumber: pr.number, summary: outcome.finalText, itemUsd, adopted: !pr.created });
  return { kind: 'done' };
}

/** The repo's own guidelines files from its default branch, joined and capped. */
export async function readGuidelines(workspace: Workspace, repo: RepoName): Promise<string> {
  const parts: string[] = [];
  for (const file of GUIDELINE_FILES) {
    const text = await workspace.readFromDefaultBranch(repo, file);
    if (text !== undefined && text.trim() !== '') parts.push(`--- ${file} ---\n${text.trim()}`);
  }
  return parts.length === 0 ? '(This repository has no AGENTS.md, CLAUDE.md or CONTRIBUTING.md.)' : truncate(parts.join('\n\n'), GUIDELINES_MAX_CHARS);
}

/**
 * The body of a prompt's `<lessons>` fence: one line per lesson, `#<id> <text>`, oldest first,
 * fenced as data; {@link NO_LESSONS} when there are none, so the prompt keeps its shape. A
 * lesson's line breaks become spaces (one lesson cannot pass as several). Past
 * {@link LESSONS_MAX_CHARS} the oldest are left out, and a first line says how many.
 */
export function formatLessons(lessons: readonly Lesson[]): string {
  if (lessons.length === 0) return NO_LESSONS;
  const lines = lessons.map((l) => truncate(`#${l.id} ${l.text.replace(/\s+/g, ' ').trim()}`, LESSONS_MAX_CHARS));
  // Newest first, while they fit; the newest always does (each line is capped).
  const kept: string[] = [];
  let size = 0;
  for (let i = lines.length - 1; i >= 0 && size + lines[i]!.length <= LESSONS_MAX_CHARS; i--) {
    kept.unshift(lines[i]!);
    size += lines[i]!.length + 1;
  }
  const left = lines.length - kept.length;
  return fenceData([...(left > 0 ? [`(${left} older lessons left out)`] : []), ...kept].join('\n'), 'lessons');
}

/** Keeps data inside its XML fence: a closing tag in the data (any case or spacing) cannot end it early. */
export function fenceData(text: string, tag: string): string {
  return text.replace(new RegExp(`<\\s*/\\s*${tag}\\s*>`, 'gi'), `<\\/${tag}>`);
}

function commitMessage(item: Item): string {
  return `${item.title}\n\nnightshift item #${item.id}`;
}


function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Marker that ties a pull request to its item. */
export function itemMarker(itemId: number): string {
  return `<!-- nightshift:item:${itemId} -->`;
}

/** The PR description: what was asked, what the agent says it did, files, cost, and the item marker. */
export function pullRequestBody(input: {
  item: Item;
  summary: string;
  files: ReadonlyArray<{ path: string; added: number | null; removed: number | null }>;
  itemUsd: number;
  turns: number;
}): string {
  const quoted = truncate(input.item.request, 4000).split('\n').map((l) => `> ${l}`).join('\n');
  const fileLines = input.files
    .slice(0, 50)
    .map((f) => `- \`${f.path}\` ${f.added === null ? '(binary)' : `+${f.added} −${f.removed}`}`)
    .join('\n');
  const more = input.files.length > 50 ? `\n- … and ${input.files.length - 50} more` : '';
  return [
    `Work item #${input.item.id}, queued from Telegram.`,
    '',
    '### What was asked',
    quoted,
    '',
    '### What the agent says it did',
    // The marker below is ours alone: one forged in the agent's text could claim another item.
    truncate(input.summary.replace(/<!--\s*nightshift:[^>]*-->/gi, ''), 6000).trim() || '(no summary)',
    '',
    `### Files changed (${input.files.length})`,
    fileLines + more,
    '',
    `Cost so far: $${input.itemUsd.toFixed(2)} over ${input.turns} model turns.`,
    '',
    itemMarker(input.item.id),
  ].join('\n');
}
