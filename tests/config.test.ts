import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, loadConfig, loadEnvFile } from '../src/config.js';

const TOKEN = '123456:CANARY-telegram-token-0123456789abcdefghij';

const validEnv = (overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv => ({
  TELEGRAM_BOT_TOKEN: TOKEN,
  TELEGRAM_ALLOWED_USERS: '111, 222',
  ANTHROPIC_API_KEY: 'sk-ant-CANARY-anthropic-key',
  GITHUB_TOKEN: 'github_pat_CANARY_github_token',
  NIGHTSHIFT_REPOS: 'me/app, me/site',
  ...overrides,
});

function problemsOf(env: NodeJS.ProcessEnv) {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('fills defaults for optional variables', () => {
    const config = loadConfig(validEnv({ NIGHTSHIFT_TIMEZONE: 'Europe/Berlin' }));
    expect(config.telegram.apiRoot).toBe('https://api.telegram.org');
    expect(config.telegram.allowedUsers).toEqual([111, 222]);
    expect(config.github.apiUrl).toBe('https://api.github.com');
    expect(config.github.serverUrl).toBe('https://github.com');
    expect(config.anthropic.baseUrl).toBe('https://api.anthropic.com');
    expect(config.repos.map((r) => r.fullName)).toEqual(['me/app', 'me/site']);
    expect(config.repos[0]).toEqual({ owner: 'me', name: 'app', fullName: 'me/app' });
    expect(config.logLevel).toBe('info');
    expect(config.timezone).toBe('Europe/Berlin');
    expect(config.dataDir).toMatch(/data$/);
    expect(config.secrets).toEqual([TOKEN, 'sk-ant-CANARY-anthropic-key', 'github_pat_CANARY_github_token']);
  });

  it('accepts file:// as the clone base (tests use a local bare repo) and strips trailing slashes', () => {
    const config = loadConfig(validEnv({ GITHUB_SERVER_URL: 'file:///tmp/remotes/', TELEGRAM_API_ROOT: 'http://127.0.0.1:9/' }));
    expect(config.github.serverUrl).toBe('file:///tmp/remotes');
    expect(config.telegram.apiRoot).toBe('http://127.0.0.1:9');
  });

  it('reports every problem at once, naming each variable', () => {
    const problems = problemsOf({
      TELEGRAM_BOT_TOKEN: 'not-a-token',
      TELEGRAM_ALLOWED_USERS: '123,@alice',
      NIGHTSHIFT_REPOS: 'justaname',
      GITHUB_API_URL: 'ftp://example',
      LOG_LEVEL: 'loud',
      NIGHTSHIFT_TIMEZONE: 'Mars/Olympus',
    });
    const variables = problems.map((p) => p.variable).sort();
    expect(variables).toEqual(
      [
        'ANTHROPIC_API_KEY',
        'GITHUB_API_URL',
        'GITHUB_TOKEN',
        'LOG_LEVEL',
        'NIGHTSHIFT_REPOS',
        'NIGHTSHIFT_TIMEZONE',
        'TELEGRAM_ALLOWED_USERS',
        'TELEGRAM_BOT_TOKEN',
      ].sort(),
    );
    expect(problems.find((p) => p.variable === 'TELEGRAM_ALLOWED_USERS')?.problem).toContain('"@alice"');
    expect(problems.find((p) => p.variable === 'ANTHROPIC_API_KEY')?.problem).toMatch(/missing/);
  });

  it('refuses to start with an empty allow-list', () => {
    expect(problemsOf(validEnv({ TELEGRAM_ALLOWED_USERS: ' , ' }))).toEqual([
      { variable: 'TELEGRAM_ALLOWED_USERS', problem: expect.stringMatching(/empty/) },
    ]);
    expect(problemsOf(validEnv({ TELEGRAM_ALLOWED_USERS: undefined }))[0]?.variable).toBe('TELEGRAM_ALLOWED_USERS');
  });

  it('refuses budgets and limits that could never work', () => {
    expect(problemsOf(validEnv({ NIGHTSHIFT_BUDGET_ITEM_USD: '2', NIGHTSHIFT_BUDGET_BUILD_USD: '5' }))[0]?.variable).toBe('NIGHTSHIFT_BUDGET_ITEM_USD');
    expect(problemsOf(validEnv({ NIGHTSHIFT_BUILD_MAX_OUTPUT_TOKENS: '999999' }))[0]?.variable).toBe('NIGHTSHIFT_BUILD_MAX_OUTPUT_TOKENS');
    expect(problemsOf(validEnv({ NIGHTSHIFT_MODEL_BUILD: 'gpt-9' }))[0]?.problem).toMatch(/no price is known/);
    expect(problemsOf(validEnv({ NIGHTSHIFT_PRICES: '{bad' }))[0]?.variable).toBe('NIGHTSHIFT_PRICES');
    expect(loadConfig(validEnv({ NIGHTSHIFT_MODEL_BUILD: 'gpt-9', NIGHTSHIFT_PRICES: '{"gpt-9": {"input": 1, "output": 2}}' })).prices['gpt-9']).toEqual({ inputPerMTok: 1, outputPerMTok: 2 });
  });

  it('treats an empty value as unset, so FOO= in .env means the default', () => {
    expect(loadConfig(validEnv({ GITHUB_API_URL: '' })).github.apiUrl).toBe('https://api.github.com');
  });

  it('never echoes a secret value in its message', () => {
    const badToken = 'CANARY-bad-token-value-with-no-colon';
    const error = (() => {
      try {
        loadConfig(validEnv({ TELEGRAM_BOT_TOKEN: badToken }));
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error?.message).toContain('TELEGRAM_BOT_TOKEN');
    expect(error?.message).not.toContain(badToken);
  });

  it('fills the schedule, budgets and economy with their defaults', () => {
    const config = loadConfig(validEnv());
    expect(config.schedule.maxParallel).toBe(1);
    expect(config.schedule.maxAttempts).toBe(3);
    expect(config.schedule.peakHours).toEqual([{ days: new Set([0, 1, 2, 3, 4, 5, 6]), start: { hour: 14, minute: 0 }, end: { hour: 22, minute: 0 } }]);
    expect(config.budgets).toEqual({ dailyUsd: 20, monthlyUsd: 200, confirmAboveUsd: 5 });
    expect(config.economy).toBe('standard');
    expect(config.batchPollMs).toBe(60_000);
    expect(config.hourlyRateUsd).toBeUndefined();
    expect(config.itemBudgetUsd).toBe(15);
    expect(config.sizing).toEqual({ enabled: true, budgetUsd: 0.5 });
  });

  it('reads the sizing switch and budget', () => {
    expect(loadConfig(validEnv({ NIGHTSHIFT_SIZING: 'off', NIGHTSHIFT_BUDGET_SIZING_USD: '0.25' })).sizing).toEqual({ enabled: false, budgetUsd: 0.25 });
  });

  // Regression (I-SECRET): the default used to be `auto`, which ran agent commands unconfined,
  // secrets readable, wherever bubblewrap did not work.
  it('confines agent commands by default, reads an old `auto` as `always`, and runs unconfined only when told `never`', () => {
    const mode = (value?: string) => {
      const { mode, legacyAuto } = loadConfig(validEnv({ NIGHTSHIFT_SANDBOX: value })).sandbox;
      return { mode, legacyAuto };
    };
    expect(mode()).toEqual({ mode: 'always', legacyAuto: false });
    expect(mode('always')).toEqual({ mode: 'always', legacyAuto: false });
    expect(mode('auto')).toEqual({ mode: 'always', legacyAuto: true });
    expect(mode('never')).toEqual({ mode: 'never', legacyAuto: false });
    expect(problemsOf(validEnv({ NIGHTSHIFT_SANDBOX: 'sometimes' }))).toEqual([{ variable: 'NIGHTSHIFT_SANDBOX', problem: expect.stringMatching(/must be always or never/) }]);
  });

  it('reads the schedule, budgets and economy', () => {
    const config = loadConfig(
      validEnv({
        NIGHTSHIFT_PEAK_HOURS: 'mon-fri 09:00-18:00',
        NIGHTSHIFT_MAX_PARALLEL: '2',
        NIGHTSHIFT_MAX_ATTEMPTS: '5',
        NIGHTSHIFT_BUDGET_DAILY_USD: '7.5',
        NIGHTSHIFT_BUDGET_MONTHLY_USD: '7.5',
        NIGHTSHIFT_CONFIRM_ABOVE_USD: '0',
        NIGHTSHIFT_ECONOMY: 'batch',
        NIGHTSHIFT_BATCH_POLL_SECONDS: '5',
        NIGHTSHIFT_HOURLY_RATE: '80',
      }),
    );
    expect(config.schedule).toEqual({ peakHours: [{ days: new Set([1, 2, 3, 4, 5]), start: { hour: 9, minute: 0 }, end: { hour: 18, minute: 0 } }], maxParallel: 2, maxAttempts: 5, autoRun: true });
    expect(config.budgets).toEqual({ dailyUsd: 7.5, monthlyUsd: 7.5, confirmAboveUsd: 0 });
    expect(config.economy).toBe('batch');
    expect(config.batchPollMs).toBe(5000);
    expect(config.hourlyRateUsd).toBe(80);
    expect(loadConfig(validEnv({ NIGHTSHIFT_PEAK_HOURS: 'none' })).schedule.peakHours).toEqual([]);
  });

  it.each([
    ['NIGHTSHIFT_PEAK_HOURS', '14:00-25:00', /"25:00" is not a time of day/],
    ['NIGHTSHIFT_PEAK_HOURS', '00:00-24:00', /peak all week/],
    ['NIGHTSHIFT_PEAK_HOURS', 'weekdays 9-5', /not a day|not a time/],
    ['NIGHTSHIFT_MAX_PARALLEL', '0', /positive whole number/],
    ['NIGHTSHIFT_MAX_PARALLEL', '1.5', /positive whole number/],
    ['NIGHTSHIFT_MAX_PARALLEL', '33', /at most 32/],
    ['NIGHTSHIFT_MAX_ATTEMPTS', 'three', /positive whole number/],
    ['NIGHTSHIFT_MAX_ATTEMPTS', '21', /at most 20/],
    ['NIGHTSHIFT_BUDGET_DAILY_USD', '0', /more than 0/],
    ['NIGHTSHIFT_BUDGET_DAILY_USD', '$20', /positive number/],
    ['NIGHTSHIFT_BUDGET_MONTHLY_USD', '-1', /positive number/],
    ['NIGHTSHIFT_BUDGET_MONTHLY_USD', '19', /less than NIGHTSHIFT_BUDGET_DAILY_USD \(20\)/],
    ['NIGHTSHIFT_CONFIRM_ABOVE_USD', '-5', /0 or more/],
    ['NIGHTSHIFT_CONFIRM_ABOVE_USD', 'five', /0 or more/],
    ['NIGHTSHIFT_ECONOMY', 'cheap', /standard or batch/],
    ['NIGHTSHIFT_BATCH_POLL_SECONDS', '0', /positive whole number/],
    ['NIGHTSHIFT_BATCH_POLL_SECONDS', '3601', /at most 3600/],
    ['NIGHTSHIFT_SIZING', 'yes', /on or off/],
    ['NIGHTSHIFT_BUDGET_SIZING_USD', '0', /more than 0/],
    ['NIGHTSHIFT_HOURLY_RATE', '0', /more than 0/],
    ['NIGHTSHIFT_HOURLY_RATE', '80/h', /positive number/],
  ])('refuses %s=%s, naming the variable', (variable, value, problem) => {
    expect(problemsOf(validEnv({ [variable]: value }))).toEqual([{ variable, problem: expect.stringMatching(problem) }]);
  });

  it('reports a monthly budget below the daily one together with the other budget conflicts', () => {
    const problems = problemsOf(validEnv({ NIGHTSHIFT_BUDGET_ITEM_USD: '2', NIGHTSHIFT_BUDGET_BUILD_USD: '5', NIGHTSHIFT_BUDGET_DAILY_USD: '500' }));
    expect(problems.map((p) => p.variable)).toEqual(['NIGHTSHIFT_BUDGET_ITEM_USD', 'NIGHTSHIFT_BUDGET_MONTHLY_USD']);
  });

  it('lists every variable it reads', () => {
    expect(CONFIG_VARIABLES).toContain('NIGHTSHIFT_TIMEZONE');
    expect(CONFIG_VARIABLES).toContain('GITHUB_SERVER_URL');
  });
});

describe('loadEnvFile', () => {
  it('reads .env under the real environment, which wins', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ns-env-'));
    const file = join(dir, '.env');
    writeFileSync(file, '# comment\nLOG_LEVEL=debug\nDATA_DIR="/tmp/x y"\n');
    const env = loadEnvFile(file, { LOG_LEVEL: 'warn' });
    expect(env.LOG_LEVEL).toBe('warn');
    expect(env.DATA_DIR).toBe('/tmp/x y');
  });

  it('returns the environment unchanged when there is no .env', () => {
    const env = { A: '1' };
    expect(loadEnvFile('/nonexistent/.env', env)).toBe(env);
  });
});
