import { Composer } from 'grammy';
import type { Backlog } from '../../pipeline/backlog.js';
import type { Runner } from '../../pipeline/runner.js';
import type { BotContext } from '../context.js';
import { cancelTexts } from '../messages.js';
import type { Respond } from '../respond.js';

const ID_ARG = /^#?(\d{1,12})$/;

/** `/cancel <id>`: cancels an item that has not ended yet. */
export function cancelFeature(deps: { backlog: Backlog; runner: Runner; respond: Respond }) {
  const { backlog, runner, respond } = deps;
  const composer = new Composer<BotContext>();
  composer.command('cancel', (ctx) => {
    respond(ctx, () => {
      const match = ID_ARG.exec(ctx.match.trim());
      if (!match) return { html: cancelTexts.usage() };
      const id = Number(match[1]);
      const outcome = backlog.cancel(id, `cancelled by user ${ctx.from!.id}`);
      switch (outcome.kind) {
        case 'not-found':
          return { html: cancelTexts.notFound(id) };
        case 'not-cancellable':
          return { html: cancelTexts.notCancellable(outcome.item) };
        case 'deciding':
          return { html: cancelTexts.deciding(outcome.item) };
        case 'cancelled':
          ctx.log.info({ itemId: id }, 'cancelled item');
          runner.itemEnded(id);
          return { html: cancelTexts.cancelled(outcome.item), itemId: id };
      }
    });
  });
  return composer;
}
