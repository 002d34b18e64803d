import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { costUsd, DEFAULT_PRICES } from '../../src/domain/pricing.js';
import { type FakeAnthropic, type FakeReply } from '../fakes/anthropic-server.js';
import type { FakeGitHub } from '../fakes/github-server.js';
import type { FakeTelegram } from '../fakes/telegram-server.js';
import { ALICE, CANARY } from '../helpers/bot-process.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';
import { readFileAt, refSha, type BareRepo } from '../helpers/git-fixture.js';

// The whole build stage through the real process: a Telegram message and /run become a branch
// with the agent's change in a real bare repository and an open PR on the fake GitHub, with the
// model played by the fake Anthropic server.

const priceOf = (model: string) => DEFAULT_PRICES.find((p) => p.match.test(model))!.price;

let telegram: FakeTelegram;
let anthropic: FakeAnthropic;
let github: FakeGitHub;
let bare: BareRepo;
let dataDir: string;
let harness: PipelineHarness;
const startBot = (overrides?: Record<string, string>) => harness.startBot(overrides);
const waitForMessage = (pattern: RegExp, what?: string) => harness.waitForMessage(pattern, what);

const edit = (input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name: 'str_replace_based_edit_tool', input }] });
const bash = (command: string): FakeReply => ({ content: [{ type: 'tool_use', name: 'bash', input: { command } }] });
const finish = (text: string): FakeReply => ({ content: [{ type: 'text', text }] });

/** The build agent's calls (the reviewers and triage come after them). */
const buildCalls = () => anthropic.requests.filter((r) => r.path === '/v1/messages' && JSON.stringify(r.body.tools ?? []).includes('"bash"'));

/** Reviewers that find nothing: the review stage after a build passes cleanly. */
const cleanReview = (req: { body: { tool_choice?: { name?: string } } }): FakeReply | undefined =>
  req.body.tool_choice?.name === 'report_findings' ? { content: [{ type: 'tool_use', name: 'report_findings', input: { findings: [] } }] } : undefined;

/** What the fake says was billed (build calls on Sonnet, reviewers on Opus), priced by the default table. */
function billedUsd(): number {
  return anthropic.requests
    .filter((r) => r.path === '/v1/messages' && r.usage && (r as { outcome?: string }).outcome === 'ok')
    .reduce(
      (sum, r) =>
        sum +
        costUsd(
          { inputTokens: r.usage!.input_tokens, cacheWrite5mTokens: r.usage!.cache_creation_input_tokens, cacheWrite1hTokens: 0, cacheReadTokens: r.usage!.cache_read_input_tokens, outputTokens: r.usage!.output_tokens },
          priceOf((r.body as { model: string }).model),
        ),
      0,
    );
}

function ledgerUsd(): number {
  const db = new Database(join(dataDir, 'nightshift.db'), { readonly: true });
  const { usd } = db.prepare('SELECT coalesce(sum(cost_usd), 0) AS usd FROM llm_calls').get() as { usd: number };
  db.close();
  return usd;
}

beforeEach(async () => {
  harness = await startPipelineHarness({
    'README.md': '# app\n',
    'AGENTS.md': 'Keep functions small. Run `npm test`.\n',
    'package.json': '{ "name": "app", "scripts": { "test": "node -e \\"process.exit(0)\\"" } }\n',
  });
  ({ telegram, anthropic, github, bare, dataDir } = harness);
  anthropic.onRequest(cleanReview);
});

afterEach(async () => harness.close());

describe('build stage, end to end', () => {
  it('turns a Telegram message into an open PR whose branch holds the agent change', async () => {
    anthropic.script(
      edit({ command: 'create', path: 'hello.txt', file_text: 'Hello from the agent\n' }),
      bash('cat hello.txt && env'),
      finish('Summary: added hello.txt.\nTests: npm test passed.\nNotes: none'),
    );
    const proc = await startBot();
    telegram.pushMessage(ALICE, 'Add a hello file');
    await waitForMessage(/Queued #1 for me\/app/);
    telegram.pushMessage(ALICE, '/run');
    await waitForMessage(/Starting #1: Add a hello file/);
    const done = await waitForMessage(/Pull request .*#1.* opened/, 'the PR notice');
    expect(done.text).toContain('added hello.txt');

    const branch = 'nightshift/1-add-a-hello-file';
    expect(readFileAt(bare, branch, 'hello.txt')).toBe('Hello from the agent\n');
    expect(github.pulls).toHaveLength(1);
    expect(github.pulls[0]).toMatchObject({ head: branch, base: 'main', state: 'open', title: 'Add a hello file' });
    expect(github.pulls[0]!.body).toContain('> Add a hello file');
    expect(github.pulls[0]!.body).toContain('<!-- nightshift:item:1 -->');
    expect(github.pulls[0]!.body).toContain('hello.txt');

    // The agent saw the repo's guidelines, fenced as data, and none of the secrets.
    const first = JSON.stringify(anthropic.requests[0]!.body);
    expect(first).toContain('Keep functions small');
    const toolOutput = JSON.stringify(anthropic.requests[2]!.body.messages.at(-1));
    expect(toolOutput).toContain('Hello from the agent');
    for (const secret of Object.values(CANARY)) {
      expect(JSON.stringify(anthropic.requests.map((r) => r.body))).not.toContain(secret);
      expect(github.pulls[0]!.body).not.toContain(secret);
    }

    // One progress message, edited rather than repeated.
    expect(telegram.sent(ALICE.id).filter((m) => m.text.includes('🔨'))).toHaveLength(1);

    // A clean review (every reviewer finds nothing) follows, then the item is ready.
    await waitForMessage(/Reviewed and ready for you/, 'the item to be ready');
    await proc.stop();
    expect(ledgerUsd()).toBeCloseTo(billedUsd(), 10);
    const list = (await (async () => {
      const again = await startBot();
      telegram.pushMessage(ALICE, '/backlog');
      const m = await waitForMessage(/Backlog/);
      await again.stop();
      return m;
    })()).text;
    expect(list).toContain('ready');
    expect(refSha(bare, branch)).toBeDefined();
  });

  it('stops at the turn limit and tells the user which limit', async () => {
    anthropic.onRequest((req) => bash(`echo ${req.seq}`));
    await startBot({ NIGHTSHIFT_BUILD_MAX_TURNS: '2' });
    telegram.pushMessage(ALICE, 'Loop forever');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    const failed = await waitForMessage(/Failed:/, 'the failure notice');
    expect(failed.text).toContain('turns limit');
    expect(buildCalls()).toHaveLength(2);
    expect(github.pulls).toHaveLength(0);
  });

  it('stops before a call that could cross the build budget, and says so', async () => {
    anthropic.onRequest(() => bash('ls'));
    // $0.20 with 16k output tokens at $15/M ($0.24 worst case) allows no call at all.
    await startBot({ NIGHTSHIFT_BUDGET_BUILD_USD: '0.2' });
    telegram.pushMessage(ALICE, 'Too expensive');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    const failed = await waitForMessage(/Failed:/, 'the failure notice');
    expect(failed.text).toContain('stage budget limit');
    expect(anthropic.requests).toHaveLength(0);
  });

  it('aborts the running agent when its item is cancelled', async () => {
    anthropic.failNext({ kind: 'stall' });
    const proc = await startBot();
    telegram.pushMessage(ALICE, 'Cancel me midway');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    await anthropic.waitFor(() => anthropic.requests[0], { what: 'the first call in flight' });
    telegram.pushMessage(ALICE, '/cancel 1');
    await waitForMessage(/Cancelled #1/);
    await proc.waitForLine(/outcome not applied/);
    telegram.pushMessage(ALICE, '/status');
    const status = await waitForMessage(/Status/);
    expect(status.text).toContain('1 cancelled');
    expect(status.text).toContain('Nothing is running.');
    expect(github.pulls).toHaveLength(0);
  });

  it('after a crash during PR creation, opens exactly one PR without paying for the agent again', async () => {
    anthropic.script(edit({ command: 'create', path: 'c.txt', file_text: 'c\n' }), finish('Summary: c.'));
    github.failNext('POST /repos/{owner}/{repo}/pulls', { kind: 'stall' });
    const first = await startBot();
    telegram.pushMessage(ALICE, 'Crash while opening');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    await github.waitFor(() => github.calls.find((c) => c.route === 'POST /repos/{owner}/{repo}/pulls'), { what: 'PR creation in flight', timeoutMs: 30_000 });
    await first.kill9();
    const paid = buildCalls().length;

    await startBot();
    await waitForMessage(/Pull request .*#1.* opened/, 'the PR after the restart');
    expect(buildCalls()).toHaveLength(paid);
    expect(github.pulls).toHaveLength(1);
    expect(readFileAt(bare, 'nightshift/1-crash-while-opening', 'c.txt')).toBe('c\n');
  });

  it('adopts the PR when GitHub created it but the reply was lost', async () => {
    anthropic.script(edit({ command: 'create', path: 'd.txt', file_text: 'd\n' }), finish('Summary: d.'));
    github.failNext('POST /repos/{owner}/{repo}/pulls', { kind: 'after' });
    await startBot();
    telegram.pushMessage(ALICE, 'Lost reply');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    await waitForMessage(/Pull request .*#1.* (opened|updated)/, 'the PR notice');
    expect(github.pulls).toHaveLength(1);
  });

  it('resumes after kill -9 mid-run without paying again for completed turns', async () => {
    anthropic.script(
      edit({ command: 'create', path: 'a.txt', file_text: 'a\n' }),
      () => {
        // Answering the second call arms the third to hang, so the kill lands mid-call.
        anthropic.failNext({ kind: 'stall' });
        return edit({ command: 'create', path: 'b.txt', file_text: 'b\n' });
      },
    );
    const first = await startBot();
    telegram.pushMessage(ALICE, 'Two files');
    await waitForMessage(/Queued #1/);
    telegram.pushMessage(ALICE, '/run');
    await anthropic.waitFor(() => buildCalls().length === 3, { what: 'the third call in flight', timeoutMs: 30_000 });
    await first.kill9();

    anthropic.script(finish('Summary: two files.'));
    await startBot();
    await waitForMessage(/Pull request .*opened/, 'the PR after the restart');
    const calls = buildCalls();
    // Two paid turns, one lost call, one resumed call: turns 1 and 2 were not asked again.
    expect(calls).toHaveLength(4);
    expect((calls[3]!.body as { messages: unknown[] }).messages).toHaveLength(5);
    expect(readFileAt(bare, 'nightshift/1-two-files', 'a.txt')).toBe('a\n');
    expect(readFileAt(bare, 'nightshift/1-two-files', 'b.txt')).toBe('b\n');
    expect(github.pulls).toHaveLength(1);
  });
});
