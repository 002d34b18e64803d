/**
 * The one way the bot runs git: a child process whose behaviour does not depend on anything an
 * agent could have written into a repository, nor on the bot's own environment or the machine's
 * git configuration.
 *
 * What is neutralised, for every call:
 * - global and system config (`GIT_CONFIG_GLOBAL=/dev/null`, `GIT_CONFIG_NOSYSTEM=1`), system
 *   attributes (`GIT_ATTR_NOSYSTEM=1`), every inherited `GIT_*` variable, `$HOME` (a private
 *   empty directory, so no `~/.gitconfig`, `~/.config/git/*`, `~/.git-credentials`);
 * - hooks (`core.hooksPath=/dev/null`), `core.fsmonitor`, the pager, `core.askPass`,
 *   `core.editor`, credential helpers (`credential.helper=` resets the list), signing
 *   (`commit/tag/push.gpgSign=false`, `log.showSignature=false`), `core.attributesFile`,
 *   replace refs (`GIT_NO_REPLACE_OBJECTS=1`), submodule recursion, detached auto-gc;
 * - transports other than https, http and file (`GIT_ALLOW_PROTOCOL`, `protocol.ext.allow=never`);
 * - config keys whose names are arbitrary and so cannot be listed up front: before each call the
 *   repository's config (as git would read it, includes followed) is listed, and every
 *   `filter.<x>.*` driver (clean/smudge/process emptied, required=false), `diff.<x>.textconv`
 *   (→ `cat`, the identity), `diff.<x>.command` and `diff.external` (emptied: an external diff
 *   then fails instead of running), `merge.<x>.driver` (emptied), `credential.<url>.helper`
 *   (emptied), `remote.<x>.uploadpack/receivepack` (→ the stock programs) and
 *   `core.alternateRefsCommand` (→ `true`) found there is overridden at command scope, which
 *   wins over repository config. Overrides travel in `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` so any
 *   subsection name survives intact. (A caller that has just read the config and found it to be
 *   exactly its own skips the listing: `neutraliseRepoConfig: false`.)
 *
 * What remains (see also createWorkspace, which additionally rewrites its clones' config):
 * - `url.<base>.insteadOf`/`pushInsteadOf`, `http.<url>.*` and `remote.<x>.url/pushurl` cannot be
 *   removed from the command line. Callers that send a token must not trust the repository's
 *   config (pass an explicit URL and own the config); the askpass script also answers only for
 *   `tokenOrigin`, so a rewritten URL gets no token.
 * - attributes from the work tree and `$GIT_DIR/info/attributes` still select git's built-in
 *   conversions (eol, ident, working-tree-encoding); they change bytes, they run nothing. Every
 *   attribute that would run a program needs a driver in config, and those are neutralised.
 * - the config listing and the command are two processes: a writer racing between them wins.
 * - aliases: only for non-builtin commands, and our callers only run builtins.
 * - the token is in the environment of git and its transport helper while they run, readable
 *   by the same user through /proc/<pid>/environ unless the reader is sandboxed.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedactor } from '../domain/redact.js';

/** Default limit for one git call; the whole process group is killed when it is reached. @default 300000 */
export const GIT_TIMEOUT_MS = 5 * 60_000;

/** stdout larger than this is a bug or an attack, not data. @default 64 MiB */
export const GIT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** The username sent with the token over https (what GitHub expects for app and fine-grained tokens). */
export const GIT_USERNAME = 'x-access-token';

/** The environment variable the askpass script prints for a password prompt. */
export const GIT_PASSWORD_ENV = 'NIGHTSHIFT_GIT_PASSWORD';

// Only what git needs to find programs and reach the network; secrets never pass.
const PASSTHROUGH_ENV = [
  'PATH', 'TMPDIR', 'SSL_CERT_FILE', 'SSL_CERT_DIR',
  'http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY',
] as const;

// Command scope: wins over the repository's own config.
const BASE_CONFIG: readonly string[] = [
  'core.hooksPath=/dev/null',
  'core.fsmonitor=false',
  'core.attributesFile=/dev/null',
  'core.pager=cat',
  'core.askPass=',
  'core.editor=false',
  'credential.helper=',
  'protocol.ext.allow=never',
  'protocol.fd.allow=never',
  'commit.gpgSign=false',
  'tag.gpgSign=false',
  'push.gpgSign=false',
  'log.showSignature=false',
  'color.ui=false',
  'gc.autoDetach=false',
  'submodule.recurse=false',
  'fetch.recurseSubmodules=false',
  'push.recurseSubmodules=no',
];

const STDERR_KEEP_BYTES = 64 * 1024;
const MESSAGE_STDERR_CHARS = 2000;

/** Why a git call failed: it exited non-zero, or it never got to exit on its own. */
export type GitFailure = 'exit' | 'timeout' | 'aborted' | 'output-too-large' | 'spawn';

/** A git call that failed. Message, args and stderr have the token redacted. */
export class GitError extends Error {
  override readonly name = 'GitError';
  constructor(
    message: string,
    /** The arguments after git's own hardening options, redacted. */
    readonly args: readonly string[],
    /** null when git was killed (timeout, abort, output cap) or could not start. */
    readonly exitCode: number | null,
    /** What git printed on stderr (its last 64 KiB), redacted. */
    readonly stderr: string,
    readonly reason: GitFailure,
  ) {
    super(message);
  }
}

/** Options for {@link runGit}. */
export interface RunGitOptions {
  /** Working directory. With `workTree` set, a directory inside it. */
  cwd: string;
  /** Sent by the askpass script for a password prompt; passed only in this call's environment. */
  token?: string;
  /**
   * `scheme://host[:port]` the token is for; the askpass script refuses any other prompt (a
   * rewritten remote URL gets nothing). Without it any host gets the token.
   */
  tokenOrigin?: string;
  /** Author and committer. Without it, commits fail (there is no global identity). */
  identity?: { name: string; email: string };
  /** @default GIT_TIMEOUT_MS */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * `GIT_DIR`: the repository, instead of discovering it from `cwd`. Pass it for a linked
   * worktree (its admin dir) so a `.git` the agent replaced is never read.
   */
  gitDir?: string;
  /** `GIT_WORK_TREE`, with `gitDir`. */
  workTree?: string;
  /**
   * List the repository config first and override driver keys found there. Pass false only for
   * a repository whose config the caller has just read and knows to hold none (as the workspace
   * does for its clones). @default true
   */
  neutraliseRepoConfig?: boolean;
}

/**
 * Runs git with settings that neutralise anything an agent could have written into `.git` or
 * the work tree (see the file comment for the list and for what remains). Resolves with stdout,
 * untrimmed; rejects with {@link GitError}.
 */
export async function runGit(args: readonly string[], opts: RunGitOptions): Promise<string> {
  const redact = createRedactor(opts.token === undefined ? [] : [opts.token]);
  const env = baseEnv(opts);
  let overrides: Array<readonly [string, string]> = [];
  if (opts.neutraliseRepoConfig ?? true) {
    // Listing config runs nothing: no hooks, drivers or helpers are involved in reading it.
    const listing = await spawnGit(['--no-pager', ...configArgs(), 'config', '--list', '--name-only', '-z'], env, opts, redact);
    overrides = neutralisingOverrides(listing.split('\0').filter((key) => key !== ''));
  }
  if (overrides.length > 0) {
    env.GIT_CONFIG_COUNT = String(overrides.length);
    overrides.forEach(([key, value], i) => {
      env[`GIT_CONFIG_KEY_${i}`] = key;
      env[`GIT_CONFIG_VALUE_${i}`] = value;
    });
  }
  if (opts.token !== undefined) {
    env.GIT_ASKPASS = askpassScriptPath();
    env.NIGHTSHIFT_GIT_USERNAME = GIT_USERNAME;
    env.NIGHTSHIFT_GIT_ORIGIN = opts.tokenOrigin ?? '';
    env[GIT_PASSWORD_ENV] = opts.token;
  }
  return spawnGit(['--no-pager', ...configArgs(), ...args], env, opts, redact, args);
}

function configArgs(): string[] {
  return BASE_CONFIG.flatMap((kv) => ['-c', kv]);
}

function baseEnv(opts: RunGitOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of PASSTHROUGH_ENV) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  Object.assign(env, {
    HOME: privateDirs().home,
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ATTR_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_NO_REPLACE_OBJECTS: '1',
    GIT_ALLOW_PROTOCOL: 'https:http:file',
  });
  if (opts.gitDir !== undefined) env.GIT_DIR = opts.gitDir;
  if (opts.workTree !== undefined) env.GIT_WORK_TREE = opts.workTree;
  if (opts.identity) {
    env.GIT_AUTHOR_NAME = opts.identity.name;
    env.GIT_AUTHOR_EMAIL = opts.identity.email;
    env.GIT_COMMITTER_NAME = opts.identity.name;
    env.GIT_COMMITTER_EMAIL = opts.identity.email;
  }
  return env;
}

/**
 * Command-scope overrides for the driver keys in `keys` (names as `git config --list` prints
 * them: section and variable lower-case, subsection as written).
 */
export function neutralisingOverrides(keys: readonly string[]): Array<readonly [string, string]> {
  const out = new Map<string, string>();
  const filters = new Set<string>();
  for (const key of keys) {
    const first = key.indexOf('.');
    const last = key.lastIndexOf('.');
    if (first < 0) continue;
    const section = key.slice(0, first).toLowerCase();
    const variable = key.slice(last + 1).toLowerCase();
    const sub = first === last ? undefined : key.slice(first + 1, last);
    if (sub === undefined) {
      if (section === 'diff' && variable === 'external') out.set('diff.external', '');
      if (section === 'core' && variable === 'alternaterefscommand') out.set('core.alternateRefsCommand', 'true');
      continue;
    }
    if (section === 'filter') filters.add(sub);
    else if (section === 'diff' && variable === 'textconv') out.set(`diff.${sub}.textconv`, 'cat');
    else if (section === 'diff' && variable === 'command') out.set(`diff.${sub}.command`, '');
    else if (section === 'merge' && variable === 'driver') out.set(`merge.${sub}.driver`, '');
    else if (section === 'credential' && variable === 'helper') out.set(`credential.${sub}.helper`, '');
    else if (section === 'remote' && variable === 'uploadpack') out.set(`remote.${sub}.uploadpack`, 'git-upload-pack');
    else if (section === 'remote' && variable === 'receivepack') out.set(`remote.${sub}.receivepack`, 'git-receive-pack');
  }
  for (const name of filters) {
    // An empty clean/smudge/process is "no filter"; required=false lets that pass.
    out.set(`filter.${name}.clean`, '');
    out.set(`filter.${name}.smudge`, '');
    out.set(`filter.${name}.process`, '');
    out.set(`filter.${name}.required`, 'false');
  }
  return [...out];
}

function spawnGit(
  fullArgs: readonly string[],
  env: NodeJS.ProcessEnv,
  opts: RunGitOptions,
  redact: (text: string) => string,
  shownArgs: readonly string[] = fullArgs,
): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? GIT_TIMEOUT_MS;
  const fail = (reason: GitFailure, exitCode: number | null, stderr: string, what: string) => {
    const args = shownArgs.map(redact);
    const err = redact(stderr);
    const tail = err.trim().slice(-MESSAGE_STDERR_CHARS);
    return new GitError(`git ${args.join(' ')} ${what}${tail ? `: ${tail}` : ''}`, args, exitCode, err, reason);
  };
  return new Promise<string>((resolvePromise, reject) => {
    if (opts.signal?.aborted) {
      reject(fail('aborted', null, '', 'was aborted before it started'));
      return;
    }
    const child = spawn('git', fullArgs, {
      cwd: opts.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group (and session: no terminal to prompt on), killed as a whole.
      detached: true,
    });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = Buffer.alloc(0);
    let killedFor: GitFailure | undefined;
    let settled = false;

    const killGroup = (why: GitFailure) => {
      if (killedFor !== undefined) return;
      killedFor = why;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => killGroup('timeout'), timeoutMs);
    const onAbort = () => killGroup('aborted');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = () => {
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };

    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > GIT_MAX_OUTPUT_BYTES) killGroup('output-too-large');
      else stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = Buffer.concat([stderr, chunk]);
      if (stderr.length > STDERR_KEEP_BYTES) stderr = stderr.subarray(stderr.length - STDERR_KEEP_BYTES);
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      finish();
      // Not the error itself: its spawnargs would carry the arguments unredacted.
      reject(fail('spawn', null, '', `could not start (${error.code ?? error.message})`));
    });
    child.on('close', (code) => {
      if (settled) return;
      finish();
      const err = stderr.toString('utf8');
      if (killedFor === 'timeout') reject(fail('timeout', null, err, `timed out after ${timeoutMs} ms`));
      else if (killedFor === 'aborted') reject(fail('aborted', null, err, 'was aborted'));
      else if (killedFor === 'output-too-large') {
        reject(fail('output-too-large', null, err, `printed more than ${GIT_MAX_OUTPUT_BYTES} bytes`));
      } else if (code !== 0) reject(fail('exit', code, err, `failed with exit code ${String(code)}`));
      else resolvePromise(Buffer.concat(stdout).toString('utf8'));
    });
  });
}

// The askpass script holds no secret: it prints what this one git call's environment carries,
// and only for prompts about the expected origin.
const ASKPASS_SCRIPT = `#!/bin/sh
# Written by nightshift: git's GIT_ASKPASS. The answer comes from the calling git's
# environment, never from a file, and only for the origin the token is meant for.
prompt=$1
origin=$NIGHTSHIFT_GIT_ORIGIN
user=$NIGHTSHIFT_GIT_USERNAME
case "$prompt" in
  Username*) where=$origin ;;
  Password*) where="\${origin%%://*}://$user@\${origin#*://}" ;;
  *) exit 1 ;;
esac
if [ -n "$origin" ]; then
  case "$prompt" in
    *"'$where'"*|*"'$where/"*) ;;
    *) exit 1 ;;
  esac
fi
case "$prompt" in
  Username*) printf '%s\\n' "$user" ;;
  *) printf '%s\\n' "$${GIT_PASSWORD_ENV}" ;;
esac
`;

let dirs: { root: string; home: string; askpass: string } | undefined;

// Made on first use, not at import; re-made if a tmp cleaner removed it from a long-lived process.
function privateDirs(): { root: string; home: string; askpass: string } {
  if (dirs && existsSync(dirs.home) && existsSync(dirs.askpass)) return dirs;
  if (!dirs || !existsSync(dirs.root)) {
    const root = mkdtempSync(join(tmpdir(), 'nightshift-git-')); // mode 0700
    chmodSync(root, 0o700);
    dirs = { root, home: join(root, 'home'), askpass: join(root, 'askpass.sh') };
    process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  }
  mkdirSync(dirs.home, { recursive: true, mode: 0o700 });
  if (!existsSync(dirs.askpass)) {
    // Write then rename: a concurrent git must never execute a half-written script.
    const tmp = `${dirs.askpass}.${process.pid}.tmp`;
    writeFileSync(tmp, ASKPASS_SCRIPT, { mode: 0o700 });
    renameSync(tmp, dirs.askpass);
  }
  return dirs;
}

/** Path of the `GIT_ASKPASS` script (in a private 0700 directory outside any repository), written on first use. */
export function askpassScriptPath(): string {
  return privateDirs().askpass;
}

/** The private directory holding the askpass script and git's empty `$HOME`. */
export function gitPrivateDir(): string {
  return privateDirs().root;
}
