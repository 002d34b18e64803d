import { Composer } from 'grammy';
import { describeWake } from '../../domain/defer-until.js';
import type { DispatchDecision } from '../../domain/peak-hours.js';
import type { Runner } from '../../pipeline/runner.js';
import type { Dispatcher } from '../../scheduler/create-dispatcher.js';
import type { Store } from '../../store/open-store.js';
import type { BotContext } from '../context.js';
import { html } from '../format.js';
import type { Respond } from '../respond.js';

/** Why a run cannot start now, in words; undefined when it can. */
export function waitText(decision: DispatchDecision, now: number, timeZone: string): string | undefined {
  if (decision.kind === 'start') return undefined;
  const until = decision.until === undefined ? '' : describeWake(decision.until, now, timeZone);
  switch (decision.reason) {
    case 'paused':
      return 'Building is paused. /resume first.';
    case 'budget-daily':
      return `Today's budget is spent; it resets ${until}.`;
    case 'budget-monthly':
      return `This month's budget is spent; it resets ${until}.`;
    case 'peak':
      return `It is peak time until ${until}.`;
    case 'busy':
      return 'Every run slot is busy.';
  }
}

/**
 * `/run` (during peak hours it asks for a confirming tap), `/pause`, `/resume` and `/stop`
 * (aborts the runs in hand within seconds; they keep what they did and wait for /resume).
 */
export function controlFeature(deps: {
  store: Store;
  runner: Runner;
  dispatcher: Dispatcher;
  respond: Respond;
  timeZone: string;
  now: () => number;
  /** Sends a message outside an update's transaction (through the outbox). */
  say: (chatId: number, html: string, itemId?: number) => void;
}) {
  const { store, runner, dispatcher, respond } = deps;
  const composer = new Composer<BotContext>();

  // Each command's state change and reply are one transaction with the update's claim; runs are
  // started or aborted only after it committed, and never for a redelivered update.
  composer.command('run', (ctx) => {
    let startNow = false;
    const fresh = respond(ctx, () => {
      const forced = dispatcher.decide(true);
      const blocked = forced.kind === 'wait' && forced.reason !== 'busy' ? waitText(forced, deps.now(), deps.timeZone) : undefined;
      if (blocked) return { html: blocked };
      const normal = dispatcher.decide(false);
      if (normal.kind === 'wait' && normal.reason === 'peak') {
        const [confirm] = store.cards.addButtons(null, [{ action: 'run-confirm' }]);
        return {
          html: `${waitText(normal, deps.now(), deps.timeZone)} Runs now cost the same but compete with your daytime use and rate limits. Start the oldest queued item anyway?`,
          keyboard: { inline_keyboard: [[{ text: '▶️ Run now', callback_data: confirm!.token }]] },
          buttons: [confirm!.token],
        };
      }
      startNow = true;
      return undefined;
    });
    if (fresh && startNow) respondOnce(ctx, startReply(ctx));
  });

  composer.command('pause', (ctx) => {
    respond(ctx, () => {
      dispatcher.pause();
      return { html: 'Building paused: nothing new starts. Runs in progress finish their step; /stop aborts them, /resume goes on.' };
    });
  });

  composer.command('resume', (ctx) => {
    const wasPaused = store.settings.paused();
    const fresh = respond(ctx, () => {
      store.settings.setPaused(false);
      return { html: wasPaused ? 'Building resumed.' : 'Building was not paused.' };
    });
    if (fresh) dispatcher.resume();
  });

  composer.command('stop', (ctx) => {
    const fresh = respond(ctx, () => {
      dispatcher.pause();
      return undefined;
    });
    if (!fresh) return;
    const stopped = runner.abortRuns();
    respondOnce(ctx, {
      html: stopped.length === 0 ? 'Nothing was running. Building is paused; /resume goes on.' : `Stopping ${stopped.map((id) => `#${id}`).join(', ')} now; what they did is kept. Building is paused; /resume continues.`,
    });
  });

  /** A reply after the update was claimed (the claim's transaction had nothing to say yet). */
  function respondOnce(ctx: BotContext, reply: { html: string; itemId?: number }): void {
    deps.say(ctx.chat!.id, reply.html, reply.itemId);
  }

  function startReply(ctx: BotContext) {
    // Checked again at the start itself: a "Run now" tapped hours later meets today's pause and budget.
    const forced = dispatcher.decide(true);
    const blocked = forced.kind === 'wait' && forced.reason !== 'busy' ? waitText(forced, deps.now(), deps.timeZone) : undefined;
    if (blocked) return { html: blocked };
    const result = runner.startNext();
    switch (result.kind) {
      case 'started':
        ctx.log.info({ itemId: result.item.id }, 'run started by command');
        return { html: html`Starting #${result.item.id}: ${result.item.title}`, itemId: result.item.id };
      case 'busy':
        return { html: html`Already working on #${result.item.id}: ${result.item.title}, and no other queued item can start now (all run slots are busy, or its repo is).` };
      case 'paused':
        return { html: 'Building is paused. /resume first.' };
      case 'empty': {
        // Queued items the queue skips: waiting out a retry's backoff, or of a paused repo.
        const waiting = store.items.countByState().queued ?? 0;
        return {
          html:
            waiting > 0
              ? `Nothing can start now: ${waiting === 1 ? 'the queued item waits' : `the ${waiting} queued items wait`} for a retry's backoff or a paused repo (/status). Try /run again in a minute.`
              : 'Nothing is queued. Send a message to queue work.',
        };
      }
    }
  }

  return { composer, startReply };
}
