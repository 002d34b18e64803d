import { autoRetry } from '@grammyjs/auto-retry';
import { Bot, BotError, GrammyError, HttpError } from 'grammy';
import type { BotCommand } from 'grammy/types';
import type { Logger } from 'pino';
import type { RepoName } from '../domain/parse-request.js';
import type { Backlog } from '../pipeline/backlog.js';
import type { Runner } from '../pipeline/runner.js';
import { authFilter } from './auth.js';
import type { BotContext } from './context.js';
import { backlogFeature } from './features/backlog.js';
import { cancelFeature } from './features/cancel.js';
import { queueFeature } from './features/queue.js';
import { reviewFeature } from './features/review.js';
import { controlFeature } from './features/control.js';
import { costsFeature, type CostsDeps } from './features/costs.js';
import { sizingFeature } from './features/sizing.js';
import { statusFeature } from './features/status.js';
import { unhandledFeature } from './features/unhandled.js';
import { redactOutgoing } from './redact-outgoing.js';
import type { ReviewStatus } from './messages.js';
import type { Respond } from './respond.js';

/** The commands shown in Telegram's menu (`setMyCommands`). */
export const BOT_COMMANDS: readonly BotCommand[] = [
  { command: 'queue', description: 'Queue work: /queue <what to do>' },
  { command: 'backlog', description: 'Open items, newest first' },
  { command: 'cancel', description: 'Cancel an item: /cancel <id>' },
  { command: 'run', description: 'Start the oldest queued item now' },
  { command: 'pause', description: 'Pause building (nothing new starts)' },
  { command: 'resume', description: 'Resume building' },
  { command: 'stop', description: 'Abort the runs in progress and pause' },
  { command: 'status', description: 'Counts by state and what is running' },
  { command: 'costs', description: 'Spend today, this week, this month, with a chart' },
  { command: 'review', description: 'The next review card now' },
  { command: 'lessons', description: 'What rejections taught the bot' },
  { command: 'help', description: 'How to use nightshift' },
];

/** Seconds a Bot API call may take before it is aborted. Long polls use less. @default 60 */
export const API_TIMEOUT_SECONDS = 60;

/** What the bot needs from the rest of the process. */
export interface BotDeps {
  readonly token: string;
  readonly apiRoot: string;
  readonly allowedUsers: readonly number[];
  readonly repos: readonly RepoName[];
  readonly backlog: Backlog;
  readonly runner: Runner;
  readonly log: Logger;
  readonly respond: Respond;
  /** Applied to every string sent to Telegram. */
  readonly redact: (text: string) => string;
  /** Review cards; without them the bot has no card buttons (unit tests of other features). */
  readonly review?: Omit<Parameters<typeof reviewFeature>[0], 'runNow'> & { status: () => ReviewStatus };
  /** Cost reports behind /costs; without them /costs is an unknown command (unit tests of other features). */
  readonly costs?: Omit<CostsDeps, 'respond'>;
  /** The dispatcher behind /run, /pause, /resume, /stop; without it those commands are unknown (unit tests of other features). */
  readonly control?: Omit<Parameters<typeof controlFeature>[0], 'runner' | 'respond'>;
  /** Sizing's buttons and answers, and sizing new items; without it items queued `proposed` wait for the sizer's tick. */
  readonly sizing?: Omit<Parameters<typeof sizingFeature>[0], 'respond'>;
}

/**
 * Builds the grammY bot: auto-retry on the API, auth in front of everything, one error
 * boundary around the features, `unhandled` last.
 */
export function createBot(deps: BotDeps): Bot<BotContext> {
  const bot = new Bot<BotContext>(deps.token, {
    client: { apiRoot: deps.apiRoot, timeoutSeconds: API_TIMEOUT_SECONDS },
  });
  // Rate limits and 5xx are retried here, a bounded number of times; network errors are
  // rethrown so the caller's own layer (the outbox, grammY's polling loop) handles them.
  bot.api.config.use(autoRetry({ maxRetryAttempts: 3, maxDelaySeconds: 30, rethrowHttpErrors: true }));
  bot.api.config.use(redactOutgoing(deps.redact));

  bot.use((ctx, next) => {
    ctx.log = deps.log.child({ update_id: ctx.update.update_id });
    return next();
  });
  // Telegram updates the bot asks for; everything else is never delivered.

  bot.use(authFilter(deps.allowedUsers, deps.log));

  const { respond } = deps;
  const features = bot.errorBoundary(errorHandler(deps.log, true));
  // Before queueing: the text typed after Reject is its reason, not new work.
  const control = deps.control && controlFeature({ ...deps.control, runner: deps.runner, respond });
  const sizing = deps.sizing && sizingFeature({ ...deps.sizing, respond });
  // Sizing's buttons before the review feature, which refuses every stored button it does not know.
  if (sizing) features.use(sizing.taps);
  if (deps.review) features.use(reviewFeature({ ...deps.review, ...(control ? { runNow: (ctx: BotContext) => control.startReply(ctx).html } : {}) }));
  // After a Reject's reason, before queueing: the text answering a sizing question is not new work.
  if (sizing) features.use(sizing.answers);
  const sizer = deps.sizing?.sizer;
  features.use(queueFeature({ backlog: deps.backlog, repos: deps.repos, respond, ...(sizer ? { afterQueued: (item) => sizer.sizeSoon(item.id) } : {}) }));
  features.use(backlogFeature({ backlog: deps.backlog, respond }));
  features.use(cancelFeature({ backlog: deps.backlog, runner: deps.runner, respond }));
  if (control) features.use(control.composer);
  if (deps.costs) features.use(costsFeature({ ...deps.costs, respond }));
  features.use(statusFeature({ backlog: deps.backlog, repos: deps.repos, respond, ...(deps.review ? { reviewStatus: deps.review.status } : {}) }));
  features.use(unhandledFeature({ respond }));

  bot.catch(errorHandler(deps.log, false));
  return bot;
}

// One update failing never stops the bot. The effects of an update are one transaction, so a
// failure means nothing was recorded. Inside the feature boundary (past the auth filter) the
// user is told once, directly (the outbox may be what failed), so they know to send it again
// instead of waiting for an answer that never comes. Outside it, nothing is said to anyone.
function errorHandler(rootLog: Logger, notifyUser: boolean) {
  return async (error: BotError<BotContext>): Promise<void> => {
    const { ctx } = error;
    // Errors before the logging middleware ran have no ctx.log yet.
    const log: Logger = ctx.log ?? rootLog.child({ update_id: ctx.update.update_id });
    const cause = error.error;
    const detail =
      cause instanceof GrammyError ? { method: cause.method, code: cause.error_code, description: cause.description }
      : cause instanceof HttpError ? { network: cause.message }
      : {};
    log.error({ err: cause, ...detail }, 'handling the update failed');
    if (!notifyUser) return;
    try {
      if (ctx.callbackQuery) await ctx.answerCallbackQuery({ text: 'Something went wrong. Please try again.' });
      else if (ctx.message) await ctx.reply(FAILED_UPDATE_TEXT);
    } catch (replyError) {
      log.error({ err: replyError }, 'could not tell the user that handling failed');
    }
  };
}

/** What the user hears when handling their message failed and nothing was saved. */
export const FAILED_UPDATE_TEXT = 'Sorry, something went wrong on my side and that message was not saved. Please send it again.';
