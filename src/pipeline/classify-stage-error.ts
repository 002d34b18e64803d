import { RequestError } from '@octokit/request-error';
import { GitError } from '../workspace/run-git.js';
import type { Logger } from 'pino';
import type { AgentOutcome, LimitName } from '../agent/run-agent.js';
import type { StageOutcome } from './build-stage.js';

// git commands that talk to the remote: their failures are usually the network.
const NETWORK_GIT = new Set(['fetch', 'push', 'ls-remote', 'clone']);

/**
 * Turns an error thrown by a stage's git or GitHub work into an outcome: connection trouble,
 * timeouts, 5xx and rate limits are worth retrying later (rate limits as `throttled`, which use
 * no attempt); anything else fails the item with a reason the user can act on.
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
    // Octokit reports a dropped connection or timeout as status 500 without a response. GitHub
    // says "rate limit" only in the message of a 403 (its secondary limits), so that is read.
    if (error.status === 429 || (error.status === 403 && /rate limit/i.test(String(message)))) return { kind: 'retry-later', reason: detail, throttled: true };
    return error.status >= 500 ? { kind: 'retry-later', reason: detail } : { kind: 'failed', reason: detail };
  }
  if (error instanceof Error && error.name === 'AbortError') return { kind: 'retry-later', reason: 'interrupted' };
  return { kind: 'failed', reason: error instanceof Error ? error.message : String(error) };
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)?.trim() ?? '';
}

/** Runs a stage, turning anything it throws into an outcome (a stage never throws past the runner). */
export async function guardStage(log: Logger, itemId: number, stage: string, run: () => Promise<StageOutcome>): Promise<StageOutcome> {
  try {
    return await run();
  } catch (error) {
    const outcome = classifyStageError(error);
    log.warn({ err: error, itemId, stage, outcome: outcome.kind }, `${stage} stage error`);
    return outcome;
  }
}

const LIMIT_LABELS: Record<LimitName, string> = {
  turns: 'turns',
  'wall-clock': 'wall-clock',
  'stage-budget': 'stage budget',
  'item-budget': 'item budget',
  'daily-budget': 'daily budget',
  'monthly-budget': 'monthly budget',
  stuck: 'stuck-loop',
  'output-limit': 'output-length',
};

/**
 * What an agent run that did not finish means for its stage; undefined when it finished.
 * `what` names the run in the user's message ("the fix"), if the stage runs several kinds.
 */
export function unfinishedAgentOutcome(outcome: AgentOutcome, what?: string): StageOutcome | undefined {
  const prefix = what ? `${what} ` : '';
  switch (outcome.kind) {
    case 'done':
      return undefined;
    case 'aborted':
      return { kind: 'retry-later', reason: 'stopped by request' };
    case 'retry-later':
      return retryLater(outcome);
    case 'failed':
      return { kind: 'failed', reason: what ? `${what} failed: ${outcome.message}` : outcome.message };
    case 'limit':
      return { kind: 'failed', reason: `${prefix}${what ? 'was ' : ''}stopped by the ${LIMIT_LABELS[outcome.limit]} limit: ${outcome.message}` };
  }
}

/**
 * A model call's "try again later" as a stage outcome: a daily or monthly cap's reset
 * (`notBefore`) and a rate limit or overload (`throttled`) carry over, so the runner neither
 * uses an attempt on them nor retries a budget stop before its reset.
 */
export function retryLater(result: { readonly message: string; readonly notBefore?: number; readonly throttled?: true }): Extract<StageOutcome, { kind: 'retry-later' }> {
  return {
    kind: 'retry-later',
    reason: result.message,
    ...(result.notBefore === undefined ? {} : { notBefore: result.notBefore }),
    ...(result.throttled ? { throttled: true } : {}),
  };
}
