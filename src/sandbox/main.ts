/**
 * `npm run sandbox`: the whole loop on one machine with no accounts. Starts the stand-ins on
 * 127.0.0.1 (Telegram Bot API, GitHub REST, and the sandbox model behind a stand-in Anthropic
 * API), creates the sample repository, starts the real bot exactly as `npm start` does
 * (`node dist/main.js` with environment variables) and prints the URL of the web chat.
 *
 * Flags: `--port <n>` (@default 8790; 0 picks a free one), `--data-dir <dir>` (@default
 * ./sandbox-data), `--reset` (wipe the data directory first), `--real-model` (the real
 * Anthropic API with ANTHROPIC_API_KEY instead of the sandbox model). Ctrl-C stops everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startFakeAnthropic, type FakeAnthropic } from './anthropic-server.js';
import type { BareRepo } from './bare-repo.js';
import { startChatServer, type ChatServer } from './chat-server.js';
import { startFakeGitHub, type FakeGitHub } from './github-server.js';
import { pullDiff, renderPullPage } from './pull-page.js';
import { ensureSampleRepo, SAMPLE_REPO } from './sample-repo.js';
import { answerAsSandboxModel } from './sandbox-model.js';
import { startFakeTelegram, type FakeTelegram, type TgUser } from './telegram-server.js';

/** The installation root (next to dist/ and src/). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The bot's entry point, as `npm start` runs it. */
const BOT_MAIN = join(ROOT, 'dist', 'main.js');
/** @default port of the web chat */
export const DEFAULT_PORT = 8790;
/** @default data directory, relative to where the sandbox is started */
export const DEFAULT_DATA_DIR = 'sandbox-data';
/** Written into a data directory the sandbox made; `--reset` wipes only such a directory. */
const MARKER = '.nightshift-sandbox';
/** How long the bot gets to stop on Ctrl-C before it is killed. */
const STOP_GRACE_MS = 15_000;

/** The person at the web page; the only allowed Telegram user. */
export const SANDBOX_USER: TgUser = { id: 4242, username: 'you', first_name: 'You' };
/** Credentials for the stand-ins: dummies, deliberately not shaped like anything real. */
const DUMMY = {
  telegramToken: '4242000:sandbox-dummy-token-not-a-secret',
  githubToken: 'sandbox-dummy-github-token',
  anthropicKey: 'sandbox-dummy-anthropic-key',
} as const;

/** What `--flags` asked for. */
export interface SandboxOptions {
  port: number;
  dataDir: string;
  reset: boolean;
  realModel: boolean;
}

/** Bad flags or a data directory the sandbox must not touch; printed without a stack. */
export class SandboxError extends Error {
  override readonly name = 'SandboxError';
}

/** A running sandbox. */
export interface Sandbox {
  /** The web chat's URL. */
  readonly url: string;
  /** Where the bot's log goes. */
  readonly logFile: string;
  /** The bot process; resolves with its exit code or signal when it exits. */
  readonly botExited: Promise<number | string>;
  /** Stops the bot (SIGTERM, then SIGKILL after a grace period) and the stand-ins. */
  stop(): Promise<void>;
}

/** Parses the command line. @default port 8790, dataDir ./sandbox-data */
export function parseSandboxArgs(argv: readonly string[], cwd: string): SandboxOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        port: { type: 'string' },
        'data-dir': { type: 'string' },
        reset: { type: 'boolean', default: false },
        'real-model': { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new SandboxError(`${error instanceof Error ? error.message : String(error)}\nUsage: npm run sandbox -- [--port <n>] [--data-dir <dir>] [--reset] [--real-model]`);
  }
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!/^\d+$/.test(values.port ?? String(DEFAULT_PORT)) || port > 65_535) throw new SandboxError(`--port must be a port number (0-65535), not ${JSON.stringify(values.port)}`);
  const dataDir = values['data-dir'] ?? DEFAULT_DATA_DIR;
  if (dataDir.trim() === '') throw new SandboxError('--data-dir must not be empty');
  return { port, dataDir: resolve(cwd, dataDir), reset: values.reset ?? false, realModel: values['real-model'] ?? false };
}

/**
 * Makes the data directory ready: wiped first with `reset` (only if the sandbox made it, so a
 * mistyped `--data-dir ~` cannot wipe a home), then created and marked as the sandbox's.
 */
export function prepareDataDir(dataDir: string, reset: boolean): void {
  const exists = existsSync(dataDir);
  const ours = exists && existsSync(join(dataDir, MARKER));
  if (exists && !ours && readdirSync(dataDir).length > 0) {
    throw new SandboxError(`${dataDir} is not empty and was not made by the sandbox; pick another --data-dir`);
  }
  if (reset && exists) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, MARKER), 'Made by `npm run sandbox`; `npm run sandbox -- --reset` wipes this directory.\n');
}

/**
 * The bot's environment: everything pointing at the stand-ins, runs allowed at any hour, small
 * budgets. `NIGHTSHIFT_*` variables of the caller win (to try models, rounds, angles), and
 * nothing else of the caller's environment reaches the bot but PATH and HOME.
 */
export function sandboxBotEnv(opts: {
  telegram: Pick<FakeTelegram, 'token' | 'apiRoot'>;
  github: Pick<FakeGitHub, 'token' | 'baseUrl'>;
  bare: Pick<BareRepo, 'serverUrl'>;
  dataDir: string;
  anthropic: { baseUrl: string; apiKey: string };
  env: NodeJS.ProcessEnv;
}): Record<string, string> {
  const passThrough = Object.fromEntries(Object.entries(opts.env).filter((e): e is [string, string] => e[0].startsWith('NIGHTSHIFT_') && e[1] !== undefined));
  return {
    // The sample's tests run with tsx, found on PATH in nightshift's own node_modules.
    PATH: [join(ROOT, 'node_modules', '.bin'), opts.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'].join(delimiter),
    HOME: opts.env.HOME ?? opts.dataDir,
    TELEGRAM_BOT_TOKEN: opts.telegram.token,
    TELEGRAM_API_ROOT: opts.telegram.apiRoot,
    TELEGRAM_ALLOWED_USERS: String(SANDBOX_USER.id),
    ANTHROPIC_API_KEY: opts.anthropic.apiKey,
    ANTHROPIC_BASE_URL: opts.anthropic.baseUrl,
    GITHUB_TOKEN: opts.github.token,
    GITHUB_API_URL: opts.github.baseUrl,
    GITHUB_SERVER_URL: opts.bare.serverUrl,
    NIGHTSHIFT_REPOS: SAMPLE_REPO,
    DATA_DIR: join(opts.dataDir, 'nightshift'),
    LOG_LEVEL: 'info',
    NIGHTSHIFT_PEAK_HOURS: 'none',
    NIGHTSHIFT_AUTO_RUN: 'false',
    NIGHTSHIFT_REVIEW_ROUNDS: '2',
    NIGHTSHIFT_REVIEW_MAX_OUTPUT_TOKENS: '4000',
    NIGHTSHIFT_BUILD_MAX_TURNS: '30',
    NIGHTSHIFT_BUILD_MAX_MINUTES: '15',
    NIGHTSHIFT_COMMAND_TIMEOUT_SECONDS: '120',
    NIGHTSHIFT_BUDGET_BUILD_USD: '2',
    NIGHTSHIFT_BUDGET_REVIEW_USD: '2',
    NIGHTSHIFT_BUDGET_FIX_USD: '1',
    NIGHTSHIFT_BUDGET_ITEM_USD: '5',
    NIGHTSHIFT_BUDGET_DAILY_USD: '10',
    NIGHTSHIFT_BUDGET_MONTHLY_USD: '50',
    NIGHTSHIFT_CONFIRM_ABOVE_USD: '3',
    NIGHTSHIFT_DRIFT_EVERY: '3',
    ...passThrough,
  };
}

/** Starts the stand-ins, the sample repository, the web chat and the bot. */
export async function startSandbox(opts: SandboxOptions, env: NodeJS.ProcessEnv = process.env): Promise<Sandbox> {
  if (!existsSync(BOT_MAIN)) throw new SandboxError(`${BOT_MAIN} is missing: build first (npm run sandbox does)`);
  if (opts.realModel && !env.ANTHROPIC_API_KEY) throw new SandboxError('--real-model needs ANTHROPIC_API_KEY in the environment');
  prepareDataDir(opts.dataDir, opts.reset);
  const bare = ensureSampleRepo(join(opts.dataDir, 'remote'));

  let telegram: FakeTelegram | undefined;
  let github: FakeGitHub | undefined;
  let anthropic: FakeAnthropic | undefined;
  let chat: ChatServer | undefined;
  let bot: ChildProcess | undefined;
  const closeAll = async (): Promise<void> => {
    await chat?.close();
    await Promise.all([telegram?.close(), github?.close(), anthropic?.close()]);
  };
  try {
    chat = await startChatServer(opts.port, () => ({
      telegram: telegram!,
      user: SANDBOX_USER,
      pages: (path) => {
        const m = /^\/github\/([^/]+)\/([^/]+)\/pull\/(\d+)$/.exec(path);
        const pull = m && github?.pulls.find((p) => p.repo.toLowerCase() === `${m[1]}/${m[2]}`.toLowerCase() && p.number === Number(m[3]));
        return pull ? renderPullPage(pull, pullDiff(bare, pull)) : undefined;
      },
    })).catch((error: unknown) => {
      const code = (error as { code?: string }).code;
      throw code === 'EADDRINUSE' ? new SandboxError(`port ${opts.port} is in use; pass another with --port <n> (0 picks a free one)`) : error;
    });
    telegram = await startFakeTelegram({ token: DUMMY.telegramToken, username: 'nightshift_sandbox_bot' });
    github = await startFakeGitHub({ token: DUMMY.githubToken, repos: [bare], htmlRoot: `${chat.url}/github` });
    let model = { baseUrl: env.ANTHROPIC_BASE_URL ?? 'https://api.anthropic.com', apiKey: env.ANTHROPIC_API_KEY ?? '' };
    if (!opts.realModel) {
      anthropic = await startFakeAnthropic({ apiKey: DUMMY.anthropicKey, autoEndBatches: true });
      anthropic.onRequest(answerAsSandboxModel);
      model = { baseUrl: anthropic.baseUrl, apiKey: anthropic.apiKey };
    }

    const logFile = join(opts.dataDir, 'nightshift.log');
    const log = createWriteStream(logFile, { flags: 'a' });
    bot = spawn(process.execPath, [BOT_MAIN], {
      // The data directory, not the checkout: a developer's real `.env` must not be read.
      cwd: opts.dataDir,
      env: sandboxBotEnv({ telegram, github, bare, dataDir: opts.dataDir, anthropic: model, env }),
      // The IPC channel carries no messages: it closes when this launcher dies, even by kill -9,
      // and the bot then stops instead of outliving the stand-ins it talks to.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    bot.stdout!.pipe(log, { end: false });
    bot.stderr!.pipe(log, { end: false });
    const child = bot;
    const botExited = once(child, 'close').then(([code, signal]) => (code as number | null) ?? (signal as string));
    await telegram.waitFor(() => telegram!.callsOf('getUpdates').length > 0 || child.exitCode !== null, { timeoutMs: 60_000, what: 'the bot to start polling' });
    if (child.exitCode !== null) throw new SandboxError(`the bot exited with code ${child.exitCode} while starting; see ${logFile}`);

    let stopping: Promise<void> | undefined;
    return {
      url: chat.url,
      logFile,
      botExited,
      stop() {
        stopping ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
            await botExited;
            clearTimeout(timer);
          }
          log.end();
          await closeAll();
        })();
        return stopping;
      },
    };
  } catch (error) {
    if (bot && bot.exitCode === null) {
      bot.kill('SIGKILL');
      await once(bot, 'close');
    }
    await closeAll();
    throw error;
  }
}

/** Entry point: start, print the URL, stop everything on Ctrl-C or when the bot exits. */
async function main(): Promise<void> {
  let sandbox: Sandbox;
  try {
    const opts = parseSandboxArgs(process.argv.slice(2), process.cwd());
    const continuing = !opts.reset && existsSync(join(opts.dataDir, 'nightshift'));
    sandbox = await startSandbox(opts);
    process.stdout.write(`nightshift sandbox is running. Open ${sandbox.url}/\n(${opts.realModel ? 'real model' : 'sandbox model'}; data in ${opts.dataDir}, bot log in ${sandbox.logFile}; Ctrl-C stops it)\n`);
    // The stand-ins keep no state across runs, the bot's database does (see README, "The sandbox").
    if (continuing) process.stdout.write('(continuing an earlier run: the chat and the pull requests start empty; add --reset to start over)\n');
  } catch (error) {
    process.stderr.write(`nightshift sandbox: ${error instanceof SandboxError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  }
  let exitCode = 0;
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void sandbox.stop().then(() => process.exit(exitCode));
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, stop);
  // A bot that stops by itself (a crash, a bad setting) takes the sandbox with it.
  void sandbox.botExited.then((code) => {
    if (stopping) return;
    exitCode = 1;
    process.stderr.write(`nightshift sandbox: the bot stopped (${code}); see ${sandbox.logFile}\n`);
    stop();
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  void main();
}
