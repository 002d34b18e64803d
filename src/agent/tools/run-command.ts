/**
 * The executor of Anthropic's bash client tool (`bash_20250124`), confined to one worktree.
 *
 * There is no persistent shell session: every command runs in a fresh `bash -c` with the
 * worktree as its working directory, so `cd`, exported variables, shell functions and
 * background jobs do not carry over from one command to the next (the system prompt tells the
 * model so; the tool's `restart` is therefore a no-op for the caller). stdin is closed, stdout
 * and stderr are interleaved as produced, and the command runs in its own process group,
 * which is killed when the command returns, times out or is aborted, so background children
 * die with it.
 *
 * Where bubblewrap works (`bwrap`, Debian package `bubblewrap`) the command runs inside it:
 * - the whole file system read-only (`--ro-bind / /`), a fresh /dev and a /proc of a new PID
 *   namespace (the bot's own /proc/<pid>/environ is not visible), no network unless allowed,
 *   new IPC and UTS namespaces, a new session (no TIOCSTI into the bot's terminal), and
 *   everything inside dies with the bwrap process (which is what a timeout kills). bwrap is
 *   not tied to the bot: after a `kill -9` of the bot a running command finishes on its own;
 * - writable: the worktree, and a private directory mounted at /tmp that also holds $HOME;
 * - hidden behind empty tmpfs: the bot user's home, /root, /run/secrets, /var/run/secrets and
 *   `hidePaths`, so ~/.git-credentials, ~/.ssh, ~/.config/gh, ~/.npmrc and the like are gone.
 *   PATH entries under a hidden directory (~/.cargo/bin, nvm) are bound back read-only, with a
 *   `lib` next to a `bin` (npm's layout); toolchains that need more (~/.rustup, ~/.pyenv) must
 *   be listed in `exposePaths`;
 * - git. In a linked worktree `.git` is a file pointing at `<clone>/.git/worktrees/<id>` in
 *   the cached clone's common git dir, and `git add`/`git commit` write the index there and
 *   objects, refs and reflogs in the common dir. The agent may run them, so writable are: that
 *   worktree's own admin dir, and the common dir's `objects/`, `refs/` and `logs/`. Read-only
 *   stay: the common dir's `config`, `hooks/`, `info/`, `packed-refs`, the other worktrees'
 *   admin dirs, the `.git` file itself and the admin dir's `commondir`/`gitdir` pointers. So
 *   the agent cannot plant hooks, `core.fsmonitor`, `filter.*` or `diff.external` config, nor
 *   repoint the worktree at a git dir it made. Trade-off: it can still move refs (any branch
 *   of the clone) and add objects; the bot must push the SHA it recorded and base new
 *   worktrees on the fetched remote branch, and its own git calls neutralise hooks and config
 *   anyway (workspace/). Deleting a ref (`git branch -D`, `git stash drop`) fails on the
 *   read-only `packed-refs`; adding, committing and stashing work. With `.git` a plain
 *   directory inside the worktree, only its existing `config` and `hooks/` are read-only.
 *
 * Where bwrap does not work, `useSandbox: 'always'` (the default) refuses to make a runner
 * ({@link SandboxUnavailable}) rather than run anything unconfined: the output scrub knows only
 * the plain and URL-encoded forms of a secret, so it is no defence against a command that
 * encodes what it reads. Only `useSandbox: 'never'`, the operator's explicit choice, runs the
 * command as a plain child process with the same scrubbed environment and working directory,
 * and one warning is logged per process. Then nothing stops it from writing outside the
 * worktree, reaching the network, reading the bot user's files, or reading the bot's own
 * /proc/<pid>/environ (same user), secrets included: the environment scrub keeps secrets out
 * of the command's own environment only. A process that calls setsid() escapes the
 * process-group kill.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, realpath, rm, stat } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from 'pino';
import { createRedactor, REDACTED } from '../../domain/redact.js';
import { compactOutput } from '../compact-output.js';

/** What one command produced. */
export interface CommandResult {
  /** stdout and stderr interleaved as produced, already capped, compacted and secret-scrubbed. */
  output: string;
  /** The exit code, or null when the command was killed by a signal (a timeout included). */
  exitCode: number | null;
  /** The command ran past `timeoutMs` and was killed with everything it started. */
  timedOut: boolean;
  /** Raw output exceeded `outputCapBytes` and its middle was dropped before compaction. */
  truncated: boolean;
}

/** Options for {@link createCommandRunner}. */
export interface CommandRunnerOptions {
  /** The worktree: the working directory and the only writable path in the sandbox (plus /tmp). */
  cwd: string;
  /** Per command; on timeout the whole process group is killed with SIGKILL. */
  timeoutMs: number;
  /** Raw output kept at most (head and tail, middle elided) before compaction. */
  outputCapBytes: number;
  /** false → no network in the sandbox (`--unshare-net`). */
  allowNetwork: boolean;
  /**
   * Names of variables copied from process.env; everything else is dropped. Names matching
   * {@link SECRET_ENV_NAME} are dropped even when listed, and so is any variable whose value
   * contains a secret.
   */
  envAllowList: readonly string[];
  /** Values scrubbed from the output. */
  secrets: readonly string[];
  /** `always`: inside bwrap, and no runner where it does not work; `never`: a plain child process (unconfined). @default 'always' */
  useSandbox?: SandboxMode;
  /** Extra host paths to hide behind an empty tmpfs in the sandbox. @default [] */
  hidePaths?: readonly string[];
  /** Host paths bound read-only into the sandbox even under a hidden directory. @default [] */
  exposePaths?: readonly string[];
  /** The bubblewrap executable. @default 'bwrap' */
  bwrapPath?: string;
  log: Logger;
}

/** Runs the agent's shell commands in one worktree. */
export interface CommandRunner {
  /**
   * Runs one command in a fresh `bash -c` (no state carries over). Resolves with its output
   * however it ended; rejects with an `AbortError` when `signal` aborts it (it is killed first).
   */
  run(command: string, signal?: AbortSignal): Promise<CommandResult>;
  /** True when commands run inside bubblewrap. */
  readonly sandboxed: boolean;
  /** Kills anything still running and removes the private tmp directory. */
  close(): Promise<void>;
}

/** How agent commands are confined: in bubblewrap or refused (`always`), or not at all (`never`). */
export type SandboxMode = 'always' | 'never';

/** What to do about a bubblewrap that does not work; shown to the user with every item it stops. */
export const SANDBOX_FIX =
  'install it, or in Docker run with `--security-opt seccomp=unconfined --security-opt apparmor=unconfined`, ' +
  "or set NIGHTSHIFT_SANDBOX=never to run agent commands unconfined (they can then read nightshift's secrets)";

/** `useSandbox: 'always'` and bubblewrap does not work on this machine; the message names the fix. */
export class SandboxUnavailable extends Error {
  override readonly name = 'SandboxUnavailable';
  constructor(readonly bwrapPath: string) {
    super(`bubblewrap does not work here: ${SANDBOX_FIX}`);
  }
}

/** Variable names never passed to a command, allow-listed or not. */
export const SECRET_ENV_NAME = /TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|ASKPASS|COOKIE|^SSH_AUTH_SOCK$/i;

// After the command exits (its group killed), how long its pipes may stay open: only a process
// that escaped the group (setsid, outside the sandbox) can hold them.
const PIPE_DRAIN_MS = 1_000;
// Only a hang counts as broken: a failed probe stops every build, and on a loaded machine
// starting bwrap can take seconds.
const PROBE_TIMEOUT_MS = 60_000;
// System directories never hidden, whatever HOME says (a daemon user's HOME can be / or /var).
const NEVER_HIDDEN = new Set(['/', '/usr', '/bin', '/sbin', '/lib', '/lib64', '/etc', '/var', '/opt', '/srv', '/tmp', '/dev', '/proc', '/sys', '/run']);

// Per process: whether bwrap works (by executable; successes only), and whether the unconfined warning went out.
const probes = new Map<string, Promise<boolean>>();
let warnedUnconfined = false;

/** Creates the command runner for one worktree (and its private tmp directory). */
export async function createCommandRunner(opts: CommandRunnerOptions): Promise<CommandRunner> {
  const cwd = await realpath(opts.cwd);
  if (!(await stat(cwd)).isDirectory()) throw new Error(`command runner cwd is not a directory: ${cwd}`);
  const bwrapPath = opts.bwrapPath ?? 'bwrap';
  const sandboxed = (opts.useSandbox ?? 'always') === 'always';
  if (sandboxed && !(await isBwrapUsable(bwrapPath))) throw new SandboxUnavailable(bwrapPath);
  if (!sandboxed && !warnedUnconfined) {
    warnedUnconfined = true;
    opts.log.warn("sandbox disabled by configuration (NIGHTSHIFT_SANDBOX=never); agent commands run unconfined and can read nightshift's secrets");
  }

  const privateTmp = await mkdtemp(join(tmpdir(), 'nightshift-cmd-'));
  await mkdir(join(privateTmp, 'home'), { mode: 0o700 });
  const home = sandboxed ? '/tmp/home' : join(privateTmp, 'home');
  const env = buildCommandEnv(process.env, opts.envAllowList, opts.secrets, { home, tmp: sandboxed ? '/tmp' : privateTmp });
  const bwrapArgs = sandboxed
    ? await buildBwrapArgs({
        cwd,
        privateTmp,
        allowNetwork: opts.allowNetwork,
        hidePaths: opts.hidePaths ?? [],
        exposePaths: opts.exposePaths ?? [],
        path: env.PATH ?? '',
        log: opts.log,
      })
    : [];
  const redact = createRedactor(opts.secrets);
  const running = new Set<RunningCommand>();
  let closed = false;

  return {
    sandboxed,
    async run(command, signal) {
      if (closed) throw new Error('command runner is closed');
      signal?.throwIfAborted();
      const [file, args] = sandboxed
        ? [bwrapPath, [...bwrapArgs, '--', 'bash', ...bashArgs(command)]]
        : ['bash', bashArgs(command)];
      const child = spawn(file, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      const started = Date.now();
      const handle = watch(child, opts.outputCapBytes, opts.secrets);
      running.add(handle);
      const timer = setTimeout(() => handle.kill('timeout'), opts.timeoutMs);
      const onAbort = (): void => handle.kill('abort');
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const ended = await handle.done;
        if (ended.killedBy === 'abort') {
          throw Object.assign(new Error('command aborted', { cause: signal?.reason }), { name: 'AbortError' });
        }
        const timedOut = ended.killedBy === 'timeout';
        let output = redact(compactOutput(redact(ended.raw)));
        if (timedOut) {
          output += `${output === '' ? '' : '\n'}[timed out after ${formatSeconds(opts.timeoutMs)}; the command and every process it started were killed]`;
        }
        opts.log.debug(
          { exitCode: ended.exitCode, timedOut, truncated: ended.truncated, ms: Date.now() - started, sandboxed },
          'agent command finished',
        );
        return { output, exitCode: timedOut ? null : ended.exitCode, timedOut, truncated: ended.truncated };
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        running.delete(handle);
      }
    },
    async close() {
      closed = true;
      const pending = [...running];
      for (const handle of pending) handle.kill('close');
      await Promise.all(pending.map((handle) => handle.done.catch(() => undefined)));
      await rm(privateTmp, { recursive: true, force: true });
    },
  };
}

// `$1` runs in a second bash, exec'd with stderr already on stdout, so even its syntax errors
// arrive in order and the model's line numbers match; $0 is only a name.
function bashArgs(command: string): string[] {
  return ['-c', 'exec "$BASH" -c "$1" 2>&1', 'bash', command];
}

/** The environment a command sees: the allow-list minus secrets, plus fixed values. */
export function buildCommandEnv(
  source: NodeJS.ProcessEnv,
  allowList: readonly string[],
  secrets: readonly string[],
  dirs: { home: string; tmp: string },
): Record<string, string> {
  const needles = secrets.filter((secret) => secret.length > 0);
  const env: Record<string, string> = {};
  for (const name of allowList) {
    const value = source[name];
    if (value === undefined || SECRET_ENV_NAME.test(name)) continue;
    if (needles.some((secret) => value.includes(secret))) continue;
    env[name] = value;
  }
  return {
    ...env,
    PATH: source.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: dirs.home,
    TMPDIR: dirs.tmp,
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    CI: 'true',
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
  };
}

type KillReason = 'timeout' | 'abort' | 'close';

interface Ended {
  raw: string;
  exitCode: number | null;
  truncated: boolean;
  killedBy: KillReason | undefined;
}

interface RunningCommand {
  done: Promise<Ended>;
  kill(reason: KillReason): void;
}

function watch(child: ChildProcess, capBytes: number, secrets: readonly string[]): RunningCommand {
  const collector = new OutputCollector(capBytes);
  let killedBy: KillReason | undefined;
  const killGroup = (): void => {
    if (child.pid === undefined) return;
    try {
      // Negative pid: the whole process group (detached made the child its leader).
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  child.stdout?.on('data', (chunk: Buffer) => collector.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => collector.push(chunk));
  const done = new Promise<Ended>((resolveDone, rejectDone) => {
    let exitCode: number | null = null;
    let drainTimer: NodeJS.Timeout | undefined;
    child.once('error', (error) => {
      killGroup();
      rejectDone(error);
    });
    child.once('exit', (code) => {
      exitCode = code;
      // Whatever the command left running in the background dies with it.
      killGroup();
      drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, PIPE_DRAIN_MS);
      drainTimer.unref();
    });
    child.once('close', () => {
      if (drainTimer) clearTimeout(drainTimer);
      resolveDone({ raw: collector.text(secrets), exitCode, truncated: collector.truncated, killedBy });
    });
  });
  return {
    done,
    kill(reason) {
      killedBy ??= reason;
      killGroup();
    },
  };
}

/** Keeps the first and last `capBytes / 2` bytes of a stream and counts the rest. */
class OutputCollector {
  private readonly headCap: number;
  private readonly tailCap: number;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private total = 0;

  constructor(capBytes: number) {
    this.headCap = Math.floor(Math.max(0, capBytes) / 2);
    this.tailCap = Math.max(0, capBytes) - this.headCap;
  }

  get truncated(): boolean {
    return this.total > this.headCap + this.tailCap;
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    let rest = chunk;
    if (this.headBytes < this.headCap) {
      const take = Math.min(this.headCap - this.headBytes, rest.length);
      this.head.push(rest.subarray(0, take));
      this.headBytes += take;
      rest = rest.subarray(take);
    }
    if (rest.length === 0) return;
    this.tail.push(rest);
    this.tailBytes += rest.length;
    while (this.tailBytes > this.tailCap && this.tail.length > 0) {
      const first = this.tail[0] as Buffer;
      const excess = this.tailBytes - this.tailCap;
      if (first.length <= excess) {
        this.tail.shift();
        this.tailBytes -= first.length;
      } else {
        this.tail[0] = first.subarray(excess);
        this.tailBytes -= excess;
      }
    }
  }

  /** The kept text; a secret cut in half at an elision point is scrubbed as well. */
  text(secrets: readonly string[]): string {
    const head = Buffer.concat(this.head);
    const tail = Buffer.concat(this.tail);
    if (!this.truncated) return Buffer.concat([head, tail]).toString('utf8');
    // The head drops a trailing partial character; the tail skips leading continuation bytes.
    let headText = new StringDecoder('utf8').write(head);
    let start = 0;
    while (start < tail.length && ((tail[start] ?? 0) & 0xc0) === 0x80) start += 1;
    let tailText = tail.subarray(start).toString('utf8');
    for (const secret of secrets) {
      headText = scrubCutEnd(headText, secret);
      tailText = scrubCutStart(tailText, secret);
    }
    const elided = this.total - head.length - tail.length;
    return `${headText}\n… ${elided} bytes of output elided …\n${tailText}`;
  }
}

// Shorter fragments than this are ordinary text.
const MIN_SECRET_FRAGMENT = 4;

function scrubCutEnd(text: string, secret: string): string {
  for (let k = secret.length - 1; k >= MIN_SECRET_FRAGMENT; k -= 1) {
    if (text.endsWith(secret.slice(0, k))) return text.slice(0, -k) + REDACTED;
  }
  return text;
}

function scrubCutStart(text: string, secret: string): string {
  for (let k = secret.length - 1; k >= MIN_SECRET_FRAGMENT; k -= 1) {
    if (text.startsWith(secret.slice(-k))) return REDACTED + text.slice(k);
  }
  return text;
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`;
}

/**
 * Whether bubblewrap works here with the flags the runner uses. A success is remembered for the
 * process; a failure is probed again next time, so a Retry after installing bubblewrap works
 * without a restart.
 */
export function isBwrapUsable(bwrapPath = 'bwrap'): Promise<boolean> {
  let probe = probes.get(bwrapPath);
  if (!probe) {
    probe = runProbe(bwrapPath);
    probes.set(bwrapPath, probe);
    void probe.then((usable) => {
      if (!usable) probes.delete(bwrapPath);
    });
  }
  return probe;
}

function runProbe(bwrapPath: string): Promise<boolean> {
  const args = [
    '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp',
    ...NAMESPACE_FLAGS, '--unshare-net', '--chdir', '/', '--', 'true',
  ];
  return new Promise((resolveProbe) => {
    const child = spawn(bwrapPath, args, { stdio: 'ignore', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    const timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS);
    child.once('error', () => {
      clearTimeout(timer);
      resolveProbe(false);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolveProbe(code === 0);
    });
  });
}

const NAMESPACE_FLAGS = [
  '--unshare-pid',
  '--unshare-ipc',
  '--unshare-uts',
  '--unshare-cgroup-try',
  '--die-with-parent',
  '--new-session',
];

interface SandboxLayout {
  cwd: string;
  privateTmp: string;
  allowNetwork: boolean;
  hidePaths: readonly string[];
  exposePaths: readonly string[];
  path: string;
  log: Logger;
}

/** The bwrap arguments for a worktree; order matters, as later mounts cover earlier ones. */
async function buildBwrapArgs(layout: SandboxLayout): Promise<string[]> {
  const { cwd } = layout;
  const args = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc'];

  const hidden: string[] = [];
  for (const candidate of [homedir(), '/root', '/run/secrets', '/var/run/secrets', ...layout.hidePaths]) {
    const real = await realDirectory(candidate);
    if (!real || NEVER_HIDDEN.has(real) || hidden.includes(real)) continue;
    hidden.push(real);
    args.push('--tmpfs', real);
  }
  args.push('--bind', layout.privateTmp, '/tmp');

  // Toolchains on PATH under a hidden directory (or the replaced /tmp) come back read-only.
  const covered = [...hidden, '/tmp'];
  const exposed = new Set<string>();
  for (const entry of layout.path.split(':')) {
    if (!isAbsolute(entry)) continue;
    const real = await realDirectory(entry);
    if (!real || !covered.some((dir) => isWithin(dir, real)) || isWithin(cwd, real)) continue;
    exposed.add(real);
    if (basename(real) === 'bin') {
      const lib = await realDirectory(join(dirname(real), 'lib'));
      if (lib) exposed.add(lib);
    }
  }
  for (const path of layout.exposePaths) {
    const real = await realDirectory(path);
    if (real) exposed.add(real);
  }
  for (const real of exposed) args.push('--ro-bind', real, real);

  const git = await detectGitLayout(cwd, layout.log);
  if (git?.kind === 'linked') {
    args.push('--ro-bind', git.commonDir, git.commonDir);
    await mkdir(join(git.commonDir, 'logs'), { recursive: true });
    for (const sub of ['objects', 'refs', 'logs']) {
      const dir = join(git.commonDir, sub);
      if (await realDirectory(dir)) args.push('--bind', dir, dir);
    }
    args.push('--bind', git.gitDir, git.gitDir);
    for (const pointer of ['commondir', 'gitdir']) {
      const file = join(git.gitDir, pointer);
      args.push('--ro-bind-try', file, file);
    }
  }
  args.push('--bind', cwd, cwd);
  if (git) {
    const dotGit = join(cwd, '.git');
    if (git.dotGitIsFile) args.push('--ro-bind', dotGit, dotGit);
    if (git.kind === 'single') {
      if (!isWithin(cwd, git.gitDir)) args.push('--bind', git.gitDir, git.gitDir);
      for (const sub of ['config', 'hooks']) {
        const path = join(git.gitDir, sub);
        args.push('--ro-bind-try', path, path);
      }
    }
  }

  args.push(...NAMESPACE_FLAGS);
  if (!layout.allowNetwork) args.push('--unshare-net');
  args.push('--chdir', cwd);
  return args;
}

type GitLayout =
  /** A linked worktree: admin dir `<common>/worktrees/<id>` apart from the common dir. */
  | { kind: 'linked'; gitDir: string; commonDir: string; dotGitIsFile: boolean }
  /** One git dir holds everything (a plain clone, or `--separate-git-dir`). */
  | { kind: 'single'; gitDir: string; dotGitIsFile: boolean };

async function detectGitLayout(cwd: string, log: Logger): Promise<GitLayout | undefined> {
  const dotGit = join(cwd, '.git');
  const stats = await lstat(dotGit).catch(() => undefined);
  if (!stats) return undefined;
  if (stats.isDirectory()) return { kind: 'single', gitDir: dotGit, dotGitIsFile: false };
  if (!stats.isFile()) return undefined;
  const match = /^gitdir:\s*(.+?)\s*$/m.exec(await readFile(dotGit, 'utf8'));
  const gitDir = match?.[1] ? await realDirectory(resolve(cwd, match[1])) : undefined;
  if (!gitDir || !(await lstat(join(gitDir, 'HEAD')).catch(() => undefined))) {
    log.warn('worktree .git file does not point at a git dir; git stays read-only for agent commands');
    return undefined;
  }
  const commonRel = await readFile(join(gitDir, 'commondir'), 'utf8').catch(() => undefined);
  const commonDir = commonRel ? await realDirectory(resolve(gitDir, commonRel.trim())) : gitDir;
  if (!commonDir || commonDir === gitDir) return { kind: 'single', gitDir, dotGitIsFile: true };
  if (!(await realDirectory(join(commonDir, 'objects')))) {
    log.warn('worktree common git dir has no objects; git stays read-only for agent commands');
    return undefined;
  }
  return { kind: 'linked', gitDir, commonDir, dotGitIsFile: true };
}

async function realDirectory(path: string): Promise<string | undefined> {
  try {
    const real = await realpath(path);
    return (await stat(real)).isDirectory() ? real : undefined;
  } catch {
    return undefined;
  }
}

function isWithin(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}
