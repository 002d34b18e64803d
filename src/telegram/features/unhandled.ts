import { Composer } from 'grammy';
import type { BotContext } from '../context.js';
import { editIgnoredText, notTextText, unknownCommandText } from '../messages.js';
import type { Respond } from '../respond.js';

/** Last in line: unknown commands, non-text messages, and stale buttons get a short answer. */
export function unhandledFeature(deps: { respond: Respond }) {
  const { respond } = deps;
  const composer = new Composer<BotContext>();
  composer.on('message:text', (ctx) => {
    const command = ctx.message.text.split(/\s/, 1)[0] ?? '';
    respond(ctx, () => ({ html: unknownCommandText(command) }));
  });
  composer.on('edited_message', (ctx) => {
    respond(ctx, () => ({ html: editIgnoredText() }));
  });
  composer.on('message', (ctx) => {
    respond(ctx, () => ({ html: notTextText() }));
  });
  composer.on('callback_query', async (ctx) => {
    await ctx.answerCallbackQuery({ text: 'This button is no longer valid.' });
  });
  return composer;
}
