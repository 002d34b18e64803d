import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createBacklog } from '../../src/pipeline/backlog.js';
import type { Runner } from '../../src/pipeline/runner.js';
import { createBot, FAILED_UPDATE_TEXT, type BotDeps } from '../../src/telegram/create-bot.js';
import { startFakeTelegram, type FakeTelegram } from '../fakes/telegram-server.js';
import { ALICE, MALLORY } from '../helpers/bot-process.js';
import { makeStore } from '../helpers/factories.js';

let fake: FakeTelegram | undefined;
const idleRunner: Runner = { startNext: () => ({ kind: 'empty' }), resumeInterrupted: () => undefined, resume: () => undefined, resumeWaiting: () => undefined, wakeDue: () => undefined,
  runningCount: () => 0, abortRuns: () => [], itemEnded: () => undefined, stop: async () => undefined, idle: async () => undefined };
afterEach(async () => fake?.close());

/** A bot on the fake Bot API with a fresh store; `overrides` replace its collaborators. */
async function makeBot(overrides: Partial<BotDeps>) {
  fake = await startFakeTelegram();
  const { store } = makeStore();
  const bot = createBot({
    token: fake.token,
    apiRoot: fake.apiRoot,
    allowedUsers: [ALICE.id],
    repos: [{ owner: 'me', name: 'app', fullName: 'me/app' }],
    backlog: createBacklog({ store }),
    runner: idleRunner,
    log: pino({ level: 'silent' }),
    redact: (text) => text,
    respond: () => true,
    ...overrides,
  });
  return { bot, fake, store };
}

describe('createBot error boundary', () => {
  it('tells an allowed user once when handling failed, and tells a stranger nothing', async () => {
    const { bot, fake, store } = await makeBot({
      respond: () => {
        throw new Error('SQLITE_FULL: database or disk is full');
      },
    });
    const polling = bot.start();
    fake.pushMessage(MALLORY, 'hello');
    fake.pushMessage(ALICE, 'queue this');
    const reply = await fake.waitFor(() => fake.sent(ALICE.id)[0], { what: 'the failure notice' });
    await bot.stop();
    await polling;
    expect(reply.text).toBe(FAILED_UPDATE_TEXT);
    expect(fake.sent(MALLORY.id)).toEqual([]);
    store.close();
  });

  it('redacts secrets from everything it sends', async () => {
    const { bot, fake, store } = await makeBot({ redact: (text) => text.replaceAll('CANARY-value', '[REDACTED]') });
    await bot.api.sendMessage(ALICE.id, 'token is CANARY-value', {
      reply_markup: { inline_keyboard: [[{ text: 'CANARY-value', callback_data: 'x' }]] },
    });
    expect(JSON.stringify(fake.sent(ALICE.id))).not.toContain('CANARY-value');
    expect(fake.sent(ALICE.id)[0]?.text).toBe('token is [REDACTED]');
    store.close();
  });
});
