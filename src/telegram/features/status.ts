import { Composer } from 'grammy';
import type { RepoName } from '../../domain/parse-request.js';
import type { Backlog } from '../../pipeline/backlog.js';
import type { BotContext } from '../context.js';
import { helpText, statusText, type ReviewStatus } from '../messages.js';
import type { Respond } from '../respond.js';

/** `/status`, `/help` and `/start`. */
export function statusFeature(deps: { backlog: Backlog; repos: readonly RepoName[]; respond: Respond; reviewStatus?: () => ReviewStatus }) {
  const { backlog, repos, respond } = deps;
  const composer = new Composer<BotContext>();
  composer.command('status', (ctx) => {
    respond(ctx, () => ({ html: statusText(backlog.status(), deps.reviewStatus?.()) }));
  });
  composer.command(['help', 'start'], (ctx) => {
    respond(ctx, () => ({ html: helpText(repos) }));
  });
  return composer;
}
