import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DATABASE_FILE } from '../../src/main.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fakes/anthropic-server.js';
import { startFakeGitHub, type FakeGitHub } from '../fakes/github-server.js';
import { startFakeTelegram, type FakeTelegram, type SentMessage } from '../fakes/telegram-server.js';
import { ALICE, botEnv, CANARY, startBotProcess, tempDir, type BotProcess } from './bot-process.js';
import { createBareRepo, type BareRepo } from './git-fixture.js';

/** Every fake the whole pipeline talks to, a real bare repo, and the bot processes started on them. */
export interface PipelineHarness {
  readonly telegram: FakeTelegram;
  readonly anthropic: FakeAnthropic;
  readonly github: FakeGitHub;
  readonly bare: BareRepo;
  readonly dataDir: string;
  /**
   * Starts `node dist/main.js` on the fakes (repo `me/app`) and waits until it polls, at most
   * `pollTimeoutMs` (@default 30000; a fault on a start-up call makes the first poll late).
   */
  startBot(overrides?: Record<string, string | undefined>, opts?: { pollTimeoutMs?: number }): Promise<BotProcess>;
  /** Waits for a message to Alice matching `pattern`. */
  waitForMessage(pattern: RegExp, what?: string): Promise<SentMessage>;
  /**
   * Resolves when any fake records a call (or changes state), or after `maxMs`, whichever is
   * first: what a loop that watches the run waits on between looks, instead of a fixed sleep.
   * The fakes' own safety poll bounds the wait at 50 ms.
   */
  nextChange(maxMs?: number): Promise<void>;
  /** Reads the bot's database read-only; `fallback` before the database exists. */
  query<T>(read: (db: Database.Database) => T, fallback: T): T;
  /** Kills every process started and closes the fakes. */
  close(): Promise<void>;
}

/** Starts the fakes and a bare repo `me/app` holding `files`. */
export async function startPipelineHarness(files: Record<string, string>): Promise<PipelineHarness> {
  const bare = createBareRepo(mkdtempSync(join(tmpdir(), 'ns-remote-')), 'me/app', files);
  const telegram = await startFakeTelegram({ token: CANARY.telegramToken });
  const anthropic = await startFakeAnthropic({ apiKey: CANARY.anthropicKey });
  const github = await startFakeGitHub({ token: CANARY.githubToken, repos: [bare] });
  const dataDir = tempDir();
  const procs: BotProcess[] = [];
  let reader: Database.Database | undefined;
  return {
    telegram,
    anthropic,
    github,
    bare,
    dataDir,
    async startBot(overrides = {}, opts = {}) {
      const proc = startBotProcess(
        botEnv(telegram.apiRoot, dataDir, { ANTHROPIC_BASE_URL: anthropic.baseUrl, GITHUB_API_URL: github.baseUrl, GITHUB_SERVER_URL: bare.serverUrl, NIGHTSHIFT_REPOS: 'me/app', ...overrides }),
      );
      procs.push(proc);
      const polls = telegram.callsOf('getUpdates').length;
      let exited: number | string | undefined;
      void proc.exited.then((code) => (exited = code));
      // A process that dies on the way says why; a slow start on a busy machine is waited for.
      await telegram
        .waitFor(() => exited !== undefined || telegram.callsOf('getUpdates').length > polls, { what: 'the bot to poll', timeoutMs: opts.pollTimeoutMs ?? 30_000 })
        .catch((error: Error) => {
          throw new Error(`${error.message}\nbot output:\n${proc.lines.slice(-20).join('\n')}`);
        });
      if (exited !== undefined) throw new Error(`the bot exited with ${exited} before it polled:\n${proc.lines.slice(-20).join('\n')}`);
      return proc;
    },
    waitForMessage(pattern, what = String(pattern)) {
      return telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => pattern.test(m.text)), { what, timeoutMs: 60_000 });
    },
    nextChange(maxMs = 50) {
      return new Promise<void>((resolve) => {
        let settled = false;
        const done = () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, maxMs));
        for (const fake of [telegram, anthropic, github]) {
          // The first look only arms the probe: the change wanted is the next one.
          let armed = false;
          const probe = () => settled || (armed ? true : ((armed = true), false));
          void fake.waitFor(probe, { timeoutMs: 60_000 }).then(done, done);
        }
      });
    },
    query(read, fallback) {
      // One read-only connection, kept: the fault harnesses read the item's state every few
      // milliseconds, and opening the database each time cost more CPU than the bot itself.
      if (!reader) {
        const path = join(dataDir, DATABASE_FILE);
        if (!existsSync(path)) return fallback;
        reader = new Database(path, { readonly: true });
      }
      return read(reader);
    },
    async close() {
      reader?.close();
      reader = undefined;
      await Promise.all(procs.splice(0).map((p) => p.kill9()));
      await Promise.all([telegram.close(), anthropic.close(), github.close()]);
    },
  };
}
