import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';

// Regression: a sandbox launcher killed with SIGKILL (a test that timed out, an OOM kill) left
// its bot running, polling stand-ins that were gone, until someone found and killed it. The bot
// now stops when the IPC channel to the process that started it closes.

const SANDBOX_MAIN = resolve(import.meta.dirname, '../../dist/sandbox/main.js');

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

it('stops the bot when its launcher is killed with SIGKILL', { timeout: 120_000 }, async () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'ns-sandbox-orphan-')), 'data');
  const launcher = spawn(process.execPath, [SANDBOX_MAIN, '--port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' } });
  let output = '';
  launcher.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  launcher.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const closed = once(launcher, 'close');
  const deadline = (ms: number) => Date.now() + ms;
  const until = async (probe: () => boolean, what: string, by: number) => {
    while (!probe()) {
      if (Date.now() > by) throw new Error(`timed out waiting for ${what}\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await until(() => /Open http:\/\/127\.0\.0\.1:\d+\//.test(output), 'the sandbox URL', deadline(60_000));
  // The bot's first log line carries its pid (pino's default base).
  const log = join(dataDir, 'nightshift.log');
  const botPid = (JSON.parse(readFileSync(log, 'utf8').split('\n')[0]!) as { pid: number }).pid;
  expect(alive(botPid)).toBe(true);

  launcher.kill('SIGKILL');
  await closed;
  // Its own "stopping" lines went to the launcher's pipe, which died with it: only the exit shows.
  await until(() => !alive(botPid), `the bot (pid ${botPid}) to stop`, deadline(15_000));
});
