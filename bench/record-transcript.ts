/**
 * Records the standard build (`fixtures/build-turns.ts`): runs each scripted tool call with the
 * agent's real tools (`createBuildTools`, as the build stage does) on a fresh checkout of the
 * fixture, and writes what they returned to `fixtures/build-transcript.json` and the resulting
 * change to `fixtures/option-env.patch`. Run it after changing the turns or the tools:
 * `npx tsx bench/record-transcript.ts`. Not part of `npm run bench`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createBuildTools } from '../src/agent/build-tools.js';
import { git } from '../tests/helpers/git-fixture.js';
import { BUILD_TURNS } from './fixtures/build-turns.js';
import { checkoutFixture, PATCH_FILE, TRANSCRIPT_FILE, type RecordedTurn } from './lib/fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'ns-record-'));
try {
  checkoutFixture(dir);
  const tools = await createBuildTools({
    cwd: dir,
    sandbox: { mode: 'never', commandTimeoutMs: 60_000, allowNetwork: false, envAllowList: [] },
    secrets: [],
    log: pino({ level: 'silent' }),
  });
  const recorded: RecordedTurn[] = [];
  for (const turn of BUILD_TURNS) {
    if (!turn.tool) {
      recorded.push(turn);
      continue;
    }
    const result = await tools.executors[turn.tool.name]!(turn.tool.input, new AbortController().signal);
    // Timings in test output differ from run to run; the transcript keeps the recorded ones.
    recorded.push({ ...turn, result });
    console.log(`${recorded.length}. ${turn.tool.name} ${JSON.stringify(turn.tool.input).slice(0, 70)} → ${result.content.length} chars${result.isError ? ' (error)' : ''}`);
  }
  await tools.close();
  writeFileSync(TRANSCRIPT_FILE, `${JSON.stringify(recorded, null, 1)}\n`);
  git(dir, 'add', '--all');
  writeFileSync(PATCH_FILE, git(dir, 'diff', '--cached', '--no-color') + '\n');
  console.log(`wrote ${TRANSCRIPT_FILE} and ${PATCH_FILE}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
