import { Composer } from 'grammy';
import type { Runner } from '../../pipeline/runner.js';
import type { BotContext } from '../context.js';
import { html } from '../format.js';
import type { Respond } from '../respond.js';

/** `/run`: starts the oldest queued item now. */
export function runFeature(deps: { runner: Runner; respond: Respond }) {
  const composer = new Composer<BotContext>();
  composer.command('run', (ctx) => {
    respond(ctx);
  });
  function respond(ctx: BotContext) {
    deps.respond(ctx, () => {
      const result = deps.runner.startNext();
      switch (result.kind) {
        case 'started':
          ctx.log.info({ itemId: result.item.id }, 'run started by command');
          return { html: html`Starting #${result.item.id}: ${result.item.title}`, itemId: result.item.id };
        case 'busy':
          return { html: html`Already working on #${result.item.id}: ${result.item.title}, and no other queued item can start now (all run slots busy, or their repo is busy).` };
        case 'paused':
          return { html: 'Building is paused. /resume first.' };
        case 'empty':
          return { html: 'Nothing is queued. Send a message to queue work.' };
      }
    });
  }
  return composer;
}
