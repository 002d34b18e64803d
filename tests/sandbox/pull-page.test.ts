import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBareRepo, git, refSha, writeFiles } from '../../src/sandbox/bare-repo.js';
import type { FakePullInRepo } from '../../src/sandbox/github-server.js';
import { pullDiff, pullStateLabel, renderPullPage } from '../../src/sandbox/pull-page.js';

const temp = () => mkdtempSync(join(tmpdir(), 'ns-pull-page-'));

function pull(overrides: Partial<FakePullInRepo>): FakePullInRepo {
  return { number: 1, title: 'T', body: '', head: 'feature', base: 'main', state: 'open', merged: false, merge_commit_sha: null, draft: false, mergeable: null, comments: [], repo: 'me/app', head_sha: '', ...overrides };
}

describe('the PR page', () => {
  it("shows the PR's own diff, also after a squash merge moved the base", () => {
    const bare = createBareRepo(temp(), 'me/app', { 'a.txt': 'one\n' });
    const work = join(temp(), 'w');
    git(temp(), 'clone', '--quiet', bare.path, work);
    git(work, 'checkout', '--quiet', '-b', 'feature');
    writeFiles(work, { 'a.txt': 'one\ntwo\n' });
    git(work, 'commit', '--quiet', '-am', 'two');
    git(work, 'push', '--quiet', 'origin', 'feature');
    const head = refSha(bare, 'feature')!;
    // Someone else's change lands on main, as a squash merge of this PR would.
    git(work, 'checkout', '--quiet', 'main');
    writeFiles(work, { 'b.txt': 'other\n' });
    git(work, 'add', 'b.txt');
    git(work, 'commit', '--quiet', '-m', 'other');
    git(work, 'push', '--quiet', 'origin', 'main');
    const diff = pullDiff(bare, pull({ head_sha: head }));
    expect(diff).toContain('+two');
    expect(diff).not.toContain('b.txt');
    expect(pullDiff(bare, pull({ head_sha: '0'.repeat(40) }))).toBe('');
  });

  it('escapes everything that comes from the PR and shows the merged state', () => {
    const html = renderPullPage(
      pull({ title: '<script>x()</script>', body: 'a <img src=x onerror=y()>', merged: true, state: 'closed', merge_commit_sha: 'abcdef1234', comments: [{ id: 1, body: '</pre><b>hi</b>' }] }),
      '+<a href="javascript:x()">',
    );
    expect(html).not.toMatch(/<script>x|<img|<b>hi|<a href/);
    expect(html).toContain('&lt;script&gt;x()&lt;/script&gt;');
    expect(html).toContain('data-state="Merged"');
    expect(html).toContain('<code>abcdef1</code>');
    expect(pullStateLabel(pull({ state: 'closed' }))).toBe('Closed');
    expect(pullStateLabel(pull({}))).toBe('Open');
  });
});
