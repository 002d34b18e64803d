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
