import type { MiddlewareFn } from 'grammy';
import type { Logger } from 'pino';
import type { BotContext } from './context.js';

/**
 * Lets through only updates from allow-listed user ids in a private chat. Everything else gets
 * silence: no reply, no row, no API call, and one log line without the message text.
 */
export function authFilter(allowedUsers: readonly number[], log: Logger): MiddlewareFn<BotContext> {
  const allowed = new Set(allowedUsers);
  return async (ctx, next) => {
    const userId = ctx.from?.id;
    const chatType = ctx.chat?.type;
    if (userId !== undefined && allowed.has(userId) && chatType === 'private') return next();
    log.warn(
      {
        update_id: ctx.update.update_id,
        userId,
        chatType,
        updateType: Object.keys(ctx.update).find((k) => k !== 'update_id'),
      },
      'ignored an update from a user or chat that is not allowed',
    );
  };
}
