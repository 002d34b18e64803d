import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { RequestError } from '@octokit/request-error';
import { Octokit } from '@octokit/rest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { RepoName } from '../domain/parse-request.js';

/** Longest one GitHub request attempt may take (Octokit has no default timeout). @default 30000 */
export const GITHUB_TIMEOUT_MS = 30_000;

/** An open (or adopted) pull request. */
export interface PullRequestRef {
  readonly number: number;
  readonly url: string;
  readonly headSha: string;
  /** Whether this call created it (false: an existing PR for the branch was adopted). */
  readonly created: boolean;
}

/** A pull request as GitHub reports it now. */
export interface PullRequestState {
  readonly number: number;
  readonly url: string;
  readonly title: string;
  readonly state: 'open' | 'closed';
  readonly merged: boolean;
  readonly mergeCommitSha: string | null;
  /** Login of whoever merged it; null while unmerged. */
  readonly mergedBy: string | null;
  /** Live while open; frozen at close or merge. */
  readonly headSha: string;
  readonly headRef: string;
  readonly baseRef: string;
  /** null while GitHub is still computing it (and always once the PR is closed). */
  readonly mergeable: boolean | null;
}

/** The checks of one commit, as the merge decision needs them. */
export interface ChecksState {
  /** none: no checks reported and none required. */
  readonly state: 'passing' | 'failing' | 'pending' | 'none';
  /** Contexts branch protection requires ([] when the branch is unprotected). */
  readonly required: readonly string[];
  readonly failing: readonly string[];
  readonly pending: readonly string[];
  readonly passing: readonly string[];
}

/** What became of a merge call. */
export type MergeOutcome =
  /** alreadyMerged: the PR is merged, but at another head than the one asked for (not by this call). */
  | { readonly kind: 'merged'; readonly mergeCommitSha: string; readonly alreadyMerged: boolean }
  /** The head is no longer the reviewed SHA; headSha is the current one (null if it could not be read). */
  | { readonly kind: 'head-moved'; readonly headSha: string | null }
  /** GitHub refused (conflict, unmet required check) or the PR is closed; `reason` is GitHub's message where it gave one. */
  | { readonly kind: 'not-mergeable'; readonly reason: string }
  /** The call failed and no merge is known to have happened; read the PR before deciding anything. */
  | { readonly kind: 'unclear'; readonly reason: string };

/** What a stage asks of GitHub. */
export interface GitHub {
  /** The repository's default branch. */
  defaultBranch(repo: RepoName): Promise<string>;
  /**
   * Finds the open PR of `head` or opens one, and brings its title and body up to date.
   * Safe to repeat: a PR created by an earlier, interrupted attempt (422 "already exists")
   * is adopted, never duplicated.
   */
  ensurePullRequest(pr: { repo: RepoName; head: string; base: string; title: string; body: string }): Promise<PullRequestRef>;
  /**
   * The one comment on a PR that carries `marker`: updated if it exists (by `knownId`, else
   * found by the marker), created otherwise, never duplicated. Returns its id.
   */
  ensureStickyComment(c: { repo: RepoName; number: number; marker: string; body: string; knownId?: number | null }): Promise<number>;
  /** The pull request as GitHub reports it now. */
  getPullRequest(repo: RepoName, number: number): Promise<PullRequestState>;
  /**
   * Reads the PR until `mergeable` is known, at most `attempts` times `intervalMs` apart
   * (@default 5, 2000); the last read is returned even if still null. A closed PR is returned at
   * once (GitHub stops computing it); `signal` aborts the wait with an AbortError.
   */
  readMergeable(repo: RepoName, number: number, opts?: { attempts?: number; intervalMs?: number; signal?: AbortSignal }): Promise<PullRequestState>;
  /**
   * Check runs + commit statuses of `sha`, judged against the required contexts of `baseBranch`
   * (branch protection; 404 = unprotected, or nothing required → every reported check counts).
   * A required context with no run/status yet is pending. Latest run per name wins.
   * neutral/skipped/success pass.
   */
  checksFor(repo: RepoName, sha: string, baseBranch: string): Promise<ChecksState>;
  /**
   * Merges exactly `sha` with `method`. Never retried blindly: after a 5xx, timeout or reset the
   * PR is read and its state decides (see MergeOutcome). 409 → head-moved, 405 → not-mergeable.
   */
  mergePullRequest(m: { repo: RepoName; number: number; sha: string; method: 'merge' | 'squash' | 'rebase'; title?: string }): Promise<MergeOutcome>;
  /**
   * Closes the PR (if open) after posting `comment`; idempotent: an already closed PR is left
   * alone and no second comment is posted when a comment carrying `marker` exists.
   */
  closePullRequest(c: { repo: RepoName; number: number; comment: string; marker: string }): Promise<void>;
  /** Deletes branch `branch`; a branch already gone (404/422) counts as done. */
  deleteBranch(repo: RepoName, branch: string): Promise<void>;
}

/** readMergeable's defaults: GitHub usually knows within a few seconds. */
const MERGEABLE_ATTEMPTS = 5;
const MERGEABLE_INTERVAL_MS = 2000;
/** Check-run conclusions that let a merge through (as GitHub's branch protection counts them). */
const PASSING_CONCLUSIONS = new Set(['success', 'neutral', 'skipped']);

type Verdict = 'passing' | 'failing' | 'pending';

/** A failure after which the merge may or may not have happened: 5xx, timeout, reset (status 500), or no HTTP answer at all. */
function isUnclear(error: unknown): boolean {
  return !(error instanceof RequestError) || error.status >= 500;
}

/** GitHub's own message from an error answer, else the error's. */
function gitHubMessage(error: RequestError): string {
  const message = (error.response?.data as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' && message !== '' ? message : error.message;
}

/** failing beats pending beats passing: one bad report for a context is enough to hold a merge. */
function worst(a: Verdict | undefined, b: Verdict): Verdict {
  if (a === 'failing' || b === 'failing') return 'failing';
  if (a === 'pending' || b === 'pending') return 'pending';
  return 'passing';
}

const RetryingOctokit = Octokit.plugin(retry, throttling);

/** Options for `createGitHub`. */
export interface GitHubOptions {
  readonly token: string;
  readonly baseUrl: string;
  readonly log: Logger;
  /** Respect primary and secondary rate limits by queueing requests. @default true */
  readonly throttle?: boolean;
  /** Base of plugin-retry's backoff, in ms. @default 1000 */
  readonly retryBaseMs?: number;
  /** Applied to every title and body sent (they quote users and agents). @default identity */
  readonly redact?: (text: string) => string;
}

/**
 * GitHub over Octokit, with transport retries (plugin-retry: 5xx, resets) and rate-limit
 * handling (plugin-throttling) in this one layer.
 */
export function createGitHub(options: GitHubOptions): GitHub {
  const { log } = options;
  const redact = options.redact ?? ((text: string) => text);
  const octokit = new RetryingOctokit({
    auth: options.token,
    // A timeout per attempt (Octokit has none), so a retry or a rate-limit wait gets its own.
    request: {
      fetch: (url: string | URL, init: RequestInit = {}) =>
        fetch(url, { ...init, signal: init.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(GITHUB_TIMEOUT_MS)]) : AbortSignal.timeout(GITHUB_TIMEOUT_MS) }),
    },
    baseUrl: options.baseUrl,
    userAgent: 'nightshift',
    log: {
      debug: (message: string) => log.debug(message),
      info: (message: string) => log.debug(message),
      warn: (message: string) => log.warn(message),
      error: (message: string) => log.warn(message),
    },
    // 405 and 409 answer a merge ("not mergeable", "head moved"): never worth repeating.
    retry: { doNotRetry: [400, 401, 403, 404, 405, 409, 410, 422, 451], retryAfterBaseValue: options.retryBaseMs ?? 1000 },
    throttle: {
      enabled: options.throttle ?? true,
      onRateLimit: (retryAfter: number, request: { method: string; url: string }, _octokit: unknown, retryCount: number) => {
        log.warn({ retryAfter, method: request.method, url: request.url }, 'GitHub rate limit hit');
        return retryCount < 2;
      },
      onSecondaryRateLimit: (retryAfter: number, request: { method: string; url: string }, _octokit: unknown, retryCount: number) => {
        log.warn({ retryAfter, method: request.method, url: request.url }, 'GitHub secondary rate limit hit');
        return retryCount < 2;
      },
    },
  });

  async function getPullRequest(repo: RepoName, number: number): Promise<PullRequestState> {
    const { data } = await octokit.rest.pulls.get({ owner: repo.owner, repo: repo.name, pull_number: number });
    return {
      number: data.number,
      url: data.html_url,
      title: data.title,
      state: data.state === 'open' ? 'open' : 'closed',
      merged: data.merged,
      mergeCommitSha: data.merge_commit_sha ?? null,
      mergedBy: data.merged_by?.login ?? null,
      headSha: data.head.sha,
      headRef: data.head.ref,
      baseRef: data.base.ref,
      mergeable: data.mergeable ?? null,
    };
  }

  /** Required status check contexts of `branch`; [] when it is not protected (404). */
  async function requiredContexts(repo: RepoName, branch: string): Promise<string[]> {
    try {
      const { data } = await octokit.rest.repos.getStatusChecksProtection({ owner: repo.owner, repo: repo.name, branch });
      // `contexts` is deprecated in favour of `checks`; either may be the one filled in.
      return [...new Set([...(data.contexts ?? []), ...(data.checks ?? []).map((c) => c.context)])];
    } catch (error) {
      if (error instanceof RequestError && error.status === 404) return [];
      throw error;
    }
  }

  /** After a merge call with an unclear outcome: what the PR says happened. */
  async function reconcileMerge(repo: RepoName, number: number, sha: string, cause: unknown): Promise<MergeOutcome> {
    const failure = cause instanceof RequestError ? `GitHub answered ${cause.status}` : 'the connection failed';
    let pr: PullRequestState;
    try {
      pr = await getPullRequest(repo, number);
    } catch (error) {
      log.warn({ err: error, pr: number }, 'could not read the PR after an unclear merge call');
      return { kind: 'unclear', reason: `${failure} to the merge call, and the PR could not be read afterwards` };
    }
    if (pr.merged && pr.mergeCommitSha) {
      return { kind: 'merged', mergeCommitSha: pr.mergeCommitSha, alreadyMerged: pr.headSha !== sha };
    }
    if (pr.merged) return { kind: 'unclear', reason: `${failure} to the merge call; the PR reads merged but without a merge commit` };
    if (pr.state === 'closed') return { kind: 'not-mergeable', reason: 'the pull request is closed' };
    if (pr.headSha !== sha) return { kind: 'head-moved', headSha: pr.headSha };
    return { kind: 'unclear', reason: `${failure} to the merge call; the PR is still open and unmerged` };
  }

  async function findOpenPull(repo: RepoName, head: string, base: string) {
    const { data } = await octokit.rest.pulls.list({ owner: repo.owner, repo: repo.name, state: 'open', head: `${repo.owner}:${head}`, base, per_page: 10 });
    return data.find((p) => p.head.ref === head);
  }

  return {
    getPullRequest,

    async readMergeable(repo, number, opts = {}) {
      const attempts = Math.max(1, opts.attempts ?? MERGEABLE_ATTEMPTS);
      const intervalMs = opts.intervalMs ?? MERGEABLE_INTERVAL_MS;
      let pr = await getPullRequest(repo, number);
      // A closed PR stays null for good: GitHub stops computing it.
      for (let read = 1; read < attempts && pr.mergeable === null && pr.state === 'open'; read++) {
        await sleep(intervalMs, undefined, opts.signal ? { signal: opts.signal } : undefined);
        pr = await getPullRequest(repo, number);
      }
      return pr;
    },

    async checksFor(repo, sha, baseBranch) {
      const required = await requiredContexts(repo, baseBranch);
      const runs = await octokit.paginate(octokit.rest.checks.listForRef, { owner: repo.owner, repo: repo.name, ref: sha, filter: 'latest', per_page: 100 });
      // Holds up to 100 contexts, one (the newest) per context, which is all a merge decision reads.
      const { data: combined } = await octokit.rest.repos.getCombinedStatusForRef({ owner: repo.owner, repo: repo.name, ref: sha, per_page: 100 });

      // A re-run reports under the same name; GitHub's ids grow, so the highest id is the latest.
      const latestRuns = new Map<string, (typeof runs)[number]>();
      for (const run of runs) {
        const seen = latestRuns.get(run.name);
        if (!seen || run.id > seen.id) latestRuns.set(run.name, run);
      }
      const verdicts = new Map<string, Verdict>();
      for (const run of latestRuns.values()) {
        const verdict: Verdict = run.status !== 'completed' ? 'pending' : PASSING_CONCLUSIONS.has(run.conclusion ?? '') ? 'passing' : 'failing';
        verdicts.set(run.name, worst(verdicts.get(run.name), verdict));
      }
      for (const status of combined.statuses) {
        const verdict: Verdict = status.state === 'success' ? 'passing' : status.state === 'pending' ? 'pending' : 'failing';
        verdicts.set(status.context, worst(verdicts.get(status.context), verdict));
      }

      const judged = required.length > 0 ? required.map((name) => [name, verdicts.get(name) ?? 'pending'] as const) : [...verdicts];
      const named = (verdict: Verdict) => judged.filter(([, v]) => v === verdict).map(([name]) => name).sort();
      const failing = named('failing');
      const pending = named('pending');
      const passing = named('passing');
      const state = failing.length > 0 ? 'failing' : pending.length > 0 ? 'pending' : passing.length > 0 ? 'passing' : 'none';
      return { state, required, failing, pending, passing };
    },

    async mergePullRequest({ repo, number, sha, method, title }) {
      try {
        const { data } = await octokit.rest.pulls.merge({
          owner: repo.owner,
          repo: repo.name,
          pull_number: number,
          sha,
          merge_method: method,
          ...(title === undefined ? {} : { commit_title: redact(title) }),
          // Never repeated: a retry after a lost reply could merge what moved in between.
          request: { retries: 0 },
        });
        return { kind: 'merged', mergeCommitSha: data.sha, alreadyMerged: false };
      } catch (error) {
        if (error instanceof RequestError && error.status === 409) {
          const headSha = await getPullRequest(repo, number).then(
            (pr) => pr.headSha,
            (readError: unknown) => {
              log.warn({ err: readError, pr: number }, 'could not read the moved head of the PR');
              return null;
            },
          );
          return { kind: 'head-moved', headSha };
        }
        if (error instanceof RequestError && error.status === 405) return { kind: 'not-mergeable', reason: gitHubMessage(error) };
        if (!isUnclear(error)) throw error;
        log.warn({ err: error, pr: number, sha }, 'merge call failed without a clear answer; reading the PR');
        return reconcileMerge(repo, number, sha, error);
      }
    },

    async closePullRequest({ repo, number, comment, marker }) {
      const pr = await getPullRequest(repo, number);
      if (pr.state !== 'open') return;
      const comments = await octokit.paginate(octokit.rest.issues.listComments, { owner: repo.owner, repo: repo.name, issue_number: number, per_page: 100 });
      if (!comments.some((c) => c.body?.includes(marker))) {
        // Not retried blindly (a lost reply would leave two); a later call finds it by the marker.
        await octokit.rest.issues.createComment({ owner: repo.owner, repo: repo.name, issue_number: number, body: `${redact(comment)}\n\n${marker}`, request: { retries: 0 } });
      }
      await octokit.rest.pulls.update({ owner: repo.owner, repo: repo.name, pull_number: number, state: 'closed' });
    },

    async deleteBranch(repo, branch) {
      try {
        await octokit.rest.git.deleteRef({ owner: repo.owner, repo: repo.name, ref: `heads/${branch}` });
      } catch (error) {
        // 422 "Reference does not exist" is how GitHub answers for a branch that is already gone.
        if (!(error instanceof RequestError && (error.status === 404 || error.status === 422))) throw error;
      }
    },

    async defaultBranch(repo) {
      const { data } = await octokit.rest.repos.get({ owner: repo.owner, repo: repo.name });
      return data.default_branch;
    },

    async ensureStickyComment({ repo, number, marker, body: rawBody, knownId }) {
      const body = `${redact(rawBody)}\n\n${marker}`;
      const update = async (commentId: number) => {
        await octokit.rest.issues.updateComment({ owner: repo.owner, repo: repo.name, comment_id: commentId, body });
        return commentId;
      };
      if (knownId) {
        try {
          return await update(knownId);
        } catch (error) {
          if (!(error instanceof RequestError && error.status === 404)) throw error;
        }
      }
      const comments = await octokit.paginate(octokit.rest.issues.listComments, { owner: repo.owner, repo: repo.name, issue_number: number, per_page: 100 });
      const existing = comments.find((c) => c.body?.includes(marker));
      if (existing) return update(existing.id);
      // Not retried blindly: a create whose reply was lost would leave two comments. The stage
      // retries later instead, and then finds this one by its marker.
      const { data } = await octokit.rest.issues.createComment({ owner: repo.owner, repo: repo.name, issue_number: number, body, request: { retries: 0 } });
      return data.id;
    },

    async ensurePullRequest({ repo, head, base, title: rawTitle, body: rawBody }) {
      const title = redact(rawTitle);
      const body = redact(rawBody);
      const existing = await findOpenPull(repo, head, base);
      if (existing) {
        const { data } = await octokit.rest.pulls.update({ owner: repo.owner, repo: repo.name, pull_number: existing.number, title, body });
        return { number: data.number, url: data.html_url, headSha: data.head.sha, created: false };
      }
      try {
        const { data } = await octokit.rest.pulls.create({ owner: repo.owner, repo: repo.name, head, base, title, body });
        return { number: data.number, url: data.html_url, headSha: data.head.sha, created: true };
      } catch (error) {
        // A PR made by an attempt whose reply we never saw (crash, reset): adopt it.
        if (!(error instanceof RequestError && error.status === 422)) throw error;
        const adopted = await findOpenPull(repo, head, base);
        if (!adopted) throw error;
        log.info({ pr: adopted.number, head }, 'adopted the existing pull request for the branch');
        const { data } = await octokit.rest.pulls.update({ owner: repo.owner, repo: repo.name, pull_number: adopted.number, title, body });
        return { number: data.number, url: data.html_url, headSha: data.head.sha, created: false };
      }
    },
  };
}
