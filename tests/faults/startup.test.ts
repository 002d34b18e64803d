import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it, type TestContext } from 'vitest';
import { CONFIG_VARIABLES } from '../../src/config.js';
import { DATABASE_FILE } from '../../src/main.js';
import { BUSY_TIMEOUT_MS, openStore } from '../../src/store/open-store.js';
import { startFakeTelegram, type FakeTelegram } from '../fakes/telegram-server.js';
import { ALICE, botEnv, CANARY, startBotProcess, tempDir, type BotProcess } from '../helpers/bot-process.js';

// Faults at start, each against the compiled process (`node dist/main.js`) and the fake Bot
// API: bad configuration, a corrupt or locked database. Every one must end in one clear
// message and a non-zero exit before anything starts: no Telegram call, no database created,
// the user's database file untouched. A second instance on the same DATA_DIR is covered in
// tests/integration/bot.test.ts ("refuses to start a second process on the same data directory").

interface Run {
  readonly proc: BotProcess;
  readonly fake: FakeTelegram;
  readonly dataDir: string;
  /** Exit code, or signal name. */
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Starts the process on a complete configuration changed by `env` (undefined: unset) and waits
 * for its exit. Cleanup is per test (`ctx`): the tests run concurrently.
 */
async function startAndExit(ctx: TestContext, env: Record<string, string | undefined>, dataDir = tempDir('ns-fault-')): Promise<Run> {
  const fake = await startFakeTelegram({ token: CANARY.telegramToken });
  ctx.onTestFinished(() => fake.close());
  const full: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...botEnv(fake.apiRoot, dataDir), ...env })) if (value !== undefined) full[name] = value;
  const proc = startBotProcess(full);
  ctx.onTestFinished(async () => void (await proc.kill9()));
  // Listeners added in the same tick as the spawn see every byte.
  let stdout = '';
  let stderr = '';
  proc.child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  proc.child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const code = await proc.exited;
  return { proc, fake, dataDir, code, stdout, stderr };
}

/** Nothing started: no call to Telegram, no secret in the output. */
function expectNoPartialStart(run: Run) {
  expect(run.fake.calls.map((c) => c.method)).toEqual([]);
  for (const secret of Object.values(CANARY)) expect(run.stdout + run.stderr).not.toContain(secret);
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** A real nightshift database with a few items in it, closed (its WAL checkpointed into the file). */
function realDatabase(dataDir: string): string {
  const path = join(dataDir, DATABASE_FILE);
  const store = openStore(path);
  for (let i = 0; i < 40; i++) {
    store.items.create({ repo: 'me/app', title: `item ${i}`, request: `do thing ${i} `.repeat(50), chatId: ALICE.id, createdBy: ALICE.id, sourceUpdateId: i });
  }
  store.close();
  return path;
}

describe('configuration faults at start', () => {
  const REQUIRED = ['TELEGRAM_BOT_TOKEN', 'TELEGRAM_ALLOWED_USERS', 'ANTHROPIC_API_KEY', 'GITHUB_TOKEN', 'NIGHTSHIFT_REPOS'] as const;

  // A bad value for every variable; `{ none }` where every non-empty value is accepted (the reason
  // says why). A new variable fails the coverage test below until it has its entry here.
  const MALFORMED: Record<string, string | { none: string }> = {
    TELEGRAM_BOT_TOKEN: 'not-a-token',
    TELEGRAM_API_ROOT: 'ftp://api.telegram.org',
    TELEGRAM_ALLOWED_USERS: '@alice',
    ANTHROPIC_API_KEY: { none: 'any non-empty key; a wrong one is refused by the API, not at start' },
    ANTHROPIC_BASE_URL: 'api.anthropic.com',
    GITHUB_TOKEN: { none: 'any non-empty token; a wrong one is refused by GitHub, not at start' },
    GITHUB_API_URL: 'not a url',
    GITHUB_SERVER_URL: 'ssh://github.com',
    NIGHTSHIFT_REPOS: 'just-a-name',
    DATA_DIR: { none: 'any path; one that cannot hold a database is tested with the database faults' },
    LOG_LEVEL: 'loud',
    NIGHTSHIFT_TIMEZONE: 'Mars/Olympus_Mons',
    NIGHTSHIFT_PEAK_HOURS: '25:00-26:00',
    NIGHTSHIFT_AUTO_RUN: 'maybe',
    NIGHTSHIFT_MAX_PARALLEL: '0',
    NIGHTSHIFT_MAX_ATTEMPTS: '21',
    NIGHTSHIFT_MODEL_BUILD: 'claude sonnet',
    NIGHTSHIFT_MODEL_REVIEW: 'gpt-unknown-9',
    NIGHTSHIFT_REVIEW_ROUNDS: '6',
    NIGHTSHIFT_REVIEW_CONCURRENCY: 'three',
    NIGHTSHIFT_REVIEW_MAX_OUTPUT_TOKENS: '200000',
    NIGHTSHIFT_BUDGET_REVIEW_USD: '-1',
    NIGHTSHIFT_BUDGET_FIX_USD: '0',
    NIGHTSHIFT_PRICES: '{not json',
    NIGHTSHIFT_BUILD_MAX_TURNS: '1.5',
    NIGHTSHIFT_BUILD_MAX_OUTPUT_TOKENS: '999999',
    NIGHTSHIFT_BUILD_MAX_MINUTES: 'an hour',
    NIGHTSHIFT_BUDGET_BUILD_USD: '$5',
    NIGHTSHIFT_BUDGET_ITEM_USD: '1',
    NIGHTSHIFT_BUDGET_DAILY_USD: 'lots',
    NIGHTSHIFT_BUDGET_MONTHLY_USD: '10',
    NIGHTSHIFT_CONFIRM_ABOVE_USD: '-5',
    NIGHTSHIFT_SIZING: 'enabled',
    NIGHTSHIFT_BUDGET_SIZING_USD: '0',
    NIGHTSHIFT_ECONOMY: 'cheap',
    NIGHTSHIFT_BATCH_POLL_SECONDS: '7200',
    NIGHTSHIFT_HOURLY_RATE: 'free',
    NIGHTSHIFT_SANDBOX: 'sometimes',
    NIGHTSHIFT_COMMAND_TIMEOUT_SECONDS: '0',
    NIGHTSHIFT_AGENT_NETWORK: 'open',
    NIGHTSHIFT_AGENT_ENV: 'PATH;HOME',
    NIGHTSHIFT_MERGE_METHOD: 'fast-forward',
    NIGHTSHIFT_ALLOW_MERGE_WITH_FAILING_CHECKS: 'sure',
    NIGHTSHIFT_REVIEW_HOURS: '8am',
    NIGHTSHIFT_DRIFT_EVERY: '-1',
    NIGHTSHIFT_BUDGET_DRIFT_USD: 'two',
  };
  const malformed = Object.entries(MALFORMED).flatMap(([variable, value]) => (typeof value === 'string' ? [[variable, value] as const] : []));

  /** Exit 78, stdout empty, and on stderr one problem, naming `variable`. */
  function expectOneProblem(run: Run, variable: string) {
    expect(run.code).toBe(78);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^nightshift: Configuration has 1 problem:\n/);
    const problems = run.stderr.split('\n').filter((line) => /^ {2}\S/.test(line));
    expect(problems).toEqual([expect.stringMatching(new RegExp(`^  ${variable}: \\S`))]);
    expect(run.stderr).toContain('See README.md ("Configuration") and .env.example.');
    expectNoPartialStart(run);
    // Config is read before anything touches DATA_DIR.
    expect(readdirSync(run.dataDir)).toEqual([]);
  }

  it('has a bad value, or a reason why none exists, for every variable it reads', () => {
    expect(Object.keys(MALFORMED).sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it.concurrent.for(REQUIRED)('refuses to start without %s', async (variable, ctx) => {
    expectOneProblem(await startAndExit(ctx, { [variable]: undefined }), variable);
  });

  it.concurrent.for(REQUIRED)('treats a blank %s as missing', async (variable, ctx) => {
    const run = await startAndExit(ctx, { [variable]: '   ' });
    expectOneProblem(run, variable);
    expect(run.stderr).toMatch(new RegExp(`${variable}: missing`));
  });

  it.concurrent.for(malformed)('refuses to start with a malformed %s (%s)', async ([variable, value], ctx) => {
    expectOneProblem(await startAndExit(ctx, { [variable]: value }), variable);
  });
});

describe('database faults at start', () => {
  it('refuses a database file of random bytes, names it, says what to do and leaves it as it is', async (ctx) => {
    const dataDir = tempDir('ns-fault-');
    const path = join(dataDir, DATABASE_FILE);
    writeFileSync(path, randomBytes(64 * 1024));
    const before = sha256(path);
    const run = await startAndExit(ctx, {}, dataDir);
    expect(run.code).toBe(65);
    const out = run.stdout + run.stderr;
    expect(out).toContain(`the database ${path} is not a readable SQLite database`);
    expect(out).toContain('Restore it from a backup, or move it aside');
    expect(out).not.toMatch(/could not start|at openStore/);
    expectNoPartialStart(run);
    expect(sha256(path)).toBe(before);
    expect(readdirSync(dataDir)).toEqual([DATABASE_FILE]);
  });

  it.concurrent.for<[string, (size: number) => number]>([
    ['to half its size', (size: number) => Math.floor(size / 2)],
    ['to its first page', () => 4096],
    ['into its header', () => 50],
  ])('refuses a real database truncated %s, and leaves it as it is', async ([, cut], ctx) => {
    const dataDir = tempDir('ns-fault-');
    const path = realDatabase(dataDir);
    const whole = readFileSync(path);
    writeFileSync(path, whole.subarray(0, cut(whole.length)));
    const before = sha256(path);
    const run = await startAndExit(ctx, {}, dataDir);
    expect(run.code).toBe(65);
    expect(run.stdout + run.stderr).toContain(`the database ${path} is not a readable SQLite database`);
    expectNoPartialStart(run);
    expect(sha256(path)).toBe(before);
    expect(readdirSync(dataDir)).toEqual([DATABASE_FILE]);
  });

  it.concurrent.for([
    ['in WAL mode (a database nightshift wrote)', 'wal'],
    ['in rollback-journal mode', 'delete'],
  ])('waits out the busy timeout on a database another process holds exclusively %s, then exits with a clear error', async ([, mode], ctx) => {
    const dataDir = tempDir('ns-fault-');
    const path = realDatabase(dataDir);
    const holder = new Database(path);
    try {
      holder.pragma(`journal_mode = ${mode}`);
      holder.exec('BEGIN EXCLUSIVE');
      const started = performance.now();
      const run = await startAndExit(ctx, {}, dataDir);
      const waited = performance.now() - started;
      expect(run.code).toBe(75);
      const out = run.stdout + run.stderr;
      expect(out).toContain(`the database ${path} is locked by another process`);
      expect(out).toContain('stop the other nightshift or sqlite3 shell holding it');
      expectNoPartialStart(run);
      // Bounded by the busy timeout: it did wait, and gave up.
      expect(waited).toBeGreaterThanOrEqual(BUSY_TIMEOUT_MS);
      // Nothing was written under the lock holder's transaction.
      holder.exec('ROLLBACK');
      expect(holder.prepare('SELECT count(*) AS n FROM process_lock').get()).toEqual({ n: 0 });
    } finally {
      holder.close();
    }
  });

  it('refuses a DATA_DIR that is a file, naming the path', async (ctx) => {
    const parent = tempDir('ns-fault-');
    const file = join(parent, 'not-a-dir');
    writeFileSync(file, 'x');
    const run = await startAndExit(ctx, { DATA_DIR: file }, parent);
    expect(run.code).toBe(73);
    expect(run.stdout + run.stderr).toContain(`the database ${join(file, DATABASE_FILE)} cannot be opened`);
    expect(run.stdout + run.stderr).toContain('check that DATA_DIR is a directory this user can write to');
    expectNoPartialStart(run);
    expect(readFileSync(file, 'utf8')).toBe('x');
  });
});
