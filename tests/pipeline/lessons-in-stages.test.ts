import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runBuildStage } from '../../src/pipeline/build-stage.js';
import { runReviewStage } from '../../src/pipeline/review-stage.js';
import type { FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import { makeNewItem } from '../helpers/factories.js';
import { MODEL, promptText, startStageHarness, type StageHarness } from './stage-harness.js';

// The lessons a human taught by rejecting PRs reach the prompts of later items, read when each
// prompt is built: the build agent's task and the reviewers' shared context.

const LESSON = 'Never add a dependency for something a ten-line function does.';
const limits = { maxTurns: 5, maxOutputTokens: 1000, maxWallClockMs: 60_000, budgetUsd: 5 };
const text = (t: string): FakeReply => ({ content: [{ type: 'text', text: t }] });

let h: StageHarness;

beforeEach(async () => {
  h = await startStageHarness({ 'README.md': '# app\n', 'AGENTS.md': 'Keep it small.\n' });
});

afterEach(async () => {
  await h.close();
});

const firstUserMessage = (req: RecordedRequest) => {
  const content = (req.body as { messages: Array<{ content: Array<{ text?: string }> }> }).messages[0]!.content;
  return content.map((b) => b.text ?? '').join('\n');
};

describe('lessons in the build task', () => {
  it('gives the build agent the lessons stored when its prompt is built, so a lesson taught between two items reaches the second', async () => {
    const deps = { ...h.deps, model: MODEL, limits };
    // The agent answers at once without changing anything: the stage ends there, its prompt sent.
    h.anthropic.onRequest(() => text('Summary: nothing to do.'));
    const first = h.store.items.create(makeNewItem({ title: 'First', state: 'building' }));
    await runBuildStage(deps, first, new AbortController().signal);
    expect(firstUserMessage(h.anthropic.requests[0]!)).toContain('<lessons>\n(none yet)\n</lessons>');

    const lesson = h.store.lessons.add({ repo: 'me/app', text: LESSON, itemId: first.id });
    h.store.lessons.add({ repo: 'me/other', text: 'A lesson of another repo.' });
    const second = h.store.items.create(makeNewItem({ title: 'Second', state: 'building' }));
    const outcome = await runBuildStage(deps, second, new AbortController().signal);

    expect(outcome).toMatchObject({ kind: 'failed', reason: expect.stringContaining('the agent made no change') });
    const task = firstUserMessage(h.anthropic.requests[1]!);
    expect(task).toContain(`<lessons>\n#${lesson.id} ${LESSON}\n</lessons>`);
    expect(task).toContain('Do not repeat them');
    expect(task).not.toContain('another repo');
  });
});

describe('lessons in the review context', () => {
  it('puts the repo\'s lessons into the context every reviewer shares', async () => {
    const lesson = h.store.lessons.add({ repo: 'me/app', text: LESSON });
    const item = h.store.items.create(makeNewItem({ title: 'Add a helper', state: 'reviewing' }));
    // A change on the item's branch, as the build stage leaves it.
    const ws = await h.deps.workspace.prepare({ id: item.id, title: item.title, repo: h.deps.repos[0]! });
    writeFileSync(join(ws.path, 'helper.js'), 'export const pad = (s) => s.padStart(4);\n');
    await h.deps.workspace.commitAll(ws.path, 'Add a helper');
    // The first reviewer's reply is malformed: the stage stops after one call, its context sent.
    h.anthropic.script({ content: [{ type: 'tool_use', name: 'report_findings', input: { findings: 'none' } }] });

    const outcome = await runReviewStage(
      {
        ...h.deps,
        models: { review: MODEL, fix: MODEL },
        review: { rounds: 2, concurrency: 2, maxOutputTokens: 2000, budgetUsd: 5, fixBudgetUsd: 5 },
        fixLimits: limits,
      },
      item,
      new AbortController().signal,
    );

    expect(outcome).toMatchObject({ kind: 'failed', reason: expect.stringContaining('not a valid findings report') });
    expect(h.anthropic.requests).toHaveLength(1);
    const context = (h.anthropic.requests[0]!.body as { system: Array<{ text: string; cache_control?: unknown }> }).system[0]!;
    // In the cached prefix, not in the angle's part of the request.
    expect(context.cache_control).toBeDefined();
    expect(context.text).toContain(`<lessons>\n#${lesson.id} ${LESSON}\n</lessons>`);
    expect(context.text).toContain('flag a change that repeats one as a finding');
    expect(promptText(h.anthropic.requests[0]!)).toContain('+export const pad');
  });
});
