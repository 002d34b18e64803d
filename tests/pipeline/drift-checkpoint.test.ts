import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DRIFT_DIFF_MAX_CHARS, runDriftCheckpoint } from '../../src/pipeline/drift-checkpoint.js';
import type { FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import { makeNewItem } from '../helpers/factories.js';
import { pushCommit } from '../workspace/support.js';
import { MODEL, promptText, startStageHarness, type StageHarness } from './stage-harness.js';

const LESSON = 'Never call GitHub from a Telegram handler.';

let h: StageHarness;
const signal = () => new AbortController().signal;
const deps = (budgetUsd = 5) => ({ ...h.deps, model: MODEL, budgetUsd });
const report = (input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name: 'report_direction', input }] });
const body = (r: RecordedRequest) => r.body as { tool_choice?: { type: string; name?: string }; tools?: Array<{ name: string }>; max_tokens: number };

beforeEach(async () => {
  h = await startStageHarness({ 'AGENTS.md': 'Dependencies point inward.\n', 'src/a.ts': 'export const a = 1;\n' });
});

afterEach(async () => {
  await h.close();
});

/** An item squash-merged into main at the clock's time: one commit on main, the item `merged`. */
function merge(title: string, prNumber: number, files: Record<string, string>) {
  const sha = pushCommit(h.bare, 'main', { files, message: `${title} (#${prNumber})` });
  const item = h.store.items.create(makeNewItem({ title, state: 'ready' }));
  h.store.items.setPullRequest(item.id, { branch: `nightshift/${item.id}-x`, number: prNumber, url: `https://github.com/me/app/pull/${prNumber}`, headSha: sha });
  h.store.items.setMergeCommit(item.id, sha);
  h.store.items.transition(item.id, 'merged', 'merged');
  return { ...item, sha };
}

/**
 * Two checkpoints of me/app (one of another repo between them): one merge before the first,
 * two between the first and the second, one after the second was taken. Each checkpoint is
 * taken in the same millisecond as the merge that triggered it, as it is in production.
 */
function history() {
  h.clock.now += 1000;
  const before = merge('Before the last checkpoint', 10, { 'old.txt': 'old\n' });
  h.store.checkpoints.create('me/app', 1);
  h.store.checkpoints.create('me/other', 5);
  h.clock.now += 1000;
  const one = merge('Add a pause command', 12, { 'src/a.ts': 'export const a = 2;\n', 'src/b.ts': 'export const b = 1;\nexport const c = 2;\n' });
  h.clock.now += 1000;
  const two = merge('Call GitHub from the bot', 13, { 'src/bot.ts': 'one\ntwo\nthree\n' });
  const checkpoint = h.store.checkpoints.create('me/app', 3);
  h.clock.now += 1000;
  const after = merge('Merged while the checkpoint waited', 14, { 'late.txt': 'late\n' });
  return { before, one, two, after, checkpoint };
}

describe('runDriftCheckpoint', () => {
  it('asks the design reviewer about the merges since the previous checkpoint, with the lessons and the diff, and counts the change itself', async () => {
    const { before, one, two, after, checkpoint } = history();
    const lesson = h.store.lessons.add({ repo: 'me/app', text: LESSON });
    h.anthropic.script(
      report({
        direction: 'The bot is growing a second path to GitHub beside the pipeline.',
        concerns: [
          { severity: 'low', text: 'src/b.ts exports two unrelated constants.' },
          { severity: 'high', text: 'PR #13 calls GitHub from the bot (repeats lesson #1).' },
          { severity: 'medium', text: 'PR #12 bends the layering.' },
        ],
        on_track: false,
        // Sizes come from git, never from the model.
        files: 999,
      }),
    );

    const outcome = await runDriftCheckpoint(deps(), checkpoint, signal());

    expect(outcome).toEqual({
      kind: 'done',
      report: {
        direction: 'The bot is growing a second path to GitHub beside the pipeline.',
        concerns: [
          { severity: 'high', text: 'PR #13 calls GitHub from the bot (repeats lesson #1).' },
          { severity: 'medium', text: 'PR #12 bends the layering.' },
          { severity: 'low', text: 'src/b.ts exports two unrelated constants.' },
        ],
        onTrack: false,
        merged: [
          { id: one.id, title: 'Add a pause command', prNumber: 12 },
          { id: two.id, title: 'Call GitHub from the bot', prNumber: 13 },
        ],
        files: 3,
        added: 6,
        removed: 1,
      },
    });

    expect(h.anthropic.requests).toHaveLength(1);
    const req = h.anthropic.requests[0]!;
    expect(body(req).tool_choice).toEqual({ type: 'tool', name: 'report_direction' });
    expect(body(req).tools?.map((t) => t.name)).toEqual(['report_direction']);
    const prompt = promptText(req);
    expect(prompt).toContain('<merges>\n- PR #12 (item #');
    expect(prompt).toContain(`- PR #13 (item #${two.id}): Call GitHub from the bot`);
    expect(prompt).toContain(`<lessons>\n#${lesson.id} ${LESSON}\n</lessons>`);
    expect(prompt).toContain('Dependencies point inward.');
    expect(prompt).toContain(`=== item #${one.id} · PR #12 · ${one.sha.slice(0, 7)} · Add a pause command ===`);
    expect(prompt).toContain('-export const a = 1;\n+export const a = 2;');
    expect(prompt).toContain('+++ b/src/bot.ts');
    expect(prompt).toContain('The diff is complete.');
    // Neither the merge the previous checkpoint covered nor one made after this checkpoint.
    for (const other of [before, after]) {
      expect(prompt).not.toContain(other.title);
      expect(prompt).not.toContain(other.sha.slice(0, 7));
    }

    // Billed to the drift stage, to no item.
    const db = new Database(h.dbPath, { readonly: true });
    try {
      expect(db.prepare('SELECT item_id AS itemId, stage, model FROM llm_calls').all()).toEqual([{ itemId: null, stage: 'drift', model: MODEL }]);
    } finally {
      db.close();
    }
  });

  it('caps the diff, shares the cap between the merges, and says in the prompt that it was cut', async () => {
    h.clock.now += 1000;
    merge('A huge generated file', 20, { 'huge.txt': `${'generated line\n'.repeat(8_000)}` });
    merge('A small fix', 21, { 'src/a.ts': 'export const a = 3;\n' });
    const checkpoint = h.store.checkpoints.create('me/app', 2);
    h.anthropic.script(report({ direction: 'Mostly generated code.', concerns: [], on_track: true }));

    const outcome = await runDriftCheckpoint(deps(), checkpoint, signal());

    expect(outcome).toMatchObject({ kind: 'done', report: { onTrack: true, concerns: [], files: 2, added: 8_001, removed: 1 } });
    const prompt = promptText(h.anthropic.requests[0]!);
    const diff = /<diff>\n([\s\S]*)\n<\/diff>/.exec(prompt)![1]!;
    expect(diff.length).toBeLessThan(DRIFT_DIFF_MAX_CHARS + 1_000);
    expect(prompt).toContain(`The diff was cut to ${DRIFT_DIFF_MAX_CHARS} characters: 1 of the 2 changes are shown only in part`);
    expect(diff).toMatch(/… \(cut: \d+ of \d+ characters of this change shown\)/);
    // The small change is shown whole, after the large one.
    expect(diff).toContain('-export const a = 1;\n+export const a = 3;');
  });

  it('fails with a clear reason when the reviewer\'s tool input is malformed', async () => {
    const { checkpoint } = history();
    h.anthropic.script(report({ direction: 'Fine.', concerns: [{ severity: 'critical', text: 'x' }], on_track: 'yes' }));

    const outcome = await runDriftCheckpoint(deps(), checkpoint, signal());

    expect(outcome.kind).toBe('failed');
    const reason = outcome.kind === 'failed' ? outcome.reason : '';
    expect(reason).toMatch(/^the design reviewer's reply was not a valid direction report/);
    expect(reason).toContain('concerns.0.severity');
    expect(reason).toContain('on_track');
  });

  it('asks to retry later when Anthropic is overloaded (529)', async () => {
    const { checkpoint } = history();
    h.anthropic.failNext({ kind: 'overloaded', retryAfterMs: 1 });

    const outcome = await runDriftCheckpoint(deps(), checkpoint, signal());

    expect(outcome).toEqual({ kind: 'retry-later', reason: 'Anthropic is overloaded (529)' });
    expect(h.anthropic.requests[0]?.status).toBe(529);
  });

  it('fails without a call when the stage budget cannot cover the call\'s worst case', async () => {
    const { checkpoint } = history();

    const outcome = await runDriftCheckpoint(deps(0.01), checkpoint, signal());

    expect(outcome).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/stopped by its stage budget limit: .*\$0\.01 drift budget/) });
    expect(h.anthropic.requests).toHaveLength(0);
  });

  it('fails without a call when nothing was merged since the previous checkpoint', async () => {
    h.clock.now += 1000;
    merge('Covered by the first checkpoint', 30, { 'x.txt': 'x\n' });
    h.store.checkpoints.create('me/app', 1);
    h.clock.now += 1000;
    const empty = h.store.checkpoints.create('me/app', 1);

    expect(await runDriftCheckpoint(deps(), empty, signal())).toEqual({ kind: 'failed', reason: 'no item of me/app was merged since the previous checkpoint' });
    expect(h.anthropic.requests).toHaveLength(0);
  });

  it('reads around a merge commit the remote no longer has', async () => {
    h.clock.now += 1000;
    const kept = merge('Kept', 40, { 'kept.txt': 'kept\n' });
    const lost = h.store.items.create(makeNewItem({ title: 'Rewritten away', state: 'ready' }));
    h.store.items.setMergeCommit(lost.id, 'a'.repeat(40));
    h.store.items.transition(lost.id, 'merged');
    const checkpoint = h.store.checkpoints.create('me/app', 2);
    h.anthropic.script(report({ direction: 'Small.', concerns: [], on_track: true }));

    const outcome = await runDriftCheckpoint(deps(), checkpoint, signal());

    expect(outcome).toMatchObject({ kind: 'done', report: { files: 1, merged: [{ id: kept.id }, { id: lost.id, prNumber: null }] } });
    expect(promptText(h.anthropic.requests[0]!)).toContain('(the merge commit could not be read: me/app has no commit aaaaaaa');
  });
});
