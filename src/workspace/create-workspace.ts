/**
 * Git workspaces: one cached bare clone per repository and one linked worktree per item.
 *
 * Layout under DATA_DIR:
 *   repos/<owner>/<name>.git   bare clone; origin's branches as refs/remotes/origin/*
 *   worktrees/<itemId>         the item's worktree on nightshift/<itemId>-<slug>
 *
 * The bot's own git calls trust nothing an agent could have written:
 * - every call goes through runGit (hooks, fsmonitor, pager, signing, drivers… neutralised);
 * - before every operation the clone's `config` is rewritten to the content the bot owns
 *   (core settings as `git init` makes them, plus a token-free `remote.origin`), so
 *   `url.*.insteadOf`, `http.*`, `remote.*.pushurl`, `include.path`, `extensions.worktreeConfig`
 *   and drivers planted there are gone; the worktree admin dir's `commondir` and `gitdir`
 *   pointers are rewritten too;
 * - worktree commands run with an explicit `GIT_DIR` (the admin dir inside the clone) and
 *   `GIT_WORK_TREE`: the worktree's own `.git` (a file the agent can replace by a directory of
 *   its own, with its own config and hooks) is never read;
 * - network commands use the explicit URL built from `serverUrl`, never a configured remote,
 *   and the token travels only in the environment of those calls (GIT_ASKPASS).
 *
 * All operations on one repository run one at a time (an in-process promise chain per clone):
 * fetches, worktree creation, commits and pushes of different items never interleave.
 */
import { randomUUID } from 'node:crypto';
import {
  existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { basename, dirname, join, posix, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { RepoName } from '../domain/parse-request.js';
import { BRANCH_PREFIX, branchName } from './branch-name.js';
import { GitError, runGit } from './run-git.js';

export { branchName } from './branch-name.js';

/** Limit for a local git call (add, commit, worktree add, diff). @default 120000 */
export const LOCAL_GIT_TIMEOUT_MS = 2 * 60_000;

/** Limit for a git call that talks to the server (ls-remote, fetch, push). @default 600000 */
export const NETWORK_GIT_TIMEOUT_MS = 10 * 60_000;

/** Author and committer of the bot's commits unless configured. */
export const DEFAULT_GIT_IDENTITY = { name: 'nightshift', email: 'nightshift@users.noreply.github.com' } as const;

// In-tree symlinks followed by readFromDefaultBranch (CLAUDE.md → AGENTS.md is common).
const MAX_SYMLINK_HOPS = 8;

/** A workspace request that cannot be satisfied: bad input, or on-disk state the bot did not make. */
export class WorkspaceError extends Error {
  override readonly name = 'WorkspaceError';
}

/** A worktree ready for an agent. */
export interface PreparedWorkspace {
  /** Absolute path of the worktree (DATA_DIR/worktrees/<itemId>, symlinks resolved). */
  path: string;
  branch: string;
  /** Where the item's changes start: the merge base of origin's default branch and the branch. */
  baseSha: string;
  defaultBranch: string;
  /** The worktree already existed (after a crash or a retry); its uncommitted work is kept. */
  resumed: boolean;
}

/** One changed file between two commits; `added`/`removed` are null for binary files. */
export interface DiffStatEntry {
  path: string;
  added: number | null;
  removed: number | null;
  /** Set when git detected a rename; `path` is the new name. */
  oldPath?: string;
}

/** Git operations for items: clone, worktree, commit, push. */
export interface Workspace {
  /**
   * Ensures the cached clone, fetches it, and creates (or, after a crash, reuses) the worktree
   * DATA_DIR/worktrees/<itemId> on `nightshift/<itemId>-<slug>`. A new worktree starts from the
   * remote branch when a previous run pushed it, else from origin's default branch. A reused
   * one keeps its branch (even if the title changed since) and its uncommitted work.
   */
  prepare(item: { id: number; title: string; repo: RepoName }): Promise<PreparedWorkspace>;
  /** `git add --all` + commit (no hooks); the new HEAD sha, or undefined when nothing changed. */
  commitAll(path: string, message: string): Promise<string | undefined>;
  /**
   * Pushes the branch's current commit to origin. Forced, but only with a lease on what was last
   * fetched or pushed (absent → the remote branch must not exist): the branch is ours, a
   * concurrent writer's commits are not overwritten blindly. Refuses when the worktree's HEAD
   * is not on `branch`.
   */
  push(path: string, branch: string): Promise<void>;
  /** HEAD sha of the worktree. */
  headSha(path: string): Promise<string>;
  /** Files changed between `baseSha` and HEAD (committed changes only), from `git diff --numstat`. */
  diffStat(path: string, baseSha: string): Promise<DiffStatEntry[]>;
  /** Whether there are uncommitted changes, untracked (not ignored) files included. */
  isDirty(path: string): Promise<boolean>;
  /**
   * A file from the repository's default branch as last fetched (fetching first when the repo
   * was never fetched), or undefined. Read from the clone's objects, never from a worktree.
   * In-tree symlinks are followed.
   */
  readFromDefaultBranch(repo: RepoName, file: string): Promise<string | undefined>;
  /** Paths of the files directly in `dir` on the repo's default branch (e.g. `.nightshift/review`). */
  listFromDefaultBranch(repo: RepoName, dir: string): Promise<string[]>;
  /**
   * Paths of every file on the repo's default branch as last fetched (fetching first when the
   * repo was never fetched), in git's order (sorted by path). Submodules are not entered.
   */
  listAllFromDefaultBranch(repo: RepoName): Promise<string[]>;
  /**
   * The unified diff from `baseSha` to the worktree's HEAD (committed changes only), always as
   * text: a `.gitattributes` marking paths `-diff` or binary cannot hide a change from review.
   */
  diff(path: string, baseSha: string): Promise<string>;
  /** A file as committed at the worktree's HEAD (not the working copy), or undefined. */
  readAtHead(path: string, file: string): Promise<string | undefined>;
  /**
   * What commit `sha` of the repo changed against its first parent (a squash merge is one
   * commit; a merge commit shows what it brought to the branch), read from the cached clone,
   * fetched first unless the commit is already there (a commit never changes). The diff is
   * always text, as for {@link Workspace.diff}. Throws WorkspaceError when the remote has no such commit.
   */
  commitDiff(repo: RepoName, sha: string): Promise<{ diff: string; stat: DiffStatEntry[] }>;
  /** Removes the item's worktree directory and its admin dir; branch refs stay. Idempotent. */
  remove(itemId: number): Promise<void>;
}

/** Collaborators of {@link createWorkspace}. */
export interface WorkspaceDeps {
  /** DATA_DIR; `repos/` and `worktrees/` are made under it. */
  dataDir: string;
  /** Clone base, e.g. https://github.com or file:///tmp/x (no credentials in it). */
  serverUrl: string;
  /** Sent to http(s) servers through GIT_ASKPASS only; never used for file:// URLs. */
  token: string;
  /** @default DEFAULT_GIT_IDENTITY */
  identity?: { name: string; email: string };
  log: Logger;
}

interface RepoPaths {
  readonly fullName: string;
  /** The bare clone; also the key of the repository's lock. */
  readonly clone: string;
  /** `${serverUrl}/${owner}/${name}.git`. */
  readonly url: string;
}

interface Worktree {
  readonly repo: RepoPaths;
  readonly itemId: number;
  readonly path: string;
  /** `<clone>/worktrees/<itemId>`: the GIT_DIR of the worktree. */
  readonly admin: string;
}

const OWNER_RE = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
const NAME_RE = /^[A-Za-z0-9._-]+$/;
const SHA_RE = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const BRANCH_RE = /^nightshift\/[1-9][0-9]*-[A-Za-z0-9._-]+$/;
/** A worktree admin dir's pointer to the clone (`<clone>/worktrees/<id>` → `<clone>`). */
const COMMONDIR = '../..\n';

/** The git workspace of the bot: cached clones and per-item worktrees under `deps.dataDir`. */
export function createWorkspace(deps: WorkspaceDeps): Workspace {
  const { log } = deps;
  const serverUrl = deps.serverUrl.replace(/\/+$/, '');
  const tokenOrigin = credentialOrigin(serverUrl);
  const identity = deps.identity ?? DEFAULT_GIT_IDENTITY;
  const locks = new Map<string, Promise<void>>();
  const known = new Map<string, Worktree>();
  let rootDir: string | undefined;
  let coreConfig: Promise<string> | undefined;

  // The data dir with symlinks resolved: git records real paths in `gitdir` files.
  const root = (): string => {
    if (rootDir === undefined) {
      const dir = resolve(deps.dataDir);
      mkdirSync(dir, { recursive: true });
      rootDir = realpathSync(dir);
    }
    return rootDir;
  };

  const repoPaths = (owner: string, name: string): RepoPaths => {
    if (!OWNER_RE.test(owner) || !NAME_RE.test(name)) throw new WorkspaceError(`"${owner}/${name}" is not an owner/name repository`);
    return {
      fullName: `${owner}/${name}`,
      clone: join(root(), 'repos', owner, `${name}.git`),
      url: `${serverUrl}/${owner}/${name}.git`,
    };
  };

  const worktreePath = (itemId: number): string => {
    if (!Number.isSafeInteger(itemId) || itemId <= 0) throw new WorkspaceError(`item id ${itemId} is not a positive integer`);
    return join(root(), 'worktrees', String(itemId));
  };

  function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    locks.set(key, tail);
    void tail.then(() => {
      if (locks.get(key) === tail) locks.delete(key);
    });
    return run;
  }

  const inClone = async (repo: RepoPaths, args: readonly string[], network = false) =>
    runGit(args, {
      cwd: repo.clone,
      gitDir: repo.clone,
      identity,
      timeoutMs: network ? NETWORK_GIT_TIMEOUT_MS : LOCAL_GIT_TIMEOUT_MS,
      ...(network && tokenOrigin !== undefined ? { token: deps.token, tokenOrigin } : {}),
      neutraliseRepoConfig: !(await configIsOurs(repo)),
    });

  const inWorktree = async (wt: Worktree, args: readonly string[]) =>
    runGit(args, {
      cwd: wt.path,
      gitDir: wt.admin,
      workTree: wt.path,
      identity,
      timeoutMs: LOCAL_GIT_TIMEOUT_MS,
      neutraliseRepoConfig: !(readText(join(wt.admin, 'commondir')) === COMMONDIR && (await configIsOurs(wt.repo))),
    });

  /**
   * Whether the clone's config is exactly the one we write: then git reads nothing from the
   * repository that could run a program (no drivers, helpers or includes; no worktree config,
   * which needs an extension ours does not set), and runGit can skip listing the config first,
   * a process saved on every call. Anything else, an agent's edit included, is listed and
   * neutralised as usual (and restored at the next restoreConfig). As with the listing, a writer
   * racing between this read and git's wins.
   */
  const configIsOurs = async (repo: RepoPaths): Promise<boolean> => readText(join(repo.clone, 'config')) === (await trustedConfig(repo));

  // The [core] section exactly as this git makes it on this file system, learnt once.
  const trustedCore = (): Promise<string> => {
    coreConfig ??= (async () => {
      const probe = join(root(), 'repos', `.probe-${randomUUID()}`);
      mkdirSync(dirname(probe), { recursive: true });
      try {
        await runGit(['init', '--quiet', '--bare', '--template=', probe], { cwd: dirname(probe), neutraliseRepoConfig: false });
        return readFileSync(join(probe, 'config'), 'utf8');
      } finally {
        rmSync(probe, { recursive: true, force: true });
      }
    })();
    coreConfig.catch(() => {
      coreConfig = undefined;
    });
    return coreConfig;
  };

  const trustedConfig = async (repo: RepoPaths): Promise<string> =>
    `${await trustedCore()}[remote "origin"]\n\turl = ${quoteConfigValue(repo.url)}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n`;

  /** Rewrites the clone's config to ours when it differs; warns, since only an agent changes it. */
  async function restoreConfig(repo: RepoPaths, gitDir = repo.clone): Promise<void> {
    const want = await trustedConfig(repo);
    const file = join(gitDir, 'config');
    const have = readText(file);
    if (have === want) return;
    if (have !== undefined) log.warn({ repo: repo.fullName }, 'the cached clone\'s git config was changed; restored it');
    writeAtomically(file, want);
  }

  function restorePointers(wt: Worktree): void {
    for (const [name, want] of [['commondir', COMMONDIR], ['gitdir', `${join(wt.path, '.git')}\n`]] as const) {
      const file = join(wt.admin, name);
      const have = readText(file);
      if (have === want) continue;
      log.warn({ itemId: wt.itemId, file: name }, 'a worktree pointer was changed; restored it');
      writeAtomically(file, want);
    }
  }

  async function ensureClone(repo: RepoPaths): Promise<void> {
    if (!existsSync(join(repo.clone, 'HEAD'))) {
      mkdirSync(dirname(repo.clone), { recursive: true });
      rmSync(repo.clone, { recursive: true, force: true });
      // Made aside and renamed into place: a crash leaves no half-made clone at the real path.
      const tmp = `${repo.clone}.tmp-${randomUUID()}`;
      try {
        await runGit(['init', '--quiet', '--bare', '--template=', tmp], { cwd: dirname(tmp), neutraliseRepoConfig: false });
        await restoreConfig(repo, tmp);
        renameSync(tmp, repo.clone);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
      log.info({ repo: repo.fullName }, 'created the cached clone');
    }
    await restoreConfig(repo);
  }

  /** Clone if needed, learn origin's default branch, fetch every branch. */
  async function syncClone(repo: RepoPaths): Promise<{ defaultBranch: string; defaultSha: string }> {
    await ensureClone(repo);
    const advertised = await inClone(repo, ['ls-remote', '--symref', '--upload-pack=git-upload-pack', repo.url, 'HEAD'], true);
    let defaultBranch = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(advertised)?.[1];
    await inClone(
      repo,
      [
        'fetch', '--quiet', '--prune', '--no-tags', '--no-recurse-submodules', '--no-write-fetch-head',
        '--upload-pack=git-upload-pack', repo.url, '+refs/heads/*:refs/remotes/origin/*',
      ],
      true,
    );
    if (defaultBranch === undefined) {
      // A server that does not say where HEAD points: keep what we knew, else the usual names.
      const before = (await inClone(repo, ['for-each-ref', '--format=%(symref)', 'refs/remotes/origin/HEAD'])).trim();
      for (const candidate of [before.replace(/^refs\/remotes\/origin\//, ''), 'main', 'master']) {
        if (candidate !== '' && (await commitOf(repo, `refs/remotes/origin/${candidate}`)) !== undefined) {
          defaultBranch = candidate;
          break;
        }
      }
    }
    const defaultSha = defaultBranch === undefined ? undefined : await commitOf(repo, `refs/remotes/origin/${defaultBranch}`);
    if (defaultBranch === undefined || defaultSha === undefined) {
      throw new WorkspaceError(`${repo.fullName}: the remote has no default branch to start from (is it empty?)`);
    }
    await inClone(repo, ['symbolic-ref', 'refs/remotes/origin/HEAD', `refs/remotes/origin/${defaultBranch}`]);
    return { defaultBranch, defaultSha };
  }

  const commitOf = (repo: RepoPaths, ref: string) =>
    unlessExit1(inClone(repo, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]));

  /**
   * The default branch's commit in the cached clone, as last fetched (no fetch when the clone
   * exists: reads stay fast); the clone is made first if missing. Call under the clone's lock.
   */
  async function defaultCommit(repo: RepoPaths): Promise<string> {
    if (existsSync(join(repo.clone, 'HEAD'))) {
      await restoreConfig(repo);
      const commit = await commitOf(repo, 'refs/remotes/origin/HEAD');
      if (commit) return commit;
    }
    return (await syncClone(repo)).defaultSha;
  }

  const mergeBase = (repo: RepoPaths, a: string, b: string) => unlessExit1(inClone(repo, ['merge-base', a, b]));

  type Existing = { kind: 'absent' } | { kind: 'broken'; why: string } | { kind: 'valid'; branch: string };

  function inspect(wt: Worktree): Existing {
    const adminExists = existsSync(wt.admin);
    const pathExists = existsSync(wt.path);
    if (!adminExists && !pathExists) return { kind: 'absent' };
    if (!adminExists) return { kind: 'broken', why: 'directory without git admin dir' };
    if (!pathExists || !statSync(wt.path).isDirectory()) return { kind: 'broken', why: 'git admin dir without directory' };
    // `git worktree add` holds this lock while it checks out: a crash left it half made.
    if (existsSync(join(wt.admin, 'locked'))) return { kind: 'broken', why: 'creation was interrupted' };
    const head = readText(join(wt.admin, 'HEAD'))?.trim() ?? '';
    const branch = /^ref: refs\/heads\/(.+)$/.exec(head)?.[1];
    if (branch === undefined || !branch.startsWith(`${BRANCH_PREFIX}${wt.itemId}-`)) {
      return { kind: 'broken', why: `HEAD is not on a ${BRANCH_PREFIX}${wt.itemId}- branch` };
    }
    return { kind: 'valid', branch };
  }

  /** Finds the worktree a path names, also after a restart (from the admin dirs on disk). */
  function resolveWorktree(path: string): Worktree {
    const abs = resolve(path);
    const hit = known.get(abs);
    if (hit) return hit;
    let canonical = abs;
    try {
      canonical = join(realpathSync(dirname(abs)), basename(abs));
    } catch {
      // The parent does not exist: not ours, reported below.
    }
    const id = basename(canonical);
    if (dirname(canonical) === join(root(), 'worktrees') && /^[1-9][0-9]*$/.test(id)) {
      for (const repo of clonesOnDisk()) {
        const admin = join(repo.clone, 'worktrees', id);
        if (readText(join(admin, 'gitdir'))?.trim() === join(canonical, '.git')) {
          const wt: Worktree = { repo, itemId: Number(id), path: canonical, admin };
          known.set(abs, wt);
          known.set(canonical, wt);
          return wt;
        }
      }
    }
    throw new WorkspaceError(`${path} is not a worktree made by prepare (or it was removed)`);
  }

  function clonesOnDisk(): RepoPaths[] {
    const out: RepoPaths[] = [];
    const reposDir = join(root(), 'repos');
    for (const owner of listDirs(reposDir)) {
      if (!OWNER_RE.test(owner)) continue;
      for (const entry of listDirs(join(reposDir, owner))) {
        const name = entry.endsWith('.git') ? entry.slice(0, -'.git'.length) : undefined;
        if (name !== undefined && NAME_RE.test(name)) out.push(repoPaths(owner, name));
      }
    }
    return out;
  }

  /** Puts back what the bot owns before its own git calls on a worktree. */
  async function guard(wt: Worktree): Promise<void> {
    if (!existsSync(join(wt.admin, 'HEAD'))) throw new WorkspaceError(`worktree of item ${wt.itemId} is gone (${wt.path})`);
    await restoreConfig(wt.repo);
    restorePointers(wt);
  }

  const headOf = async (wt: Worktree) => (await inWorktree(wt, ['rev-parse', '--verify', 'HEAD^{commit}'])).trim();

  async function readBlob(repo: RepoPaths, commit: string, file: string, hops: number): Promise<string | undefined> {
    const listing = await inClone(repo, ['--literal-pathspecs', 'ls-tree', '-z', '--full-tree', commit, '--', file]);
    for (const entry of listing.split('\0')) {
      const m = /^([0-7]{6}) (\w+) ([0-9a-f]+)\t([\s\S]*)$/.exec(entry);
      if (!m || m[4] !== file || m[2] !== 'blob') continue;
      const content = await inClone(repo, ['cat-file', 'blob', m[3]!]);
      if (m[1] !== '120000') return content;
      const target = normaliseRepoPath(posix.join(posix.dirname(file), content));
      return target === undefined || hops >= MAX_SYMLINK_HOPS ? undefined : readBlob(repo, commit, target, hops + 1);
    }
    return undefined;
  }

  return {
    async prepare(item) {
      const repo = repoPaths(item.repo.owner, item.repo.name);
      const path = worktreePath(item.id);
      const wanted = branchName(item.id, item.title);
      const itemLog = log.child({ itemId: item.id, repo: repo.fullName });
      return withLock(repo.clone, async () => {
        const { defaultBranch, defaultSha } = await syncClone(repo);
        const wt: Worktree = { repo, itemId: item.id, path, admin: join(repo.clone, 'worktrees', String(item.id)) };
        const existing = inspect(wt);
        if (existing.kind === 'valid') {
          restorePointers(wt);
          const head = await headOf(wt);
          known.set(path, wt);
          const baseSha = (await mergeBase(repo, defaultSha, head)) ?? defaultSha;
          itemLog.info({ branch: existing.branch, head }, 'resuming the existing worktree');
          return { path, branch: existing.branch, baseSha, defaultBranch, resumed: true };
        }
        if (existing.kind === 'broken') itemLog.warn({ why: existing.why }, 'discarding a broken worktree');
        rmSync(path, { recursive: true, force: true });
        rmSync(wt.admin, { recursive: true, force: true });
        mkdirSync(dirname(path), { recursive: true });
        // A previous run pushed the branch: carry on from there rather than start over.
        const remoteTip = await commitOf(repo, `refs/remotes/origin/${wanted}`);
        const start = remoteTip ?? defaultSha;
        await inClone(repo, ['worktree', 'add', '--quiet', '--no-track', '-B', wanted, path, start]);
        const made = inspect(wt);
        if (made.kind !== 'valid') throw new WorkspaceError(`git worktree add did not make ${path} as expected`);
        known.set(path, wt);
        const baseSha = (await mergeBase(repo, defaultSha, start)) ?? defaultSha;
        itemLog.info({ branch: wanted, start, fromRemoteBranch: remoteTip !== undefined }, 'created the worktree');
        return { path, branch: wanted, baseSha, defaultBranch, resumed: false };
      });
    },

    async commitAll(path, message) {
      if (message.trim() === '') throw new WorkspaceError('commit message is empty');
      const wt = resolveWorktree(path);
      return withLock(wt.repo.clone, async () => {
        await guard(wt);
        await inWorktree(wt, ['add', '--all']);
        const staged = await inWorktree(wt, ['diff', '--cached', '--name-only', '-z', '--no-ext-diff', '--no-textconv']);
        if (staged === '') return undefined;
        // --cleanup=whitespace: a line starting with '#' ("#123 fixed") is kept, not a comment.
        await inWorktree(wt, ['commit', '--quiet', '--no-verify', '--no-gpg-sign', '--cleanup=whitespace', '-m', message]);
        return headOf(wt);
      });
    },

    async push(path, branch) {
      if (!BRANCH_RE.test(branch) || branch.includes('..')) {
        throw new WorkspaceError(`"${branch}" is not a ${BRANCH_PREFIX} branch`);
      }
      const wt = resolveWorktree(path);
      return withLock(wt.repo.clone, async () => {
        await guard(wt);
        const head = readText(join(wt.admin, 'HEAD'))?.trim();
        if (head !== `ref: refs/heads/${branch}`) {
          throw new WorkspaceError(`worktree of item ${wt.itemId} is not on ${branch} (HEAD: ${head ?? 'missing'})`);
        }
        const local = await commitOf(wt.repo, `refs/heads/${branch}`);
        if (local === undefined) throw new WorkspaceError(`branch ${branch} has no commit`);
        const lease = (await commitOf(wt.repo, `refs/remotes/origin/${branch}`)) ?? '';
        // The sha, not the ref: exactly what was read here is pushed, whatever moves meanwhile.
        await inClone(
          wt.repo,
          [
            'push', '--quiet', '--no-verify', '--receive-pack=git-receive-pack',
            `--force-with-lease=refs/heads/${branch}:${lease}`, wt.repo.url, `${local}:refs/heads/${branch}`,
          ],
          true,
        );
        // What the next push leases against, as a named remote would have recorded it.
        await inClone(wt.repo, ['update-ref', `refs/remotes/origin/${branch}`, local]);
        log.info({ itemId: wt.itemId, repo: wt.repo.fullName, branch, sha: local }, 'pushed');
      });
    },

    async headSha(path) {
      const wt = resolveWorktree(path);
      return withLock(wt.repo.clone, async () => {
        await guard(wt);
        return headOf(wt);
      });
    },

    async diffStat(path, baseSha) {
      if (!SHA_RE.test(baseSha)) throw new WorkspaceError(`"${baseSha}" is not a commit sha`);
      const wt = resolveWorktree(path);
      return withLock(wt.repo.clone, async () => {
        await guard(wt);
        const out = await inWorktree(wt, [
          'diff', '--numstat', '-z', '--no-ext-diff', '--no-textconv', '--find-renames', baseSha, 'HEAD', '--',
        ]);
        return parseNumstat(out);
      });
    },

    async isDirty(path) {
      const wt = resolveWorktree(path);
      return withLock(wt.repo.clone, async () => {
        await guard(wt);
        // dirty: a submodule's own work tree is not inspected (that would run git inside a
        // repository the agent made); a moved submodule commit still counts.
        const out = await inWorktree(wt, [
          'status', '--porcelain=v1', '-z', '--untracked-files=all', '--ignore-submodules=dirty', '--no-renames',
        ]);
        return out !== '';
      });
    },

    async readFromDefaultBranch(repoName, file) {
      const rel = normaliseRepoPath(file);
      if (rel === undefined) throw new WorkspaceError(`"${file}" is not a path inside the repository`);
      const repo = repoPaths(repoName.owner, repoName.name);
      return withLock(repo.clone, async () => readBlob(repo, await defaultCommit(repo), rel, 0));
    },

    async listFromDefaultBranch(repoName, dir) {
      const rel = normaliseRepoPath(dir);
      if (rel === undefined) throw new WorkspaceError(`"${dir}" is not a path inside the repository`);
      const repo = repoPaths(repoName.owner, repoName.name);
      return withLock(repo.clone, async () => {
        const listing = await inClone(repo, ['--literal-pathspecs', 'ls-tree', '-z', '--full-tree', await defaultCommit(repo), '--', `${rel}/`]);
        return listing
          .split('\0')
          .map((entry) => /^[0-7]{6} blob [0-9a-f]+\t([\s\S]*)$/.exec(entry)?.[1])
          .filter((path): path is string => path !== undefined);
      });
    },

    async listAllFromDefaultBranch(repoName) {
      const repo = repoPaths(repoName.owner, repoName.name);
      return withLock(repo.clone, async () => {
        const listing = await inClone(repo, ['ls-tree', '-r', '-z', '--full-tree', await defaultCommit(repo)]);
        return listing
          .split('\0')
          .map((entry) => /^[0-7]{6} blob [0-9a-f]+\t([\s\S]*)$/.exec(entry)?.[1])
          .filter((path): path is string => path !== undefined);
      });
    },

    async diff(path, baseSha) {
      if (!SHA_RE.test(baseSha)) throw new WorkspaceError(`"${baseSha}" is not a commit sha`);
      const wt = resolveWorktree(path);
      return withLock(wt.repo.clone, async () => {
        await guard(wt);
        return inWorktree(wt, ['diff', '--text', '--no-ext-diff', '--no-textconv', '--no-color', '--find-renames', baseSha, 'HEAD', '--']);
      });
    },

    async readAtHead(path, file) {
      const rel = normaliseRepoPath(file);
      if (rel === undefined) throw new WorkspaceError(`"${file}" is not a path inside the repository`);
      const wt = resolveWorktree(path);
      return withLock(wt.repo.clone, async () => {
        await guard(wt);
        return readBlob(wt.repo, await headOf(wt), rel, 0);
      });
    },

    async commitDiff(repoName, sha) {
      if (!SHA_RE.test(sha)) throw new WorkspaceError(`"${sha}" is not a commit sha`);
      const repo = repoPaths(repoName.owner, repoName.name);
      return withLock(repo.clone, async () => {
        if (existsSync(join(repo.clone, 'HEAD'))) await restoreConfig(repo);
        if (!existsSync(join(repo.clone, 'HEAD')) || (await commitOf(repo, sha)) === undefined) await syncClone(repo);
        if ((await commitOf(repo, sha)) === undefined) throw new WorkspaceError(`${repo.fullName} has no commit ${sha} on any branch`);
        // A root commit is compared with the empty tree (of this repository's hash).
        const parent = (await commitOf(repo, `${sha}^1`)) ?? (await inClone(repo, ['hash-object', '-t', 'tree', '/dev/null'])).trim();
        const options = ['--no-ext-diff', '--no-textconv', '--find-renames', parent, sha, '--'];
        const diff = await inClone(repo, ['diff', '--text', '--no-color', ...options]);
        const stat = parseNumstat(await inClone(repo, ['diff', '--numstat', '-z', ...options]));
        return { diff, stat };
      });
    },

    async remove(itemId) {
      const path = worktreePath(itemId);
      const owners = clonesOnDisk().filter((repo) => existsSync(join(repo.clone, 'worktrees', String(itemId))));
      for (const repo of owners) {
        await withLock(repo.clone, async () => {
          rmSync(path, { recursive: true, force: true });
          rmSync(join(repo.clone, 'worktrees', String(itemId)), { recursive: true, force: true });
        });
      }
      rmSync(path, { recursive: true, force: true });
      for (const [key, wt] of known) if (wt.itemId === itemId) known.delete(key);
      log.info({ itemId }, 'removed the worktree');
    },
  };
}

/** `scheme://host[:port]` of an http(s) server URL as git will prompt for it; undefined for file://. */
function credentialOrigin(serverUrl: string): string | undefined {
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch {
    throw new WorkspaceError(`server URL ${JSON.stringify(serverUrl)} is not a URL`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new WorkspaceError('the server URL must not carry credentials (the token is sent through GIT_ASKPASS)');
  }
  if (url.protocol === 'file:') return undefined;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new WorkspaceError(`server URL scheme ${url.protocol} is not supported`);
  // As written, not as WHATWG normalises it: git prompts with the host and port it was given.
  const m = /^(https?):\/\/([^/?#]+)/i.exec(serverUrl);
  return m ? `${m[1]!.toLowerCase()}://${m[2]!}` : `${url.protocol}//${url.host}`;
}

/** A repository-relative path in git's form, or undefined when it is absolute or leaves the tree. */
function normaliseRepoPath(file: string): string | undefined {
  if (file === '' || file.includes('\0') || file.startsWith('/')) return undefined;
  const rel = posix.normalize(file).replace(/\/+$/, '');
  if (rel === '.' || rel === '..' || rel.startsWith('../') || rel.startsWith('/')) return undefined;
  return rel;
}

/** Parses `git diff --numstat -z` (renames as `a\tr\t\0old\0new\0`). */
export function parseNumstat(out: string): DiffStatEntry[] {
  const tokens = out.split('\0');
  const entries: DiffStatEntry[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const m = /^(\d+|-)\t(\d+|-)\t([\s\S]*)$/.exec(tokens[i] ?? '');
    if (!m) continue;
    const added = m[1] === '-' ? null : Number(m[1]);
    const removed = m[2] === '-' ? null : Number(m[2]);
    if (m[3] !== '') {
      entries.push({ path: m[3]!, added, removed });
      continue;
    }
    const oldPath = tokens[i + 1] ?? '';
    const path = tokens[i + 2] ?? '';
    i += 2;
    entries.push({ path, added, removed, oldPath });
  }
  return entries;
}

function quoteConfigValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function listDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

// Write then rename: replaces a symlink planted at `file` instead of writing through it.
function writeAtomically(file: string, content: string): void {
  const tmp = `${file}.nightshift-${randomUUID()}`;
  writeFileSync(tmp, content, { mode: 0o644 });
  renameSync(tmp, file);
}

/** The trimmed stdout, or undefined when git exited with 1 ("no such thing"). */
async function unlessExit1(call: Promise<string>): Promise<string | undefined> {
  try {
    return (await call).trim() || undefined;
  } catch (error) {
    if (error instanceof GitError && error.reason === 'exit' && error.exitCode === 1) return undefined;
    throw error;
  }
}
