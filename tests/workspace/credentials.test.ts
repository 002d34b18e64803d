/**
 * The token over real smart HTTP: git asks, the askpass script answers from the environment,
 * and the token ends up nowhere on disk, in no URL and in no error.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkspace } from '../../src/workspace/create-workspace.js';
import { GitError, gitPrivateDir, runGit } from '../../src/workspace/run-git.js';
import { createBareRepo, git, refSha, type BareRepo } from '../helpers/git-fixture.js';
import { startHttpGitServer, type HttpGitServer } from './http-git-server.js';
import { CANARY_TOKEN, filesContaining, markerScript, ran, repoOf, silentLog } from './support.js';

let tmp: string;
let bare: BareRepo;
let server: HttpGitServer;
const servers: HttpGitServer[] = [];

const basicFor = (token: string) => `Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;

beforeEach(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ws-http-'));
  bare = createBareRepo(join(tmp, 'server'), 'me/app');
  server = await startHttpGitServer(join(tmp, 'server'), CANARY_TOKEN);
  servers.push(server);
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  rmSync(tmp, { recursive: true, force: true });
});

describe('a token-protected http remote', () => {
  it('prepare, commit and push authenticate through GIT_ASKPASS and leave the token in no file', async () => {
    const dataDir = join(tmp, 'data');
    const ws = createWorkspace({ dataDir, serverUrl: server.url, token: CANARY_TOKEN, log: silentLog });

    const p = await ws.prepare({ id: 4, title: 'Over http', repo: repoOf(bare) });
    writeFileSync(join(p.path, 'x.txt'), 'x\n');
    const sha = await ws.commitAll(p.path, 'X');
    await ws.push(p.path, p.branch);

    expect(refSha(bare, p.branch)).toBe(sha);
    // git asked first (401) and then sent exactly the token as the password.
    expect(server.authorizations).toContain(undefined);
    expect(server.authorizations).toContain(basicFor(CANARY_TOKEN));
    expect(filesContaining(dataDir, CANARY_TOKEN)).toEqual([]);
    expect(filesContaining(gitPrivateDir(), CANARY_TOKEN)).toEqual([]);
    expect(git(join(dataDir, 'repos', 'me', 'app.git'), 'config', 'remote.origin.url')).toBe(`${server.url}/me/app.git`);
  });

  it('a wrong token fails with a GitError that does not contain it', async () => {
    const wrong = 'ghp_CANARYwrong0123456789abcdefGHIJKLM';
    const ws = createWorkspace({ dataDir: join(tmp, 'data'), serverUrl: server.url, token: wrong, log: silentLog });

    const error = (await ws.prepare({ id: 4, title: 'x', repo: repoOf(bare) }).catch((e: unknown) => e)) as GitError;

    expect(error).toBeInstanceOf(GitError);
    expect(error.reason).toBe('exit');
    expect(`${error.message}\n${error.stderr}\n${error.args.join(' ')}`).not.toContain(wrong);
  });

  it('the token is refused to any server but the one it is for', async () => {
    const other = await startHttpGitServer(join(tmp, 'server'), 'ghp_CANARYother0123456789abcdefGHIJK');
    servers.push(other);

    const error = await runGit(['ls-remote', `${other.url}/me/app.git`], {
      cwd: tmp,
      token: CANARY_TOKEN,
      tokenOrigin: server.url,
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(GitError);
    expect(other.authorizations.some((a) => a !== undefined && Buffer.from(a.slice(6), 'base64').toString().includes(CANARY_TOKEN))).toBe(false);
  });

  it('a credential helper planted in the repository config is not run', async () => {
    const marker = join(tmp, 'marker');
    const helper = markerScript(tmp, 'helper', marker);
    const local = join(tmp, 'local');
    git(tmp, 'init', '--quiet', local);
    git(local, 'config', `credential.${server.url}/me/app.git.helper`, helper);
    git(local, 'config', 'credential.helper', helper);

    const out = await runGit(['ls-remote', `${server.url}/me/app.git`, 'refs/heads/main'], {
      cwd: local,
      token: CANARY_TOKEN,
      tokenOrigin: server.url,
    });

    expect(out).toContain('refs/heads/main');
    expect(ran(marker)).toBe('');
  });
});
