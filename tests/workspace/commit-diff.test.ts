import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkspace, WorkspaceError, type Workspace } from '../../src/workspace/create-workspace.js';
import { createBareRepo, git, refSha, writeFiles, type BareRepo } from '../helpers/git-fixture.js';
import { CANARY_TOKEN, pushCommit, repoOf, silentLog } from './support.js';

let tmp: string;
let bare: BareRepo;
let ws: Workspace;

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ws-commit-diff-'));
  bare = createBareRepo(join(tmp, 'server'), 'me/app', { 'README.md': '# app\n', 'src/a.ts': 'export const a = 1;\n' });
  ws = createWorkspace({ dataDir: join(tmp, 'data'), serverUrl: bare.serverUrl, token: CANARY_TOKEN, log: silentLog });
});

afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** A branch merged into main with a merge commit, as GitHub's "Create a merge commit" does. */
function mergeWithCommit(branchFiles: Array<Record<string, string>>, mainFiles: Record<string, string>): string {
  const dir = mkdtempSync(join(tmp, 'merge-'));
  git(dir, 'clone', '--quiet', bare.path, '.');
  git(dir, 'checkout', '--quiet', '-b', 'feature');
  for (const files of branchFiles) {
    writeFiles(dir, files);
    git(dir, 'add', '--all');
    git(dir, 'commit', '--quiet', '-m', 'feature step');
  }
  git(dir, 'checkout', '--quiet', 'main');
  writeFiles(dir, mainFiles);
  git(dir, 'add', '--all');
  git(dir, 'commit', '--quiet', '-m', 'meanwhile on main');
  git(dir, 'merge', '--quiet', '--no-ff', '-m', 'Merge feature', 'feature');
  git(dir, 'push', '--quiet', 'origin', 'main');
  return git(dir, 'rev-parse', 'HEAD');
}

describe('commitDiff', () => {
  it('gives what one squash merge changed, and nothing of the merges around it', async () => {
    const first = pushCommit(bare, 'main', { files: { 'src/a.ts': 'export const a = 2;\n', 'src/b.ts': 'export const b = 1;\n' }, message: 'Squash one (#1)' });
    const second = pushCommit(bare, 'main', { files: { 'src/c.ts': 'one\ntwo\nthree\n' }, message: 'Squash two (#2)' });

    const one = await ws.commitDiff(repoOf(bare), first);
    expect(one.stat).toEqual([
      { path: 'src/a.ts', added: 1, removed: 1 },
      { path: 'src/b.ts', added: 1, removed: 0 },
    ]);
    expect(one.diff).toContain('-export const a = 1;\n+export const a = 2;');
    expect(one.diff).not.toContain('src/c.ts');

    const two = await ws.commitDiff(repoOf(bare), second);
    expect(two.stat).toEqual([{ path: 'src/c.ts', added: 3, removed: 0 }]);
    expect(two.diff).toContain('+++ b/src/c.ts');
    expect(two.diff).not.toContain('src/a.ts');
  });

  it('fetches a commit pushed after the clone was last fetched', async () => {
    await ws.readFromDefaultBranch(repoOf(bare), 'README.md'); // the clone exists and is fetched
    const later = pushCommit(bare, 'main', { files: { 'later.txt': 'later\n' } });
    const { stat } = await ws.commitDiff(repoOf(bare), later);
    expect(stat).toEqual([{ path: 'later.txt', added: 1, removed: 0 }]);
  });

  it('diffs a merge commit against its first parent: the whole branch, not what main did meanwhile', async () => {
    const merge = mergeWithCommit([{ 'src/f1.ts': 'f1\n' }, { 'src/f2.ts': 'f2\n' }], { 'src/main-only.ts': 'm\n' });
    const { stat, diff } = await ws.commitDiff(repoOf(bare), merge);
    expect(stat.map((s) => s.path).sort()).toEqual(['src/f1.ts', 'src/f2.ts']);
    expect(diff).not.toContain('main-only');
  });

  it('shows a file marked binary or -diff by .gitattributes as text', async () => {
    const sha = pushCommit(bare, 'main', { files: { '.gitattributes': 'secret.txt -diff\n', 'secret.txt': 'hidden change\n' } });
    const { diff } = await ws.commitDiff(repoOf(bare), sha);
    expect(diff).toContain('+hidden change');
    expect(diff).not.toMatch(/Binary files/);
  });

  it('compares a root commit with the empty tree', async () => {
    const root = refSha(bare, 'main')!;
    const { stat } = await ws.commitDiff(repoOf(bare), root);
    expect(stat.map((s) => s.path).sort()).toEqual(['README.md', 'src/a.ts']);
  });

  it('refuses what is not a full sha, and a commit the remote does not have', async () => {
    await expect(ws.commitDiff(repoOf(bare), 'main')).rejects.toThrow(WorkspaceError);
    await expect(ws.commitDiff(repoOf(bare), '--output=/tmp/x')).rejects.toThrow(WorkspaceError);
    await expect(ws.commitDiff(repoOf(bare), 'f'.repeat(40))).rejects.toThrow(/has no commit f{40}/);
  });
});
