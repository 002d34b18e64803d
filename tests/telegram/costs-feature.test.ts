import { Writable } from 'node:stream';
import { Bot } from 'grammy';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { costUsd, priceFor, type TokenUsage } from '../../src/domain/pricing.js';
import type { DailySpend } from '../../src/pipeline/cost-report.js';
import type { Store } from '../../src/store/open-store.js';
import { renderCostChart } from '../../src/telegram/cost-chart.js';
import type { BotContext } from '../../src/telegram/context.js';
import { CHART_FILE_NAME, costsFeature, formatUsd } from '../../src/telegram/features/costs.js';
import { createOutboxSender, type OutboxSender } from '../../src/telegram/outbox-sender.js';
import { createRespond } from '../../src/telegram/respond.js';
import { startFakeTelegram, type FakeTelegram } from '../fakes/telegram-server.js';
import { ALICE } from '../helpers/bot-process.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

const TZ = 'Europe/Amsterdam';
const utc = (iso: string) => Date.parse(iso);
// Wednesday 25 November 2026, 10:00 in Amsterdam.
const NOW = utc('2026-11-25T09:00:00Z');
const TODAY_FROM = utc('2026-11-24T23:00:00Z');
const WEEK_FROM = utc('2026-11-22T23:00:00Z');
const MONTH_FROM = utc('2026-10-31T23:00:00Z');

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function pngSize(png: Buffer): { width: number; height: number } {
  if (!png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG: wrong signature');
  if (png.subarray(12, 16).toString('latin1') !== 'IHDR') throw new Error('not a PNG: IHDR is not the first chunk');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

interface Row {
  at: number;
  stage: string;
  model: string;
  usage: TokenUsage;
  batch: boolean;
  itemId: number | null;
  costUsd: number;
}

let fake: FakeTelegram | undefined;
let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
  await fake?.close();
  fake = undefined;
});

/** A store holding a month of calls, one merge today and one decision, and the rows inserted. */
function seed(store: Store, clock: { now: number }): Row[] {
  const rows: Row[] = [];
  const call = (at: string, stage: string, model: string, u: Partial<TokenUsage>, opts: { batch?: boolean; itemId?: number } = {}) => {
    const usage: TokenUsage = { inputTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 0, ...u };
    const batch = opts.batch ?? false;
    const row: Row = { at: utc(at), stage, model, usage, batch, itemId: opts.itemId ?? null, costUsd: costUsd(usage, priceFor(model)!, { batch }) };
    clock.now = row.at;
    store.ledger.record({ itemId: row.itemId, stage, model, ...usage, batch, costUsd: row.costUsd });
    rows.push(row);
  };
  const item = store.items.create(makeNewItem()).id;
  call('2026-11-03T10:00:00Z', 'build', 'claude-opus-4-5', { inputTokens: 30_000, outputTokens: 6_000 });
  call('2026-11-23T10:00:00Z', 'fix-1', 'claude-opus-4-5', { inputTokens: 2_000, cacheWrite1hTokens: 30_000, outputTokens: 3_000 }, { itemId: item });
  call('2026-11-25T07:00:00Z', 'build', 'claude-opus-4-5', { inputTokens: 10_000, cacheReadTokens: 200_000, outputTokens: 5_000 }, { itemId: item });
  call('2026-11-25T07:30:00Z', 'review', 'claude-sonnet-4-5', { inputTokens: 50_000, outputTokens: 2_000 }, { itemId: item, batch: true });
  clock.now = utc('2026-11-25T08:40:00Z');
  for (const state of ['building', 'reviewing', 'ready'] as const) store.items.transition(item, state);
  const [outboxId] = store.outbox.enqueue({ chatId: ALICE.id, text: 'card' });
  const card = store.cards.create({ kind: 'review', itemId: item, repo: 'me/app', chatId: ALICE.id });
  store.cards.shown(card.id, { outboxId: outboxId!, html: 'card' });
  store.outbox.markSent(outboxId!, 1);
  clock.now = utc('2026-11-25T08:45:00Z');
  store.items.transition(item, 'merged');
  store.cards.decide(card.id, 'approve', 'merged', { id: ALICE.id, name: '@alice' });
  clock.now = NOW;
  return rows;
}

/** A real grammY bot on the fake Bot API with `/costs`, the real respond and outbox, and a log that is kept. */
async function startBot(opts: { seedRows?: boolean; renderChart?: (series: DailySpend) => Promise<Buffer> } = {}) {
  fake = await startFakeTelegram();
  const { store, clock } = makeStore(utc('2026-11-01T00:00:00Z'));
  const rows = opts.seedRows === false ? [] : seed(store, clock);
  const logLines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const sender: OutboxSender = createOutboxSender({ store, log, now: () => clock.now });
  const respond = createRespond({ store, sender });
  const rendered: Buffer[] = [];
  const bot = new Bot<BotContext>(fake.token, { client: { apiRoot: fake.apiRoot } });
  bot.use((ctx, next) => {
    ctx.log = log.child({ update_id: ctx.update.update_id });
    return next();
  });
  bot.use(
    costsFeature({
      store,
      prices: {},
      timeZone: TZ,
      hourlyRateUsd: 60,
      respond,
      now: () => clock.now,
      renderChart:
        opts.renderChart ??
        (async (series) => {
          const png = await renderCostChart(series);
          rendered.push(png);
          return png;
        }),
    }),
  );
  sender.start(bot.api);
  const polling = bot.start();
  const stop = async () => {
    if (bot.isRunning()) await bot.stop();
    await polling;
    await sender.stop();
  };
  cleanup.push(stop, () => store.close());
  return { fake, store, rows, rendered, logLines, stop };
}

const sum = (rows: readonly Row[], keep: (r: Row) => boolean) => rows.filter(keep).reduce((s, r) => s + r.costUsd, 0);

describe('/costs', () => {
  it('answers with text whose numbers are the ledger sums, then the chart as a PNG photo', async () => {
    const { fake, rows, rendered } = await startBot();
    fake.pushMessage(ALICE, '/costs');
    const text = await fake.waitFor(() => fake.sent(ALICE.id).find((m) => m.text.includes('<b>Costs</b>')), { what: 'the costs text' });
    const photo = await fake.waitFor(() => fake.callsOf('sendPhoto')[0], { what: 'the chart' });

    const today = (r: Row) => r.at >= TODAY_FROM;
    const week = (r: Row) => r.at >= WEEK_FROM;
    const month = (r: Row) => r.at >= MONTH_FROM;
    const lines = text.text.split('\n');
    expect(lines).toContain(`<b>Today</b> · ${formatUsd(sum(rows, today))} in 2 calls`);
    expect(lines).toContain(`<b>This week</b> · ${formatUsd(sum(rows, week))} in 3 calls`);
    expect(lines).toContain(`<b>This month</b> · ${formatUsd(sum(rows, month))} in 4 calls`);
    const todayStages = lines[lines.indexOf(`<b>Today</b> · ${formatUsd(sum(rows, today))} in 2 calls`) + 1];
    expect(todayStages).toContain(`build ${formatUsd(sum(rows, (r) => today(r) && r.stage === 'build'))}`);
    expect(todayStages).toContain(`review ${formatUsd(sum(rows, (r) => today(r) && r.stage === 'review'))}`);
    expect(text.text).toContain(`fix ${formatUsd(sum(rows, (r) => week(r) && r.stage.startsWith('fix')))}`);
    expect(text.text).toContain(`opus-4-5 ${formatUsd(sum(rows, (r) => month(r) && r.model === 'claude-opus-4-5'))}`);
    // Cache: 200k Opus tokens read at a tenth of $5/M; batch: the review paid half of its price.
    const cache = (200_000 * 0.9 * 5) / 1_000_000;
    const batch = rows.filter((r) => today(r) && r.batch).reduce((s, r) => s + costUsd(r.usage, priceFor(r.model)!) - r.costUsd, 0);
    expect(lines).toContain(`Saved: cache ${formatUsd(cache)} · batch ${formatUsd(batch)}`);
    // One merge today: the day's spend, and what the item cost over its life (Monday's fix too).
    const itemUsd = sum(rows, (r) => r.itemId !== null);
    expect(text.text).toContain(`Merged: 1 PR · ${formatUsd(sum(rows, today))} per PR · lifetime ${formatUsd(itemUsd)} per PR`);
    // Five minutes from the card's delivery to the tap, at $60 an hour: $5.
    expect(text.text).toContain('You: 1 decision · median 5m · 5m in all ($5.00 at $60/h)');
    expect(text.text).toContain(`All-in per merged PR: ${formatUsd(sum(rows, today) + 5)}`);
    expect(text.parse_mode).toBe('HTML');

    expect(photo.params.chat_id).toBe(ALICE.id);
    // grammY uploads the file as a multipart part that `photo` points at.
    const part = /^attach:\/\/(.+)$/.exec(String(photo.params.photo))?.[1];
    expect(part).toBeDefined();
    expect(photo.params[part!]).toEqual({ filename: CHART_FILE_NAME, size: rendered[0]!.length });
    const { width, height } = pngSize(rendered[0]!);
    expect(width).toBeGreaterThan(800);
    expect(height).toBeGreaterThan(400);
  });

  it('answers a redelivered update once', async () => {
    const { fake } = await startBot();
    const first = fake.pushMessage(ALICE, '/costs');
    await fake.waitFor(() => fake.callsOf('sendPhoto').length === 1, { what: 'the first chart' });
    fake.redeliver(first.update_id);
    fake.pushMessage(ALICE, '/costs');
    await fake.waitFor(() => fake.callsOf('sendPhoto').length === 2, { what: 'the second chart' });
    await fake.waitFor(() => fake.sent(ALICE.id).filter((m) => m.text.includes('<b>Costs</b>')).length === 2, { what: 'two texts' });
    expect(fake.callsOf('sendPhoto')).toHaveLength(2);
  });

  it('keeps the text and logs the failure when the chart cannot be drawn', async () => {
    const { fake, logLines, stop } = await startBot({
      renderChart: () => Promise.reject(new Error('resvg: out of memory')),
    });
    fake.pushMessage(ALICE, '/costs');
    await fake.waitFor(() => fake.sent(ALICE.id).find((m) => m.text.includes('<b>Costs</b>')), { what: 'the costs text' });
    await fake.waitFor(() => logLines.find((l) => l.msg === 'could not send the cost chart; the text was sent'), { what: 'the logged failure' });
    await stop();
    expect(fake.callsOf('sendPhoto')).toHaveLength(0);
    const logged = logLines.find((l) => l.msg === 'could not send the cost chart; the text was sent');
    expect(logged).toMatchObject({ level: 50, err: { message: 'resvg: out of memory' } });
  });

  it('keeps the text and logs the failure when Telegram refuses the photo', async () => {
    const { fake, logLines } = await startBot();
    fake.failNext('sendPhoto', { kind: 'error', code: 400, description: 'Bad Request: IMAGE_PROCESS_FAILED' });
    fake.pushMessage(ALICE, '/costs');
    await fake.waitFor(() => fake.sent(ALICE.id).find((m) => m.text.includes('<b>Costs</b>')), { what: 'the costs text' });
    const logged = await fake.waitFor(() => logLines.find((l) => l.msg === 'could not send the cost chart; the text was sent'), { what: 'the logged failure' });
    expect(JSON.stringify(logged)).toContain('IMAGE_PROCESS_FAILED');
  });

  it('says nothing was spent and sends no chart for an empty ledger', async () => {
    const { fake, stop } = await startBot({ seedRows: false });
    fake.pushMessage(ALICE, '/costs');
    const text = await fake.waitFor(() => fake.sent(ALICE.id).find((m) => m.text.includes('<b>Costs</b>')), { what: 'the costs text' });
    await stop();
    expect(text.text.split('\n').filter((l) => l.endsWith('· nothing spent'))).toHaveLength(3);
    expect(fake.callsOf('sendPhoto')).toHaveLength(0);
  });
});

describe('formatUsd', () => {
  it('shows cents, keeps a trace of sub-cent amounts, and signs savings that were losses', () => {
    expect(formatUsd(0)).toBe('$0.00');
    expect(formatUsd(1.234)).toBe('$1.23');
    expect(formatUsd(0.00421)).toBe('$0.0042');
    expect(formatUsd(-0.5)).toBe('−$0.50');
    expect(formatUsd(-0.00001)).toBe('$0.0000');
  });
});
