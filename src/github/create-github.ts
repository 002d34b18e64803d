import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { RequestError } from '@octokit/request-error';
import { Octokit } from '@octokit/rest';
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

  async function findOpenPull(repo: RepoName, head: string, base: string) {
    const { data } = await octokit.rest.pulls.list({ owner: repo.owner, repo: repo.name, state: 'open', head: `${repo.owner}:${head}`, base, per_page: 10 });
    return data.find((p) => p.head.ref === head);
  }

  return {
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
