import { RequestError } from '@octokit/request-error';
import { GitError } from '../workspace/run-git.js';
import type { StageOutcome } from './build-stage.js';

// git commands that talk to the remote: their failures are usually the network.
const NETWORK_GIT = new Set(['fetch', 'push', 'ls-remote', 'clone']);

/**
 * Turns an error thrown by a stage's git or GitHub work into an outcome: connection trouble,
 * timeouts, 5xx and rate limits are worth retrying later (without counting against the item);
 * anything else fails the item with a reason the user can act on.
 */
export function classifyStageError(error: unknown): Extract<StageOutcome, { kind: 'retry-later' | 'failed' }> {
  if (error instanceof GitError) {
    const command = error.args.find((a) => !a.startsWith('-')) ?? 'git';
    const transient = error.reason === 'timeout' || error.reason === 'aborted' || (error.reason === 'exit' && NETWORK_GIT.has(command));
    const detail = `git ${command} failed: ${lastLine(error.stderr) || error.message}`;
    return transient ? { kind: 'retry-later', reason: detail } : { kind: 'failed', reason: detail };
  }
  if (error instanceof RequestError) {
    const message = (error.response?.data as { message?: unknown } | undefined)?.message;
    const detail = `GitHub answered ${error.status}${typeof message === 'string' ? `: ${message}` : ''}`;
    // Octokit reports a dropped connection or timeout as status 500 without a response.
    const transient = error.status >= 500 || error.status === 429 || (error.status === 403 && /rate limit/i.test(String(message)));
    return transient ? { kind: 'retry-later', reason: detail } : { kind: 'failed', reason: detail };
  }
  if (error instanceof Error && error.name === 'AbortError') return { kind: 'retry-later', reason: 'interrupted' };
  return { kind: 'failed', reason: error instanceof Error ? error.message : String(error) };
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)?.trim() ?? '';
}
