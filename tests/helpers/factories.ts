import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChangeSummary } from '../../src/domain/change-facts.js';
import type { ChecksState, PullRequestState } from '../../src/github/create-github.js';
import type { CardFacts } from '../../src/pipeline/card-facts.js';
import type { ReviewSummary } from '../../src/pipeline/review-stage.js';
import type { Finding } from '../../src/store/findings.js';
import type { Item, NewItem } from '../../src/store/items.js';
import { openStore, type Store } from '../../src/store/open-store.js';

/** The head commit the factories' PR, findings and card facts point at. */
export const HEAD = 'a1b2c3d'.padEnd(40, '0');

/** A fresh store on a real SQLite file in a temp directory, with a controllable clock. */
export function makeStore(start = Date.UTC(2026, 10, 25, 9, 0, 0)): { store: Store; clock: { now: number }; path: string } {
  const clock = { now: start };
  const path = join(mkdtempSync(join(tmpdir(), 'ns-store-')), 'nightshift.db');
  return { store: openStore(path, { now: () => clock.now }), clock, path };
}

/** A new item with sensible defaults. */
export function makeNewItem(overrides: Partial<NewItem> = {}): NewItem {
  return { repo: 'me/app', title: 'Add a flag', request: 'Add a --json flag', chatId: 111, createdBy: 111, ...overrides };
}

/** A stored item as read back, with sensible defaults. */
export function makeItem(overrides: Partial<Item> = {}): Item {
  return {
    id: 12,
    repo: 'me/app',
    title: 'Add a flag',
    request: 'Add a --json flag',
    state: 'queued',
    stateReason: null,
    chatId: 111,
    createdBy: 111,
    createdAt: 0,
    updatedAt: 0,
    branch: null,
    prNumber: null,
    prUrl: null,
    headSha: null,
    progressOutboxId: null,
    wakeAt: null,
    mergeCommitSha: null,
    parentItemId: null,
    notBefore: null,
    attempts: 0,
    sizing: null,
    estimateLowUsd: null,
    estimateHighUsd: null,
    ...overrides,
  };
}

/** A review summary with sensible defaults: ready after one round, nothing found. */
export function makeSummary(overrides: Partial<ReviewSummary> = {}): ReviewSummary {
  return { verdict: 'ready', judgment: null, rounds: 1, bySeverity: {}, byStatus: {}, guardFlags: 0, top: [], ...overrides };
}

/** A summary of a PR's changes with sensible defaults: one small, unremarkable file. */
export function makeChanges(overrides: Partial<ChangeSummary> = {}): ChangeSummary {
  return { files: 1, added: 3, removed: 1, binary: 0, sensitive: [], largest: [{ path: 'src/a.ts', added: 3, removed: 1 }], ...overrides };
}

/** The checks of a head with sensible defaults: the one required check, `ci`, passing. */
export function makeChecks(overrides: Partial<ChecksState> = {}): ChecksState {
  return { state: 'passing', required: ['ci'], failing: [], pending: [], passing: ['ci'], ...overrides };
}

/** A PR as GitHub reports it, with sensible defaults: #7, open, mergeable, at HEAD, into main. */
export function makePr(overrides: Partial<PullRequestState> = {}): PullRequestState {
  return {
    number: 7,
    url: 'https://github.com/me/app/pull/7',
    title: 'Add a flag',
    state: 'open',
    merged: false,
    mergeCommitSha: null,
    mergedBy: null,
    headSha: HEAD,
    headRef: 'nightshift/1-add-a-flag',
    baseRef: 'main',
    mergeable: true,
    ...overrides,
  };
}

/** A stored review finding with sensible defaults: an open medium finding at HEAD, to fix now. */
export function makeFinding(overrides: Partial<Finding> = {}): Finding {
  return {
    id: 1,
    itemId: 12,
    round: 1,
    headSha: HEAD,
    angle: 'correctness',
    file: 'src/a.ts',
    lineStart: 3,
    lineEnd: 4,
    severity: 'medium',
    title: 'Off by one',
    evidence: 'i <= n',
    failure: 'reads past the end',
    suggestedFix: 'i < n',
    confidence: 0.8,
    verdict: 'fix_now',
    verdictReason: null,
    mergedInto: null,
    status: 'open',
    fixedSha: null,
    backlogItemId: null,
    ...overrides,
  };
}

/** The facts of a review card with sensible defaults: a ready, reviewed, passing PR #7 at HEAD. */
export function makeFacts(overrides: Partial<CardFacts> = {}): CardFacts {
  return {
    item: makeItem({ state: 'ready', prNumber: 7, prUrl: 'https://github.com/me/app/pull/7', headSha: HEAD }),
    headSha: HEAD,
    prHeadSha: HEAD,
    summary: makeSummary(),
    changes: makeChanges(),
    checks: makeChecks(),
    fixed: [],
    backlog: [],
    open: [],
    costs: [{ stage: 'build', usd: 0.42 }],
    totalUsd: 0.42,
    pipelineMs: 130 * 60_000,
    ...overrides,
  };
}
