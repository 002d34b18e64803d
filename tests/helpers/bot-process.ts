import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isBwrapUsable } from '../../src/agent/tools/run-command.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');

/** Canary secrets: any appearance of these outside their place is a leak. */
export const CANARY = {
  telegramToken: '123456:CANARY-telegram-token-0123456789abcdefghij',
  anthropicKey: 'sk-ant-CANARY-anthropic-key-0123456789',
  githubToken: 'github_pat_CANARY_github_token_0123456789',
} as const;

/** The users the tests play. */
export const ALICE = { id: 1001, username: 'alice', first_name: 'Alice' } as const;
export const MALLORY = { id: 6666, username: 'mallory', first_name: 'Mallory' } as const;

/** A running `node dist/main.js` with its output captured. */
export interface BotProcess {
  readonly child: ChildProcess;
  /** stdout and stderr lines so far. */
  readonly lines: string[];
  /** All output so far, as one string. */
  output(): string;
  /**
   * Resolves with the `count`-th output line matching (default the first), or rejects after
   * the deadline. Output comes through a pipe, so it can lag behind the HTTP calls the process made.
   */
  waitForLine(pattern: RegExp, options?: { count?: number; timeoutMs?: number }): Promise<string>;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | string>;
  /** SIGKILL and wait for the exit: a crash at an arbitrary point. */
  kill9(): Promise<number | string>;
}

/**
 * Whether bubblewrap works on this machine, probed as nightshift probes it. Agent commands run
 * inside it by default; where it does not work (not installed, or Docker's default profile),
 * the tests run them unconfined (`NIGHTSHIFT_SANDBOX=never`) and skip the checks that are about
 * the confinement itself, so `npm test` passes on a machine without it.
 */
export const BWRAP_WORKS: boolean = await isBwrapUsable();
if (!BWRAP_WORKS) console.warn('bubblewrap does not work here: agent commands in these tests run unconfined (NIGHTSHIFT_SANDBOX=never) and the sandbox checks are skipped (apt-get install bubblewrap)');

/** The sandbox setting the tests run with here (see {@link BWRAP_WORKS}); empty when the default applies. */
export const TEST_SANDBOX_ENV: Record<string, string> = BWRAP_WORKS ? {} : { NIGHTSHIFT_SANDBOX: 'never' };

/**
 * The environment of a complete configuration pointing at the fakes. An override set to
 * `undefined` removes the variable (to test a default).
 */
export function botEnv(apiRoot: string, dataDir: string, overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {
    TELEGRAM_BOT_TOKEN: CANARY.telegramToken,
    TELEGRAM_API_ROOT: apiRoot,
    TELEGRAM_ALLOWED_USERS: String(ALICE.id),
    ANTHROPIC_API_KEY: CANARY.anthropicKey,
    ANTHROPIC_BASE_URL: 'http://127.0.0.1:9',
    GITHUB_TOKEN: CANARY.githubToken,
    GITHUB_API_URL: 'http://127.0.0.1:9',
    GITHUB_SERVER_URL: 'file:///nonexistent',
    NIGHTSHIFT_REPOS: 'me/app,me/site',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'debug',
    NIGHTSHIFT_TIMEZONE: 'UTC',
    // Tests start runs with /run, at any hour; the dispatcher's own tests set these.
    NIGHTSHIFT_AUTO_RUN: 'false',
    NIGHTSHIFT_PEAK_HOURS: 'none',
    // Items go straight to the queue; the sizing tests turn sizing on.
    NIGHTSHIFT_SIZING: 'off',
    ...TEST_SANDBOX_ENV,
    ...overrides,
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** A fresh temporary directory. */
export function tempDir(prefix = 'ns-it-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Starts the compiled bot with exactly `env` (plus PATH/HOME), in `cwd` (a temp dir by
 * default, so no developer `.env` leaks into a test).
 */
export function startBotProcess(env: Record<string, string>, cwd = tempDir('ns-cwd-')): BotProcess {
  const child = spawn(process.execPath, [MAIN], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const collect = (chunk: Buffer, carry: { rest: string }) => {
    const text = carry.rest + chunk.toString('utf8');
    const parts = text.split('\n');
    carry.rest = parts.pop() ?? '';
    lines.push(...parts);
    for (const wake of waiters) wake();
  };
  const out = { rest: '' };
  const err = { rest: '' };
  child.stdout!.on('data', (c: Buffer) => collect(c, out));
  child.stderr!.on('data', (c: Buffer) => collect(c, err));
  // 'close', not 'exit': only then has all of the child's output been read.
  const exited = once(child, 'close').then(([code, signal]) => {
    for (const carry of [out, err]) {
      if (carry.rest) lines.push(carry.rest);
      carry.rest = '';
    }
    for (const wake of waiters) wake();
    return (code as number | null) ?? (signal as string);
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  const proc: BotProcess = {
    child,
    lines,
    output: () => lines.join('\n'),
    exited,
    waitForLine(pattern, { count = 1, timeoutMs = 15_000 } = {}) {
      return new Promise((resolvePromise, reject) => {
        const check = () => {
          const line = lines.filter((l) => pattern.test(l))[count - 1];
          if (line !== undefined) {
            done();
            resolvePromise(line);
          } else if (hasExited) {
            done();
            reject(new Error(`process exited before printing ${pattern}; output:\n${lines.slice(-30).join('\n')}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; output:\n${lines.slice(-30).join('\n')}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (!hasExited) child.kill('SIGTERM');
      return exited;
    },
    async kill9() {
      if (!hasExited) child.kill('SIGKILL');
      return exited;
    },
  };
  return proc;
}
