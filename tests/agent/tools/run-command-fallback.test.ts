// A file of its own: the "runs unconfined" warning is logged once per process and bwrap's probe
// is cached per process, and vitest gives each test file a fresh module registry.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCommandRunner, SANDBOX_FIX, SandboxUnavailable } from '../../../src/agent/tools/run-command.js';

const MISSING_BWRAP = '/nonexistent/nightshift-test/bwrap';

let worktree: string;

beforeEach(() => {
  worktree = mkdtempSync(join(tmpdir(), 'ns-fallback-'));
});

afterEach(() => {
  rmSync(worktree, { recursive: true, force: true });
});

function capturingLog(): { log: pino.Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  return { log, lines };
}

describe('createCommandRunner without a working bwrap', () => {
  // Regression (I-SECRET): 'auto' used to fall back to an unconfined child process, whose
  // commands could read and encode the bot's /proc/<pid>/environ past the output scrub.
  it('refuses by default, naming the fix, and runs nothing unconfined', async () => {
    const { log, lines } = capturingLog();
    const refused = createCommandRunner({ ...options(log), bwrapPath: MISSING_BWRAP });
    await expect(refused).rejects.toBeInstanceOf(SandboxUnavailable);
    await expect(refused).rejects.toThrow(`bubblewrap does not work here: ${SANDBOX_FIX}`);
    expect(SANDBOX_FIX).toMatch(/seccomp=unconfined.*apparmor=unconfined.*NIGHTSHIFT_SANDBOX=never/);
    expect(lines).toEqual([]);
  });

  it("refuses under an explicit 'always' too", async () => {
    const { log } = capturingLog();
    await expect(createCommandRunner({ ...options(log), bwrapPath: MISSING_BWRAP, useSandbox: 'always' })).rejects.toBeInstanceOf(SandboxUnavailable);
  });

  it('probes again after a failure, so a Retry after installing bubblewrap works without a restart', async () => {
    const { log } = capturingLog();
    const bwrapPath = join(worktree, 'fake-bwrap');
    writeFileSync(bwrapPath, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    await expect(createCommandRunner({ ...options(log), bwrapPath })).rejects.toBeInstanceOf(SandboxUnavailable);
    // "Installed": a stand-in that runs what follows `--`, as bwrap does once it has set up.
    writeFileSync(bwrapPath, '#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n', { mode: 0o755 });
    const runner = await createCommandRunner({ ...options(log), bwrapPath });
    try {
      expect(runner.sandboxed).toBe(true);
      expect((await runner.run('echo through the stand-in')).output).toBe('through the stand-in');
    } finally {
      await runner.close();
    }
  });

  it("runs a plain child process under 'never' (it never probes bwrap) and warns once per process that secrets are readable", async () => {
    const { log, lines } = capturingLog();
    const first = await createCommandRunner({ ...options(log), bwrapPath: MISSING_BWRAP, useSandbox: 'never' });
    const second = await createCommandRunner({ ...options(log), bwrapPath: MISSING_BWRAP, useSandbox: 'never' });
    try {
      expect(first.sandboxed).toBe(false);
      expect((await first.run('echo unconfined')).output).toBe('unconfined');
      expect(lines).toEqual([expect.objectContaining({ level: 40, msg: expect.stringMatching(/NIGHTSHIFT_SANDBOX=never.*unconfined.*can read nightshift's secrets/) })]);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });
});

function options(log: pino.Logger) {
  return { cwd: worktree, timeoutMs: 10_000, outputCapBytes: 10_000, allowNetwork: false, envAllowList: [], secrets: [], log };
}
