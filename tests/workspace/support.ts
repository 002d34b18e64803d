/** Helpers shared by the workspace tests. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { RepoName } from '../../src/domain/parse-request.js';
import { git, writeFiles, type BareRepo } from '../helpers/git-fixture.js';

/** A logger that writes nothing. */
export const silentLog = pino({ level: 'silent' });

/** A canary GitHub token: it must appear in no file, argument or error. */
export const CANARY_TOKEN = 'ghp_CANARYcanary0123456789abcdefGHIJKL';

/** The RepoName of a fixture bare repository. */
export function repoOf(bare: BareRepo): RepoName {
  return { owner: bare.owner, name: bare.name, fullName: bare.fullName };
}

/**
 * A script that appends "<name> <args>" to `marker` when run. With `passThrough` it then acts as
 * a filter (copies stdin, or the file named by its first argument, to stdout).
 */
export function markerScript(dir: string, name: string, marker: string, passThrough = false): string {
  const path = join(dir, name);
  const body = passThrough ? 'if [ -f "$1" ]; then cat "$1"; else cat; fi\n' : 'exit 0\n';
  writeFileSync(path, `#!/bin/sh\necho "${name} $*" >> '${marker}'\n${body}`, { mode: 0o755 });
  return path;
}

/** What the marker file says ran, or '' when nothing did. */
export function ran(marker: string): string {
  return existsSync(marker) ? readFileSync(marker, 'utf8') : '';
}

/** Every regular file under `dir` whose bytes contain `needle`. Symlinks are not followed. */
export function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const bytes = Buffer.from(needle);
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile() && readFileSync(p).includes(bytes)) hits.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return hits;
}

/**
 * Makes a commit on `branch` of the bare repository as someone else would (another machine):
 * from `base` (@default the branch itself, or main when it does not exist), writes `files`
 * and `symlinks`, force-pushes. Returns the new commit sha.
 */
export function pushCommit(
  bare: BareRepo,
  branch: string,
  change: { files?: Record<string, string>; symlinks?: Record<string, string>; base?: string; message?: string },
): string {
  const dir = mkdtempSync(join(tmpdir(), 'ws-other-'));
  try {
    git(dir, 'clone', '--quiet', bare.path, '.');
    const exists = git(dir, 'ls-remote', '--heads', 'origin', branch) !== '';
    const base = change.base ?? (exists ? `origin/${branch}` : 'origin/main');
    git(dir, 'checkout', '--quiet', '-B', branch, base);
    writeFiles(dir, change.files ?? {});
    for (const [link, target] of Object.entries(change.symlinks ?? {})) {
      rmSync(join(dir, link), { force: true });
      symlinkSync(target, join(dir, link));
    }
    git(dir, 'add', '--all');
    git(dir, 'commit', '--quiet', '--allow-empty', '-m', change.message ?? 'Someone else');
    git(dir, 'push', '--quiet', '--force', 'origin', `HEAD:refs/heads/${branch}`);
    return git(dir, 'rev-parse', 'HEAD');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
