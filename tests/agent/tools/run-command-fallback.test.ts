// A file of its own: the "runs unconfined" warning is logged once per process, and vitest gives
// each test file a fresh module registry.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCommandRunner, SandboxUnavailable } from '../../../src/agent/tools/run-command.js';

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
  it("falls back to a plain child process under 'auto' and warns once per process", async () => {
    const { log, lines } = capturingLog();
    const options = { cwd: worktree, timeoutMs: 10_000, outputCapBytes: 10_000, allowNetwork: false, envAllowList: [], secrets: [], bwrapPath: MISSING_BWRAP, log };
    const first = await createCommandRunner(options);
    const second = await createCommandRunner(options);
    try {
      expect(first.sandboxed).toBe(false);
      expect((await first.run('echo unconfined')).output).toBe('unconfined');
      expect(lines).toEqual([expect.objectContaining({ level: 40, msg: 'bwrap not available; agent commands run unconfined' })]);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it("refuses to start under 'always'", async () => {
    const { log } = capturingLog();
    await expect(
      createCommandRunner({ cwd: worktree, timeoutMs: 10_000, outputCapBytes: 10_000, allowNetwork: false, envAllowList: [], secrets: [], bwrapPath: MISSING_BWRAP, useSandbox: 'always', log }),
    ).rejects.toBeInstanceOf(SandboxUnavailable);
  });
});
