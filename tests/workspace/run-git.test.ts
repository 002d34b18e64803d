import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REDACTED } from '../../src/domain/redact.js';
import {
  askpassScriptPath, GIT_PASSWORD_ENV, GIT_USERNAME, GitError, gitPrivateDir, neutralisingOverrides, runGit,
} from '../../src/workspace/run-git.js';
import { git } from '../helpers/git-fixture.js';
import { CANARY_TOKEN, markerScript, ran } from './support.js';

let tmp: string;
let repo: string;
const identity = { name: 'Bot', email: 'bot@example.invalid' };

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'run-git-'));
  repo = join(tmp, 'repo');
  mkdirSync(repo);
  git(repo, 'init', '--quiet', '--initial-branch=main');
  writeFileSync(join(repo, 'a.txt'), 'a\n');
  git(repo, 'add', 'a.txt');
  git(repo, 'commit', '--quiet', '-m', 'init');
});

afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('runGit', () => {
  it('returns stdout untrimmed', async () => {
    writeFileSync(join(repo, 'spaced.txt'), '  two trailing newlines\n\n');
    git(repo, 'add', 'spaced.txt');
    expect(await runGit(['show', ':spaced.txt'], { cwd: repo })).toBe('  two trailing newlines\n\n');
  });

  it('uses the given identity and a private empty HOME, whatever the environment says', async () => {
    const planted: Record<string, string> = {
      GIT_AUTHOR_NAME: 'Leaked Name',
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'alias.leak',
      GIT_CONFIG_VALUE_0: '!echo leaked',
      GIT_DIR: join(tmp, 'nowhere'),
    };
    const saved = Object.fromEntries(Object.keys(planted).map((key) => [key, process.env[key]]));
    Object.assign(process.env, planted);
    try {
      expect(await runGit(['var', 'GIT_AUTHOR_IDENT'], { cwd: repo, identity })).toMatch(/^Bot <bot@example\.invalid> /);
      expect(await runGit(['config', '--list'], { cwd: repo })).not.toContain('alias.leak');
      const home = await runGit(['-c', 'alias.home=!printf %s "$HOME"', 'home'], { cwd: repo });
      expect(home.startsWith(gitPrivateDir())).toBe(true);
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  it('rejects with GitError carrying the exit code and stderr', async () => {
    const error = await runGit(['rev-parse', '--verify', 'no-such-ref'], { cwd: repo }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitError);
    const gitError = error as GitError;
    expect(gitError.exitCode).toBe(128);
    expect(gitError.reason).toBe('exit');
    expect(gitError.stderr).toContain('Needed a single revision');
    expect(gitError.args).toEqual(['rev-parse', '--verify', 'no-such-ref']);
  });

  it('redacts the token from the message, stderr and args of a GitError', async () => {
    const error = (await runGit(['rev-parse', '--verify', CANARY_TOKEN], { cwd: repo, token: CANARY_TOKEN }).catch(
      (e: unknown) => e,
    )) as GitError;
    expect(error).toBeInstanceOf(GitError);
    for (const text of [error.message, error.stderr, error.args.join(' '), String(error.stack)]) {
      expect(text).not.toContain(CANARY_TOKEN);
    }
    expect(error.args).toContain(REDACTED);
  });

  it('kills git when the timeout passes', async () => {
    const error = (await runGit(['-c', 'alias.hang=!sleep 60', 'hang'], { cwd: repo, timeoutMs: 200 }).catch(
      (e: unknown) => e,
    )) as GitError;
    expect(error).toBeInstanceOf(GitError);
    expect(error.reason).toBe('timeout');
    expect(error.exitCode).toBeNull();
  });

  it('kills git when aborted, and does not start when already aborted', async () => {
    const controller = new AbortController();
    const running = runGit(['-c', 'alias.hang=!sleep 60', 'hang'], { cwd: repo, signal: controller.signal });
    controller.abort();
    await expect(running).rejects.toMatchObject({ name: 'GitError', reason: 'aborted' });
    await expect(runGit(['status'], { cwd: repo, signal: controller.signal })).rejects.toMatchObject({ reason: 'aborted' });
  });

  it('never runs hooks, fsmonitor, filter or diff drivers from the repository config', async () => {
    const marker = join(tmp, 'marker');
    const evil = markerScript(tmp, 'evil', marker, true);
    const hooks = join(repo, '.git', 'hooks');
    for (const hook of ['pre-commit', 'post-commit', 'post-checkout', 'post-index-change', 'reference-transaction']) {
      markerScript(hooks, hook, marker);
    }
    // Driver names are arbitrary (here mixed case) and one lives in an included file.
    writeFileSync(join(repo, '.gitattributes'), '*.txt filter=Evil diff=Evil\n*.md filter=other\n');
    git(repo, 'config', 'core.fsmonitor', markerScript(tmp, 'fsmonitor', marker));
    git(repo, 'config', 'filter.Evil.clean', evil);
    git(repo, 'config', 'filter.Evil.smudge', evil);
    git(repo, 'config', 'filter.Evil.required', 'true');
    git(repo, 'config', 'diff.Evil.textconv', evil);
    git(repo, 'config', 'diff.external', evil);
    writeFileSync(join(tmp, 'included'), `[filter "other"]\n\tclean = ${evil}\n\tprocess = ${evil}\n`);
    git(repo, 'config', 'include.path', join(tmp, 'included'));
    // Control: plain git runs them.
    writeFileSync(join(repo, 'control.txt'), 'control\n');
    git(repo, 'status', '--porcelain');
    git(repo, 'add', 'control.txt');
    expect(ran(marker)).toMatch(/fsmonitor/);
    expect(ran(marker)).toMatch(/evil/);
    git(repo, 'reset', '--quiet');
    rmSync(marker);

    writeFileSync(join(repo, 'a.txt'), 'changed\n');
    writeFileSync(join(repo, 'b.md'), 'b\n');
    await runGit(['status', '--porcelain'], { cwd: repo });
    await runGit(['add', '--all'], { cwd: repo });
    await runGit(['commit', '--quiet', '-m', 'change'], { cwd: repo, identity });
    await runGit(['diff', 'HEAD~1', 'HEAD'], { cwd: repo }).catch(() => undefined);
    await runGit(['diff', '--no-ext-diff', 'HEAD~1', 'HEAD'], { cwd: repo });
    await runGit(['log', '-p', '--no-ext-diff', '-1'], { cwd: repo });
    await runGit(['checkout', '--quiet', 'HEAD~1'], { cwd: repo });
    await runGit(['checkout', '--quiet', 'main'], { cwd: repo });

    expect(ran(marker)).toBe('');
    expect(git(repo, 'cat-file', 'blob', 'HEAD:a.txt')).toBe('changed');
    expect(readFileSync(join(repo, 'a.txt'), 'utf8')).toBe('changed\n');
  });

  it('overrides every driver key found, whatever its subsection', () => {
    const overrides = new Map(
      neutralisingOverrides([
        'filter.A.b.clean', 'diff.x.textconv', 'diff.x.command', 'diff.external', 'merge.m.driver',
        'credential.https://example.com.helper', 'remote.origin.uploadpack', 'core.alternaterefscommand', 'user.name',
      ]),
    );
    expect(overrides).toEqual(
      new Map([
        ['diff.x.textconv', 'cat'],
        ['diff.x.command', ''],
        ['diff.external', ''],
        ['merge.m.driver', ''],
        ['credential.https://example.com.helper', ''],
        ['remote.origin.uploadpack', 'git-upload-pack'],
        ['core.alternateRefsCommand', 'true'],
        ['filter.A.b.clean', ''],
        ['filter.A.b.smudge', ''],
        ['filter.A.b.process', ''],
        ['filter.A.b.required', 'false'],
      ]),
    );
  });
});

describe('the askpass script', () => {
  const env = {
    PATH: process.env.PATH,
    NIGHTSHIFT_GIT_ORIGIN: 'https://github.com',
    NIGHTSHIFT_GIT_USERNAME: GIT_USERNAME,
    [GIT_PASSWORD_ENV]: CANARY_TOKEN,
  };
  const ask = (prompt: string) => spawnSync(askpassScriptPath(), [prompt], { env, encoding: 'utf8' });

  it('answers the username and the token for the expected origin', () => {
    expect(ask("Username for 'https://github.com': ").stdout).toBe('x-access-token\n');
    expect(ask("Password for 'https://x-access-token@github.com': ").stdout).toBe(`${CANARY_TOKEN}\n`);
    expect(ask("Password for 'https://x-access-token@github.com/me/app.git': ").stdout).toBe(`${CANARY_TOKEN}\n`);
  });

  it('answers nothing for another host, a look-alike host or another user', () => {
    for (const prompt of [
      "Password for 'https://x-access-token@evil.example': ",
      "Password for 'https://x-access-token@github.com.evil.example': ",
      "Password for 'http://x-access-token@github.com': ",
      "Password for 'https://someone@github.com': ",
      "Username for 'https://github.com.evil.example': ",
      'Are you sure? ',
    ]) {
      const result = ask(prompt);
      expect(result.status, prompt).not.toBe(0);
      expect(result.stdout, prompt).toBe('');
    }
  });

  it('lives in a private directory and holds no secret', () => {
    const script = askpassScriptPath();
    expect(dirname(script)).toBe(gitPrivateDir());
    expect(statSync(gitPrivateDir()).mode & 0o777).toBe(0o700);
    expect(statSync(script).mode & 0o077).toBe(0);
    expect(readFileSync(script, 'utf8')).not.toContain(CANARY_TOKEN);
  });
});
