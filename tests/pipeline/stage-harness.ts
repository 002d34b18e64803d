import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createBuildTools } from '../../src/agent/build-tools.js';
import { createGitHub } from '../../src/github/create-github.js';
import { createAnthropicClient } from '../../src/llm/anthropic-client.js';
import type { StageDeps } from '../../src/pipeline/build-stage.js';
import type { ItemEvent } from '../../src/pipeline/item-events.js';
import type { Store } from '../../src/store/open-store.js';
import { createWorkspace } from '../../src/workspace/create-workspace.js';
import { startFakeAnthropic, type FakeAnthropic, type RecordedRequest } from '../fakes/anthropic-server.js';
import { startFakeGitHub, type FakeGitHub } from '../fakes/github-server.js';
import { makeStore } from '../helpers/factories.js';
import { createBareRepo, type BareRepo } from '../helpers/git-fixture.js';

/** A priced model the fakes accept. */
export const MODEL = 'claude-opus-4-6';

/** The real stage collaborators, on a real store, a local bare repo `me/app` and the fake servers. */
export interface StageHarness {
  readonly deps: StageDeps;
  readonly store: Store;
  readonly clock: { now: number };
  /** The SQLite file of `store`. */
  readonly dbPath: string;
  readonly anthropic: FakeAnthropic;
  readonly github: FakeGitHub;
  readonly bare: BareRepo;
  readonly events: ItemEvent[];
  close(): Promise<void>;
}

/** Starts the fakes and a bare repo `me/app` holding `files`; the SDK retries `maxRetries` times. @default maxRetries 0 */
export async function startStageHarness(files: Record<string, string>, opts: { maxRetries?: number } = {}): Promise<StageHarness> {
  const tmp = mkdtempSync(join(tmpdir(), 'ns-stage-'));
  const bare = createBareRepo(join(tmp, 'server'), 'me/app', files);
  const anthropic = await startFakeAnthropic();
  const github = await startFakeGitHub({ repos: [bare] });
  const { store, clock, path: dbPath } = makeStore();
  const log = pino({ level: 'silent' });
  const events: ItemEvent[] = [];
  const deps: StageDeps = {
    store,
    workspace: createWorkspace({ dataDir: join(tmp, 'data'), serverUrl: bare.serverUrl, token: 'unused-for-file-urls', log }),
    github: createGitHub({ token: 'github_pat_CANARY_github_token_0123456789', baseUrl: github.baseUrl, log, throttle: false, retryBaseMs: 1 }),
    agent: { model: createAnthropicClient({ apiKey: anthropic.apiKey, baseUrl: anthropic.baseUrl, maxRetries: opts.maxRetries ?? 0 }), store, prices: {}, redact: (t) => t },
    createTools: (cwd) => createBuildTools({ cwd, sandbox: { mode: 'never', commandTimeoutMs: 10_000, allowNetwork: false, envAllowList: [] }, secrets: [], log }),
    repos: [{ owner: bare.owner, name: bare.name, fullName: bare.fullName }],
    itemBudgetUsd: 50,
    notifier: { notify: (_item, event) => void events.push(event) },
    log,
  };
  return {
    deps,
    store,
    clock,
    dbPath,
    anthropic,
    github,
    bare,
    events,
    async close() {
      await Promise.all([anthropic.close(), github.close()]);
      store.close();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** The text of a recorded request's system blocks and messages, joined. */
export function promptText(req: RecordedRequest): string {
  const body = req.body as { system?: Array<{ text: string }>; messages: Array<{ content: string | Array<{ type: string; text?: string }> }> };
  const messages = body.messages.map((m) => (typeof m.content === 'string' ? m.content : m.content.map((b) => b.text ?? '').join('\n')));
  return [...(body.system ?? []).map((b) => b.text), ...messages].join('\n');
}
