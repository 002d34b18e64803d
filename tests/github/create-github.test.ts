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

/** Pushes a branch with one change, as the build stage would. */
function pushBranch(branch: string): string {
  const clone = mkdtempSync(join(tmpdir(), 'ns-gh-clone-'));
  git(clone, 'clone', '--quiet', bare.path, '.');
  git(clone, 'checkout', '--quiet', '-b', branch);
  writeFileSync(join(clone, 'feature.txt'), 'new\n');
  git(clone, 'add', '-A');
  git(clone, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '--quiet', '-m', 'feature');
  git(clone, 'push', '--quiet', 'origin', branch);
  return refSha(bare, branch)!;
}

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
