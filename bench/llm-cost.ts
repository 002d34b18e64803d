/**
 * Benchmarks 1 (review stage cost) and 2 (build loop cost): the production code paths against
 * the fake Anthropic server, whose `usage` follows the prompt-cache rules; each baseline is the
 * same run against the same fake with caching switched off (`caching: false`), in the same
 * process, with the same scripted replies, priced by the same ledger.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createBuildTools } from '../src/agent/build-tools.js';
import { runAgent, type ToolExecutor } from '../src/agent/run-agent.js';
import { createGitHub } from '../src/github/create-github.js';
import { createAnthropicClient } from '../src/llm/anthropic-client.js';
import { loadPrompt, renderPrompt } from '../src/llm/render-prompt.js';
import { fenceData, formatLessons } from '../src/pipeline/build-stage.js';
import { runReviewStage, type ReviewStageDeps } from '../src/pipeline/review-stage.js';
import { openStore, type Store } from '../src/store/open-store.js';
import { branchName } from '../src/workspace/branch-name.js';
import { createWorkspace } from '../src/workspace/create-workspace.js';
import { startFakeAnthropic, type FakeAnthropic, type FakeReply } from '../tests/fakes/anthropic-server.js';
import { startFakeGitHub } from '../tests/fakes/github-server.js';
import { CANARY } from '../tests/helpers/bot-process.js';
import { createFixtureRemote, loadTranscript, REQUEST, repoFiles } from './lib/fixture.js';
import type { BenchRow } from './lib/report.js';
import { reviewReplies } from './lib/review-replies.js';

/** The models of the standard scenario: the defaults of NIGHTSHIFT_MODEL_BUILD and NIGHTSHIFT_MODEL_REVIEW. */
export const BUILD_MODEL = 'claude-sonnet-4-6';
export const REVIEW_MODEL = 'claude-opus-4-6';
/** Time to the first byte of every fake reply: cache entries exist only from then on. */
export const FIRST_BYTE_MS = 40;
const TITLE = 'Add Option.env() for environment variables';
const silent = pino({ level: 'silent' });

/** Tokens and dollars of one run, from the ledger and the fake's usage. */
export interface RunCost {
  readonly usd: number;
  readonly inputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
  readonly outputTokens: number;
  readonly calls: number;
}

function costOf(store: Store, itemId: number, fake: FakeAnthropic, stage?: string): RunCost {
  const u = fake.totalUsage();
  return {
    usd: stage === undefined ? store.ledger.itemUsd(itemId) : store.ledger.stageUsd(itemId, stage),
    inputTokens: u.input_tokens,
    cacheReadTokens: u.cache_read_input_tokens,
    cacheWriteTokens: u.cache_creation_input_tokens,
    outputTokens: u.output_tokens,
    calls: fake.requests.filter((r) => r.usage).length,
  };
}

/** The recorded build replayed through `runAgent`: the fake answers with the recorded turns, the tools with the recorded results. */
export async function replayBuild(caching: boolean): Promise<RunCost> {
  const transcript = loadTranscript();
  const fake = await startFakeAnthropic({ caching, firstByteDelayMs: FIRST_BYTE_MS });
  const dir = mkdtempSync(join(tmpdir(), 'ns-bench-build-'));
  const store = openStore(join(dir, 'nightshift.db'));
  try {
    let turn = 0;
    fake.onRequest(() => {
      const t = transcript[turn++];
      if (!t) return undefined;
      const content: FakeReply['content'] = [{ type: 'text', text: t.text }];
      if (t.tool) content.push({ type: 'tool_use', name: t.tool.name, input: t.tool.input });
      return { content };
    });
    let call = 0;
    const replay: ToolExecutor = async (input) => {
      const recorded = transcript.filter((t) => t.tool)[call++];
      if (!recorded?.result || JSON.stringify(recorded.tool!.input) !== JSON.stringify(input)) throw new Error(`replay: tool call ${call} does not match the recording`);
      return recorded.result;
    };
    // The tool definitions the build stage offers, from the real tool factory.
    const real = await createBuildTools({ cwd: dir, sandbox: { mode: 'never', commandTimeoutMs: 1000, allowNetwork: false, envAllowList: [] }, secrets: [], log: silent });
    await real.close();
    const item = store.items.create({ repo: 'me/app', title: TITLE, request: REQUEST, chatId: 1001, createdBy: 1001, state: 'building' });
    const guidelines = repoFiles()['CONTRIBUTING.md']!;
    const outcome = await runAgent(
      { model: createAnthropicClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, maxRetries: 0 }), store, prices: {}, redact: (t) => t, log: silent },
      {
        itemId: item.id,
        stage: 'build',
        model: BUILD_MODEL,
        system: renderPrompt(loadPrompt('build'), { repo: 'me/app', default_branch: 'main' }),
        initialMessage: renderPrompt(loadPrompt('build-task'), { item_id: item.id, request: fenceData(REQUEST, 'request'), guidelines: fenceData(guidelines, 'guidelines'), lessons: formatLessons([]) }),
        tools: real.tools,
        executors: { bash: replay, str_replace_based_edit_tool: replay },
        limits: { maxTurns: 60, maxOutputTokens: 16_000, maxWallClockMs: 600_000, stageBudgetUsd: 50, itemBudgetUsd: 50 },
      },
    );
    if (outcome.kind !== 'done' || outcome.turns !== transcript.length) throw new Error(`the replayed build ended ${JSON.stringify(outcome)}`);
    return costOf(store, item.id, fake);
  } finally {
    store.close();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fixed PR (the recorded build's patch) through `runReviewStage`: four angles and triage, one round. */
export async function reviewPullRequest(caching: boolean): Promise<RunCost & { contextTokens: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'ns-bench-review-'));
  const fake = await startFakeAnthropic({ caching, firstByteDelayMs: FIRST_BYTE_MS });
  const itemId = 1;
  const branch = branchName(itemId, TITLE);
  const bare = createFixtureRemote(join(dir, 'server'), branch);
  const gh = await startFakeGitHub({ repos: [bare] });
  const store = openStore(join(dir, 'nightshift.db'));
  try {
    const repo = { owner: bare.owner, name: bare.name, fullName: bare.fullName };
    const github = createGitHub({ token: CANARY.githubToken, baseUrl: gh.baseUrl, log: silent, throttle: false, retryBaseMs: 1 });
    const item = store.items.create({ repo: repo.fullName, title: TITLE, request: REQUEST, chatId: 1001, createdBy: 1001, state: 'reviewing' });
    if (item.id !== itemId) throw new Error('the bench store is not fresh');
    const pr = await github.ensurePullRequest({ repo, head: branch, base: 'main', title: TITLE, body: 'nightshift item #1' });
    store.items.setPullRequest(item.id, { branch, number: pr.number, url: pr.url, headSha: pr.headSha });
    fake.onRequest(reviewReplies());
    const deps: ReviewStageDeps = {
      store,
      workspace: createWorkspace({ dataDir: join(dir, 'data'), serverUrl: bare.serverUrl, token: 'unused-for-file-urls', log: silent }),
      github,
      agent: { model: createAnthropicClient({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, maxRetries: 0 }), store, prices: {}, redact: (t) => t },
      createTools: (cwd) => createBuildTools({ cwd, sandbox: { mode: 'never', commandTimeoutMs: 60_000, allowNetwork: false, envAllowList: [] }, secrets: [], log: silent }),
      repos: [repo],
      itemBudgetUsd: 50,
      notifier: { notify: () => undefined },
      log: silent,
      models: { review: REVIEW_MODEL, fix: BUILD_MODEL },
      // One round: the fixed PR reviewed once by every angle, then triaged (no fix).
      review: { rounds: 1, concurrency: 3, maxOutputTokens: 8_000, budgetUsd: 20, fixBudgetUsd: 5 },
      fixLimits: { maxTurns: 60, maxOutputTokens: 16_000, maxWallClockMs: 600_000, budgetUsd: 5 },
    };
    const outcome = await runReviewStage(deps, store.items.get(item.id)!, new AbortController().signal);
    if (outcome.kind !== 'done') throw new Error(`the review stage ended ${JSON.stringify(outcome)}`);
    const reviewers = fake.requests.filter((r) => (r.body as { tool_choice?: { name?: string } }).tool_choice?.name === 'report_findings');
    if (reviewers.length !== 4) throw new Error(`expected 4 reviewers, saw ${reviewers.length}`);
    const first = reviewers[0]!.usage!;
    return { ...costOf(store, item.id, fake, 'review'), contextTokens: first.input_tokens + first.cache_creation_input_tokens + first.cache_read_input_tokens };
  } finally {
    store.close();
    await Promise.all([fake.close(), gh.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Rows of benchmarks 1 and 2. */
export async function benchLlmCost(): Promise<BenchRow[]> {
  const [reviewCached, reviewPlain] = [await reviewPullRequest(true), await reviewPullRequest(false)];
  const [buildCached, buildPlain] = [await replayBuild(true), await replayBuild(false)];
  return [
    {
      bench: '1 review cost',
      metric: '4 angles + triage, one PR',
      figure: reviewCached.usd,
      baseline: reviewPlain.usd,
      unit: '$',
      target: { on: 'ratio', op: '<=', value: 0.45 },
      note: `${reviewCached.calls} calls on ${REVIEW_MODEL}, ${Math.round(reviewCached.contextTokens / 1000)}k tokens of prompt per reviewer; cached: ${reviewCached.cacheWriteTokens} written, ${reviewCached.cacheReadTokens} read, ${reviewCached.inputTokens} plain, ${reviewCached.outputTokens} out; baseline: the same calls without caching`,
    },
    {
      bench: '2 build loop',
      metric: `${loadTranscript().length}-turn build replayed`,
      figure: buildCached.usd,
      baseline: buildPlain.usd,
      unit: '$',
      target: { on: 'ratio', op: '<=', value: 0.3 },
      note: `${BUILD_MODEL}; cached: ${buildCached.cacheWriteTokens} written, ${buildCached.cacheReadTokens} read, ${buildCached.inputTokens} plain, ${buildCached.outputTokens} out; baseline: ${buildPlain.inputTokens} plain input`,
    },
  ];
}
