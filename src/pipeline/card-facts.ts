import type { Logger } from 'pino';
import { describeSensitive, summarizeChanges, type ChangeSummary } from '../domain/change-facts.js';
import type { RepoName } from '../domain/parse-request.js';
import type { ChecksState, GitHub } from '../github/create-github.js';
import type { Finding } from '../store/findings.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import type { Workspace } from '../workspace/create-workspace.js';
import type { ReviewSummary } from './review-stage.js';

/**
 * What a review card shows. Everything that matters for the decision (changes, checks, what
 * the bots fixed and left, cost, time) is computed here by code from git, GitHub and the
 * ledger; only the verdict line and the finding titles come from the reviewers.
 */
export interface CardFacts {
  readonly item: Item;
  /** The head the review ended on: the one the card's Approve merges. */
  readonly headSha: string;
  /** GitHub's head of the PR now, when it could be read. */
  readonly prHeadSha: string | null;
  readonly summary: ReviewSummary | null;
  readonly changes: ChangeSummary | { readonly error: string };
  readonly checks: ChecksState | { readonly error: string };
  readonly fixed: readonly Finding[];
  readonly backlog: ReadonlyArray<{ readonly finding: Finding; readonly item: Item }>;
  /** Findings nobody fixed, backlogged or dismissed (fix_now left open, or never triaged). */
  readonly open: readonly Finding[];
  readonly costs: ReadonlyArray<{ readonly stage: string; readonly usd: number }>;
  readonly totalUsd: number;
  /** From queueing to now. */
  readonly pipelineMs: number;
}

/** Collaborators of {@link collectCardFacts}. */
export interface CardFactsDeps {
  readonly store: Store;
  readonly github: Pick<GitHub, 'getPullRequest' | 'checksFor'>;
  readonly workspace: Pick<Workspace, 'prepare' | 'diffStat' | 'headSha'>;
  readonly repos: readonly RepoName[];
  readonly now: () => number;
  readonly log: Logger;
}

/** The head a review ended on: the last round's fix if it made one, else the head it reviewed. */
export function reviewedHead(store: Store, item: Item): string | null {
  const round = store.findings.lastRound(item.id);
  return round ? (round.fixSha ?? round.headSha) : item.headSha;
}

/**
 * Gathers the card's facts for an item in `ready`. Never throws for a fact it cannot get (git
 * or GitHub down): that fact says so, and Approve checks everything again before merging.
 */
export async function collectCardFacts(deps: CardFactsDeps, item: Item): Promise<CardFacts> {
  const { store, log } = deps;
  const repo = deps.repos.find((r) => r.fullName === item.repo);
  const headSha = reviewedHead(store, item) ?? '';
  if (headSha && headSha !== item.headSha) store.items.setHeadSha(item.id, headSha);

  let changes: CardFacts['changes'];
  try {
    if (!repo) throw new Error(`${item.repo} is not configured`);
    const ws = await deps.workspace.prepare({ id: item.id, title: item.title, repo });
    const [stat, head] = await Promise.all([deps.workspace.diffStat(ws.path, ws.baseSha), deps.workspace.headSha(ws.path)]);
    changes = head === headSha ? summarizeChanges(stat) : { error: `the worktree is at ${head.slice(0, 7)}, not the reviewed ${headSha.slice(0, 7)}` };
  } catch (error) {
    log.warn({ err: error, itemId: item.id }, 'could not compute the changes for the card');
    changes = { error: 'could not read the changes from git' };
  }

  let checks: CardFacts['checks'];
  let prHeadSha: string | null = null;
  try {
    if (!repo || item.prNumber === null) throw new Error('no pull request');
    const pr = await deps.github.getPullRequest(repo, item.prNumber);
    prHeadSha = pr.headSha;
    checks = await deps.github.checksFor(repo, headSha, pr.baseRef);
  } catch (error) {
    log.warn({ err: error, itemId: item.id }, 'could not read the checks for the card');
    checks = { error: 'GitHub could not be reached' };
  }

  const findings = store.findings.ofItem(item.id);
  const backlog = findings
    .filter((f) => f.status === 'backlogged' && f.backlogItemId !== null)
    .map((finding) => ({ finding, item: store.items.get(finding.backlogItemId!)! }))
    .filter((b) => b.item !== undefined);
  const costs = store.ledger.itemByStage(item.id);
  return {
    item: store.items.get(item.id) ?? item,
    headSha,
    prHeadSha,
    summary: store.items.review(item.id).summary as ReviewSummary | null,
    changes,
    checks,
    fixed: findings.filter((f) => f.status === 'fixed'),
    backlog,
    open: findings.filter((f) => f.status === 'open'),
    costs,
    totalUsd: costs.reduce((sum, c) => sum + c.usd, 0),
    pipelineMs: Math.max(0, deps.now() - item.createdAt),
  };
}

/** One phrase for the review-session digest: "low-risk", or why not. */
export function riskOf(facts: CardFacts): string {
  const reasons: string[] = [];
  if (facts.summary?.verdict === 'needs_judgment') reasons.push('needs judgment');
  if ('error' in facts.checks) reasons.push('checks unknown');
  else if (facts.checks.state === 'failing' || facts.checks.state === 'pending') reasons.push(`checks ${facts.checks.state}`);
  if (facts.open.some((f) => f.severity === 'critical' || f.severity === 'high')) reasons.push('open high findings');
  if ('sensitive' in facts.changes && facts.changes.sensitive.length > 0) reasons.push(describeSensitive(facts.changes.sensitive).replace(/ \(\d+\)/g, ''));
  return reasons.length === 0 ? 'low-risk' : reasons.join(', ');
}
