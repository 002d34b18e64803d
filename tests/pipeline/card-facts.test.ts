import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RepoName } from '../../src/domain/parse-request.js';
import { collectCardFacts, reviewedHead, riskOf, type CardFactsDeps } from '../../src/pipeline/card-facts.js';
import type { NewFinding } from '../../src/store/findings.js';
import type { Item } from '../../src/store/items.js';
import type { Store } from '../../src/store/open-store.js';
import type { DiffStatEntry } from '../../src/workspace/create-workspace.js';
import { HEAD, makeChanges, makeChecks, makeFacts, makeFinding, makeNewItem, makePr, makeStore, makeSummary } from '../helpers/factories.js';

const REPO: RepoName = { owner: 'me', name: 'app', fullName: 'me/app' };
const BASE = '0'.repeat(40);
const FIXED = 'f1f1f1f'.padEnd(40, '2');
const log = pino({ level: 'silent' });

describe('riskOf', () => {
  it('calls a reviewed, passing, unremarkable change low-risk', () => {
    expect(riskOf(makeFacts())).toBe('low-risk');
    // Medium and low findings left open do not make it risky.
    expect(riskOf(makeFacts({ open: [makeFinding({ severity: 'medium' }), makeFinding({ severity: 'low' })] }))).toBe('low-risk');
  });

  it('names each reason it is not low-risk, in a fixed order', () => {
    expect(riskOf(makeFacts({ summary: makeSummary({ verdict: 'needs_judgment' }) }))).toBe('needs judgment');
    expect(riskOf(makeFacts({ checks: { state: 'failing', required: ['ci'], failing: ['ci'], pending: [], passing: [] } }))).toBe('checks failing');
    expect(riskOf(makeFacts({ open: [makeFinding({ severity: 'critical' })] }))).toBe('open high findings');
    expect(riskOf(makeFacts({ open: [makeFinding({ severity: 'high' })] }))).toBe('open high findings');
    expect(
      riskOf(
        makeFacts({
          summary: makeSummary({ verdict: 'needs_judgment' }),
          checks: { state: 'failing', required: [], failing: ['lint'], pending: [], passing: [] },
          open: [makeFinding({ severity: 'high' })],
          changes: makeChanges({ sensitive: [{ path: 'src/auth/session.ts', kind: 'auth' }] }),
        }),
      ),
    ).toBe('needs judgment, checks failing, open high findings, touches auth');
  });

  it('says which sensitive kinds a change touches, without counts', () => {
    const changes = makeChanges({
      sensitive: [
        { path: 'src/login.ts', kind: 'auth' },
        { path: '.github/workflows/ci.yml', kind: 'ci' },
        { path: 'src/auth/token.ts', kind: 'auth' },
      ],
    });
    expect(riskOf(makeFacts({ changes }))).toBe('touches CI config, auth');
  });

  it('does not guess at sensitivity when the changes could not be read', () => {
    expect(riskOf(makeFacts({ changes: { error: 'could not read the changes from git' } }))).toBe('low-risk');
  });
});

/** A finding as a reviewer reports it. */
function newFinding(overrides: Partial<NewFinding> = {}): NewFinding {
  const { id: _id, itemId: _i, round: _r, headSha: _h, verdict: _v, verdictReason: _vr, mergedInto: _m, status: _s, fixedSha: _f, backlogItemId: _b, ...reported } = makeFinding();
  return { ...reported, ...overrides };
}

describe('reviewedHead', () => {
  let store: Store;
  beforeEach(() => {
    store = makeStore().store;
  });
  afterEach(() => store.close());

  it('is the item’s head before any review round', () => {
    const item = store.items.create(makeNewItem());
    store.items.setPullRequest(item.id, { branch: 'b', number: 7, url: 'u', headSha: HEAD });
    expect(reviewedHead(store, store.items.get(item.id)!)).toBe(HEAD);
    expect(reviewedHead(store, item)).toBeNull();
  });

  it('is the head the last round reviewed, or the fix it pushed', () => {
    const item = store.items.create(makeNewItem());
    store.findings.startRound(item.id, 1, BASE, HEAD);
    store.findings.setRoundFixed(item.id, 1, FIXED);
    expect(reviewedHead(store, item)).toBe(FIXED);
    // Round 2 reviewed the fix and made none: its head is the one that was reviewed.
    store.findings.startRound(item.id, 2, BASE, FIXED);
    expect(reviewedHead(store, item)).toBe(FIXED);
    const later = 'c0ffee0'.padEnd(40, '3');
    store.findings.startRound(item.id, 3, BASE, later);
    expect(reviewedHead(store, item)).toBe(later);
  });
});

describe('collectCardFacts', () => {
  let store: Store;
  let clock: { now: number };
  let calls: string[];
  let github: CardFactsDeps['github'];
  let workspace: CardFactsDeps['workspace'];
  let stat: DiffStatEntry[];
  let worktreeHead: string;

  const checks = makeChecks();

  beforeEach(() => {
    ({ store, clock } = makeStore());
    calls = [];
    stat = [
      { path: 'src/a.ts', added: 10, removed: 2 },
      { path: '.github/workflows/ci.yml', added: 1, removed: 0 },
      { path: 'logo.png', added: null, removed: null },
    ];
    worktreeHead = HEAD;
    github = {
      getPullRequest: async (repo, number) => {
        calls.push(`getPullRequest ${repo.fullName}#${number}`);
        return makePr({ baseRef: 'develop' });
      },
      checksFor: async (repo, sha, base) => {
        calls.push(`checksFor ${sha} ${base}`);
        return checks;
      },
    };
    workspace = {
      prepare: async (item) => {
        calls.push(`prepare ${item.id}`);
        return { path: `/tmp/worktrees/${item.id}`, branch: 'nightshift/1-add-a-flag', baseSha: BASE, defaultBranch: 'main', resumed: true };
      },
      diffStat: async (_path, base) => {
        calls.push(`diffStat ${base}`);
        return stat;
      },
      headSha: async () => worktreeHead,
    };
  });
  afterEach(() => store.close());

  const deps = (overrides: Partial<CardFactsDeps> = {}): CardFactsDeps => ({ store, github, workspace, repos: [REPO], now: () => clock.now, log, ...overrides });

  /** A ready item with a PR at HEAD, created `ageMs` ago. */
  function readyItem(ageMs = 0): Item {
    const created = store.items.create(makeNewItem());
    store.items.transition(created.id, 'building');
    store.items.setPullRequest(created.id, { branch: 'nightshift/1-add-a-flag', number: 7, url: 'https://github.com/me/app/pull/7', headSha: HEAD });
    store.items.transition(created.id, 'reviewing');
    store.items.transition(created.id, 'ready');
    clock.now += ageMs;
    return store.items.get(created.id)!;
  }

  it('computes the changes from git and the checks of the reviewed head from GitHub', async () => {
    const item = readyItem(90 * 60_000);
    const facts = await collectCardFacts(deps(), item);

    expect(facts).toMatchObject({ headSha: HEAD, prHeadSha: HEAD, checks, pipelineMs: 90 * 60_000, summary: null, fixed: [], open: [], backlog: [], costs: [], totalUsd: 0 });
    expect(facts.changes).toEqual({
      files: 3,
      added: 11,
      removed: 2,
      binary: 1,
      sensitive: [{ path: '.github/workflows/ci.yml', kind: 'ci' }],
      largest: [
        { path: 'src/a.ts', added: 10, removed: 2 },
        { path: '.github/workflows/ci.yml', added: 1, removed: 0 },
      ],
    });
    expect(calls).toEqual([`prepare ${item.id}`, `diffStat ${BASE}`, 'getPullRequest me/app#7', `checksFor ${HEAD} develop`]);
  });

  it('asks for the checks of the head the review ended on, and records it on the item', async () => {
    const item = readyItem();
    store.findings.startRound(item.id, 1, BASE, HEAD);
    store.findings.setRoundFixed(item.id, 1, FIXED);
    worktreeHead = FIXED;
    const facts = await collectCardFacts(deps(), item);
    expect(facts.headSha).toBe(FIXED);
    expect(calls).toContain(`checksFor ${FIXED} develop`);
    expect(store.items.get(item.id)?.headSha).toBe(FIXED);
    expect(facts.item.headSha).toBe(FIXED);
  });

  it('shows what the PR head on GitHub is when it is not the reviewed one', async () => {
    github = { ...github, getPullRequest: async () => makePr({ baseRef: 'develop', headSha: FIXED }) };
    const facts = await collectCardFacts(deps(), readyItem());
    expect(facts).toMatchObject({ headSha: HEAD, prHeadSha: FIXED });
  });

  it('never throws when GitHub is unreachable: the checks say so', async () => {
    const item = readyItem();
    github = {
      getPullRequest: async () => {
        throw Object.assign(new Error('connect ECONNREFUSED'), { status: 500 });
      },
      checksFor: async () => {
        throw new Error('must not be asked without the PR');
      },
    };
    const facts = await collectCardFacts(deps(), item);
    expect(facts.checks).toEqual({ error: 'GitHub could not be reached' });
    expect(facts.prHeadSha).toBeNull();
    // The rest of the card is still there.
    expect(facts.changes).toMatchObject({ files: 3 });
  });

  it('never throws when the checks cannot be read after the PR was', async () => {
    github = {
      ...github,
      checksFor: async () => {
        throw new Error('socket hang up');
      },
    };
    const facts = await collectCardFacts(deps(), readyItem());
    expect(facts).toMatchObject({ checks: { error: 'GitHub could not be reached' }, prHeadSha: HEAD });
  });

  it('never throws when git fails, and refuses to show a worktree that is not at the reviewed head', async () => {
    const item = readyItem();
    workspace = {
      ...workspace,
      prepare: async () => {
        throw new Error('git fetch failed');
      },
    };
    expect((await collectCardFacts(deps(), item)).changes).toEqual({ error: 'could not read the changes from git' });

    workspace = { ...workspace, prepare: async () => ({ path: '/tmp/w', branch: 'b', baseSha: BASE, defaultBranch: 'main', resumed: true }) };
    worktreeHead = FIXED;
    expect((await collectCardFacts(deps(), item)).changes).toEqual({ error: 'the worktree is at f1f1f1f, not the reviewed a1b2c3d' });
  });

  it('says so for a repo that is no longer configured, without asking git or GitHub', async () => {
    const facts = await collectCardFacts(deps({ repos: [{ owner: 'me', name: 'other', fullName: 'me/other' }] }), readyItem());
    expect(facts).toMatchObject({ changes: { error: expect.any(String) }, checks: { error: expect.any(String) } });
    expect(calls).toEqual([]);
  });

  it('sorts the findings into fixed, open and sent to the backlog, and adds up the cost per stage', async () => {
    const item = readyItem();
    store.findings.startRound(item.id, 1, BASE, HEAD);
    store.findings.recordAngle({
      itemId: item.id,
      round: 1,
      prNumber: 7,
      headSha: HEAD,
      angle: 'correctness',
      findings: [newFinding({ title: 'fixed one' }), newFinding({ title: 'left open', severity: 'high' }), newFinding({ title: 'for later' }), newFinding({ title: 'ignored' })],
    });
    const [fixed, open, later, ignored] = store.findings.ofItem(item.id);
    store.findings.setVerdict(fixed!.id, 'fix_now', 'real', null);
    store.findings.markFixed(fixed!.id, FIXED);
    store.findings.setVerdict(open!.id, 'fix_now', 'real', null);
    store.findings.setVerdict(later!.id, 'backlog', 'separate', null);
    const proposed = store.items.create(makeNewItem({ state: 'proposed', title: 'for later', parentItemId: item.id }));
    store.findings.markBacklogged(later!.id, proposed.id);
    store.findings.setVerdict(ignored!.id, 'ignore', 'style', null);
    const usage = { inputTokens: 1, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 1, batch: false, model: 'm' };
    store.ledger.record({ ...usage, itemId: item.id, stage: 'build', costUsd: 0.5 });
    store.ledger.record({ ...usage, itemId: item.id, stage: 'review', costUsd: 0.25 });
    store.ledger.record({ ...usage, itemId: item.id, stage: 'build', costUsd: 0.25 });

    const facts = await collectCardFacts(deps(), item);
    expect(facts.fixed.map((f) => f.title)).toEqual(['fixed one']);
    expect(facts.open.map((f) => f.title)).toEqual(['left open']);
    expect(facts.backlog.map((b) => [b.finding.title, b.item.id, b.item.state])).toEqual([['for later', proposed.id, 'proposed']]);
    expect(facts.costs).toEqual([
      { stage: 'build', usd: 0.75 },
      { stage: 'review', usd: 0.25 },
    ]);
    expect(facts.totalUsd).toBe(1);
    expect(riskOf(facts)).toBe('open high findings, touches CI config');
  });
});
