import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPeriodBudget } from '../../src/llm/metered-call.js';
import { estimateItemCost, runSizingStage, summariseFiles, type SizingStageDeps } from '../../src/pipeline/sizing.js';
import type { Item } from '../../src/store/items.js';
import type { FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';
import { MODEL, promptText, startStageHarness, type StageHarness } from './stage-harness.js';

let h: StageHarness;
let item: Item;
const signal = () => new AbortController().signal;
const deps = (overrides: Partial<SizingStageDeps> = {}): SizingStageDeps => ({ ...h.deps, model: MODEL, budgetUsd: 0.5, ...overrides });
const report = (input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name: 'report_size', input }] });
const base = { context_needed: 'small', judgment_needed: 'medium', risk: 'low', reason: 'One module, clear request.' };
const body = (r: RecordedRequest) => r.body as { tool_choice?: { type: string; name?: string }; tools?: Array<{ name: string }>; max_tokens: number };

beforeEach(async () => {
  h = await startStageHarness({
    'AGENTS.md': 'Dependencies point inward.\n',
    'src/export.ts': 'export const run = () => 1;\n',
    'src/cli/args.ts': 'export const args = [];\n',
  });
  item = h.store.items.create(makeNewItem({ title: 'Add a --json flag', request: 'Add a --json flag to the export command', state: 'proposed', sizing: 'pending' }));
});

afterEach(async () => {
  await h.close();
});

describe('runSizingStage', () => {
  it('sizes a fitting request from the request, the file list, guidelines, lessons and the open items, billed to the sizing stage', async () => {
    const lesson = h.store.lessons.add({ repo: 'me/app', text: 'Keep flags in src/cli.' });
    const open = h.store.items.create(makeNewItem({ title: 'Fix the export header' }));
    const started = h.store.items.create(makeNewItem({ title: 'Rework logging' }));
    h.store.items.setBranch(started.id, `nightshift/${started.id}-rework-logging`);
    const elsewhere = h.store.items.create(makeNewItem({ repo: 'me/site', title: 'Other repo' }));
    h.anthropic.script(report({ ...base, verdict: 'fits', split: [{ title: 'ignored', request: 'ignored' }], estimate_usd: 99 }));

    const outcome = await runSizingStage(deps(), item, signal());

    expect(outcome).toEqual({
      kind: 'sized',
      report: { contextNeeded: 'small', judgmentNeeded: 'medium', risk: 'low', verdict: 'fits', reason: 'One module, clear request.', split: [], bundleWith: [], question: null, class: 'medium' },
    });
    expect(h.anthropic.requests).toHaveLength(1);
    const req = h.anthropic.requests[0]!;
    expect(body(req).tool_choice).toEqual({ type: 'tool', name: 'report_size' });
    expect(body(req).tools?.map((t) => t.name)).toEqual(['report_size']);
    const prompt = promptText(req);
    expect(prompt).toContain('<request>\nAdd a --json flag to the export command\n</request>');
    expect(prompt).toContain('(all 3 files)');
    expect(prompt).toContain('<files>\nAGENTS.md\nsrc/cli/args.ts\nsrc/export.ts\n</files>');
    expect(prompt).toContain('Dependencies point inward.');
    expect(prompt).toContain(`<lessons>\n#${lesson.id} Keep flags in src/cli.\n</lessons>`);
    // Only queued, unstarted items of the same repo are offered for bundling.
    expect(prompt).toContain(`<open_items>\n#${open.id} Fix the export header\n</open_items>`);
    for (const other of [started, elsewhere]) expect(prompt).not.toContain(other.title);

    const db = new Database(h.dbPath, { readonly: true });
    try {
      expect(db.prepare('SELECT item_id AS itemId, stage, model FROM llm_calls').all()).toEqual([{ itemId: item.id, stage: 'sizing', model: MODEL }]);
    } finally {
      db.close();
    }
  });

  it('reports a split of a too large request, with one-line titles', async () => {
    h.anthropic.script(
      report({
        ...base,
        context_needed: 'large',
        verdict: 'too_large',
        reason: 'Two independent changes.',
        split: [
          { title: 'Add the --json flag\nto export', request: 'Add --json to export.' },
          { title: 'Document the flag', request: 'Document --json in the README.' },
        ],
      }),
    );

    const outcome = await runSizingStage(deps(), item, signal());

    expect(outcome).toMatchObject({
      kind: 'sized',
      report: {
        verdict: 'too_large',
        class: 'large',
        split: [
          { title: 'Add the --json flag', request: 'Add --json to export.' },
          { title: 'Document the flag', request: 'Document --json in the README.' },
        ],
      },
    });
  });

  it('keeps only offered items to bundle a too small request with', async () => {
    const open = h.store.items.create(makeNewItem({ title: 'Fix the export header' }));
    h.anthropic.script(report({ ...base, judgment_needed: 'low', verdict: 'too_small', bundle_with: [open.id, item.id, 999, open.id] }));

    const outcome = await runSizingStage(deps(), item, signal());

    expect(outcome).toMatchObject({ kind: 'sized', report: { verdict: 'too_small', class: 'small', bundleWith: [open.id] } });
  });

  it('reports the question of a request that needs a decision', async () => {
    h.anthropic.script(report({ ...base, verdict: 'needs_decision', question: 'Should --json print one object or one per line?' }));

    const outcome = await runSizingStage(deps(), item, signal());

    expect(outcome).toMatchObject({ kind: 'sized', report: { verdict: 'needs_decision', question: 'Should --json print one object or one per line?' } });
  });

  it.each([
    ['an unknown verdict', { ...base, verdict: 'maybe' }, /bad verdict/],
    ['a missing reason', { context_needed: 'small', judgment_needed: 'low', risk: 'low', verdict: 'fits' }, /bad reason/],
    ['a too_large verdict without a split', { ...base, verdict: 'too_large', split: [{ title: 'Only one', request: 'x' }] }, /needs a split of 2 to 5 parts, it had 1/],
    ['a needs_decision verdict without a question', { ...base, verdict: 'needs_decision' }, /without a question/],
  ])('parks the item when the reply is not a valid report: %s', async (_what, input, reason) => {
    h.anthropic.script(report(input));

    const outcome = await runSizingStage(deps(), item, signal());

    expect(outcome.kind).toBe('parked');
    expect(outcome.kind === 'parked' && outcome.reason).toMatch(/^the planning model's reply was not a valid size report/);
    expect(outcome.kind === 'parked' && outcome.reason).toMatch(reason);
  });

  it('parks without a call when the sizing budget cannot cover the call', async () => {
    const outcome = await runSizingStage(deps({ budgetUsd: 0.001 }), item, signal());

    expect(outcome).toMatchObject({ kind: 'parked', reason: expect.stringMatching(/stopped by its stage budget limit: .*\$0\.00 sizing budget/) });
    expect(h.anthropic.requests).toHaveLength(0);
  });

  it('waits for the reset of a spent daily budget, without counting it as a failure', async () => {
    // 95 cents of today's dollar are spent: less than the call's worst case is left.
    h.store.ledger.record({ itemId: null, stage: 'drift', model: MODEL, inputTokens: 1, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 1, batch: false, costUsd: 0.95 });
    const period = createPeriodBudget({ dailyUsd: 1, monthlyUsd: 100 }, 'UTC', () => h.clock.now);

    const outcome = await runSizingStage(deps({ agent: { ...h.deps.agent, period } }), item, signal());

    expect(outcome).toMatchObject({ kind: 'retry-later', counted: false, notBefore: Date.UTC(2026, 10, 26), reason: expect.stringContaining('daily budget') });
    expect(h.anthropic.requests).toHaveLength(0);
  });

  it('asks to retry a rate limit without counting it, and a server error counting it', async () => {
    h.anthropic.failNext({ kind: 'rate-limit' });
    expect(await runSizingStage(deps(), item, signal())).toEqual({ kind: 'retry-later', reason: 'Anthropic rate limit (429)', counted: false });

    h.anthropic.failNext({ kind: 'server-error', status: 500 });
    expect(await runSizingStage(deps(), item, signal())).toEqual({ kind: 'retry-later', reason: 'Anthropic server error (500)', counted: true });
  });

  it('parks an item whose repo is no longer configured, without a call', async () => {
    const stray = h.store.items.create(makeNewItem({ repo: 'me/gone', state: 'proposed', sizing: 'pending' }));

    expect(await runSizingStage(deps(), stray, signal())).toEqual({ kind: 'parked', reason: 'me/gone is no longer in NIGHTSHIFT_REPOS' });
    expect(h.anthropic.requests).toHaveLength(0);
  });
});

describe('summariseFiles', () => {
  it('lists every path when they fit', () => {
    expect(summariseFiles(['a.ts', 'src/b.ts'], 100)).toEqual({ text: 'a.ts\nsrc/b.ts', note: 'all 2 files' });
    expect(summariseFiles([], 100)).toEqual({ text: '(the default branch has no files)', note: 'none' });
  });

  it('groups into directories with file counts, as deep as fits', () => {
    const paths = ['README.md', 'src/a/one.ts', 'src/a/two.ts', 'src/b/three.ts', 'test/x.test.ts'];
    expect(summariseFiles(paths, 60)).toEqual({
      // test/x.test.ts is above that depth: shown as it is.
      text: 'README.md\nsrc/a/ (2 files)\nsrc/b/ (1 file)\ntest/x.test.ts',
      note: '5 files; directories 2 levels deep are shown with their file counts',
    });
    expect(summariseFiles(paths, 40)).toEqual({ text: 'README.md\nsrc/ (3 files)\ntest/ (1 file)', note: '5 files; directories 1 level deep are shown with their file counts' });
  });

  it('cuts the top-level list when even that is too long, and says so', () => {
    const paths = Array.from({ length: 50 }, (_, i) => `dir${i}/file.ts`);
    const { text, note } = summariseFiles(paths, 60);
    expect(text.length).toBeLessThanOrEqual(60);
    expect(text.startsWith('dir0/ (1 file)\n')).toBe(true);
    expect(note).toMatch(/^50 files; top-level directories with their file counts, cut after \d+ of 50 entries$/);
  });
});

describe('estimateItemCost', () => {
  it('estimates from what finished items of the class cost once there are 3, else from the ceiling', () => {
    const { store } = makeStore();
    const finish = (sizeClass: string, usd: number, state: 'merged' | 'rejected' | 'failed') => {
      const done = store.items.create(makeNewItem({ state: 'ready' }));
      store.items.recordSizing(done.id, { sizing: 'done', report: { class: sizeClass } });
      store.ledger.record({ itemId: done.id, stage: 'build', model: MODEL, inputTokens: 1, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 1, batch: false, costUsd: usd });
      store.ledger.record({ itemId: done.id, stage: 'sizing', model: MODEL, inputTokens: 1, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, outputTokens: 1, batch: false, costUsd: 0.1 });
      store.items.transition(done.id, state === 'failed' ? 'failed' : state === 'merged' ? 'merged' : 'rejected');
    };
    finish('medium', 0.9, 'merged');
    finish('medium', 1.9, 'rejected');
    finish('small', 50, 'merged');
    finish('medium', 50, 'failed');
    expect(estimateItemCost(store, 'medium', 12)).toEqual({ lowUsd: 1.2, highUsd: 3.6, basis: 'default', samples: 0 });

    finish('medium', 3.9, 'merged');
    // 1, 2 and 4 dollars in all (sizing included); the failed and the small item do not count.
    expect(estimateItemCost(store, 'medium', 12)).toEqual({ lowUsd: 1.4, highUsd: 3.2, basis: 'history', samples: 3 });
    store.close();
  });
});
