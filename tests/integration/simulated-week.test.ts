import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log/create-logger.js';
import { DATABASE_FILE, startNightshift, type Nightshift } from '../../src/main.js';
import { openStore } from '../../src/store/open-store.js';
import { formatUsd } from '../../src/telegram/features/costs.js';
import type { FakeAnthropic, FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import type { FakeGitHub } from '../fakes/github-server.js';
import type { FakeTelegram, SentMessage } from '../fakes/telegram-server.js';
import { ALICE, botEnv } from '../helpers/bot-process.js';
import type { BareRepo } from '../helpers/git-fixture.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';

// The "done when": the bot left running against the fakes over a simulated week on an
// injected clock. A user in New York queues three items a day (one before, two during peak
// hours) and approves every card while awake. The week crosses the end of October (the monthly
// cap resets) and the end of daylight saving time (1 November, 02:00 → 01:00). Each request is
// sized when it is queued (it fits). Afterwards:
// every run started off-peak, no cap was ever exceeded, and /costs says what the ledger says.
// The expectations are computed here from the database with Intl, not with nightshift's own
// time functions.

const TZ = 'America/New_York';
const PEAK = { from: 14, to: 22 };
const DAILY_USD = 1;
const MONTHLY_USD = 40;
/** Already spent this month before the week starts, so the monthly cap binds on its last October days. */
const EARLIER_THIS_MONTH_USD = 38.5;
const ITEM_USD = 2;
const BUILD_USD = 1;
const REVIEW_USD = 0.9;
const HOUR = 60 * 60_000;
const STEP_MS = HOUR;
/** The line every build leaves for review to find. */
const MARK = '// XXX-UNVALIDATED';
/** Tuesday 27 October 2026, 00:00 in New York (EDT, UTC−4). */
const WEEK_START = Date.UTC(2026, 9, 27, 4, 0);
/** Tuesday 3 November 2026, 00:00 in New York (EST, UTC−5): a week and the hour DST gave back. */
const WEEK_END = Date.UTC(2026, 10, 3, 5, 0);
/** When the user queues something, local time. */
const QUEUE_AT = ['09:00', '15:00', '21:00'];
/** When the user looks at their phone, local hours. */
const AWAKE = { from: 7, to: 23 };

let telegram: FakeTelegram;
let anthropic: FakeAnthropic;
let github: FakeGitHub;
let bare: BareRepo;
let dataDir: string;
let harness: PipelineHarness;
let app: Nightshift | undefined;

const clock = { now: WEEK_START, decisions: 0 };
function readClock(): number {
  if (new Error().stack?.includes('create-dispatcher')) clock.decisions += 1;
  return clock.now;
}

const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const body = (r: RecordedRequest) => r.body as { tools?: Array<{ name: string }>; messages: Array<{ content: unknown }>; tool_choice?: { name?: string } };
const isAgent = (r: RecordedRequest) => (body(r).tools ?? []).some((t) => t.name === 'bash');

/** Local wall-clock parts in New York, by Intl. */
const localParts = (ms: number) => {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', weekday: 'short', hourCycle: 'h23' })
      .formatToParts(ms)
      .map((p) => [p.type, p.value]),
  );
  return { date: `${parts.year}-${parts.month}-${parts.day}`, month: `${parts.year}-${parts.month}`, hour: Number(parts.hour), hhmm: `${parts.hour}:${parts.minute}`, weekday: parts.weekday! };
};
const isPeakLocal = (ms: number) => {
  const { hour } = localParts(ms);
  return hour >= PEAK.from && hour < PEAK.to;
};

const query = <T>(read: (d: Database.Database) => T, fallback: T): T => harness.query(read, fallback);
const buttons = (m: SentMessage) => ((m.reply_markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat();

/** Resolves once the dispatcher has decided `n` more times on the clock as it is now. */
async function dispatcherLooked(n = 2): Promise<void> {
  const target = clock.decisions + n;
  await until(() => clock.decisions >= target, `${n} more dispatch decisions`);
}

/** Resolves when `probe` holds, checking every few ms (the fakes' waitFor checks every 50). */
async function until(probe: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** No run holds a lease and every message is out: what the process does at this instant is done. */
async function settled(): Promise<void> {
  for (;;) {
    await dispatcherLooked();
    const busy = query((d) => {
      const leased = (d.prepare('SELECT count(*) AS n FROM items WHERE lease_owner IS NOT NULL').get() as { n: number }).n;
      const unsent = (d.prepare(`SELECT count(*) AS n FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?`).get(clock.now) as { n: number }).n;
      const deciding = (d.prepare(`SELECT count(*) AS n FROM cards WHERE status = 'deciding'`).get() as { n: number }).n;
      return leased + unsent + deciding + sizingDue(d);
    }, 0);
    if (busy === 0) return;
    await until(
      () =>
        query((d) => {
          const leased = (d.prepare('SELECT count(*) AS n FROM items WHERE lease_owner IS NOT NULL').get() as { n: number }).n;
          const deciding = (d.prepare(`SELECT count(*) AS n FROM cards WHERE status = 'deciding'`).get() as { n: number }).n;
          return leased + deciding + sizingDue(d) === 0;
        }, true),
      'the runs and decisions in hand to end',
    );
  }
}

/** Requests whose sizing is due now (not waiting for a budget's reset). */
const sizingDue = (d: Database.Database) =>
  (d.prepare(`SELECT count(*) AS n FROM items WHERE state = 'proposed' AND sizing = 'pending' AND coalesce(not_before, 0) <= ?`).get(clock.now) as { n: number }).n;

/** Review cards that still offer Approve, as they read now. */
function approvable(): SentMessage[] {
  const ids = query((d) => d.prepare(`SELECT o.telegram_message_id AS id FROM cards c JOIN outbox o ON o.id = c.outbox_id WHERE c.kind = 'review' AND c.status = 'open' AND o.telegram_message_id IS NOT NULL`).all() as Array<{ id: number }>, []);
  return ids
    .map((r) => telegram.sent(ALICE.id).find((m) => m.message_id === r.id))
    .filter((m): m is SentMessage => m !== undefined && buttons(m).some((b) => /Approve/.test(b.text)));
}

beforeEach(async () => {
  harness = await startPipelineHarness({ 'README.md': '# app\n', 'src/sum.js': 'export const sum = (a, b) => a + b;\n' });
  ({ telegram, anthropic, github, bare, dataDir } = harness);
  // Every item: a build that leaves a marked line, a correctness finding on it in the first
  // review round, triage says fix it now, the fix removes the mark, the second round is clean.
  // Replies are long (`outputTokens`), so an item costs about half a day's budget.
  anthropic.onRequest((req) => {
    const b = body(req);
    const all = JSON.stringify(b);
    if (isAgent(req)) {
      const fixing = all.includes('fixing problems that critical reviewers found');
      if (b.messages.length > 1) return { content: [{ type: 'text', text: fixing ? 'fixed: validated.' : 'Summary: added the feature.\nTests: none.\nNotes: none' }], outputTokens: 400 };
      if (fixing) {
        const file = /src\/feature\d+\.js/.exec(all)![0];
        return { ...tool('str_replace_based_edit_tool', { command: 'str_replace', path: file, old_str: MARK, new_str: '// validated' }), outputTokens: 600 };
      }
      const n = anthropic.requests.filter((r) => isAgent(r) && body(r).messages.length === 1 && !JSON.stringify(body(r)).includes('fixing problems')).length;
      return { ...tool('str_replace_based_edit_tool', { command: 'create', path: `src/feature${n}.js`, file_text: `export const feature${n} = () => ${n}; ${MARK}\n` }), outputTokens: 900 };
    }
    if (b.tool_choice?.name === 'report_size') {
      return { ...tool('report_size', { context_needed: 'small', judgment_needed: 'low', risk: 'low', verdict: 'fits', reason: 'one new function' }), outputTokens: 300 };
    }
    if (b.tool_choice?.name === 'report_findings') {
      const marked = /\+export const feature(\d+) = \(\) => \d+; \/\/ XXX-UNVALIDATED/.exec(all);
      const findings =
        marked && all.includes('Review angle: correctness')
          ? [{ file: `src/feature${marked[1]}.js`, line_start: 1, line_end: 1, severity: 'high', title: 'input not validated', evidence: MARK, failure: 'bad input passes', suggested_fix: 'validate it', confidence: 0.9 }]
          : [];
      return { ...tool('report_findings', { findings }), outputTokens: 1500 };
    }
    if (b.tool_choice?.name === 'report_triage') {
      const ids = [...all.matchAll(/\\"id\\": ?(\d+)/g)].map((m) => Number(m[1]));
      return { ...tool('report_triage', { verdict: 'ready', findings: ids.map((id) => ({ id, verdict: 'fix_now', reason: 'real' })) }), outputTokens: 500 };
    }
    return undefined;
  });
});

afterEach(async () => {
  await app?.stop('test over');
  app = undefined;
  await harness.close();
});

describe('a simulated week (in process, injected clock)', () => {
  it('starts every run off-peak, never exceeds a cap, and /costs matches the ledger', { timeout: 600_000 }, async () => {
    // Spend from earlier this month, recorded before the bot starts.
    const seed = openStore(join(dataDir, DATABASE_FILE), { now: () => Date.UTC(2026, 9, 1, 16) });
    seed.ledger.record({ itemId: null, stage: 'drift', model: 'claude-opus-4-6', inputTokens: 1000, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 1000, batch: false, costUsd: EARLIER_THIS_MONTH_USD });
    seed.close();
    const config = loadConfig(
      botEnv(telegram.apiRoot, dataDir, {
        ANTHROPIC_BASE_URL: anthropic.baseUrl,
        GITHUB_API_URL: github.baseUrl,
        GITHUB_SERVER_URL: bare.serverUrl,
        NIGHTSHIFT_REPOS: 'me/app',
        NIGHTSHIFT_TIMEZONE: TZ,
        NIGHTSHIFT_PEAK_HOURS: `${PEAK.from}:00-${PEAK.to}:00`,
        NIGHTSHIFT_AUTO_RUN: 'true',
        NIGHTSHIFT_DRIFT_EVERY: '0',
        NIGHTSHIFT_SIZING: 'on',
        NIGHTSHIFT_BUDGET_DAILY_USD: String(DAILY_USD),
        NIGHTSHIFT_BUDGET_MONTHLY_USD: String(MONTHLY_USD),
        NIGHTSHIFT_BUDGET_ITEM_USD: String(ITEM_USD),
        NIGHTSHIFT_BUDGET_BUILD_USD: String(BUILD_USD),
        NIGHTSHIFT_BUDGET_REVIEW_USD: String(REVIEW_USD),
        NIGHTSHIFT_BUILD_MAX_OUTPUT_TOKENS: '1000',
        NIGHTSHIFT_REVIEW_MAX_OUTPUT_TOKENS: '4000',
      }),
    );
    app = await startNightshift(config, createLogger({ level: 'silent', secrets: config.secrets }), { now: readClock, tickIntervalMs: 20, mergeableIntervalMs: 10 });
    await telegram.waitFor(() => telegram.callsOf('getUpdates').length > 0, { what: 'the bot to poll' });
    let queued = 0;
    let taps = 0;
    for (let t = WEEK_START; t < WEEK_END; t += STEP_MS) {
      clock.now = t;
      const local = localParts(t);
      if (QUEUE_AT.includes(local.hhmm)) {
        queued += 1;
        const n = queued;
        telegram.pushMessage(ALICE, `Add feature ${n} (${local.weekday} ${local.hhmm})`);
        await telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => new RegExp(`Sizing #${n}\\b`).test(m.text)), { what: `item ${n} taken for sizing` });
      }
      await settled();
      if (local.hour >= AWAKE.from && local.hour < AWAKE.to) {
        for (const card of approvable()) {
          const approve = buttons(card).find((b) => /Approve/.test(b.text))!;
          const tapped = telegram.pushCallback(ALICE, { message_id: card.message_id, chat_id: ALICE.id }, approve.callback_data);
          taps += 1;
          await telegram.waitFor(() => telegram.callsOf('answerCallbackQuery').find((c) => c.params.callback_query_id === tapped.callback_query!.id), { what: 'the answer to Approve' });
          await settled();
        }
      }
    }

    // 1. Every run started off-peak: each queued → building move (a start or a retry's restart).
    const starts = query((d) => d.prepare(`SELECT item_id AS id, at FROM item_events WHERE from_state = 'queued' AND to_state = 'building' ORDER BY at`).all() as Array<{ id: number; at: number }>, []);
    expect(starts.filter((s) => isPeakLocal(s.at)).map((s) => ({ ...s, local: localParts(s.at) }))).toEqual([]);

    // 2. No cap was ever exceeded: per local day and month, per item and per item and stage.
    const calls = query((d) => d.prepare('SELECT item_id AS itemId, stage, cost_usd AS usd, at FROM llm_calls').all() as Array<{ itemId: number | null; stage: string; usd: number; at: number }>, []);
    const sumBy = (key: (c: (typeof calls)[number]) => string | undefined) => {
      const sums = new Map<string, number>();
      for (const c of calls) {
        const k = key(c);
        if (k !== undefined) sums.set(k, (sums.get(k) ?? 0) + c.usd);
      }
      return sums;
    };
    const byDay = sumBy((c) => (c.at < WEEK_START ? undefined : localParts(c.at).date));
    const byMonth = sumBy((c) => localParts(c.at).month);
    const byItem = sumBy((c) => (c.itemId === null ? undefined : String(c.itemId)));
    const byItemStage = sumBy((c) => (c.itemId === null ? undefined : `${c.itemId} ${c.stage.replace(/-\d+$/, '')}`));
    // What the week came to, for the log.
    const states = query((d) => d.prepare('SELECT state, count(*) AS n FROM items GROUP BY state').all() as Array<{ state: string; n: number }>, []);
    const merged = states.find((s) => s.state === 'merged')?.n ?? 0;
    console.log(
      `simulated week: ${queued} queued, ${starts.length} runs started, ${taps} approvals, states ${JSON.stringify(states)}; ` +
        `spend by day ${JSON.stringify(Object.fromEntries([...byDay].map(([k, v]) => [k, Number(v.toFixed(3))])))}; by month ${JSON.stringify(Object.fromEntries([...byMonth].map(([k, v]) => [k, Number(v.toFixed(3))])))}`,
    );
    for (const [day, usd] of byDay) expect(usd, `spend on ${day}`).toBeLessThanOrEqual(DAILY_USD);
    for (const [month, usd] of byMonth) expect(usd, `spend in ${month}`).toBeLessThanOrEqual(MONTHLY_USD);
    for (const [item, usd] of byItem) expect(usd, `spend on item ${item}`).toBeLessThanOrEqual(ITEM_USD);
    const stageCaps: Record<string, number> = { build: BUILD_USD, review: REVIEW_USD, fix: config.review.fixBudgetUsd, sizing: config.sizing.budgetUsd };
    for (const [key, usd] of byItemStage) expect(usd, `spend on ${key}`).toBeLessThanOrEqual(stageCaps[key.split(' ')[1]!]!);
    // Every request was sized first, at queue time (also during peak hours: sizing is no run).
    expect(byItemStage.size).toBeGreaterThan(0);
    expect([...byItemStage.keys()].filter((k) => k.endsWith(' sizing'))).toHaveLength(queued);
    expect(merged).toBeGreaterThanOrEqual(4);
    // The caps bound: work was left queued, October's budget ran out (less than a run's minimum
    // was left), and runs started again on 1 November, once the monthly cap had reset.
    expect(byMonth.get('2026-10')!).toBeGreaterThan(MONTHLY_USD - 0.5);
    expect(starts.some((s) => localParts(s.at).date === '2026-11-01')).toBe(true);
    expect(queued - merged).toBeGreaterThan(0);

    // 3. /costs says what the ledger says: asked on Saturday 31 October (today, the week from
    // Monday 26th, October with the earlier spend) and on Monday 2 November (the week after
    // the DST change, November). Period bounds are local midnights, written out in UTC.
    const day = (y: number, m: number, d: number, utcHour: number) => Date.UTC(y, m - 1, d, utcHour);
    await expectCosts(day(2026, 10, 31, 16), {
      Today: [day(2026, 10, 31, 4), day(2026, 11, 1, 4)],
      'This week': [day(2026, 10, 26, 4), day(2026, 11, 2, 5)],
      'This month': [day(2026, 10, 1, 4), day(2026, 11, 1, 4)],
    });
    await expectCosts(day(2026, 11, 2, 17), {
      Today: [day(2026, 11, 2, 5), day(2026, 11, 3, 5)],
      'This week': [day(2026, 11, 2, 5), day(2026, 11, 9, 5)],
      'This month': [day(2026, 11, 1, 4), day(2026, 12, 1, 5)],
    });

    /** Asks /costs at `at` and compares each period's total, call count and stages with the ledger's rows in its bounds. */
    async function expectCosts(at: number, periods: Record<string, [number, number]>): Promise<void> {
      clock.now = at;
      const before = telegram.sent(ALICE.id).length;
      const photos = telegram.callsOf('sendPhoto').length;
      telegram.pushMessage(ALICE, '/costs');
      const report = await telegram.waitFor(() => telegram.sent(ALICE.id).slice(before).find((m) => m.text.startsWith('<b>Costs</b>')), { what: 'the /costs text' });
      await telegram.waitFor(() => telegram.callsOf('sendPhoto').length > photos, { what: 'the /costs chart' });
      const lines = report.text.split('\n');
      for (const [title, [from, to]] of Object.entries(periods)) {
        const rows = calls.filter((c) => c.at >= from && c.at < to);
        const head = lines.findIndex((l) => l.startsWith(`<b>${title}</b>`));
        expect(head, title).toBeGreaterThanOrEqual(0);
        const usd = rows.reduce((sum, c) => sum + c.usd, 0);
        if (rows.length === 0) {
          expect(lines[head]).toBe(`<b>${title}</b> · nothing spent`);
          continue;
        }
        expect(lines[head]).toBe(`<b>${title}</b> · ${formatUsd(usd)} in ${rows.length} call${rows.length === 1 ? '' : 's'}`);
        const stages = new Map<string, number>();
        for (const c of rows) stages.set(c.stage.replace(/-\d+$/, ''), (stages.get(c.stage.replace(/-\d+$/, '')) ?? 0) + c.usd);
        const shown = lines[head + 1]!.replace(/^Stages: /, '').split(' · ').sort();
        expect(shown, `${title} by stage`).toEqual([...stages].map(([stage, sum]) => `${stage} ${formatUsd(sum)}`).sort());
      }
    }
  });
});
