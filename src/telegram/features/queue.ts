import { Composer } from 'grammy';
import { parseRequest, type RepoName } from '../../domain/parse-request.js';
import type { Backlog } from '../../pipeline/backlog.js';
import type { Item } from '../../store/items.js';
import type { BotContext } from '../context.js';
import { ambiguousRepoText, queuedText, queueUsageText, unknownRepoText } from '../messages.js';
import type { Respond } from '../respond.js';

/** Queues work from `/queue <text>` and from any plain text message. */
export function queueFeature(deps: {
  backlog: Backlog;
  repos: readonly RepoName[];
  respond: Respond;
  /** After the update that stored a new item committed (sizing starts here). */
  afterQueued?: (item: Item) => void;
}) {
  const { backlog, repos, respond } = deps;
  const composer = new Composer<BotContext>();

  const queue = (ctx: BotContext, text: string) => {
    let stored: Item | undefined;
    const fresh = respond(ctx, () => {
      const parsed = parseRequest(text, repos);
      switch (parsed.kind) {
        case 'empty':
          return { html: queueUsageText() };
        case 'unknown-repo':
          return { html: unknownRepoText(parsed.asked, repos) };
        case 'ambiguous-repo':
          return { html: ambiguousRepoText(parsed.asked, parsed.matches) };
        case 'ok': {
          const item = backlog.queue({
            repo: parsed.repo,
            text: parsed.text,
            chatId: ctx.chat!.id,
            userId: ctx.from!.id,
            updateId: ctx.update.update_id,
          });
          ctx.log.info({ itemId: item.id, repo: item.repo, state: item.state }, 'queued item');
          stored = item;
          return { html: queuedText(item), itemId: item.id };
        }
      }
    });
    if (fresh && stored) deps.afterQueued?.(stored);
  };

  composer.command('queue', (ctx) => {
    queue(ctx, ctx.match);
  });
  composer.on('message:text', async (ctx, next) => {
    const startsWithCommand = ctx.message.entities?.some((e) => e.type === 'bot_command' && e.offset === 0);
    if (startsWithCommand) return next();
    queue(ctx, ctx.message.text);
  });
  return composer;
}
