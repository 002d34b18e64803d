/**
 * The standard scenario through the real process (`node dist/main.js`): a request queued from
 * Telegram, `/run`, the recorded 30-turn build (model replies from the recording, tools run
 * for real), the PR opened on the fake GitHub, review round 1 (4 angles + triage), the fix,
 * review round 2 (the fix alone), the card. Run twice: `NIGHTSHIFT_ECONOMY=standard` and
 * `batch`. Gives benchmark 3 (review + triage, batch vs interactive) and the dollars of one
 * item by stage. Configuration is the only interface used, so it runs unchanged once the
 * review stage's batch mode exists, and reports "not available" until then.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DATABASE_FILE } from '../src/main.js';
import { startFakeAnthropic, type FakeReply } from '../tests/fakes/anthropic-server.js';
import { startFakeGitHub } from '../tests/fakes/github-server.js';
import { startFakeTelegram } from '../tests/fakes/telegram-server.js';
import { ALICE, botEnv, CANARY, startBotProcess, tempDir } from '../tests/helpers/bot-process.js';
import { createFixtureRemote, loadTranscript, REQUEST } from './lib/fixture.js';
import type { BenchRow } from './lib/report.js';
import { reviewReplies } from './lib/review-replies.js';
import { FIRST_BYTE_MS } from './llm-cost.js';

/** Longest a scenario run may take before it counts as a miss. @default 240 s */
const RUN_TIMEOUT_MS = 240_000;

/** Dollars of one item by ledger stage (`fix-1` etc. summed into `fix`). */
export interface ItemCost {
  readonly byStage: Record<string, number>;
  readonly total: number;
  /** Message Batches the process created. */
  readonly batches: number;
}

/** Runs the standard scenario once with `economy`. */
export async function runScenario(economy: 'standard' | 'batch'): Promise<ItemCost> {
  const root = tempDir('ns-bench-scenario-');
  const bare = createFixtureRemote(join(root, 'server'));
  const telegram = await startFakeTelegram({ token: CANARY.telegramToken });
  const anthropic = await startFakeAnthropic({ apiKey: CANARY.anthropicKey, firstByteDelayMs: FIRST_BYTE_MS, autoEndBatches: true });
  const github = await startFakeGitHub({ token: CANARY.githubToken, repos: [bare] });
  const dataDir = join(root, 'data');
  const transcript = loadTranscript();
  const review = reviewReplies();
  let buildTurn = 0;
  anthropic.onRequest((req) => {
    const body = req.body as { tools?: Array<{ name: string }>; system?: Array<{ text: string }> };
    const isAgent = (body.tools ?? []).some((t) => t.name === 'bash');
    const isFix = (body.system ?? []).some((s) => s.text.includes('fixing problems'));
    if (isAgent && !isFix) {
      const t = transcript[buildTurn++];
      if (!t) return undefined;
      const content: FakeReply['content'] = [{ type: 'text', text: t.text }];
      if (t.tool) content.push({ type: 'tool_use', name: t.tool.name, input: t.tool.input });
      return { content };
    }
    return review(req);
  });
  const proc = startBotProcess(
    botEnv(telegram.apiRoot, dataDir, {
      ANTHROPIC_BASE_URL: anthropic.baseUrl,
      GITHUB_API_URL: github.baseUrl,
      GITHUB_SERVER_URL: bare.serverUrl,
      NIGHTSHIFT_REPOS: 'me/app',
      NIGHTSHIFT_ECONOMY: economy,
      // The fake ends a batch as it is created: poll it at once rather than after a minute.
      NIGHTSHIFT_BATCH_POLL_SECONDS: '1',
      NIGHTSHIFT_SANDBOX: 'never',
      LOG_LEVEL: 'info',
    }),
  );
  try {
    const said = (pattern: RegExp, what: string, timeoutMs = 30_000) => telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => pattern.test(m.text)), { what, timeoutMs });
    await telegram.waitFor(() => telegram.callsOf('getUpdates').length > 0, { what: 'the bot to poll', timeoutMs: 20_000 });
    telegram.pushMessage(ALICE, REQUEST);
    await said(/Queued #1/, 'the item to be queued');
    telegram.pushMessage(ALICE, '/run');
    await said(/Reviewed and ready for you/, `the item to be ready (${economy})`, RUN_TIMEOUT_MS).catch((error: unknown) => {
      const warnings = proc.lines.filter((l) => /"level":(40|50|60)/.test(l)).slice(-5).join('\n');
      throw new Error(`${error instanceof Error ? error.message.split('\n')[0] : String(error)}\n${warnings}`);
    });
    await proc.stop();
    const db = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
    try {
      const rows = db.prepare('SELECT stage, sum(cost_usd) AS usd FROM llm_calls WHERE item_id = 1 GROUP BY stage').all() as Array<{ stage: string; usd: number }>;
      const byStage: Record<string, number> = {};
      for (const r of rows) {
        const stage = r.stage.replace(/-\d+$/, '');
        byStage[stage] = (byStage[stage] ?? 0) + r.usd;
      }
      return { byStage, total: rows.reduce((s, r) => s + r.usd, 0), batches: anthropic.batches.length };
    } finally {
      db.close();
    }
  } finally {
    await proc.kill9();
    await Promise.all([telegram.close(), anthropic.close(), github.close()]);
  }
}

/** Benchmark 3 and the dollars of one item, interactive and batch. */
export async function benchScenario(): Promise<BenchRow[]> {
  const standard = await runScenario('standard');
  let batch: ItemCost | undefined;
  let why: string | undefined;
  try {
    batch = await runScenario('batch');
    if (batch.batches === 0) why = 'not available yet: with NIGHTSHIFT_ECONOMY=batch the review stage made no Message Batch';
  } catch (error) {
    why = `the batch run did not finish: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
  }
  const available = why === undefined && batch !== undefined;
  const reviewShare = (c: ItemCost) => (100 * (c.byStage.review ?? 0)) / c.total;
  const stages = (c: ItemCost) => Object.entries(c.byStage).map(([s, usd]) => `${s} $${usd.toFixed(3)}`).join(', ');
  const rows: BenchRow[] = [
    {
      bench: '3 batch economy',
      metric: 'review + triage, 2 rounds',
      figure: available ? batch!.byStage.review : undefined,
      baseline: standard.byStage.review,
      unit: '$',
      target: { on: 'ratio', op: '<=', value: 0.55 },
      note: available ? `${batch!.batches} batches; baseline: the same scenario with NIGHTSHIFT_ECONOMY=standard` : why!,
    },
    {
      bench: 'item cost',
      metric: 'one item, interactive',
      figure: standard.total,
      baseline: undefined,
      unit: '$',
      note: `${stages(standard)}; review is ${reviewShare(standard).toFixed(0)} %`,
    },
  ];
  if (available) {
    rows.push({ bench: 'item cost', metric: 'one item, batch review', figure: batch!.total, baseline: standard.total, unit: '$', note: `${stages(batch!)}; review is ${reviewShare(batch!).toFixed(0)} %` });
  }
  return rows;
}
