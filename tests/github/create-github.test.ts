import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createGitHub, type GitHub } from '../../src/github/create-github.js';
import { startFakeGitHub, type FakeGitHub } from '../fakes/github-server.js';
import { createBareRepo, git, refSha, type BareRepo } from '../helpers/git-fixture.js';

let fake: FakeGitHub;
let bare: BareRepo;
let github: GitHub;
const repo = () => ({ owner: bare.owner, name: bare.name, fullName: bare.fullName });

/** Pushes a branch with one change (a further commit if it exists), as the build stage would. */
function pushBranch(branch: string, content = 'new\n'): string {
  const clone = mkdtempSync(join(tmpdir(), 'ns-gh-clone-'));
  git(clone, 'clone', '--quiet', bare.path, '.');
  git(clone, 'checkout', '--quiet', ...(refSha(bare, branch) ? [branch] : ['-b', branch]));
  writeFileSync(join(clone, 'feature.txt'), content);
  git(clone, 'add', '-A');
  git(clone, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '--quiet', '-m', 'feature');
  git(clone, 'push', '--quiet', 'origin', branch);
  return refSha(bare, branch)!;
}

/** An open PR of a fresh branch, with its head SHA. */
async function openPr(branch = 'nightshift/7-m'): Promise<{ number: number; sha: string }> {
  const sha = pushBranch(branch);
  const pr = await github.ensurePullRequest({ repo: repo(), head: branch, base: 'main', title: 'T', body: 'B' });
  return { number: pr.number, sha };
}

const MERGE = 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge';
const GET_PULL = 'GET /repos/{owner}/{repo}/pulls/{pull_number}';
const CLOSE = 'PATCH /repos/{owner}/{repo}/pulls/{pull_number}';
const COMMENT = 'POST /repos/{owner}/{repo}/issues/{issue_number}/comments';

beforeEach(async () => {
  bare = createBareRepo(mkdtempSync(join(tmpdir(), 'ns-gh-')), 'me/app');
  fake = await startFakeGitHub({ repos: [bare] });
  github = createGitHub({ token: 'github_pat_CANARY_github_token_0123456789', baseUrl: fake.baseUrl, log: pino({ level: 'silent' }), throttle: false, retryBaseMs: 1 });
});

afterEach(async () => fake.close());

describe('createGitHub', () => {
  it('reads the default branch', async () => {
    expect(await github.defaultBranch(repo())).toBe('main');
  });

  it('opens a PR once, and updates it when asked again', async () => {
    const sha = pushBranch('nightshift/1-x');
    const first = await github.ensurePullRequest({ repo: repo(), head: 'nightshift/1-x', base: 'main', title: 'T', body: 'B1' });
    expect(first).toMatchObject({ created: true, headSha: sha, number: 1 });
    const again = await github.ensurePullRequest({ repo: repo(), head: 'nightshift/1-x', base: 'main', title: 'T2', body: 'B2' });
    expect(again).toMatchObject({ created: false, number: 1 });
    expect(fake.pulls).toHaveLength(1);
    expect(fake.pulls[0]).toMatchObject({ title: 'T2', body: 'B2' });
  });

  it('adopts the PR when the reply to its creation was lost (no duplicate)', async () => {
    pushBranch('nightshift/2-y');
    // GitHub creates the PR, then the reply is lost; the retry gets 422 "already exists".
    fake.failNext('POST /repos/{owner}/{repo}/pulls', { kind: 'after', status: 502 });
    const pr = await github.ensurePullRequest({ repo: repo(), head: 'nightshift/2-y', base: 'main', title: 'T', body: 'B' });
    expect(pr.number).toBe(1);
    expect(fake.pulls).toHaveLength(1);
  });

  it('keeps one sticky comment per PR, updated rather than duplicated', async () => {
    pushBranch('nightshift/3-z');
    const pr = await github.ensurePullRequest({ repo: repo(), head: 'nightshift/3-z', base: 'main', title: 'T', body: 'B' });
    const marker = '<!-- nightshift:review:3 -->';
    const first = await github.ensureStickyComment({ repo: repo(), number: pr.number, marker, body: 'round 1' });
    // Found by its marker when the id is not known (e.g. lost in a crash).
    const second = await github.ensureStickyComment({ repo: repo(), number: pr.number, marker, body: 'round 2' });
    const third = await github.ensureStickyComment({ repo: repo(), number: pr.number, marker, body: 'round 3', knownId: first });
    expect(second).toBe(first);
    expect(third).toBe(first);
    expect(fake.pulls[0]!.comments).toHaveLength(1);
    expect(fake.pulls[0]!.comments[0]!.body).toContain('round 3');
  });

  it('retries a server error in the client', async () => {
    fake.failNext('GET /repos/{owner}/{repo}', { kind: 'server-error', status: 503 });
    expect(await github.defaultBranch(repo())).toBe('main');
    expect(fake.calls.filter((c) => c.route === 'GET /repos/{owner}/{repo}')).toHaveLength(2);
  });
});

describe('getPullRequest', () => {
  it('reports an open PR with its head, base and mergeability, then the merge', async () => {
    const { number, sha } = await openPr('nightshift/8-g');
    expect(await github.getPullRequest(repo(), number)).toEqual({
      number,
      url: expect.stringContaining(`/pull/${number}`),
      title: 'T',
      state: 'open',
      merged: false,
      mergeCommitSha: null,
      mergedBy: null,
      headSha: sha,
      headRef: 'nightshift/8-g',
      baseRef: 'main',
      mergeable: true,
    });
    const outcome = await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' });
    expect(await github.getPullRequest(repo(), number)).toMatchObject({
      state: 'closed',
      merged: true,
      mergeCommitSha: outcome.kind === 'merged' ? outcome.mergeCommitSha : 'not merged',
      mergedBy: 'nightshift-bot',
      headSha: sha,
    });
  });
});

describe('mergePullRequest', () => {
  it('merges exactly the reviewed sha with the asked method, title redacted', async () => {
    github = createGitHub({ token: fake.token, baseUrl: fake.baseUrl, log: pino({ level: 'silent' }), throttle: false, retryBaseMs: 1, redact: (t) => t.replaceAll('SECRET', '[redacted]') });
    const { number, sha } = await openPr();
    const outcome = await github.mergePullRequest({ repo: repo(), number, sha, method: 'squash', title: 'Add SECRET thing' });
    expect(outcome).toEqual({ kind: 'merged', mergeCommitSha: refSha(bare, 'main'), alreadyMerged: false });
    expect(fake.callsOf(MERGE).map((c) => c.body)).toEqual([{ sha, merge_method: 'squash', commit_title: 'Add [redacted] thing' }]);
    expect(fake.pulls[0]).toMatchObject({ merged: true, state: 'closed' });
  });

  it('refuses when the head moved after review: head-moved with the new head, nothing merged', async () => {
    const { number, sha } = await openPr('nightshift/9-h');
    const mainBefore = refSha(bare, 'main');
    const moved = pushBranch('nightshift/9-h', 'pushed after review\n');
    const outcome = await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' });
    expect(outcome).toEqual({ kind: 'head-moved', headSha: moved });
    expect(refSha(bare, 'main')).toBe(mainBefore);
    expect(fake.callsOf(MERGE)).toHaveLength(1);
  });

  it('reports head-moved with a null head when the PR cannot be read after the 409', async () => {
    const { number, sha } = await openPr('nightshift/9-i');
    pushBranch('nightshift/9-i', 'pushed after review\n');
    fake.failNext(GET_PULL, { kind: 'status', status: 404 });
    expect(await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' })).toEqual({ kind: 'head-moved', headSha: null });
  });

  it('reports a conflict (405) as not-mergeable with GitHub\'s message, without retrying', async () => {
    const { number, sha } = await openPr();
    fake.setMergeable(number, false);
    expect(await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' })).toEqual({
      kind: 'not-mergeable',
      reason: 'Pull Request is not mergeable',
    });
    expect(fake.callsOf(MERGE)).toHaveLength(1);
    expect(fake.pulls[0]!.merged).toBe(false);
  });

  it('reports an unmet required check (405) as not-mergeable', async () => {
    const { number, sha } = await openPr();
    fake.setRequiredChecks(bare.fullName, 'main', ['ci']);
    expect(await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' })).toEqual({
      kind: 'not-mergeable',
      reason: 'Required status check "ci" is expected.',
    });
  });

  it('merged but the reply was lost (502 after merging): merged, from one merge call', async () => {
    const { number, sha } = await openPr();
    fake.failNext(MERGE, { kind: 'after', status: 502 });
    const outcome = await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' });
    expect(outcome).toEqual({ kind: 'merged', mergeCommitSha: refSha(bare, 'main'), alreadyMerged: false });
    expect(fake.callsOf(MERGE)).toHaveLength(1);
    expect(fake.callsOf(GET_PULL).length).toBeGreaterThanOrEqual(1);
  });

  it('merged but the connection was reset before the reply: merged, from one merge call', async () => {
    const { number, sha } = await openPr();
    fake.failNext(MERGE, { kind: 'after' });
    const outcome = await github.mergePullRequest({ repo: repo(), number, sha, method: 'rebase' });
    expect(outcome).toEqual({ kind: 'merged', mergeCommitSha: refSha(bare, 'main'), alreadyMerged: false });
    expect(fake.callsOf(MERGE)).toHaveLength(1);
  });

  it('a 502 where nothing merged is unclear, from one merge call, and the PR stays open', async () => {
    const { number, sha } = await openPr();
    const mainBefore = refSha(bare, 'main');
    fake.failNext(MERGE, { kind: 'server-error', status: 502 });
    const outcome = await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' });
    expect(outcome.kind).toBe('unclear');
    expect(fake.callsOf(MERGE)).toHaveLength(1);
    expect(refSha(bare, 'main')).toBe(mainBefore);
    expect(fake.pulls[0]).toMatchObject({ state: 'open', merged: false });
  });

  it('a reset where nothing merged is unclear, from one merge call', async () => {
    const { number, sha } = await openPr();
    fake.failNext(MERGE, { kind: 'reset' });
    expect((await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' })).kind).toBe('unclear');
    expect(fake.callsOf(MERGE)).toHaveLength(1);
    expect(fake.pulls[0]!.merged).toBe(false);
  });

  it('a 502 while the head moved reads the PR and reports head-moved', async () => {
    const { number, sha } = await openPr('nightshift/9-j');
    const moved = pushBranch('nightshift/9-j', 'pushed after review\n');
    fake.failNext(MERGE, { kind: 'server-error', status: 502 });
    expect(await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' })).toEqual({ kind: 'head-moved', headSha: moved });
    expect(fake.callsOf(MERGE)).toHaveLength(1);
  });

  it('a 502 on a PR found closed unmerged is not-mergeable', async () => {
    const { number, sha } = await openPr();
    await github.closePullRequest({ repo: repo(), number, comment: 'closing', marker: '<!-- x -->' });
    // The fake runs the merge (refused: closed) and then loses the reply.
    fake.failNext(MERGE, { kind: 'after', status: 502 });
    expect((await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' })).kind).toBe('not-mergeable');
    expect(fake.callsOf(MERGE)).toHaveLength(1);
  });

  it('stays unclear when the PR cannot be read after a reset either', async () => {
    const { number, sha } = await openPr();
    fake.failNext(MERGE, { kind: 'reset' });
    fake.failNext(GET_PULL, { kind: 'status', status: 404 });
    expect((await github.mergePullRequest({ repo: repo(), number, sha, method: 'merge' })).kind).toBe('unclear');
    expect(fake.callsOf(MERGE)).toHaveLength(1);
  });
});

describe('checksFor', () => {
  const MAIN = 'main';
  const headOf = async () => (await openPr()).sha;

  it('passes when every required context passes, check runs and statuses combined', async () => {
    const sha = await headOf();
    fake.setRequiredChecks(bare.fullName, MAIN, ['ci', 'lint']);
    fake.setChecks(sha, [{ name: 'ci', status: 'completed', conclusion: 'success' }]);
    fake.setStatuses(sha, [{ context: 'lint', state: 'success' }]);
    expect(await github.checksFor(repo(), sha, MAIN)).toEqual({ state: 'passing', required: ['ci', 'lint'], failing: [], pending: [], passing: ['ci', 'lint'] });
  });

  it('fails when a required context fails', async () => {
    const sha = await headOf();
    fake.setRequiredChecks(bare.fullName, MAIN, ['ci', 'lint']);
    fake.setChecks(sha, [{ name: 'ci', status: 'completed', conclusion: 'timed_out' }]);
    fake.setStatuses(sha, [{ context: 'lint', state: 'success' }]);
    expect(await github.checksFor(repo(), sha, MAIN)).toMatchObject({ state: 'failing', failing: ['ci'], passing: ['lint'] });
  });

  it('is pending while a required run is in progress or has not reported at all', async () => {
    const sha = await headOf();
    fake.setRequiredChecks(bare.fullName, MAIN, ['ci', 'e2e', 'lint']);
    fake.setChecks(sha, [{ name: 'ci', status: 'in_progress' }]);
    fake.setStatuses(sha, [{ context: 'lint', state: 'success' }]);
    expect(await github.checksFor(repo(), sha, MAIN)).toMatchObject({ state: 'pending', pending: ['ci', 'e2e'], passing: ['lint'], failing: [] });
  });

  it('judges a protected branch by its required contexts only', async () => {
    const sha = await headOf();
    fake.setRequiredChecks(bare.fullName, MAIN, ['ci']);
    fake.setChecks(sha, [
      { name: 'ci', status: 'completed', conclusion: 'success' },
      { name: 'optional-bench', status: 'completed', conclusion: 'failure' },
    ]);
    expect(await github.checksFor(repo(), sha, MAIN)).toMatchObject({ state: 'passing', passing: ['ci'], failing: [] });
  });

  it('is none on an unprotected branch with no checks', async () => {
    const sha = await headOf();
    expect(await github.checksFor(repo(), sha, MAIN)).toEqual({ state: 'none', required: [], failing: [], pending: [], passing: [] });
  });

  it('counts every reported check on an unprotected branch; neutral and skipped pass', async () => {
    const sha = await headOf();
    fake.setChecks(sha, [
      { name: 'ci', status: 'completed', conclusion: 'neutral' },
      { name: 'docs', status: 'completed', conclusion: 'skipped' },
    ]);
    fake.setStatuses(sha, [{ context: 'deploy', state: 'pending' }]);
    expect(await github.checksFor(repo(), sha, MAIN)).toEqual({ state: 'pending', required: [], failing: [], pending: ['deploy'], passing: ['ci', 'docs'] });
    fake.setStatuses(sha, [{ context: 'deploy', state: 'error' }]);
    expect(await github.checksFor(repo(), sha, MAIN)).toMatchObject({ state: 'failing', failing: ['deploy'] });
  });

  it('lets the latest run of a name win (a green re-run of a red one)', async () => {
    const sha = await headOf();
    fake.setRequiredChecks(bare.fullName, MAIN, ['ci']);
    fake.setChecks(sha, [
      { name: 'ci', status: 'completed', conclusion: 'failure' },
      { name: 'ci', status: 'completed', conclusion: 'success' },
    ]);
    expect(await github.checksFor(repo(), sha, MAIN)).toMatchObject({ state: 'passing', passing: ['ci'] });
  });

  it('holds a context that passes as a run but fails as a status', async () => {
    const sha = await headOf();
    fake.setChecks(sha, [{ name: 'ci', status: 'completed', conclusion: 'success' }]);
    fake.setStatuses(sha, [{ context: 'ci', state: 'failure' }]);
    expect(await github.checksFor(repo(), sha, MAIN)).toMatchObject({ state: 'failing', failing: ['ci'], passing: [] });
  });
});

describe('readMergeable', () => {
  it('polls while GitHub is computing and returns once it knows', async () => {
    const { number } = await openPr();
    fake.setMergeable(number, null, 2);
    const pr = await github.readMergeable(repo(), number, { attempts: 5, intervalMs: 1 });
    expect(pr.mergeable).toBe(true);
    expect(fake.callsOf(GET_PULL)).toHaveLength(3);
  });

  it('gives up after `attempts` reads and returns null', async () => {
    const { number } = await openPr();
    fake.setMergeable(number, null, 10);
    const pr = await github.readMergeable(repo(), number, { attempts: 3, intervalMs: 1 });
    expect(pr.mergeable).toBeNull();
    expect(fake.callsOf(GET_PULL)).toHaveLength(3);
  });

  it('does not poll a closed PR (its mergeable stays null)', async () => {
    const { number } = await openPr();
    await github.closePullRequest({ repo: repo(), number, comment: 'closing', marker: '<!-- x -->' });
    const reads = fake.callsOf(GET_PULL).length;
    const pr = await github.readMergeable(repo(), number, { attempts: 5, intervalMs: 1 });
    expect(pr).toMatchObject({ state: 'closed', mergeable: null });
    expect(fake.callsOf(GET_PULL)).toHaveLength(reads + 1);
  });

  it('stops waiting when aborted', async () => {
    const { number } = await openPr();
    fake.setMergeable(number, null, 10);
    const controller = new AbortController();
    const reading = github.readMergeable(repo(), number, { attempts: 5, intervalMs: 60_000, signal: controller.signal });
    await fake.waitFor(() => fake.callsOf(GET_PULL)[0]?.status === 200, { what: 'first read' });
    controller.abort();
    await expect(reading).rejects.toMatchObject({ name: 'AbortError' });
    expect(fake.callsOf(GET_PULL)).toHaveLength(1);
  });
});

describe('closePullRequest', () => {
  it('posts one redacted comment, then closes; a second call does nothing', async () => {
    github = createGitHub({ token: fake.token, baseUrl: fake.baseUrl, log: pino({ level: 'silent' }), throttle: false, retryBaseMs: 1, redact: (t) => t.replaceAll('SECRET', '[redacted]') });
    const { number } = await openPr();
    const marker = '<!-- nightshift:rejected:7 -->';
    await github.closePullRequest({ repo: repo(), number, comment: 'Rejected: SECRET', marker });
    expect(fake.pulls[0]).toMatchObject({ state: 'closed', merged: false });
    expect(fake.pulls[0]!.comments.map((c) => c.body)).toEqual([`Rejected: [redacted]\n\n${marker}`]);
    const before = fake.calls.length;
    await github.closePullRequest({ repo: repo(), number, comment: 'Rejected: SECRET', marker });
    expect(fake.pulls[0]!.comments).toHaveLength(1);
    expect(fake.calls.slice(before).map((c) => c.route)).toEqual([GET_PULL]);
  });

  it('after a crash between comment and close, closes without a second comment', async () => {
    const { number } = await openPr();
    const marker = '<!-- nightshift:rejected:8 -->';
    fake.failNext(CLOSE, { kind: 'status', status: 403 });
    await expect(github.closePullRequest({ repo: repo(), number, comment: 'Rejected', marker })).rejects.toMatchObject({ status: 403 });
    expect(fake.pulls[0]).toMatchObject({ state: 'open' });
    await github.closePullRequest({ repo: repo(), number, comment: 'Rejected', marker });
    expect(fake.pulls[0]).toMatchObject({ state: 'closed' });
    expect(fake.callsOf(COMMENT)).toHaveLength(1);
  });
});

describe('deleteBranch', () => {
  it('deletes a branch, and a second delete of the gone branch is fine', async () => {
    pushBranch('nightshift/10-d');
    await github.deleteBranch(repo(), 'nightshift/10-d');
    expect(refSha(bare, 'nightshift/10-d')).toBeUndefined();
    await github.deleteBranch(repo(), 'nightshift/10-d');
    expect(fake.callsOf('DELETE /repos/{owner}/{repo}/git/refs/{ref}')).toHaveLength(2);
  });

  it('still throws what is not "already gone"', async () => {
    fake.failNext('DELETE /repos/{owner}/{repo}/git/refs/{ref}', { kind: 'status', status: 403 });
    await expect(github.deleteBranch(repo(), 'nightshift/11-e')).rejects.toMatchObject({ status: 403 });
  });
});
