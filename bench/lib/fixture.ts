/**
 * The standard scenario's fixtures: commander 7.2.0 as the repository (`fixtures/commander`),
 * the recorded 30-turn build that adds `Option.env()` to it (`fixtures/build-transcript.json`),
 * and the pull request that build produced (`fixtures/option-env.patch`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createBareRepo, git, gitEnv, writeFiles, type BareRepo } from '../../tests/helpers/git-fixture.js';
import type { ScriptedTurn } from '../fixtures/build-turns.js';

/** Where the fixtures live. */
export const FIXTURES_DIR = join(import.meta.dirname, '../fixtures');
/** The recorded build: each turn with what its tool call returned. */
export const TRANSCRIPT_FILE = join(FIXTURES_DIR, 'build-transcript.json');
/** The diff of the build, as a patch against the fixture repository. */
export const PATCH_FILE = join(FIXTURES_DIR, 'option-env.patch');
/** What the user asked for (the item's request). */
export const REQUEST = 'Add Option.env(name) so an option can take its value from an environment variable. The command line wins over the environment, the environment over the default; show the variable in the help.';

/** One recorded turn: the model's turn and its tool's result. */
export interface RecordedTurn extends ScriptedTurn {
  readonly result?: { readonly content: string; readonly isError: boolean };
}

/** The files of `fixtures/commander`, by repository path. */
export function repoFiles(): Record<string, string> {
  const root = join(FIXTURES_DIR, 'commander');
  const files: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else files[relative(root, path)] = readFileSync(path, 'utf8');
    }
  };
  walk(root);
  return files;
}

/** The recorded build transcript. */
export function loadTranscript(): RecordedTurn[] {
  return JSON.parse(readFileSync(TRANSCRIPT_FILE, 'utf8')) as RecordedTurn[];
}

/** A bare repository `me/app` holding the fixture on `main`, and (with `branch`) the PR's commit on that branch. */
export function createFixtureRemote(root: string, branch?: string): BareRepo {
  const bare = createBareRepo(root, 'me/app', repoFiles());
  if (branch === undefined) return bare;
  const clone = mkdtempSync(join(tmpdir(), 'ns-bench-pr-'));
  try {
    git(clone, 'clone', '--quiet', bare.path, '.');
    git(clone, 'checkout', '--quiet', '-b', branch);
    execFileSync('git', ['apply', PATCH_FILE], { cwd: clone, env: gitEnv() });
    git(clone, 'add', '--all');
    git(clone, 'commit', '--quiet', '-m', 'Add Option.env()');
    git(clone, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
  } finally {
    rmSync(clone, { recursive: true, force: true });
  }
  return bare;
}

/** Writes the fixture into `dir` as a fresh git repository with one commit. */
export function checkoutFixture(dir: string): void {
  writeFiles(dir, repoFiles());
  git(dir, 'init', '--quiet', '--initial-branch=main');
  git(dir, 'add', '--all');
  git(dir, 'commit', '--quiet', '-m', 'Initial commit');
}
