import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { DEFAULT_PORT, parseSandboxArgs, prepareDataDir, SANDBOX_USER, SandboxError, sandboxBotEnv } from '../../src/sandbox/main.js';
import { ensureSampleRepo, SAMPLE_REPO } from '../../src/sandbox/sample-repo.js';
import { git, readFileAt } from '../helpers/git-fixture.js';

const temp = () => mkdtempSync(join(tmpdir(), 'ns-sandbox-unit-'));

describe('parseSandboxArgs', () => {
  it('has defaults and reads every flag', () => {
    expect(parseSandboxArgs([], '/x')).toEqual({ port: DEFAULT_PORT, dataDir: '/x/sandbox-data', reset: false, realModel: false });
    expect(parseSandboxArgs(['--port', '0', '--data-dir', 'd', '--reset', '--real-model'], '/x')).toEqual({ port: 0, dataDir: '/x/d', reset: true, realModel: true });
  });

  it('refuses unknown flags and bad ports with a message naming them', () => {
    expect(() => parseSandboxArgs(['--rest'], '/x')).toThrow(/--rest[\s\S]*Usage: npm run sandbox/);
    expect(() => parseSandboxArgs(['--port', 'abc'], '/x')).toThrow(SandboxError);
    expect(() => parseSandboxArgs(['--port', '70000'], '/x')).toThrow(/--port must be a port number/);
  });
});

describe('prepareDataDir', () => {
  it('wipes with reset only a directory the sandbox made', () => {
    const dir = join(temp(), 'data');
    prepareDataDir(dir, false);
    writeFileSync(join(dir, 'old.txt'), 'x');
    prepareDataDir(dir, false);
    expect(existsSync(join(dir, 'old.txt'))).toBe(true);
    prepareDataDir(dir, true);
    expect(existsSync(join(dir, 'old.txt'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['.nightshift-sandbox']);
  });

  it('refuses a non-empty directory it did not make, reset or not', () => {
    const dir = temp();
    mkdirSync(join(dir, 'precious'));
    expect(() => prepareDataDir(dir, true)).toThrow(/not empty and was not made by the sandbox/);
    expect(existsSync(join(dir, 'precious'))).toBe(true);
  });
});

describe('sandboxBotEnv', () => {
  const env = (caller: NodeJS.ProcessEnv) =>
    sandboxBotEnv({
      telegram: { token: '4242000:sandbox-dummy-token-not-a-secret', apiRoot: 'http://127.0.0.1:1' },
      github: { token: 'dummy', baseUrl: 'http://127.0.0.1:2' },
      bare: { serverUrl: 'file:///tmp/remote' },
      dataDir: '/tmp/sb',
      anthropic: { baseUrl: 'http://127.0.0.1:3', apiKey: 'dummy' },
      env: caller,
    });

  it('is a valid configuration for the bot: stand-ins, the page user, any hour, tsx on PATH', () => {
    const vars = env({ PATH: '/usr/bin', HOME: '/home/me' });
    const config = loadConfig(vars);
    expect(config.telegram.allowedUsers).toEqual([SANDBOX_USER.id]);
    expect(config.github).toEqual({ token: 'dummy', apiUrl: 'http://127.0.0.1:2', serverUrl: 'file:///tmp/remote' });
    expect(config.repos.map((r) => r.fullName)).toEqual([SAMPLE_REPO]);
    expect(config.dataDir).toBe('/tmp/sb/nightshift');
    expect(vars.NIGHTSHIFT_PEAK_HOURS).toBe('none');
    expect(vars.PATH).toMatch(/node_modules\/\.bin:\/usr\/bin$/);
  });

  it("passes the caller's NIGHTSHIFT_* settings and nothing else of the caller's environment", () => {
    const vars = env({ PATH: '/usr/bin', NIGHTSHIFT_REVIEW_ROUNDS: '1', GITHUB_TOKEN: 'ghp_real', ANTHROPIC_API_KEY: 'sk-real', AWS_SECRET_ACCESS_KEY: 'x' });
    expect(vars.NIGHTSHIFT_REVIEW_ROUNDS).toBe('1');
    expect(vars.GITHUB_TOKEN).toBe('dummy');
    expect(vars.ANTHROPIC_API_KEY).toBe('dummy');
    expect(Object.values(vars)).not.toContain('x');
  });
});

describe('ensureSampleRepo', () => {
  it('creates a TypeScript project with a test once, and reuses it with its history afterwards', () => {
    const root = temp();
    const bare = ensureSampleRepo(root);
    expect(bare.fullName).toBe(SAMPLE_REPO);
    expect(JSON.parse(readFileAt(bare, 'main', 'package.json')!).scripts.test).toBe('tsx --test test/*.test.ts');
    expect(readFileAt(bare, 'main', 'test/greet.test.ts')).toContain("from '../src/greet.js'");
    const again = ensureSampleRepo(root);
    expect(again).toEqual(bare);
    expect(git(bare.path, 'rev-list', '--count', 'main')).toBe('1');
  });
});
