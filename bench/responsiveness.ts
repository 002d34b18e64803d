/**
 * Benchmark 5 (responsiveness) and 6b (queueing through the bot): the real process
 * (`node dist/main.js`) against the loopback fake Telegram, with the echo bot
 * (`support/echo-bot.mjs`: grammY alone) as the baseline, measured the same way in the same run.
 */
import { ALICE, CANARY, tempDir } from '../tests/helpers/bot-process.js';
import { startFakeTelegram, type FakeTelegram } from '../tests/fakes/telegram-server.js';
import { messageBurst, sendsTo, startBot, tapBurst, type BotKind } from './lib/bot-run.js';
import { percentile, type BenchRow } from './lib/report.js';

/** Taps and messages measured (each), after the warm-up. */
export const SAMPLES = 1000;
/** Updates pushed at once. */
export const BURST = 10;
/** Updates pushed and answered before measuring starts. */
const WARM_UP = 50;
/** Items queued through the bot in benchmark 6b. */
export const QUEUE_ITEMS = 1000;

/** Messages the measured bursts cycle through: the commands a user sends most, and new work. */
const MESSAGES = (i: number): string => ['/status', '/backlog', `Fix the typo number ${i} in the README`, '/help'][i % 4]!;

interface Measured {
  startMs: number;
  rssStartMb: number;
  rssAfterMb: number;
  taps: number[];
  messages: number[];
}

async function measure(kind: BotKind): Promise<Measured> {
  const telegram = await startFakeTelegram({ token: CANARY.telegramToken });
  const bot = await startBot(kind, telegram);
  try {
    // "After start": once it has registered its commands (nightshift) or is polling (echo).
    if (kind === 'nightshift') await telegram.waitFor(() => telegram.callsOf('setMyCommands').length > 0, { what: 'setMyCommands' });
    const rssStartMb = bot.rssMb();
    // Something to page through: 20 items, and a /backlog message with its ◀ ▶ buttons.
    await messageBurst(telegram, Array.from({ length: 20 }, (_, i) => `Warm-up item ${i}`));
    await messageBurst(telegram, ['/backlog']);
    const page = sendsTo(telegram).at(-1)!;
    const message = await telegram.waitFor(() => telegram.sent(ALICE.id).at(-1), { what: 'the /backlog message' });
    if (page.params.text !== message.text) throw new Error('the /backlog message is not the last one sent');
    const target = { message_id: message.message_id, chat_id: ALICE.id };
    const tapData = (i: number) => `backlog:${i % 2 === 0 ? 1 : 0}`;

    for (let i = 0; i < WARM_UP; i += BURST) await tapBurst(telegram, target, tapData, BURST);
    const taps: number[] = [];
    for (let i = 0; i < SAMPLES; i += BURST) taps.push(...(await tapBurst(telegram, target, tapData, BURST)).latencies);

    for (let i = 0; i < WARM_UP; i += BURST) await messageBurst(telegram, Array.from({ length: BURST }, (_, j) => MESSAGES(i + j)));
    const messages: number[] = [];
    for (let i = 0; i < SAMPLES; i += BURST) messages.push(...(await messageBurst(telegram, Array.from({ length: BURST }, (_, j) => MESSAGES(i + j)))).latencies);
    return { startMs: bot.startMs, rssStartMb, rssAfterMb: bot.rssMb(), taps, messages };
  } finally {
    await bot.stop();
    await telegram.close();
  }
}

/** The rows of benchmark 5. */
export async function benchResponsiveness(): Promise<BenchRow[]> {
  const base = await measure('echo');
  const ns = await measure('nightshift');
  const bench = '5 responsiveness';
  const row = (metric: string, figure: number, baseline: number, unit: 'ms' | 'MB' | 's', max: number, note?: string): BenchRow => ({
    bench,
    metric,
    figure,
    baseline,
    unit,
    target: { on: 'figure', op: '<=', value: max },
    ...(note ? { note } : {}),
  });
  return [
    row('tap → answerCallbackQuery p50', percentile(ns.taps, 50), percentile(base.taps, 50), 'ms', 20),
    row('tap → answerCallbackQuery p99', percentile(ns.taps, 99), percentile(base.taps, 99), 'ms', 100, `${ns.taps.length} taps in bursts of ${BURST} on /backlog's ◀ ▶ buttons; baseline: a bare grammY bot`),
    row('message → reply p50', percentile(ns.messages, 50), percentile(base.messages, 50), 'ms', 20),
    row('message → reply p99', percentile(ns.messages, 99), percentile(base.messages, 99), 'ms', 100, `${ns.messages.length} messages in bursts of ${BURST}: /status, /backlog, new work, /help`),
    row('RSS after start', ns.rssStartMb, base.rssStartMb, 'MB', 150),
    row('RSS after the bursts', ns.rssAfterMb, base.rssAfterMb, 'MB', 200),
    row('start → first getUpdates', ns.startMs / 1000, base.startMs / 1000, 's', 2),
  ];
}

/** The row of benchmark 6b: 1000 new items pushed at once, until every one is stored and answered. */
export async function benchQueueing(): Promise<BenchRow[]> {
  const run = async (kind: BotKind): Promise<number> => {
    const telegram: FakeTelegram = await startFakeTelegram({ token: CANARY.telegramToken });
    const dataDir = tempDir('ns-bench-queue-');
    const bot = await startBot(kind, telegram, dataDir);
    try {
      await messageBurst(telegram, ['warm-up']);
      const texts = Array.from({ length: QUEUE_ITEMS }, (_, i) => `Add input validation to endpoint ${i} of the API`);
      const start = performance.now();
      await messageBurst(telegram, texts, 60_000);
      const elapsed = performance.now() - start;
      if (kind === 'nightshift') {
        const queued = sendsTo(telegram).filter((c) => /Queued #\d+/.test(String(c.params.text))).length;
        if (queued < QUEUE_ITEMS + 1) throw new Error(`only ${queued} of ${QUEUE_ITEMS + 1} messages were answered "Queued"`);
      }
      return elapsed;
    } finally {
      await bot.stop();
      await telegram.close();
    }
  };
  const base = await run('echo');
  const ns = await run('nightshift');
  return [
    {
      bench: '6 store',
      metric: `queue ${QUEUE_ITEMS.toLocaleString('en-US')} items through the bot`,
      figure: ns / 1000,
      baseline: base / 1000,
      unit: 's',
      target: { on: 'figure', op: '<=', value: 5 },
      note: 'pushed at once; until every "Queued #n" reply reached Telegram; baseline: a bare grammY bot replying to 1000 messages',
    },
  ];
}
