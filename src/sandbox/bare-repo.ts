/**
 * Real git repositories for tests and the sandbox: a bare repository per GitHub repo, reachable as
 * `${serverUrl}/${owner}/${name}.git` (a `file://` URL, what `GITHUB_SERVER_URL` holds in tests).
 *
 * Every git call runs with a scrubbed environment and no global or system config, so the
 * developer's `~/.gitconfig` (signing, hooks, templates, default branch) and any GIT_* variables
 * the test runner inherited cannot change what a test sees, and no machine needs a git identity.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** A bare repository standing in for one GitHub repository. */
export interface BareRepo {
  owner: string;
  name: string;
  /** "owner/name". */
  fullName: string;
  /** Absolute path of the bare repository: `<root>/<owner>/<name>.git`. */
  path: string;
  /** `file://<root>` without a trailing slash; `${serverUrl}/${owner}/${name}.git` is the repo. */
  serverUrl: string;
}

/** The identity every fixture commit is made with (the fake GitHub uses its own for merges). */
export const FIXTURE_AUTHOR = { name: 'Fixture Author', email: 'fixture@example.invalid' } as const;

/** Output of a git command larger than this is a bug in the test, not data. */
const MAX_GIT_OUTPUT_BYTES = 64 * 1024 * 1024;

/** A failed git command, with what git printed on stderr. */
export class GitCommandError extends Error {
  override readonly name = 'GitCommandError';
  constructor(
    readonly args: readonly string[],
    readonly cwd: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly stdout: string,
    options?: { cause?: unknown },
  ) {
    super(`git ${args.join(' ')} (in ${cwd}) failed with exit code ${String(exitCode)}: ${stderr.trim() || stdout.trim()}`, options);
  }
}

/**
 * The environment for git: the caller's without any GIT_* variable, no global or system config,
 * a fixed identity, no prompts, C locale (stable messages). `extra` wins over all of it.
 */
export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('GIT_') && value !== undefined) env[key] = value;
  }
  return {
    ...env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: FIXTURE_AUTHOR.name,
    GIT_AUTHOR_EMAIL: FIXTURE_AUTHOR.email,
    GIT_COMMITTER_NAME: FIXTURE_AUTHOR.name,
    GIT_COMMITTER_EMAIL: FIXTURE_AUTHOR.email,
    LC_ALL: 'C',
    ...extra,
  };
}

/**
 * Run git and return its raw stdout (not trimmed: file contents must survive byte for byte).
 * Throws GitCommandError with git's stderr on a non-zero exit.
 */
export function runGit(cwd: string, args: readonly string[], opts: { env?: Record<string, string>; input?: string } = {}): string {
  try {
    return execFileSync('git', args, {
      cwd,
      env: gitEnv(opts.env),
      encoding: 'utf8',
      input: opts.input,
      maxBuffer: MAX_GIT_OUTPUT_BYTES,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { status?: number | null; stderr?: string | Buffer; stdout?: string | Buffer };
    throw new GitCommandError(args, cwd, e.status ?? null, String(e.stderr ?? ''), String(e.stdout ?? ''), { cause: err });
  }
}

/** `git <args>` in `cwd` with a clean environment; trimmed stdout. Throws GitCommandError. */
export function git(cwd: string, ...args: string[]): string {
  return runGit(cwd, args).trim();
}

/**
 * Create `<root>/<owner>/<name>.git` as a real bare repository whose default branch holds one
 * commit with `files` (@default README.md and a package.json whose `test` script exits 0).
 * @default opts.defaultBranch 'main'
 */
export function createBareRepo(
  root: string,
  fullName: string,
  files?: Record<string, string>,
  opts: { defaultBranch?: string } = {},
): BareRepo {
  const [owner, name, ...rest] = fullName.split('/');
  if (!owner || !name || rest.length > 0) throw new Error(`createBareRepo: "${fullName}" is not "owner/name"`);
  const branch = opts.defaultBranch ?? 'main';
  const path = join(root, owner, `${name}.git`);
  mkdirSync(path, { recursive: true });
  git(path, 'init', '--quiet', '--bare', `--initial-branch=${branch}`);

  const content = files ?? defaultFiles(name);
  const clone = mkdtempSync(join(tmpdir(), 'git-fixture-'));
  try {
    git(clone, 'clone', '--quiet', path, '.');
    git(clone, 'checkout', '--quiet', '-b', branch);
    writeFiles(clone, content);
    git(clone, 'add', '--all');
    git(clone, 'commit', '--quiet', '--allow-empty', '-m', 'Initial commit');
    git(clone, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
  } finally {
    rmSync(clone, { recursive: true, force: true });
  }
  return { owner, name, fullName: `${owner}/${name}`, path, serverUrl: pathToFileURL(root).href.replace(/\/+$/, '') };
}

/** Write `files` (paths relative to `dir`, parents created) into a working tree. */
export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    const file = join(dir, rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
}

/** The commit sha of branch `ref` in the bare repo, undefined if there is no such branch. */
export function refSha(bare: BareRepo, ref: string): string | undefined {
  try {
    return git(bare.path, 'rev-parse', '--verify', '--quiet', `refs/heads/${ref}^{commit}`) || undefined;
  } catch {
    return undefined;
  }
}

/** The content of `path` at `ref` (branch, tag or sha) in the bare repo, undefined if missing. */
export function readFileAt(bare: BareRepo, ref: string, path: string): string | undefined {
  try {
    return runGit(bare.path, ['show', `${ref}:${path}`]);
  } catch {
    return undefined;
  }
}

function defaultFiles(name: string): Record<string, string> {
  const pkg = { name, version: '0.0.0', private: true, scripts: { test: 'exit 0' } };
  return {
    'README.md': `# ${name}\n\nA test repository.\n`,
    'package.json': `${JSON.stringify(pkg, null, 2)}\n`,
  };
}
