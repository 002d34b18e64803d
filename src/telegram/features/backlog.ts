import { Composer, GrammyError, InlineKeyboard } from 'grammy';
import type { Backlog, BacklogPage } from '../../pipeline/backlog.js';
import type { BotContext } from '../context.js';
import { backlogText } from '../messages.js';
import type { Respond } from '../respond.js';

const PAGE_DATA = /^backlog:(\d{1,6})$/;

function keyboard(page: BacklogPage): InlineKeyboard | undefined {
  if (page.pageCount <= 1) return undefined;
  const kb = new InlineKeyboard();
  if (page.page > 0) kb.text('◀ Newer', `backlog:${page.page - 1}`);
  if (page.page < page.pageCount - 1) kb.text('Older ▶', `backlog:${page.page + 1}`);
  return kb;
}

/** `/backlog`: open items, newest first, paged with ◀ ▶ buttons that edit the message in place. */
export function backlogFeature(deps: { backlog: Backlog; respond: Respond }) {
  const { backlog, respond } = deps;
  const composer = new Composer<BotContext>();

  composer.command('backlog', (ctx) => {
    respond(ctx, () => {
      const page = backlog.page(0);
      const kb = keyboard(page);
      return { html: backlogText(page), ...(kb ? { keyboard: kb } : {}) };
    });
  });

  composer.callbackQuery(PAGE_DATA, async (ctx) => {
    // Answer first, so the button stops spinning even if the edit below fails.
    await ctx.answerCallbackQuery();
    const page = backlog.page(Number(ctx.match[1]));
    const kb = keyboard(page);
    try {
      await ctx.editMessageText(backlogText(page), {
        parse_mode: 'HTML',
        link_preview_options: { is_disabled: true },
        ...(kb ? { reply_markup: kb } : {}),
      });
    } catch (error) {
      // Tapping the same page twice: Telegram refuses an edit that changes nothing.
      if (error instanceof GrammyError && /message is not modified/i.test(error.description)) return;
      throw error;
    }
  });
  return composer;
}
