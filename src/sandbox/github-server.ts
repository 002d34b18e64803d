/**
 * A fake GitHub REST API on 127.0.0.1, for tests and for the sandbox (`npm run sandbox`).
 *
 * The real Octokit talks to it over HTTP (`new Octokit({ auth, baseUrl: fake.baseUrl })`), so the
 * client's URL encoding, auth header, error classes and (where installed) retry plugins run for
 * real. Git data is not faked at all: branches, head SHAs, merges and branch deletions are read
 * from and written to real bare repositories (see tests/helpers/git-fixture.ts) on every request,
 * so a `git push` by the code under test is visible to the very next API call, and a merge really
 * changes the base branch that the next clone sees.
 *
 * Git runs synchronously inside each handler on purpose: a request is then one atomic step, so
 * two racing merge calls see each other's effect exactly as they would on GitHub (one wins).
 */
import { listenOnLoopback, shutdownServer } from './loopback-server.js';
import { createFaultPlan, type CallTarget } from './fault-plan.js';
import { waitForChange } from './wait-for-change.js';
import { EventEmitter } from 'node:events';
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { GitCommandError, runGit, type BareRepo } from './bare-repo.js';

/** A failure to inject into the next call(s) of a route, see `FakeGitHub.failNext`. */
export type GitHubFault =
  /** A 5xx with GitHub's JSON error body. @default status 500 */
  | { kind: 'server-error'; status?: number }
  /** Destroy the socket without any response (Octokit throws RequestError with status 500). */
  | { kind: 'reset' }
  /** Never answer, until the client aborts or close() is called. */
  | { kind: 'stall' }
  /** 403 "You have exceeded a secondary rate limit..." with `retry-after: 1`. */
  | { kind: 'secondary-rate-limit' }
  /** 403 "API rate limit exceeded" with `x-ratelimit-remaining: 0` and a reset 1 s ahead. */
  | { kind: 'rate-limit' }
  /** Any status; body @default GitHub's `{ message, documentation_url, status }` for it. */
  | { kind: 'status'; status: number; body?: unknown }
  /**
   * Perform the operation for real, then answer `status` instead of its result, or reset the
   * connection when status is omitted: the "unclear outcome" (the merge happened, the reply was lost).
   */
  | { kind: 'after'; status?: number };

/** One HTTP call the fake received, recorded before auth, routing or any fault is applied. */
export interface RecordedGitHubCall {
  /** 1-based arrival order across all routes. */
  seq: number;
  method: string;
  /** Raw path with query string, as sent (percent-encoding kept). */
  path: string;
  /** `${method} ${template}` with Octokit's parameter names, e.g. 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge'; the raw path for unknown routes. */
  route: string;
  /** Parsed JSON body; undefined when there was none. */
  // `any` on purpose: tests read fields of arbitrary request bodies without casts.
  body: any;
  /** Request headers, lower-case names (includes the real `authorization`: GitHub sees the token too). */
  headers: Record<string, string>;
  /** Status sent; 0 while in flight or when none was sent (reset, stall). */
  status: number;
  /** Date.now() when the request body had been read. */
  at: number;
}

/** A pull request as the fake stores it; objects in `FakeGitHub.pulls` are live. */
export interface FakePull {
  number: number;
  title: string;
  body: string;
  /** Head branch name (same repository; forks are not modelled). */
  head: string;
  /** Base branch name. */
  base: string;
  state: 'open' | 'closed';
  merged: boolean;
  merge_commit_sha: string | null;
  draft: boolean;
  /** The value the last single-PR GET answered (null before any GET, or while "computing"). */
  mergeable: boolean | null;
  comments: Array<{ id: number; body: string }>;
}

/** A FakePull with the repository it belongs to and the last head SHA GitHub saw. */
export interface FakePullInRepo extends FakePull {
  /** "owner/name". */
  repo: string;
  /** Live while open; frozen at close or merge, as on GitHub. */
  head_sha: string;
}

/** A check run as tests describe one; ids and timestamps are filled in by the fake. */
export interface FakeCheck {
  name: string;
  status: 'queued' | 'in_progress' | 'completed';
  /** Only meaningful when completed; @default null */
  conclusion?: 'success' | 'failure' | 'neutral' | 'cancelled' | 'skipped' | 'timed_out' | 'action_required' | null;
}

/** A commit status as tests describe one. */
export interface FakeStatus {
  context: string;
  state: 'success' | 'failure' | 'pending' | 'error';
}

/** Handle on a running fake GitHub REST API. */
export interface FakeGitHub {
  /** The only token the server accepts; anything else gets 401 "Bad credentials". */
  readonly token: string;
  /** e.g. "http://127.0.0.1:40123", no trailing slash; Octokit's `baseUrl`. */
  readonly baseUrl: string;
  /** Every call in arrival order, including failed, faulted and unauthenticated ones. */
  readonly calls: RecordedGitHubCall[];
  /** Every PR of every repo, in creation order. */
  readonly pulls: FakePullInRepo[];
  /**
   * Fail the next `times` calls (@default 1) of `route`, a template from GITHUB_ROUTES such as
   * 'POST /repos/{owner}/{repo}/pulls', or '*' for every route. Unknown routes throw (typo guard).
   */
  failNext(route: string, fault: GitHubFault, times?: number): void;
  /**
   * Fail once the `occurrence`-th call (@default 1, counted from now) of `route` (a template
   * from GITHUB_ROUTES; unknown ones throw) or of the calls `match` accepts. Checked before
   * `failNext`'s queues, and every routed call counts.
   */
  failAt(target: { route: string; occurrence?: number } | CallTarget<RecordedGitHubCall>, fault: GitHubFault): void;
  /** Replace the check runs reported for commit `sha` (all repos). */
  setChecks(sha: string, checks: FakeCheck[]): void;
  /** Replace the commit statuses reported for commit `sha` (all repos). */
  setStatuses(sha: string, statuses: FakeStatus[]): void;
  /** Protect `branch` of `fullName` with these required status check contexts ([] still protects). */
  setRequiredChecks(fullName: string, branch: string, contexts: string[]): void;
  /**
   * Script `mergeable` on single-PR GETs. `null` means GitHub is still computing: the next `times`
   * (@default 1) GETs answer null, later ones the real value (a git merge-tree of head into base).
   * A boolean with `times` answers that for the next `times` GETs; without `times` it sticks.
   * `false` (scripted or real conflict) also makes the merge call answer 405.
   * `repo` ("owner/name") is needed only when several repos have a PR with that number.
   */
  setMergeable(prNumber: number, value: boolean | null, times?: number, repo?: string): void;
  /** The recorded calls of one route template (e.g. 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge'). */
  callsOf(route: string): RecordedGitHubCall[];
  /**
   * Resolve with the first truthy `probe()` result. Re-checks on every recorded call and state
   * change, plus a 50 ms safety poll. A probe that throws rejects at once. @default timeoutMs 10000
   */
  waitFor<T>(probe: () => T | undefined | false | null, opts?: { timeoutMs?: number; what?: string }): Promise<T>;
  /** Drop stalled requests, close the server and its sockets. */
  close(): Promise<void>;
}

/** The routes the fake serves, with Octokit's parameter names; `failNext` and `callsOf` take these. */
export const GITHUB_ROUTES = [
  'GET /repos/{owner}/{repo}',
  'GET /repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks',
  'GET /repos/{owner}/{repo}/branches/{branch}',
  'GET /repos/{owner}/{repo}/pulls',
  'POST /repos/{owner}/{repo}/pulls',
  'GET /repos/{owner}/{repo}/pulls/{pull_number}',
  'PATCH /repos/{owner}/{repo}/pulls/{pull_number}',
  'GET /repos/{owner}/{repo}/pulls/{pull_number}/merge',
  'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge',
  'GET /repos/{owner}/{repo}/git/ref/{ref}',
  'DELETE /repos/{owner}/{repo}/git/refs/{ref}',
  'GET /repos/{owner}/{repo}/issues/{issue_number}/comments',
  'POST /repos/{owner}/{repo}/issues/{issue_number}/comments',
  'PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}',
  'GET /repos/{owner}/{repo}/commits/{ref}/check-runs',
  'GET /repos/{owner}/{repo}/commits/{ref}/status',
] as const;

/** One of the routes in GITHUB_ROUTES. */
export type GitHubRoute = (typeof GITHUB_ROUTES)[number];

const DEFAULT_TOKEN = 'github_pat_CANARY_github_token_0123456789';
const DEFAULT_LOGIN = 'nightshift-bot';
/** Where html_url links point by default; never resolvable, so nothing can accidentally reach the internet. */
const HTML_ROOT = 'http://fake-github.local';
const DOCS = 'https://docs.github.com/rest';
const DEFAULT_WAIT_MS = 10_000;
/** GitHub's pagination defaults. */
const DEFAULT_PER_PAGE = 30;
const MAX_PER_PAGE = 100;
const RATE_LIMIT = 5000;
/** Ids start far apart and high so code that mixes up PR numbers, comment ids and check ids shows. */
const FIRST_IDS = { pull: 2_000_000_001, comment: 3_000_000_001, check: 4_000_000_001, status: 5_000_000_001 } as const;
const GITHUB_IDENTITY = { GIT_COMMITTER_NAME: 'GitHub', GIT_COMMITTER_EMAIL: 'noreply@github.com' } as const;
const SECONDARY_RATE_LIMIT_MESSAGE =
  'You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:FAKE.';
const PASSING_CONCLUSIONS = new Set(['success', 'neutral', 'skipped']);
const FAILING_CONCLUSIONS = new Set(['failure', 'cancelled', 'timed_out', 'action_required']);

/** A GitHub error answer raised by a handler. */
class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface PullState extends FakePullInRepo {
  id: number;
  base_sha: string;
  user: string;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  merged_at: string | null;
  /** Scripted answers for the next single-PR GETs (setMergeable with null or `times`). */
  mergeableScript: Array<boolean | null>;
  /** Sticky scripted value (setMergeable with a boolean and no `times`). */
  mergeableFixed: boolean | undefined;
  stats: { commits: number; additions: number; deletions: number; changed_files: number };
  commentMeta: Map<number, { user: string; created_at: string }>;
}

interface RepoState {
  bare: BareRepo;
  id: number;
  nextNumber: number;
  /** branch → required contexts; present means protected. */
  protection: Map<string, string[]>;
}

interface Context {
  repo: RepoState;
  params: Record<string, string>;
  query: URLSearchParams;
  body: Record<string, unknown>;
  url: URL;
}

interface RouteDef {
  route: GitHubRoute;
  method: string;
  pattern: RegExp;
  names: string[];
  handler: (ctx: Context) => Reply;
}

/**
 * Start a fake GitHub REST API on 127.0.0.1 on a free port, serving `repos`.
 * @default token 'github_pat_CANARY_github_token_0123456789'
 * @default login 'nightshift-bot' (the token's user: PR author, commenter, merger)
 * @default htmlRoot 'http://fake-github.local' (the sandbox points it at its own PR pages)
 */
export async function startFakeGitHub(opts: { token?: string; login?: string; repos: BareRepo[]; htmlRoot?: string }): Promise<FakeGitHub> {
  const token = opts.token ?? DEFAULT_TOKEN;
  const htmlRoot = (opts.htmlRoot ?? HTML_ROOT).replace(/\/+$/, '');
  const login = opts.login ?? DEFAULT_LOGIN;
  const calls: RecordedGitHubCall[] = [];
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const announce = (): void => {
    changes.emit('change');
  };

  const repos = new Map<string, RepoState>();
  for (const [i, bare] of opts.repos.entries()) {
    repos.set(bare.fullName.toLowerCase(), { bare, id: 1_000_001 + i, nextNumber: 1, protection: new Map() });
  }
  const pulls: PullState[] = [];
  const checks = new Map<string, Array<FakeCheck & { id: number; at: string }>>();
  const statuses = new Map<string, Array<FakeStatus & { id: number; at: string }>>();
  const faults = new Map<string, GitHubFault[]>();
  const aimed = createFaultPlan<RecordedGitHubCall, GitHubFault>();
  const stalled = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  let nextPullId: number = FIRST_IDS.pull;
  let nextCommentId: number = FIRST_IDS.comment;
  let nextCheckId: number = FIRST_IDS.check;
  let nextStatusId: number = FIRST_IDS.status;
  let seq = 0;
  let closing: Promise<void> | undefined;
  let baseUrl = '';

  // ---- git -----------------------------------------------------------------------------

  const gitIn = (repo: RepoState, ...args: string[]): string => runGit(repo.bare.path, args).trim();

  /** Commit sha of a branch, undefined if it does not exist. */
  function branchSha(repo: RepoState, branch: string): string | undefined {
    if (!isValidBranchName(branch)) return undefined;
    try {
      return gitIn(repo, 'rev-parse', '--verify', '--quiet', `refs/heads/${branch}^{commit}`) || undefined;
    } catch {
      return undefined;
    }
  }

  function defaultBranch(repo: RepoState): string {
    return gitIn(repo, 'symbolic-ref', '--short', 'HEAD');
  }

  /** A branch name or full commit sha → commit sha, or 422 "No commit found" as GitHub answers. */
  function resolveCommit(repo: RepoState, ref: string): string {
    const viaBranch = branchSha(repo, ref);
    if (viaBranch) return viaBranch;
    if (/^[0-9a-f]{40}$/i.test(ref)) {
      try {
        runGit(repo.bare.path, ['cat-file', '-e', `${ref}^{commit}`]);
        return ref.toLowerCase();
      } catch {
        // fall through to GitHub's answer
      }
    }
    throw new ApiError(422, `No commit found for SHA: ${ref}`);
  }

  /** True if `ancestor` is reachable from `descendant`. */
  function isAncestor(repo: RepoState, ancestor: string, descendant: string): boolean {
    try {
      runGit(repo.bare.path, ['merge-base', '--is-ancestor', ancestor, descendant]);
      return true;
    } catch (err) {
      if (err instanceof GitCommandError && err.exitCode === 1) return false;
      throw err;
    }
  }

  /** The tree of merging `head` into `base`, or undefined on conflicts (git ≥ 2.38 merge-tree). */
  function mergeTree(repo: RepoState, base: string, head: string): string | undefined {
    try {
      return gitIn(repo, 'merge-tree', '--write-tree', base, head).split('\n')[0];
    } catch (err) {
      if (err instanceof GitCommandError && err.exitCode === 1) return undefined;
      throw err;
    }
  }

  function diffStats(repo: RepoState, base: string, head: string): PullState['stats'] {
    const commits = Number(gitIn(repo, 'rev-list', '--count', `${base}..${head}`));
    const shortstat = gitIn(repo, 'diff', '--shortstat', `${base}...${head}`);
    const num = (re: RegExp): number => Number(re.exec(shortstat)?.[1] ?? 0);
    return {
      commits,
      changed_files: num(/(\d+) files? changed/),
      additions: num(/(\d+) insertions?\(\+\)/),
      deletions: num(/(\d+) deletions?\(-\)/),
    };
  }

  // ---- state ---------------------------------------------------------------------------

  function repoOf(pull: PullState): RepoState {
    return repos.get(pull.repo.toLowerCase())!;
  }

  /**
   * Bring an open PR up to date with its branches, as GitHub does on push: head and base SHAs
   * follow the branches; a PR whose head branch is gone is closed.
   */
  function refresh(pull: PullState): void {
    if (pull.state !== 'open') return;
    const repo = repoOf(pull);
    const head = branchSha(repo, pull.head);
    if (!head) {
      pull.state = 'closed';
      pull.closed_at = pull.updated_at = isoNow();
      announce();
      return;
    }
    const base = branchSha(repo, pull.base) ?? pull.base_sha;
    if (head !== pull.head_sha || base !== pull.base_sha) {
      pull.head_sha = head;
      pull.base_sha = base;
      pull.stats = diffStats(repo, base, head);
      announce();
    }
  }

  function findPull(repo: RepoState, numberParam: string | undefined): PullState {
    const number = Number(numberParam);
    const pull = pulls.find((p) => p.repo === repo.bare.fullName && p.number === number);
    if (!pull) throw new ApiError(404, 'Not Found');
    refresh(pull);
    return pull;
  }

  /** The real mergeability (no conflicts between head and base), ignoring any script. */
  function realMergeable(pull: PullState): boolean {
    return mergeTree(repoOf(pull), pull.base_sha, pull.head_sha) !== undefined;
  }

  /** Required contexts of the PR's base branch that are not passing on its head commit. */
  function unmetRequired(pull: PullState): string[] {
    const required = repoOf(pull).protection.get(pull.base) ?? [];
    return required.filter((context) => !isPassing(pull.head_sha, context));
  }

  function isPassing(sha: string, context: string): boolean {
    const run = (checks.get(sha) ?? []).find((c) => c.name === context);
    if (run?.status === 'completed' && PASSING_CONCLUSIONS.has(run.conclusion ?? '')) return true;
    return (statuses.get(sha) ?? []).some((s) => s.context === context && s.state === 'success');
  }

  function anyFailing(sha: string): boolean {
    return (
      (checks.get(sha) ?? []).some((c) => c.status === 'completed' && FAILING_CONCLUSIONS.has(c.conclusion ?? '')) ||
      (statuses.get(sha) ?? []).some((s) => s.state === 'failure' || s.state === 'error')
    );
  }

  // ---- JSON shapes ---------------------------------------------------------------------

  const userJson = (name: string): Record<string, unknown> => ({
    login: name,
    id: 9_000_000 + [...name].reduce((sum, ch) => sum + ch.charCodeAt(0), 0),
    node_id: `U_${name}`,
    type: name === 'github-actions[bot]' ? 'Bot' : 'User',
    site_admin: false,
    html_url: `${htmlRoot}/${name}`,
  });

  const apiUrl = (repo: RepoState, rest = ''): string => `${baseUrl}/repos/${repo.bare.fullName}${rest}`;

  function repoJson(repo: RepoState, full: boolean): Record<string, unknown> {
    const { bare } = repo;
    const lite = {
      id: repo.id,
      node_id: `R_${repo.id}`,
      name: bare.name,
      full_name: bare.fullName,
      owner: userJson(bare.owner),
      private: true,
      html_url: `${htmlRoot}/${bare.fullName}`,
      url: apiUrl(repo),
    };
    if (!full) return lite;
    return {
      ...lite,
      clone_url: `${bare.serverUrl}/${bare.owner}/${bare.name}.git`,
      default_branch: defaultBranch(repo),
      visibility: 'private',
      archived: false,
      disabled: false,
      fork: false,
      allow_merge_commit: true,
      allow_squash_merge: true,
      allow_rebase_merge: true,
      delete_branch_on_merge: false,
      permissions: { admin: true, maintain: true, push: true, triage: true, pull: true },
    };
  }

  function pullJson(pull: PullState, detailed: boolean): Record<string, unknown> {
    const repo = repoOf(pull);
    const owner = repo.bare.owner;
    const side = (ref: string, sha: string): Record<string, unknown> => ({
      label: `${owner}:${ref}`,
      ref,
      sha,
      user: userJson(owner),
      repo: repoJson(repo, false),
    });
    const json: Record<string, unknown> = {
      url: apiUrl(repo, `/pulls/${pull.number}`),
      id: pull.id,
      node_id: `PR_${pull.id}`,
      html_url: `${htmlRoot}/${repo.bare.fullName}/pull/${pull.number}`,
      number: pull.number,
      state: pull.state,
      locked: false,
      title: pull.title,
      user: userJson(pull.user),
      body: pull.body === '' ? null : pull.body,
      labels: [],
      created_at: pull.created_at,
      updated_at: pull.updated_at,
      closed_at: pull.closed_at,
      merged_at: pull.merged_at,
      merge_commit_sha: pull.merge_commit_sha,
      draft: pull.draft,
      head: side(pull.head, pull.head_sha),
      base: side(pull.base, pull.base_sha),
      author_association: 'OWNER',
      auto_merge: null,
    };
    // As on GitHub, the list endpoint leaves out everything that is expensive to compute.
    if (!detailed) return json;
    const mergeable = answerMergeable(pull);
    return {
      ...json,
      merged: pull.merged,
      mergeable,
      rebaseable: mergeable,
      mergeable_state: mergeableState(pull, mergeable),
      merged_by: pull.merged ? userJson(pull.user) : null,
      comments: pull.comments.length,
      review_comments: 0,
      maintainer_can_modify: false,
      ...pull.stats,
    };
  }

  /** What a single-PR GET says about mergeability now; consumes one scripted answer. */
  function answerMergeable(pull: PullState): boolean | null {
    let value: boolean | null;
    if (pull.state !== 'open') {
      value = null; // GitHub stops computing mergeability for closed and merged PRs
    } else if (pull.mergeableScript.length > 0) {
      value = pull.mergeableScript.shift()!;
    } else {
      value = pull.mergeableFixed ?? realMergeable(pull);
    }
    pull.mergeable = value;
    return value;
  }

  function mergeableState(pull: PullState, mergeable: boolean | null): string {
    if (pull.state !== 'open' || mergeable === null) return 'unknown';
    if (!mergeable) return 'dirty';
    if (pull.draft) return 'draft';
    if (unmetRequired(pull).length > 0) return 'blocked';
    if (anyFailing(pull.head_sha)) return 'unstable';
    return 'clean';
  }

  function commentJson(repo: RepoState, pull: PullState, comment: { id: number; body: string }): Record<string, unknown> {
    const meta = pull.commentMeta.get(comment.id) ?? { user: pull.user, created_at: pull.created_at };
    return {
      id: comment.id,
      node_id: `IC_${comment.id}`,
      url: apiUrl(repo, `/issues/comments/${comment.id}`),
      html_url: `${htmlRoot}/${repo.bare.fullName}/pull/${pull.number}#issuecomment-${comment.id}`,
      issue_url: apiUrl(repo, `/issues/${pull.number}`),
      body: comment.body,
      user: userJson(meta.user),
      created_at: meta.created_at,
      updated_at: meta.created_at,
      author_association: 'OWNER',
    };
  }

  /** A page of `items` plus GitHub's Link header (absolute URLs on this server). */
  function paginate<T>(items: T[], ctx: Context): { page: T[]; headers: Record<string, string> } {
    const perPage = clamp(toInt(ctx.query.get('per_page')) ?? DEFAULT_PER_PAGE, 1, MAX_PER_PAGE);
    const pageNo = Math.max(toInt(ctx.query.get('page')) ?? 1, 1);
    const last = Math.max(Math.ceil(items.length / perPage), 1);
    const link = (n: number, rel: string): string => {
      const u = new URL(`${baseUrl}${ctx.url.pathname}${ctx.url.search}`);
      u.searchParams.set('per_page', String(perPage));
      u.searchParams.set('page', String(n));
      return `<${u.href}>; rel="${rel}"`;
    };
    const links: string[] = [];
    if (pageNo > 1) links.push(link(1, 'first'), link(Math.min(pageNo - 1, last), 'prev'));
    if (pageNo < last) links.push(link(pageNo + 1, 'next'), link(last, 'last'));
    return {
      page: items.slice((pageNo - 1) * perPage, pageNo * perPage),
      headers: links.length > 0 ? { link: links.join(', ') } : {},
    };
  }

  // ---- handlers ------------------------------------------------------------------------

  function getRepo(ctx: Context): Reply {
    return { status: 200, body: repoJson(ctx.repo, true) };
  }

  function getBranch(ctx: Context): Reply {
    const { repo } = ctx;
    const name = ctx.params.branch ?? '';
    const sha = branchSha(repo, name);
    if (!sha) throw new ApiError(404, 'Branch not found');
    const [tree, authorName, authorEmail, date, ...message] = gitIn(
      repo,
      'show',
      '-s',
      '--format=%T%n%an%n%ae%n%aI%n%B',
      sha,
    ).split('\n');
    const required = repo.protection.get(name);
    return {
      status: 200,
      body: {
        name,
        commit: {
          sha,
          node_id: `C_${sha}`,
          url: apiUrl(repo, `/commits/${sha}`),
          commit: {
            message: message.join('\n').trim(),
            tree: { sha: tree },
            author: { name: authorName, email: authorEmail, date },
          },
        },
        protected: required !== undefined,
        protection: {
          enabled: required !== undefined,
          required_status_checks: { enforcement_level: required ? 'non_admins' : 'off', contexts: required ?? [], checks: [] },
        },
        _links: { self: apiUrl(repo, `/branches/${name}`), html: `${htmlRoot}/${repo.bare.fullName}/tree/${name}` },
      },
    };
  }

  function getRequiredChecks(ctx: Context): Reply {
    const { repo } = ctx;
    const branch = ctx.params.branch ?? '';
    if (!branchSha(repo, branch)) throw new ApiError(404, 'Branch not found');
    const contexts = repo.protection.get(branch);
    if (!contexts) throw new ApiError(404, 'Branch not protected');
    return {
      status: 200,
      body: {
        url: apiUrl(repo, `/branches/${branch}/protection/required_status_checks`),
        strict: false,
        contexts: [...contexts],
        checks: contexts.map((context) => ({ context, app_id: null })),
        contexts_url: apiUrl(repo, `/branches/${branch}/protection/required_status_checks/contexts`),
      },
    };
  }

  function listPulls(ctx: Context): Reply {
    const { repo, query } = ctx;
    const state = query.get('state') ?? 'open';
    if (!['open', 'closed', 'all'].includes(state)) throw validationFailed([{ resource: 'Issue', field: 'state', code: 'invalid' }]);
    const base = query.get('base');
    // GitHub only honours head in the form "owner:branch"; a bare branch name is silently ignored
    // and every PR comes back, a classic bug this fake reproduces on purpose.
    const headFilter = parseHeadFilter(query.get('head'));
    const sort = query.get('sort') ?? 'created';
    const direction = query.get('direction') ?? (sort === 'created' ? 'desc' : 'asc');
    const matching = pulls
      .filter((p) => p.repo === repo.bare.fullName)
      .map((p) => {
        refresh(p);
        return p;
      })
      .filter((p) => state === 'all' || p.state === state)
      .filter((p) => base === null || p.base === base)
      .filter(
        (p) => !headFilter || (headFilter.owner.toLowerCase() === repo.bare.owner.toLowerCase() && p.head === headFilter.branch),
      );
    const key = (p: PullState): string => (sort === 'updated' ? p.updated_at : p.created_at);
    matching.sort((a, b) => {
      const order = key(a) === key(b) ? a.number - b.number : key(a) < key(b) ? -1 : 1;
      return direction === 'asc' ? order : -order;
    });
    const { page, headers } = paginate(matching, ctx);
    return { status: 200, body: page.map((p) => pullJson(p, false)), headers };
  }

  function createPull(ctx: Context): Reply {
    const { repo, body } = ctx;
    const title = typeof body.title === 'string' ? body.title : '';
    if (title.trim() === '') throw validationFailed([{ resource: 'PullRequest', code: 'missing_field', field: 'title' }]);
    if (typeof body.base !== 'string' || body.base === '') {
      throw validationFailed([{ resource: 'PullRequest', code: 'missing_field', field: 'base' }]);
    }
    if (typeof body.head !== 'string' || body.head === '') {
      throw validationFailed([{ resource: 'PullRequest', code: 'missing_field', field: 'head' }]);
    }
    const base = body.base;
    const [headOwner, headBranch] = body.head.includes(':')
      ? [body.head.slice(0, body.head.indexOf(':')), body.head.slice(body.head.indexOf(':') + 1)]
      : [repo.bare.owner, body.head];
    const baseSha = branchSha(repo, base);
    if (!baseSha) throw validationFailed([{ resource: 'PullRequest', field: 'base', code: 'invalid' }]);
    const headSha = headOwner.toLowerCase() === repo.bare.owner.toLowerCase() ? branchSha(repo, headBranch) : undefined;
    if (!headSha) throw validationFailed([{ resource: 'PullRequest', field: 'head', code: 'invalid' }]);
    for (const other of pulls) refresh(other);
    const duplicate = pulls.find(
      (p) => p.repo === repo.bare.fullName && p.state === 'open' && p.head === headBranch && p.base === base,
    );
    if (duplicate) {
      throw validationFailed([
        { resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${repo.bare.owner}:${headBranch}.` },
      ]);
    }
    if (isAncestor(repo, headSha, baseSha)) {
      throw validationFailed([{ resource: 'PullRequest', code: 'custom', message: `No commits between ${base} and ${headBranch}` }]);
    }
    const now = isoNow();
    const pull: PullState = {
      repo: repo.bare.fullName,
      number: repo.nextNumber++,
      id: nextPullId++,
      title,
      body: typeof body.body === 'string' ? body.body : '',
      head: headBranch,
      base,
      head_sha: headSha,
      base_sha: baseSha,
      state: 'open',
      merged: false,
      merge_commit_sha: null,
      draft: body.draft === true,
      mergeable: null,
      comments: [],
      user: login,
      created_at: now,
      updated_at: now,
      closed_at: null,
      merged_at: null,
      mergeableScript: [],
      mergeableFixed: undefined,
      stats: diffStats(repo, baseSha, headSha),
      commentMeta: new Map(),
    };
    pulls.push(pull);
    return {
      status: 201,
      body: pullJson(pull, true),
      headers: { location: apiUrl(repo, `/pulls/${pull.number}`) },
    };
  }

  function getPull(ctx: Context): Reply {
    return { status: 200, body: pullJson(findPull(ctx.repo, ctx.params.pull_number), true) };
  }

  function updatePull(ctx: Context): Reply {
    const { repo, body } = ctx;
    const pull = findPull(repo, ctx.params.pull_number);
    if (body.state !== undefined && body.state !== 'open' && body.state !== 'closed') {
      throw validationFailed([{ resource: 'PullRequest', field: 'state', code: 'invalid' }]);
    }
    if (typeof body.base === 'string' && body.base !== pull.base && !branchSha(repo, body.base)) {
      throw validationFailed([{ resource: 'PullRequest', field: 'base', code: 'invalid' }]);
    }
    if (body.state === 'open' && pull.state === 'closed') {
      if (pull.merged) throw validationFailed([{ resource: 'PullRequest', code: 'custom', message: 'Cannot reopen a merged pull request' }]);
      if (!branchSha(repo, pull.head)) {
        throw validationFailed([{ resource: 'PullRequest', code: 'custom', message: 'state cannot be changed. The head branch was deleted.' }]);
      }
      const other = pulls.find((p) => p !== pull && p.repo === pull.repo && p.state === 'open' && p.head === pull.head && p.base === pull.base);
      if (other) {
        throw validationFailed([
          { resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${repo.bare.owner}:${pull.head}.` },
        ]);
      }
    }
    if (typeof body.title === 'string') pull.title = body.title;
    if (typeof body.body === 'string') pull.body = body.body;
    if (body.body === null) pull.body = '';
    if (typeof body.base === 'string') pull.base = body.base;
    if (body.state === 'closed' && pull.state === 'open') {
      pull.state = 'closed';
      pull.closed_at = isoNow();
    } else if (body.state === 'open' && pull.state === 'closed') {
      pull.state = 'open';
      pull.closed_at = null;
    }
    pull.updated_at = isoNow();
    refresh(pull);
    return { status: 200, body: pullJson(pull, true) };
  }

  function checkMerged(ctx: Context): Reply {
    const pull = findPull(ctx.repo, ctx.params.pull_number);
    if (!pull.merged) throw new ApiError(404, 'Not Found');
    return { status: 204 };
  }

  function mergePull(ctx: Context): Reply {
    const { repo, body } = ctx;
    const pull = findPull(repo, ctx.params.pull_number);
    const method = body.merge_method ?? 'merge';
    if (method !== 'merge' && method !== 'squash' && method !== 'rebase') {
      throw validationFailed([{ resource: 'PullRequest', field: 'merge_method', code: 'invalid' }]);
    }
    if (pull.state !== 'open') throw new ApiError(405, 'Pull Request is not mergeable');
    if (pull.draft) throw new ApiError(405, 'Pull Request is still a draft');
    if (typeof body.sha === 'string' && body.sha !== pull.head_sha) {
      throw new ApiError(409, 'Head branch was modified. Review and try the merge again.');
    }
    const scripted = pull.mergeableScript.find((v) => v !== null) ?? pull.mergeableFixed;
    const tree = mergeTree(repo, pull.base_sha, pull.head_sha);
    if (scripted === false || tree === undefined) throw new ApiError(405, 'Pull Request is not mergeable');
    const unmet = unmetRequired(pull);
    if (unmet.length > 0) {
      throw new ApiError(405, `Required status check "${unmet[0]}" is expected.`, {
        documentation_url: 'https://docs.github.com/articles/about-protected-branches',
      });
    }
    const subjects = gitIn(repo, 'log', '--reverse', '--format=* %s', `${pull.base_sha}..${pull.head_sha}`);
    const title =
      typeof body.commit_title === 'string' && body.commit_title !== ''
        ? body.commit_title
        : method === 'merge'
          ? `Merge pull request #${pull.number} from ${repo.bare.owner}/${pull.head}`
          : `${pull.title} (#${pull.number})`;
    const message =
      typeof body.commit_message === 'string' ? body.commit_message : method === 'merge' ? pull.title : subjects;
    // Rebase is modelled as squash: git 2.39 merge-tree cannot replay commits one by one, and
    // nothing here depends on the base history having the individual commits.
    const parents = method === 'merge' ? ['-p', pull.base_sha, '-p', pull.head_sha] : ['-p', pull.base_sha];
    const args = ['commit-tree', tree, ...parents, '-m', title, ...(message !== '' ? ['-m', message] : [])];
    const mergeSha = runGit(repo.bare.path, args, {
      env: { ...GITHUB_IDENTITY, GIT_AUTHOR_NAME: pull.user, GIT_AUTHOR_EMAIL: `${pull.user}@users.noreply.github.com` },
    }).trim();
    try {
      // Compare-and-swap: a push to base since we read it makes this fail instead of losing it.
      runGit(repo.bare.path, ['update-ref', `refs/heads/${pull.base}`, mergeSha, pull.base_sha]);
    } catch (err) {
      if (err instanceof GitCommandError) throw new ApiError(405, 'Base branch was modified. Review and try the merge again.');
      throw err;
    }
    const now = isoNow();
    pull.merged = true;
    pull.state = 'closed';
    pull.merge_commit_sha = mergeSha;
    pull.merged_at = pull.closed_at = pull.updated_at = now;
    return { status: 200, body: { sha: mergeSha, merged: true, message: 'Pull Request successfully merged' } };
  }

  function getRef(ctx: Context): Reply {
    const { repo } = ctx;
    const ref = ctx.params.ref ?? '';
    const sha = ref.startsWith('heads/') ? branchSha(repo, ref.slice('heads/'.length)) : undefined;
    if (!sha) throw new ApiError(404, 'Not Found');
    return {
      status: 200,
      body: { ref: `refs/${ref}`, node_id: `REF_${sha}`, url: apiUrl(repo, `/git/refs/${ref}`), object: { sha, type: 'commit', url: apiUrl(repo, `/git/commits/${sha}`) } },
    };
  }

  function deleteRef(ctx: Context): Reply {
    const { repo } = ctx;
    const ref = ctx.params.ref ?? '';
    const branch = ref.startsWith('heads/') ? ref.slice('heads/'.length) : undefined;
    const sha = branch !== undefined ? branchSha(repo, branch) : undefined;
    if (branch === undefined || !sha) throw new ApiError(422, 'Reference does not exist');
    runGit(repo.bare.path, ['update-ref', '-d', `refs/heads/${branch}`, sha]);
    // GitHub closes open PRs whose head branch is deleted.
    for (const pull of pulls) if (pull.repo === repo.bare.fullName) refresh(pull);
    return { status: 204 };
  }

  function listComments(ctx: Context): Reply {
    const pull = findPull(ctx.repo, ctx.params.issue_number);
    const { page, headers } = paginate(pull.comments, ctx);
    return { status: 200, body: page.map((c) => commentJson(ctx.repo, pull, c)), headers };
  }

  function createComment(ctx: Context): Reply {
    const pull = findPull(ctx.repo, ctx.params.issue_number);
    if (typeof ctx.body.body !== 'string' || ctx.body.body === '') {
      throw validationFailed([{ resource: 'IssueComment', code: 'missing_field', field: 'body' }]);
    }
    const comment = { id: nextCommentId++, body: ctx.body.body };
    pull.comments.push(comment);
    pull.commentMeta.set(comment.id, { user: login, created_at: isoNow() });
    pull.updated_at = isoNow();
    return { status: 201, body: commentJson(ctx.repo, pull, comment) };
  }

  function updateComment(ctx: Context): Reply {
    const id = Number(ctx.params.comment_id);
    for (const pull of pulls) {
      if (pull.repo !== ctx.repo.bare.fullName) continue;
      const comment = pull.comments.find((c) => c.id === id);
      if (!comment) continue;
      if (typeof ctx.body.body !== 'string' || ctx.body.body === '') {
        throw validationFailed([{ resource: 'IssueComment', code: 'missing_field', field: 'body' }]);
      }
      comment.body = ctx.body.body;
      pull.updated_at = isoNow();
      return { status: 200, body: commentJson(ctx.repo, pull, comment) };
    }
    throw new ApiError(404, 'Not Found');
  }

  function listCheckRuns(ctx: Context): Reply {
    const { repo, query } = ctx;
    const sha = resolveCommit(repo, ctx.params.ref ?? '');
    const name = query.get('check_name');
    const status = query.get('status');
    const runs = (checks.get(sha) ?? [])
      .filter((c) => name === null || c.name === name)
      .filter((c) => status === null || c.status === status);
    const { page, headers } = paginate(runs, ctx);
    return {
      status: 200,
      headers,
      body: {
        total_count: runs.length,
        check_runs: page.map((c) => ({
          id: c.id,
          node_id: `CR_${c.id}`,
          head_sha: sha,
          external_id: '',
          url: apiUrl(repo, `/check-runs/${c.id}`),
          html_url: `${htmlRoot}/${repo.bare.fullName}/runs/${c.id}`,
          details_url: `${htmlRoot}/${repo.bare.fullName}/runs/${c.id}`,
          name: c.name,
          status: c.status,
          conclusion: c.status === 'completed' ? (c.conclusion ?? null) : null,
          started_at: c.at,
          completed_at: c.status === 'completed' ? c.at : null,
          output: { title: null, summary: null, text: null, annotations_count: 0 },
          check_suite: { id: c.id },
          app: { id: 15368, slug: 'github-actions', name: 'GitHub Actions' },
          pull_requests: [],
        })),
      },
    };
  }

  function combinedStatus(ctx: Context): Reply {
    const { repo } = ctx;
    const sha = resolveCommit(repo, ctx.params.ref ?? '');
    const list = statuses.get(sha) ?? [];
    return {
      status: 200,
      body: {
        state: combinedState(list.map((s) => s.state)),
        statuses: list.map((s) => ({
          url: apiUrl(repo, `/statuses/${sha}`),
          id: s.id,
          node_id: `SC_${s.id}`,
          state: s.state,
          description: null,
          target_url: null,
          context: s.context,
          created_at: s.at,
          updated_at: s.at,
        })),
        sha,
        total_count: list.length,
        repository: repoJson(repo, false),
        commit_url: apiUrl(repo, `/commits/${sha}`),
        url: apiUrl(repo, `/commits/${sha}/status`),
      },
    };
  }

  const handlers: Record<GitHubRoute, (ctx: Context) => Reply> = {
    'GET /repos/{owner}/{repo}': getRepo,
    'GET /repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks': getRequiredChecks,
    'GET /repos/{owner}/{repo}/branches/{branch}': getBranch,
    'GET /repos/{owner}/{repo}/pulls': listPulls,
    'POST /repos/{owner}/{repo}/pulls': createPull,
    'GET /repos/{owner}/{repo}/pulls/{pull_number}': getPull,
    'PATCH /repos/{owner}/{repo}/pulls/{pull_number}': updatePull,
    'GET /repos/{owner}/{repo}/pulls/{pull_number}/merge': checkMerged,
    'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge': mergePull,
    'GET /repos/{owner}/{repo}/git/ref/{ref}': getRef,
    'DELETE /repos/{owner}/{repo}/git/refs/{ref}': deleteRef,
    'GET /repos/{owner}/{repo}/issues/{issue_number}/comments': listComments,
    'POST /repos/{owner}/{repo}/issues/{issue_number}/comments': createComment,
    'PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}': updateComment,
    'GET /repos/{owner}/{repo}/commits/{ref}/check-runs': listCheckRuns,
    'GET /repos/{owner}/{repo}/commits/{ref}/status': combinedStatus,
  };
  const routeDefs: RouteDef[] = GITHUB_ROUTES.map((route) => ({ route, handler: handlers[route], ...compileRoute(route) }));

  // ---- HTTP ----------------------------------------------------------------------------

  function takeFault(route: string): GitHubFault | undefined {
    for (const key of [route, '*']) {
      const queue = faults.get(key);
      if (queue && queue.length > 0) return queue.shift();
    }
    return undefined;
  }

  function rateHeaders(): Record<string, string> {
    const used = Math.min(seq, RATE_LIMIT - 1);
    return {
      'x-ratelimit-limit': String(RATE_LIMIT),
      'x-ratelimit-remaining': String(RATE_LIMIT - used),
      'x-ratelimit-used': String(used),
      'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 3600),
      'x-ratelimit-resource': 'core',
    };
  }

  function send(call: RecordedGitHubCall, res: ServerResponse, answer: Reply): void {
    if (res.writableEnded || res.destroyed) return;
    const headers: Record<string, string | number> = {
      'x-github-api-version-selected': '2022-11-28',
      'x-github-media-type': 'github.v3; format=json',
      'x-github-request-id': `FAKE:${call.seq}`,
      ...rateHeaders(),
      ...answer.headers,
    };
    call.status = answer.status;
    if (answer.body === undefined || answer.status === 204) {
      res.writeHead(answer.status, headers);
      res.end();
    } else {
      const payload = JSON.stringify(answer.body);
      headers['content-type'] = 'application/json; charset=utf-8';
      headers['content-length'] = Buffer.byteLength(payload);
      res.writeHead(answer.status, headers);
      res.end(payload);
    }
    announce();
  }

  function faultReply(fault: Exclude<GitHubFault, { kind: 'reset' | 'stall' | 'after' }>): Reply {
    switch (fault.kind) {
      case 'server-error': {
        const status = fault.status ?? 500;
        return { status, body: errorBody(status, status === 500 ? 'Server Error' : (STATUS_CODES[status] ?? 'Server Error')) };
      }
      case 'secondary-rate-limit':
        return {
          status: 403,
          body: {
            message: SECONDARY_RATE_LIMIT_MESSAGE,
            documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits',
            status: '403',
          },
          headers: { 'retry-after': '1' },
        };
      case 'rate-limit':
        return {
          status: 403,
          body: {
            message: 'API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID 0000:FAKE.',
            documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit',
            status: '403',
          },
          headers: {
            'x-ratelimit-remaining': '0',
            'x-ratelimit-used': String(RATE_LIMIT),
            'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 1),
          },
        };
      case 'status':
        return { status: fault.status, body: fault.body ?? errorBody(fault.status, STATUS_CODES[fault.status] ?? 'Error') };
    }
  }

  function dropConnection(call: RecordedGitHubCall, req: IncomingMessage): void {
    call.status = 0;
    req.socket.destroy();
    announce();
  }

  function stall(res: ServerResponse): void {
    stalled.add(res);
    res.on('close', () => stalled.delete(res));
    announce();
  }

  function runHandler(def: RouteDef, ctx: Omit<Context, 'repo'>): Reply {
    try {
      const repo = repos.get(`${ctx.params.owner ?? ''}/${ctx.params.repo ?? ''}`.toLowerCase());
      if (!repo) throw new ApiError(404, 'Not Found');
      return def.handler({ ...ctx, repo });
    } catch (err) {
      if (err instanceof ApiError) {
        return { status: err.status, body: { ...errorBody(err.status, err.message), ...err.extra } };
      }
      // A bug in the fake itself: make it loud in the test rather than a silent hang.
      return { status: 500, body: errorBody(500, `Fake GitHub crashed: ${err instanceof Error ? err.stack : String(err)}`) };
    } finally {
      announce();
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toUpperCase();
    const raw = await readBody(req).catch(() => Buffer.alloc(0));
    if (closing) {
      req.socket.destroy();
      return;
    }
    let body: unknown;
    let badJson = false;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8')) as unknown;
      } catch {
        badJson = true;
        body = raw.toString('utf8').slice(0, 200);
      }
    }
    let def: RouteDef | undefined;
    let params: Record<string, string> = {};
    for (const candidate of routeDefs) {
      if (candidate.method !== method) continue;
      const match = candidate.pattern.exec(url.pathname);
      if (!match) continue;
      def = candidate;
      params = Object.fromEntries(candidate.names.map((n, i) => [n, safeDecode(match[i + 1] ?? '')]));
      break;
    }
    // Recorded before anything can fail, so tests can count attempts (retries included).
    const call: RecordedGitHubCall = {
      seq: ++seq,
      method,
      path: `${url.pathname}${url.search}`,
      route: def ? def.route : `${method} ${url.pathname}`,
      body,
      headers: flattenHeaders(req.headers),
      status: 0,
      at: Date.now(),
    };
    calls.push(call);
    announce();

    const auth = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!auth) {
      send(call, res, { status: 401, body: errorBody(401, 'Requires authentication') });
      return;
    }
    if (auth[1] !== token) {
      send(call, res, { status: 401, body: errorBody(401, 'Bad credentials') });
      return;
    }
    if (!def) {
      send(call, res, { status: 404, body: errorBody(404, 'Not Found') });
      return;
    }
    if (badJson) {
      send(call, res, { status: 400, body: errorBody(400, 'Problems parsing JSON') });
      return;
    }
    const fault = aimed.take(call) ?? takeFault(def.route);
    const ctx = {
      params,
      query: url.searchParams,
      body: body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {},
      url,
    };
    if (!fault) {
      send(call, res, runHandler(def, ctx));
      return;
    }
    switch (fault.kind) {
      case 'reset':
        dropConnection(call, req);
        return;
      case 'stall':
        stall(res);
        return;
      case 'after':
        runHandler(def, ctx);
        if (fault.status === undefined) dropConnection(call, req);
        else send(call, res, { status: fault.status, body: errorBody(fault.status, STATUS_CODES[fault.status] ?? 'Server Error') });
        return;
      default:
        send(call, res, faultReply(fault));
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent || res.destroyed) return;
      const payload = JSON.stringify(errorBody(500, `Fake GitHub crashed: ${String(err)}`));
      res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
      res.end(payload);
    });
  });
  baseUrl = await listenOnLoopback(server, sockets);

  async function close(): Promise<void> {
    closing ??= (async () => {
      await shutdownServer(server, sockets, stalled, changes);
    })();
    return closing;
  }

  function waitFor<T>(
    probe: () => T | undefined | false | null,
    waitOpts: { timeoutMs?: number; what?: string } = {},
  ): Promise<T> {
    return waitForChange(changes, probe, {
      timeoutMs: waitOpts.timeoutMs ?? DEFAULT_WAIT_MS,
      ...(waitOpts.what === undefined ? {} : { what: waitOpts.what }),
      describe: () => describeCalls(calls),
    });
  }

  function pullByNumber(prNumber: number, repo: string | undefined): PullState {
    const found = pulls.filter((p) => p.number === prNumber && (repo === undefined || p.repo.toLowerCase() === repo.toLowerCase()));
    if (found.length === 0) throw new Error(`setMergeable: no PR #${prNumber}${repo ? ` in ${repo}` : ''}`);
    if (found.length > 1) throw new Error(`setMergeable: PR #${prNumber} exists in several repos; pass the repo`);
    return found[0]!;
  }

  return {
    token,
    get baseUrl() {
      return baseUrl;
    },
    get calls() {
      return calls;
    },
    get pulls(): FakePullInRepo[] {
      for (const pull of pulls) refresh(pull);
      return pulls;
    },
    failAt(target, fault) {
      if ('route' in target) {
        const { route, occurrence } = target;
        if (!(GITHUB_ROUTES as readonly string[]).includes(route)) throw new Error(`failAt: unknown route "${route}"; known: ${GITHUB_ROUTES.join(', ')}`);
        aimed.add({ match: (call) => call.route === route, ...(occurrence === undefined ? {} : { occurrence }) }, fault);
      } else {
        aimed.add(target, fault);
      }
    },
    failNext(route, fault, times = 1) {
      if (route !== '*' && !(GITHUB_ROUTES as readonly string[]).includes(route)) {
        throw new Error(`failNext: unknown route "${route}"; known: '*', ${GITHUB_ROUTES.join(', ')}`);
      }
      const queue = faults.get(route) ?? [];
      for (let i = 0; i < times; i++) queue.push(fault);
      faults.set(route, queue);
    },
    setChecks(sha, list) {
      checks.set(
        sha,
        list.map((c) => ({ ...c, id: nextCheckId++, at: isoNow() })),
      );
      announce();
    },
    setStatuses(sha, list) {
      statuses.set(
        sha,
        list.map((s) => ({ ...s, id: nextStatusId++, at: isoNow() })),
      );
      announce();
    },
    setRequiredChecks(fullName, branch, contexts) {
      const repo = repos.get(fullName.toLowerCase());
      if (!repo) throw new Error(`setRequiredChecks: unknown repo ${fullName}`);
      repo.protection.set(branch, [...contexts]);
      announce();
    },
    setMergeable(prNumber, value, times, repo) {
      const pull = pullByNumber(prNumber, repo);
      if (value === null || times !== undefined) {
        for (let i = 0; i < (times ?? 1); i++) pull.mergeableScript.push(value);
      } else {
        pull.mergeableFixed = value;
      }
      announce();
    },
    callsOf: (route) => calls.filter((c) => c.route === route),
    waitFor,
    close,
  };
}

// ---- helpers (pure) ------------------------------------------------------------------------

/** GitHub's error body; `status` is a string in GitHub's answers too. */
function errorBody(status: number, message: string): Record<string, unknown> {
  return { message, documentation_url: DOCS, status: String(status) };
}

function validationFailed(errors: Array<Record<string, unknown>>): ApiError {
  return new ApiError(422, 'Validation Failed', { errors });
}

/** Template → regex on the raw path. Branch and ref parameters may contain slashes. */
function compileRoute(route: GitHubRoute): { method: string; pattern: RegExp; names: string[] } {
  const [method, template] = route.split(' ') as [string, string];
  const names: string[] = [];
  const source = template.replace(/\{(\w+)\}/g, (_whole, name: string) => {
    names.push(name);
    return name === 'branch' || name === 'ref' ? '(.+)' : '([^/]+)';
  });
  return { method, pattern: new RegExp(`^${source}/?$`), names };
}

/** "owner:branch" → parts; anything else (GitHub ignores it) → undefined. */
function parseHeadFilter(head: string | null): { owner: string; branch: string } | undefined {
  if (!head) return undefined;
  const colon = head.indexOf(':');
  if (colon <= 0) return undefined;
  return { owner: head.slice(0, colon), branch: head.slice(colon + 1) };
}

/** GitHub: failure if any failure/error, else pending if any pending or none at all, else success. */
function combinedState(states: Array<FakeStatus['state']>): 'success' | 'failure' | 'pending' {
  if (states.some((s) => s === 'failure' || s === 'error')) return 'failure';
  if (states.length === 0 || states.some((s) => s === 'pending')) return 'pending';
  return 'success';
}

/** Refuses what git would refuse anyway, and anything that could be read as an option. */
function isValidBranchName(name: string): boolean {
  return name !== '' && !name.startsWith('-') && !name.includes('..') && !/[\s~^:?*[\\\0]/.test(name);
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function flattenHeaders(headers: IncomingMessage['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined) out[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function toInt(value: string | null): number | undefined {
  return value !== null && /^\d+$/.test(value) ? Number(value) : undefined;
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(Math.max(n, min), max);
}

/** ISO 8601 without milliseconds, as GitHub writes timestamps. */
function isoNow(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The last 20 calls, one line each, for timeout messages (no headers: they hold the token). */
function describeCalls(calls: readonly RecordedGitHubCall[]): string {
  if (calls.length === 0) return 'No calls were recorded.';
  const last = calls.slice(-20);
  const lines = last.map((c) => {
    const body = c.body === undefined ? '' : (JSON.stringify(c.body) ?? '');
    return `  #${c.seq} ${c.method} ${c.path} -> ${c.status || 'no status'} ${body.length > 120 ? `${body.slice(0, 117)}...` : body}`;
  });
  return `Last ${last.length} of ${calls.length} calls:\n${lines.join('\n')}`;
}
