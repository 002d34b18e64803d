import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCommandRunner, type CommandRunner, type CommandRunnerOptions } from '../../../src/agent/tools/run-command.js';
import { git } from '../../helpers/git-fixture.js';

const BWRAP_WORKS =
  spawnSync('bwrap', ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--unshare-pid', '--unshare-net', '--die-with-parent', 'true'], {
    stdio: 'ignore',
  }).status === 0;

const MODES = [
  { title: 'unconfined (plain spawn)', useSandbox: 'never' as const, skip: false },
  {
    title: BWRAP_WORKS ? 'in the bwrap sandbox' : 'in the bwrap sandbox (skipped: bwrap is not installed or does not work on this machine)',
    useSandbox: 'always' as const,
    skip: !BWRAP_WORKS,
  },
];

const silentLog = pino({ level: 'silent' });

let base: string;
let worktree: string;
const runners: CommandRunner[] = [];
const helpers: ChildProcess[] = [];

beforeEach(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), 'ns-run-')));
  worktree = join(base, 'worktree');
  mkdirSync(worktree);
});

afterEach(async () => {
  await Promise.all(runners.splice(0).map((runner) => runner.close()));
  for (const helper of helpers.splice(0)) helper.kill('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

async function makeRunner(mode: 'never' | 'always', overrides: Partial<CommandRunnerOptions> = {}): Promise<CommandRunner> {
  const runner = await createCommandRunner({
    cwd: worktree,
    timeoutMs: 20_000,
    outputCapBytes: 1_000_000,
    allowNetwork: false,
    envAllowList: [],
    secrets: [],
    useSandbox: mode,
    log: silentLog,
    ...overrides,
  });
  runners.push(runner);
  return runner;
}

/** A `sleep` argument no other process on the machine has: its pids can be found in /proc. */
function uniqueSleep(): string {
  return `${900 + randomInt(99)}.${randomInt(1_000_000_000)}`;
}

/** Live (not zombie) processes whose command line contains `needle`. */
function livePids(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (!cmdline.includes(needle)) continue;
      const state = /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${entry}/stat`, 'utf8'))?.[1];
      if (state !== 'Z' && state !== 'X') pids.push(Number(entry));
    } catch {
      // Exited while being read.
    }
  }
  return pids;
}

/** Polls until `check` holds or `timeoutMs` passes; returns whether it held. */
async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((resolveTick) => setTimeout(resolveTick, 20));
  }
  return check();
}

for (const mode of MODES) {
  describe.skipIf(mode.skip)(`createCommandRunner ${mode.title}`, () => {
    it('runs a command in the worktree and returns its exit code', async () => {
      const runner = await makeRunner(mode.useSandbox);
      expect(runner.sandboxed).toBe(mode.useSandbox === 'always');
      const result = await runner.run('pwd; echo hello; exit 3');
      expect(result).toEqual({ output: `${worktree}\nhello`, exitCode: 3, timedOut: false, truncated: false });
    });

    it('interleaves stderr with stdout in order, syntax errors included', async () => {
      const runner = await makeRunner(mode.useSandbox);
      expect((await runner.run('echo one; echo two >&2; echo three')).output).toBe('one\ntwo\nthree');
      const broken = await runner.run('echo fine\nif then');
      expect(broken.exitCode).not.toBe(0);
      expect(broken.output).toMatch(/syntax error/);
    });

    it('starts a fresh shell for every command', async () => {
      const runner = await makeRunner(mode.useSandbox);
      await runner.run('cd /; export CARRIED=yes');
      expect((await runner.run('pwd; echo "[$CARRIED]"')).output).toBe(`${worktree}\n[]`);
    });

    it('closes stdin, so a command waiting for input returns at once', async () => {
      const runner = await makeRunner(mode.useSandbox, { timeoutMs: 15_000 });
      const result = await runner.run('cat; echo done');
      expect(result).toMatchObject({ output: 'done', exitCode: 0, timedOut: false });
    });

    it('kills the whole process group on timeout, background children included', async () => {
      const runner = await makeRunner(mode.useSandbox, { timeoutMs: 3_000 });
      const sleep = uniqueSleep();
      const pending = runner.run(`echo started; sleep ${sleep} & wait`);
      expect(await waitFor(() => livePids(sleep).length > 0)).toBe(true);
      const result = await pending;
      expect(result.timedOut).toBe(true);
      expect(result.exitCode).toBeNull();
      expect(result.output).toBe('started\n[timed out after 3s; the command and every process it started were killed]');
      expect(await waitFor(() => livePids(sleep).length === 0, 5_000)).toBe(true);
    });

    it('kills what a command left running in the background when it returns', async () => {
      const runner = await makeRunner(mode.useSandbox);
      const sleep = uniqueSleep();
      // The background sleep keeps stdout open: the run must not wait for it.
      const result = await runner.run(`sleep ${sleep} & kill -0 $! && echo alive`);
      expect(result).toMatchObject({ output: 'alive', exitCode: 0, timedOut: false });
      expect(await waitFor(() => livePids(sleep).length === 0, 5_000)).toBe(true);
    });

    it('caps the output, keeping its head and tail', async () => {
      const runner = await makeRunner(mode.useSandbox, { outputCapBytes: 10_000 });
      const result = await runner.run('echo START-MARKER; head -c 300000 /dev/urandom | base64; echo END-MARKER');
      expect(result.truncated).toBe(true);
      expect(result.output.startsWith('START-MARKER\n')).toBe(true);
      expect(result.output.endsWith('\nEND-MARKER')).toBe(true);
      expect(result.output).toMatch(/… \d+ bytes of output elided …/);
      expect(result.output.length).toBeLessThan(11_000);
    });

    it('scrubs secrets the command prints, also one cut in half by the output cap', async () => {
      const secret = 'sk-canary-LITERAL-8f3a9c71';
      const runner = await makeRunner(mode.useSandbox, { secrets: [secret], outputCapBytes: 1_000 });
      const printed = await runner.run(`echo "the key is ${secret}"`);
      expect(printed.output).toBe('the key is [REDACTED]');
      // The head keeps 500 bytes: 495 x's and the first 5 characters of the secret.
      const cut = await runner.run(`printf 'x%.0s' $(seq 495); printf '%s\\n' '${secret}'; seq 1 3000 | sed 's/^/row /'`);
      expect(cut.truncated).toBe(true);
      expect(cut.output).not.toContain(secret.slice(0, 5));
      expect(cut.output).toContain('[REDACTED]');
    });

    it('passes only allow-listed, non-secret variables and fixed values to the command', async () => {
      const canaries = {
        FAKE_GITHUB_TOKEN: 'ghp_canaryCANARYcanary000111',
        MY_API_KEY: 'sk-ant-canary-api-key-222333',
        SECRET_THING: 'canary-secret-thing-444555',
        LEAKS_A_SECRET: 'prefix-ghp_canaryCANARYcanary000111-suffix',
        NIGHTSHIFT_TEST_VISIBLE: 'visible-value',
      };
      const saved = Object.fromEntries(Object.keys(canaries).map((name) => [name, process.env[name]]));
      Object.assign(process.env, canaries);
      try {
        const runner = await makeRunner(mode.useSandbox, {
          envAllowList: ['NIGHTSHIFT_TEST_VISIBLE', 'FAKE_GITHUB_TOKEN', 'MY_API_KEY', 'LEAKS_A_SECRET'],
          // Only the token is scrubbed from output (it makes LEAKS_A_SECRET a leak); the other
          // canaries are not, so finding them in the output would mean the environment leaked.
          secrets: [canaries.FAKE_GITHUB_TOKEN],
        });
        const env = await runner.run('env');
        const self = await runner.run("cat /proc/self/environ | tr '\\0' '\\n'");
        const parent = await runner.run("cat /proc/$PPID/environ | tr '\\0' '\\n'");
        const credentials = await runner.run('cat ~/.git-credentials ~/.config/gh/hosts.yml');
        for (const result of [env, self, parent, credentials]) {
          for (const value of [canaries.FAKE_GITHUB_TOKEN, canaries.MY_API_KEY, canaries.SECRET_THING]) expect(result.output).not.toContain(value);
        }
        for (const result of [env, self]) {
          expect(result.output).not.toMatch(/FAKE_GITHUB_TOKEN|MY_API_KEY|SECRET_THING|LEAKS_A_SECRET/);
          const vars = result.output.split('\n');
          for (const expected of ['NIGHTSHIFT_TEST_VISIBLE=visible-value', 'LANG=C.UTF-8', 'TERM=dumb', 'CI=true', 'GIT_TERMINAL_PROMPT=0', 'GIT_CONFIG_NOSYSTEM=1', `PATH=${process.env.PATH}`]) {
            expect(vars).toContain(expected);
          }
          expect(vars.find((line) => line.startsWith('HOME='))).not.toBe(`HOME=${homedir()}`);
        }
        expect(credentials.exitCode).not.toBe(0);
      } finally {
        for (const [name, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
      }
    });

    it('kills the command when the signal aborts, and rejects', async () => {
      const runner = await makeRunner(mode.useSandbox);
      const sleep = uniqueSleep();
      const controller = new AbortController();
      const pending = runner.run(`sleep ${sleep} & wait`, controller.signal);
      expect(await waitFor(() => livePids(sleep).length > 0)).toBe(true);
      controller.abort(new Error('wall clock limit'));
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
      expect(await waitFor(() => livePids(sleep).length === 0, 5_000)).toBe(true);
      await expect(runner.run('echo never', controller.signal)).rejects.toThrow('wall clock limit');
    });

    it('close() kills running commands and removes the private tmp directory', async () => {
      const runner = await makeRunner(mode.useSandbox);
      const marker = `marker-${randomInt(1_000_000_000)}`;
      await runner.run(`touch "$TMPDIR/${marker}" "$HOME/${marker}"`);
      const findMarker = (): boolean =>
        readdirSync(tmpdir())
          .filter((name) => name.startsWith('nightshift-cmd-'))
          .some((name) => existsSync(join(tmpdir(), name, marker)));
      expect(findMarker()).toBe(true);
      const sleep = uniqueSleep();
      const pending = runner.run(`sleep ${sleep} & wait`);
      expect(await waitFor(() => livePids(sleep).length > 0)).toBe(true);
      await runner.close();
      expect((await pending).exitCode).toBeNull();
      expect(await waitFor(() => livePids(sleep).length === 0, 5_000)).toBe(true);
      expect(findMarker()).toBe(false);
      await expect(runner.run('echo late')).rejects.toThrow('command runner is closed');
    });
  });
}

describe.skipIf(!BWRAP_WORKS)(`the bwrap sandbox${BWRAP_WORKS ? '' : ' (skipped: bwrap is not installed or does not work on this machine)'}`, () => {
  let server: Server;
  let port: number;
  let connections: number;

  beforeEach(async () => {
    connections = 0;
    server = createServer((socket) => {
      connections += 1;
      socket.end();
    });
    await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
    const address = server.address();
    port = typeof address === 'object' && address ? address.port : 0;
  });

  afterEach(async () => {
    await new Promise((resolveClose) => server.close(resolveClose));
  });

  it('has no network unless allowed', async () => {
    const connect = `exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected`;
    const offline = await makeRunner('always');
    const refused = await offline.run(connect);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.output).not.toContain('connected');
    expect(connections).toBe(0);

    const online = await makeRunner('always', { allowNetwork: true });
    expect((await online.run(connect)).output).toBe('connected');
  });

  it('can write only in the worktree and its private /tmp', async () => {
    const sibling = join(base, 'sibling');
    mkdirSync(sibling);
    const token = randomInt(1_000_000_000);
    const etcFile = `/etc/nightshift-test-${token}`;
    const runner = await makeRunner('always');
    const result = await runner.run(
      [`touch ${etcFile} || echo etc-refused`, `touch ${sibling}/planted || echo sibling-refused`, 'echo data > inside.txt && echo inside-ok', `touch /tmp/scratch-${token} && echo tmp-ok`].join('\n'),
    );
    expect(result.output.split('\n').filter((line) => !line.startsWith('touch:'))).toEqual(['etc-refused', 'sibling-refused', 'inside-ok', 'tmp-ok']);
    expect(existsSync(etcFile)).toBe(false);
    expect(readdirSync(sibling)).toEqual([]);
    expect(readFileSync(join(worktree, 'inside.txt'), 'utf8')).toBe('data\n');
    expect(existsSync(`/tmp/scratch-${token}`)).toBe(false);
  });

  it("hides the bot user's home and configured paths", async () => {
    const fakeHome = join(base, 'bot-home');
    mkdirSync(fakeHome);
    writeFileSync(join(fakeHome, '.git-credentials'), 'https://x:ghp_canaryOnDisk000@github.com\n');
    const runner = await makeRunner('always', { hidePaths: [fakeHome] });
    const result = await runner.run(`cat ${fakeHome}/.git-credentials; ls -A ${fakeHome} | wc -l`);
    expect(result.output).not.toContain('ghp_canaryOnDisk000');
    expect(result.output.split('\n').at(-1)).toBe('0');

    const homeFiles = readdirSync(homedir(), { withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => join(homedir(), entry.name));
    for (const file of homeFiles.slice(0, 5)) {
      expect((await runner.run(`test -e '${file}' && echo visible || echo hidden`)).output, file).toBe('hidden');
    }
  });

  it("cannot see other processes or read their environment through /proc", async () => {
    const canary = `canary-in-initial-env-${randomInt(1_000_000_000)}`;
    const sleep = uniqueSleep();
    const host = spawn('sleep', [sleep], { env: { PATH: process.env.PATH, NIGHTSHIFT_HOST_CANARY: canary }, stdio: 'ignore' });
    helpers.push(host);
    expect(await waitFor(() => livePids(sleep).length > 0)).toBe(true);
    // Outside the sandbox the same user can read it: that is what the sandbox must prevent.
    expect(readFileSync(`/proc/${host.pid}/environ`, 'utf8')).toContain(canary);

    const runner = await makeRunner('always');
    const result = await runner.run(`grep -la -e '${canary.slice(0, 22)}' /proc/[0-9]*/environ; echo "pids=$(ls /proc | grep -c '^[0-9]')"; cat /proc/[0-9]*/cmdline | tr '\\0' ' '`);
    expect(result.output).not.toMatch(/\/proc\/\d+\/environ/);
    expect(result.output).not.toContain(sleep);
    expect(Number(/pids=(\d+)/.exec(result.output)?.[1])).toBeLessThan(10);
  });

  it('lets the agent commit in a linked worktree but not touch git config, hooks or the git dir pointers', async () => {
    const clone = join(base, 'clone');
    mkdirSync(clone);
    git(clone, 'init', '-q', '-b', 'main');
    writeFileSync(join(clone, 'README.md'), '# demo\n');
    git(clone, 'add', '-A');
    git(clone, 'commit', '-qm', 'init');
    rmSync(worktree, { recursive: true });
    git(clone, 'worktree', 'add', '-q', '-b', 'nightshift/1-demo', worktree);
    const dotGit = readFileSync(join(worktree, '.git'), 'utf8');
    const runner = await makeRunner('always');

    const commit = await runner.run('echo change >> README.md && git add -A && git -c user.name=Agent -c user.email=agent@example.invalid commit -qm change && git log --format=%s -1');
    expect(commit).toMatchObject({ output: 'change', exitCode: 0 });
    expect(git(clone, 'log', '--format=%s', '-1', 'nightshift/1-demo')).toBe('change');

    const attacks = [
      "git config core.fsmonitor 'touch /tmp/pwned'",
      "printf 'gitdir: /tmp/evil\\n' > .git",
      'mkdir -p "$(git rev-parse --git-common-dir)/hooks" && echo evil > "$(git rev-parse --git-common-dir)/hooks/pre-commit"',
      'echo /tmp/evil > "$(git rev-parse --git-dir)/commondir"',
      'echo "* filter=evil" > "$(git rev-parse --git-common-dir)/info/attributes"',
    ];
    for (const attack of attacks) {
      expect((await runner.run(attack)).exitCode, attack).not.toBe(0);
    }
    expect(readFileSync(join(worktree, '.git'), 'utf8')).toBe(dotGit);
    expect(readFileSync(join(clone, '.git', 'config'), 'utf8')).not.toMatch(/fsmonitor/);
    expect(existsSync(join(clone, '.git', 'hooks', 'pre-commit'))).toBe(false);
    expect(readFileSync(join(clone, '.git', 'worktrees', 'worktree', 'commondir'), 'utf8').trim()).toBe('../..');
  });
});
