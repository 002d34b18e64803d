import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestError } from '@octokit/request-error';
import { Octokit } from '@octokit/rest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBareRepo, git, readFileAt, refSha, writeFiles, type BareRepo } from '../helpers/git-fixture.js';
import { startFakeGitHub, type FakeGitHub } from './github-server.js';

const MERGE = 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge';
const CREATE = 'POST /repos/{owner}/{repo}/pulls';
const repo = { owner: 'acme', repo: 'widgets' } as const;
/** @octokit/rest logs every failed request with log.error; the failures here are the point. */
const silentLog = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

let root: string;
let bare: BareRepo;
let fake: FakeGitHub;
let octokit: Octokit;
/** A working clone of `bare`, as the code under test would have. */
let work: string;

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'fake-github-'));
  bare = createBareRepo(join(root, 'remote'), 'acme/widgets');
  fake = await startFakeGitHub({ repos: [bare] });
  octokit = new Octokit({ auth: fake.token, baseUrl: fake.baseUrl, log: silentLog });
  work = join(root, 'work');
  git(root, 'clone', '--quiet', `${bare.serverUrl}/acme/widgets.git`, work);
});

afterEach(async () => {
  await fake.close();
  rmSync(root, { recursive: true, force: true });
});

/** Commit `files` on `branch` (created from origin/main the first time) and push; returns the sha. */
function pushBranch(branch: string, files: Record<string, string>, message = `change on ${branch}`): string {
  const exists = git(work, 'branch', '--list', branch) !== '';
  git(work, 'checkout', '--quiet', ...(exists ? [branch] : ['-b', branch, 'origin/main']));
  writeFiles(work, files);
  git(work, 'add', '--all');
  git(work, 'commit', '--quiet', '-m', message);
  git(work, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
  return git(work, 'rev-parse', 'HEAD');
}

/** The rejection of `promise`, which must be Octokit's RequestError (name "HttpError"). */
async function requestError(promise: Promise<unknown>): Promise<RequestError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  expect((err as Error).name).toBe('HttpError');
  return err as RequestError;
}

async function openPr(branch: string, files: Record<string, string> = { [`${branch}.txt`]: `${branch}\n` }) {
  const sha = pushBranch(branch, files);
  const { data } = await octokit.rest.pulls.create({ ...repo, title: `Add ${branch}`, head: branch, base: 'main', body: 'Body' });
  return { pr: data, sha };
}

describe('git fixture', () => {
  it('creates a bare repo with the default files on main, reachable by its file:// URL', () => {
    expect(bare.path).toBe(join(root, 'remote', 'acme', 'widgets.git'));
    expect(bare.serverUrl.startsWith('file:///')).toBe(true);
    expect(git(bare.path, 'rev-parse', '--is-bare-repository')).toBe('true');
    expect(refSha(bare, 'main')).toMatch(/^[0-9a-f]{40}$/);
    expect(refSha(bare, 'nope')).toBeUndefined();
    const pkg = JSON.parse(readFileAt(bare, 'main', 'package.json') ?? '{}') as { scripts?: { test?: string } };
    expect(pkg.scripts?.test).toBe('exit 0');
    expect(readFileAt(bare, 'main', 'README.md')).toMatch(/^# widgets\n/);
    expect(readFileAt(bare, 'main', 'missing.txt')).toBeUndefined();
  });

  it('honours custom files and default branch, and reports git failures with stderr', () => {
    const other = createBareRepo(join(root, 'remote'), 'acme/other', { 'src/a.txt': 'a\n' }, { defaultBranch: 'trunk' });
    expect(readFileAt(other, 'trunk', 'src/a.txt')).toBe('a\n');
    expect(refSha(other, 'main')).toBeUndefined();
    expect(() => git(other.path, 'rev-parse', '--verify', 'refs/heads/nope')).toThrow(/rev-parse.*fatal: Needed a single revision/s);
  });
});

describe('auth and routing', () => {
  it('rejects a wrong token with 401 "Bad credentials" and records the attempt', async () => {
    const stranger = new Octokit({ auth: 'github_pat_wrong', baseUrl: fake.baseUrl, log: silentLog });
    const err = await requestError(stranger.rest.repos.get(repo));
    expect(err.status).toBe(401);
    expect(err.response?.data).toMatchObject({ message: 'Bad credentials' });
    expect(fake.calls).toHaveLength(1);
    expect(fake.calls[0]).toMatchObject({ route: 'GET /repos/{owner}/{repo}', status: 401 });
  });

  it('sends the token as "token X" and answers the repository with its default branch', async () => {
    const { data } = await octokit.rest.repos.get(repo);
    expect(data).toMatchObject({ full_name: 'acme/widgets', default_branch: 'main', private: true });
    expect(data.permissions?.push).toBe(true);
    expect(fake.calls[0]?.headers.authorization).toBe(`token ${fake.token}`);
  });

  it('answers unknown routes and unknown repos with 404, and refuses faults for unknown routes', async () => {
    expect((await requestError(octokit.request('GET /user'))).status).toBe(404);
    expect((await requestError(octokit.rest.repos.get({ owner: 'acme', repo: 'nope' }))).status).toBe(404);
    expect(() => fake.failNext('POST /repos/{owner}/{repo}/pull', { kind: 'reset' })).toThrow(/unknown route/);
  });

  it('reads branches live, including names with slashes, and 404s a missing one', async () => {
    const sha = pushBranch('nightshift/item-1', { 'a.txt': 'a\n' });
    const { data } = await octokit.rest.repos.getBranch({ ...repo, branch: 'nightshift/item-1' });
    expect(data.commit.sha).toBe(sha);
    expect(data.protected).toBe(false);
    expect((await requestError(octokit.rest.repos.getBranch({ ...repo, branch: 'nope' }))).status).toBe(404);
  });
});

describe('pull requests', () => {
  it('creates a PR from a pushed branch with the fields callers read', async () => {
    const { pr, sha } = await openPr('feature');
    expect(pr).toMatchObject({
      number: 1,
      state: 'open',
      title: 'Add feature',
      body: 'Body',
      draft: false,
      merged: false,
      html_url: 'http://fake-github.local/acme/widgets/pull/1',
      head: { ref: 'feature', sha, repo: { full_name: 'acme/widgets' } },
      base: { ref: 'main', sha: refSha(bare, 'main') },
      user: { login: 'nightshift-bot' },
      commits: 1,
      changed_files: 1,
    });
    expect(fake.pulls).toMatchObject([{ repo: 'acme/widgets', number: 1, head: 'feature', base: 'main', head_sha: sha }]);
  });

  it('refuses a second open PR for the same head with GitHub\'s 422 "already exists"', async () => {
    await openPr('feature');
    const err = await requestError(octokit.rest.pulls.create({ ...repo, title: 'Again', head: 'feature', base: 'main' }));
    expect(err.status).toBe(422);
    expect(err.response?.data).toMatchObject({
      message: 'Validation Failed',
      errors: [{ resource: 'PullRequest', code: 'custom', message: 'A pull request already exists for acme:feature.' }],
    });
    expect(fake.pulls).toHaveLength(1);
  });

  it('refuses a PR without commits or with a missing head branch', async () => {
    git(work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/empty');
    const empty = await requestError(octokit.rest.pulls.create({ ...repo, title: 'x', head: 'empty', base: 'main' }));
    expect(empty.status).toBe(422);
    expect(empty.response?.data).toMatchObject({ errors: [{ message: 'No commits between main and empty' }] });
    const missing = await requestError(octokit.rest.pulls.create({ ...repo, title: 'x', head: 'ghost', base: 'main' }));
    expect(missing.status).toBe(422);
    expect(missing.response?.data).toMatchObject({ errors: [{ field: 'head', code: 'invalid' }] });
  });

  it('lists by head "owner:branch" and, like GitHub, ignores a head filter without owner', async () => {
    await openPr('one');
    await openPr('two');
    const { data: byHead } = await octokit.rest.pulls.list({ ...repo, head: 'acme:two', state: 'open' });
    expect(byHead.map((p) => p.head.ref)).toEqual(['two']);
    const { data: bareName } = await octokit.rest.pulls.list({ ...repo, head: 'two' });
    expect(bareName.map((p) => p.head.ref)).toEqual(['two', 'one']); // newest first
    const { data: closed } = await octokit.rest.pulls.list({ ...repo, state: 'closed' });
    expect(closed).toEqual([]);
    expect(byHead[0]).not.toHaveProperty('mergeable'); // the list endpoint omits it, as GitHub does
  });

  it('follows a new push: GET shows the new head sha', async () => {
    const { pr, sha } = await openPr('feature');
    const newer = pushBranch('feature', { 'more.txt': 'more\n' });
    expect(newer).not.toBe(sha);
    const { data } = await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    expect(data.head.sha).toBe(newer);
    expect(data.mergeable).toBe(true);
    expect(data.mergeable_state).toBe('clean');
  });

  it('updates title, body and state', async () => {
    const { pr } = await openPr('feature');
    const { data } = await octokit.rest.pulls.update({ ...repo, pull_number: pr.number, title: 'New', body: 'B2', state: 'closed' });
    expect(data).toMatchObject({ title: 'New', body: 'B2', state: 'closed', merged: false });
    // A closed PR no longer blocks a new one for the same head.
    await octokit.rest.pulls.create({ ...repo, title: 'Again', head: 'feature', base: 'main' });
  });

  it('answers mergeable null while "computing", then the real value', async () => {
    const { pr } = await openPr('feature');
    fake.setMergeable(pr.number, null, 2);
    const first = await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    const second = await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    const third = await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    expect([first.data.mergeable, second.data.mergeable, third.data.mergeable]).toEqual([null, null, true]);
    expect(first.data.mergeable_state).toBe('unknown');
  });

  it('computes real conflicts: mergeable false and a 405 on merge', async () => {
    const { pr } = await openPr('feature', { 'README.md': 'branch version\n' });
    git(work, 'checkout', '--quiet', '-b', 'hotfix', 'origin/main');
    writeFiles(work, { 'README.md': 'main version\n' });
    git(work, 'commit', '--quiet', '-am', 'hotfix');
    git(work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
    const { data } = await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    expect(data).toMatchObject({ mergeable: false, mergeable_state: 'dirty' });
    const err = await requestError(octokit.rest.pulls.merge({ ...repo, pull_number: pr.number }));
    expect(err.status).toBe(405);
  });
});

describe('merging', () => {
  it('refuses a stale sha with 409 and leaves main untouched', async () => {
    const { pr, sha } = await openPr('feature');
    pushBranch('feature', { 'later.txt': 'later\n' });
    const mainBefore = refSha(bare, 'main');
    const err = await requestError(octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha, merge_method: 'squash' }));
    expect(err.status).toBe(409);
    expect(err.response?.data).toMatchObject({ message: 'Head branch was modified. Review and try the merge again.' });
    expect(refSha(bare, 'main')).toBe(mainBefore);
  });

  it('squash-merges the exact sha into the real base branch', async () => {
    const { pr, sha } = await openPr('feature', { 'feature.txt': 'hello\n' });
    const mainBefore = refSha(bare, 'main');
    const { data } = await octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha, merge_method: 'squash' });
    expect(data).toMatchObject({ merged: true, message: 'Pull Request successfully merged' });
    expect(refSha(bare, 'main')).toBe(data.sha);
    expect(readFileAt(bare, 'main', 'feature.txt')).toBe('hello\n');
    expect(git(bare.path, 'rev-parse', `${data.sha}^`)).toBe(mainBefore); // squash: one parent
    expect(git(bare.path, 'log', '-1', '--format=%s', 'main')).toBe('Add feature (#1)');
    const { data: after } = await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    expect(after).toMatchObject({ state: 'closed', merged: true, merge_commit_sha: data.sha, head: { sha } });
    const again = await requestError(octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha }));
    expect(again.status).toBe(405);
  });

  it('makes a real merge commit with merge_method "merge"', async () => {
    const { pr, sha } = await openPr('feature');
    const { data } = await octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha, merge_method: 'merge' });
    expect(git(bare.path, 'rev-parse', `${data.sha}^2`)).toBe(sha);
  });

  it('"after" fault: the merge happens, the client sees an error, the PR reads as merged', async () => {
    const { pr, sha } = await openPr('feature');
    fake.failNext(MERGE, { kind: 'after', status: 502 });
    const err = await requestError(octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha, merge_method: 'squash' }));
    expect(err.status).toBe(502);
    const { data } = await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    expect(data.merged).toBe(true);
    expect(readFileAt(bare, 'main', 'feature.txt')).toBe('feature\n');
    expect(fake.callsOf(MERGE)).toHaveLength(1); // plain Octokit does not retry
  });

  it('failAt fails only the named occurrence of a route, and rejects unknown routes', async () => {
    expect(() => fake.failAt({ route: 'PUT /merge' }, { kind: 'reset' })).toThrow(/unknown route/);
    const { pr, sha } = await openPr('feature');
    const GET_PR = 'GET /repos/{owner}/{repo}/pulls/{pull_number}';
    fake.failAt({ route: GET_PR, occurrence: 2 }, { kind: 'server-error', status: 503 });
    fake.failAt({ match: (c) => c.route === MERGE && c.body?.sha === sha }, { kind: 'after', status: 502 });
    await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    expect((await requestError(octokit.rest.pulls.get({ ...repo, pull_number: pr.number }))).status).toBe(503);
    expect((await requestError(octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha }))).status).toBe(502);
    expect((await octokit.rest.pulls.get({ ...repo, pull_number: pr.number })).data.merged).toBe(true);
  });

  it('"after" fault without status resets the connection: Octokit reports status 500 and no response', async () => {
    const { pr, sha } = await openPr('feature');
    fake.failNext(MERGE, { kind: 'after' });
    const err = await requestError(octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha }));
    expect(err.status).toBe(500);
    expect(err.response).toBeUndefined();
    expect(fake.pulls[0]?.merged).toBe(true);
  });

  it('lets exactly one of two racing merges win', async () => {
    const { pr, sha } = await openPr('feature');
    const results = await Promise.allSettled([
      octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha }),
      octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected');
    expect((rejected?.reason as RequestError).status).toBe(405);
  });

  it('refuses to merge while a required check is missing, then merges once it passed', async () => {
    const { pr, sha } = await openPr('feature');
    fake.setRequiredChecks('acme/widgets', 'main', ['test']);
    const { data: pending } = await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    expect(pending.mergeable_state).toBe('blocked');
    const err = await requestError(octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha }));
    expect(err.status).toBe(405);
    expect(err.response?.data).toMatchObject({ message: 'Required status check "test" is expected.' });
    fake.setChecks(sha, [{ name: 'test', status: 'completed', conclusion: 'success' }]);
    await octokit.rest.pulls.merge({ ...repo, pull_number: pr.number, sha });
  });
});

describe('checks, statuses and protection', () => {
  it('reports check runs for a sha or a branch name', async () => {
    const sha = pushBranch('feature', { 'a.txt': 'a\n' });
    const empty = await octokit.rest.checks.listForRef({ ...repo, ref: sha });
    expect(empty.data).toEqual({ total_count: 0, check_runs: [] });
    fake.setChecks(sha, [
      { name: 'test', status: 'completed', conclusion: 'failure' },
      { name: 'lint', status: 'in_progress' },
    ]);
    const { data } = await octokit.rest.checks.listForRef({ ...repo, ref: 'feature' });
    expect(data.total_count).toBe(2);
    expect(data.check_runs).toMatchObject([
      { name: 'test', status: 'completed', conclusion: 'failure', head_sha: sha },
      { name: 'lint', status: 'in_progress', conclusion: null, head_sha: sha },
    ]);
    expect(typeof data.check_runs[0]?.id).toBe('number');
    const unknown = await requestError(octokit.rest.checks.listForRef({ ...repo, ref: '0'.repeat(40) }));
    expect(unknown.status).toBe(422);
  });

  it('combines statuses as GitHub does: none is pending, any failure fails', async () => {
    const sha = pushBranch('feature', { 'a.txt': 'a\n' });
    const combined = async () => (await octokit.rest.repos.getCombinedStatusForRef({ ...repo, ref: sha })).data;
    expect(await combined()).toMatchObject({ state: 'pending', total_count: 0, statuses: [], sha });
    fake.setStatuses(sha, [{ context: 'ci', state: 'success' }]);
    expect(await combined()).toMatchObject({ state: 'success', total_count: 1, statuses: [{ context: 'ci', state: 'success' }] });
    fake.setStatuses(sha, [
      { context: 'ci', state: 'pending' },
      { context: 'other', state: 'success' },
    ]);
    expect((await combined()).state).toBe('pending');
    fake.setStatuses(sha, [
      { context: 'ci', state: 'error' },
      { context: 'other', state: 'pending' },
    ]);
    expect((await combined()).state).toBe('failure');
  });

  it('answers required status checks, or 404 "Branch not protected"', async () => {
    const err = await requestError(octokit.rest.repos.getStatusChecksProtection({ ...repo, branch: 'main' }));
    expect(err.status).toBe(404);
    expect(err.response?.data).toMatchObject({ message: 'Branch not protected' });
    fake.setRequiredChecks('acme/widgets', 'main', ['test', 'lint']);
    const { data } = await octokit.rest.repos.getStatusChecksProtection({ ...repo, branch: 'main' });
    expect(data).toMatchObject({ strict: false, contexts: ['test', 'lint'], checks: [{ context: 'test' }, { context: 'lint' }] });
  });
});

describe('branches and comments', () => {
  it('deletes a branch in the bare repo (204), then 422 "Reference does not exist"', async () => {
    pushBranch('nightshift/item-7', { 'a.txt': 'a\n' });
    const res = await octokit.rest.git.deleteRef({ ...repo, ref: 'heads/nightshift/item-7' });
    expect(res.status).toBe(204);
    expect(refSha(bare, 'nightshift/item-7')).toBeUndefined();
    const err = await requestError(octokit.rest.git.deleteRef({ ...repo, ref: 'heads/nightshift/item-7' }));
    expect(err.status).toBe(422);
    expect(err.response?.data).toMatchObject({ message: 'Reference does not exist' });
  });

  it('closes an open PR whose head branch is deleted, as GitHub does', async () => {
    const { pr } = await openPr('feature');
    await octokit.rest.git.deleteRef({ ...repo, ref: 'heads/feature' });
    const { data } = await octokit.rest.pulls.get({ ...repo, pull_number: pr.number });
    expect(data).toMatchObject({ state: 'closed', merged: false });
  });

  it('adds and lists PR comments', async () => {
    const { pr } = await openPr('feature');
    const { data: created } = await octokit.rest.issues.createComment({ ...repo, issue_number: pr.number, body: 'first' });
    expect(created).toMatchObject({ body: 'first', user: { login: 'nightshift-bot' } });
    expect(created.html_url).toBe(`http://fake-github.local/acme/widgets/pull/1#issuecomment-${created.id}`);
    await octokit.rest.issues.createComment({ ...repo, issue_number: pr.number, body: 'second' });
    const { data } = await octokit.rest.issues.listComments({ ...repo, issue_number: pr.number });
    expect(data.map((c) => c.body)).toEqual(['first', 'second']);
    expect(fake.pulls[0]?.comments.map((c) => c.body)).toEqual(['first', 'second']);
    expect((await requestError(octokit.rest.issues.listComments({ ...repo, issue_number: 99 }))).status).toBe(404);
  });

  it('paginates with a Link header that octokit.paginate follows', async () => {
    const { pr } = await openPr('feature');
    for (let i = 0; i < 5; i++) await octokit.rest.issues.createComment({ ...repo, issue_number: pr.number, body: `c${i}` });
    const all = await octokit.paginate(octokit.rest.issues.listComments, { ...repo, issue_number: pr.number, per_page: 2 });
    expect(all.map((c) => c.body)).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    expect(fake.callsOf('GET /repos/{owner}/{repo}/issues/{issue_number}/comments')).toHaveLength(3);
  });
});

describe('faults with plain Octokit (no retry or throttling plugin installed)', () => {
  it('server-error: RequestError with the status, not retried', async () => {
    fake.failNext(CREATE, { kind: 'server-error', status: 503 });
    pushBranch('feature', { 'a.txt': 'a\n' });
    const err = await requestError(octokit.rest.pulls.create({ ...repo, title: 't', head: 'feature', base: 'main' }));
    expect(err.status).toBe(503);
    expect(fake.callsOf(CREATE)).toHaveLength(1);
    expect(fake.pulls).toHaveLength(0);
    // The fault is used up: the next call goes through.
    await octokit.rest.pulls.create({ ...repo, title: 't', head: 'feature', base: 'main' });
  });

  it('secondary and primary rate limits: 403 with the headers the throttling plugin reads', async () => {
    fake.failNext('*', { kind: 'secondary-rate-limit' });
    const secondary = await requestError(octokit.rest.repos.get(repo));
    expect(secondary.status).toBe(403);
    expect(secondary.response?.headers['retry-after']).toBe('1');
    expect(secondary.message).toMatch(/secondary rate limit/);
    fake.failNext('GET /repos/{owner}/{repo}', { kind: 'rate-limit' });
    const primary = await requestError(octokit.rest.repos.get(repo));
    expect(primary.status).toBe(403);
    expect(primary.response?.headers['x-ratelimit-remaining']).toBe('0');
    const reset = Number(primary.response?.headers['x-ratelimit-reset']);
    expect(reset).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000));
  });

  it('status: any answer, e.g. a 404 body of the test\'s choosing', async () => {
    fake.failNext('GET /repos/{owner}/{repo}', { kind: 'status', status: 451, body: { message: 'Repository access blocked' } });
    const err = await requestError(octokit.rest.repos.get(repo));
    expect(err.status).toBe(451);
    expect(err.response?.data).toEqual({ message: 'Repository access blocked' });
  });

  it('reset: RequestError status 500 without a response', async () => {
    fake.failNext('GET /repos/{owner}/{repo}', { kind: 'reset' });
    const err = await requestError(octokit.rest.repos.get(repo));
    expect(err.status).toBe(500);
    expect(err.response).toBeUndefined();
    expect(fake.calls[0]?.status).toBe(0);
  });

  it('stall: Octokit has no default timeout; a timeout signal gives RequestError 500, abort() a raw AbortError', async () => {
    fake.failNext('GET /repos/{owner}/{repo}', { kind: 'stall' }, 2);
    const timedOut = await requestError(octokit.rest.repos.get({ ...repo, request: { signal: AbortSignal.timeout(200) } }));
    expect(timedOut.status).toBe(500);
    expect(timedOut.message).toMatch(/timeout/i);
    const controller = new AbortController();
    const aborted = octokit.rest.repos.get({ ...repo, request: { signal: controller.signal } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await fake.waitFor(() => fake.calls.length === 2, { what: 'second stalled call arrived' });
    controller.abort();
    // Not a RequestError: Octokit rethrows fetch's AbortError itself, with `status = 500` stuck on.
    const err = (await aborted) as Error & { status?: number };
    expect(err.name).toBe('AbortError');
    expect(err.status).toBe(500);
  });

  it('waitFor resolves on the call it waits for, and times out with the call log', async () => {
    const seen = fake.waitFor(() => fake.callsOf('GET /repos/{owner}/{repo}')[0], { what: 'repo read' });
    await octokit.rest.repos.get(repo);
    expect((await seen).status).toBe(200);
    await expect(fake.waitFor(() => false, { timeoutMs: 100, what: 'never' })).rejects.toThrow(
      /waitFor timed out after 100 ms: never\n.*#1 GET \/repos\/acme\/widgets -> 200/s,
    );
  });
});
