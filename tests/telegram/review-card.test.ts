import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SensitiveFile } from '../../src/domain/change-facts.js';
import type { ApproveOutcome } from '../../src/pipeline/decisions.js';
import type { CardButton } from '../../src/store/cards.js';
import type { Store } from '../../src/store/open-store.js';
import { formatDuration, TELEGRAM_TEXT_LIMIT } from '../../src/telegram/format.js';
import {
  approveNote,
  checksLine,
  deferKeyboard,
  digestText,
  mergedCardText,
  rejectedCardText,
  rejectReasonKeyboard,
  reviewCardKeyboard,
  reviewCardText,
} from '../../src/telegram/review-card.js';
import { HEAD, makeChanges, makeChecks, makeFacts, makeFinding, makeItem, makeStore, makeSummary } from '../helpers/factories.js';

const NASTY = 'Fix <script> & my_var_name';

// Tags Telegram's HTML parse mode knows.
const TELEGRAM_TAGS = new Set(['b', 'strong', 'i', 'em', 'u', 'ins', 's', 'strike', 'del', 'a', 'code', 'pre', 'blockquote', 'tg-spoiler', 'span']);

/**
 * Throws unless `text` parses in Telegram's HTML mode: only known tags, properly nested and
 * closed; no bare `<` or `>`; every `&` starts one of the entities escapeHtml writes.
 */
function assertTelegramHtml(text: string): void {
  const stack: string[] = [];
  const unit = /<(\/?)([a-zA-Z-]+)((?:\s+[a-z-]+="[^"<>]*")*)\s*>|[<>]|&(?!(?:amp|lt|gt|quot);)/g;
  for (const m of text.matchAll(unit)) {
    const where = JSON.stringify(text.slice(Math.max(0, m.index - 30), m.index + 30));
    const tag = m[2]?.toLowerCase();
    if (tag === undefined) throw new Error(`bare ${JSON.stringify(m[0])} near ${where}`);
    if (!TELEGRAM_TAGS.has(tag)) throw new Error(`unknown tag <${tag}> near ${where}`);
    if (m[1] === '/') {
      const open = stack.pop();
      if (open !== tag) throw new Error(`</${tag}> closes <${open ?? 'nothing'}> near ${where}`);
    } else stack.push(tag);
  }
  if (stack.length > 0) throw new Error(`unclosed ${stack.map((t) => `<${t}>`).join('')}`);
}

describe('assertTelegramHtml (the checker these tests rely on)', () => {
  it('rejects what Telegram would refuse to parse', () => {
    expect(() => assertTelegramHtml('<b>x</b> <a href="https://e.x/?a=1&amp;b=2">y</a> &lt;&gt;&amp;&quot;')).not.toThrow();
    for (const bad of ['<b>x', 'a < b', 'a > b', 'Tom & Jerry', '<b><i>x</b></i>', '<script>x</script>', '</b>']) {
      expect(() => assertTelegramHtml(bad), bad).toThrow();
    }
  });
});

describe('reviewCardText', () => {
  it('shows the facts: head, verdict, changes, checks, findings, cost and time', () => {
    const text = reviewCardText(
      makeFacts({
        summary: makeSummary({ verdict: 'ready_with_open_items', rounds: 2, judgment: 'Looks fine', top: ['OPEN · high · Off by one (src/a.ts:3)'] }),
        changes: makeChanges({ files: 4, added: 120, removed: 7, binary: 1 }),
        fixed: [makeFinding({ status: 'fixed', title: 'Null check' })],
        open: [makeFinding({ severity: 'high', title: 'Off by one', file: 'src/a.ts' })],
        backlog: [{ finding: makeFinding({ status: 'backlogged' }), item: makeItem({ id: 13, state: 'proposed' }) }],
        costs: [
          { stage: 'build', usd: 0.4 },
          { stage: 'review', usd: 0.25 },
        ],
        totalUsd: 0.65,
      }),
    );
    assertTelegramHtml(text);
    expect(text).toContain('<b>#12 Add a flag</b>\nme/app · <a href="https://github.com/me/app/pull/7">PR #7</a>');
    expect(text).toContain('head <code>a1b2c3d</code>');
    expect(text).toContain('<b>🟡 Reviewed: ready, with open items</b> · 2 rounds');
    expect(text).toContain('<i>Looks fine</i>');
    expect(text).toContain('• OPEN · high · Off by one (src/a.ts:3)');
    expect(text).toContain('<b>Changes</b> 4 files · +120 −7 · 1 binary');
    expect(text).toContain('<b>Checks</b> ✅ passing (1)');
    expect(text).toContain('<b>Bots fixed</b> 1: Null check');
    expect(text).toContain('<b>Still open</b> 1:\n• [high] Off by one <i>src/a.ts</i>');
    expect(text).toContain('<b>To backlog</b> 1 (1 waiting for you, buttons below)');
    expect(text).toContain('<b>Cost</b> $0.65 (build $0.40 · review $0.25) · <b>Time</b> 2h 10m in the pipeline');
  });

  it('escapes <, & and _ in titles, findings and paths so the HTML stays valid', () => {
    const path = 'src/<weird>&_name.ts';
    const text = reviewCardText(
      makeFacts({
        item: makeItem({ title: NASTY, repo: 'me/a&b', prNumber: 7, prUrl: 'https://github.com/me/app/pull/7?x=<1>&y="2"' }),
        summary: makeSummary({ judgment: NASTY, top: [NASTY] }),
        changes: makeChanges({ sensitive: [{ path: `.github/workflows/${path}`, kind: 'ci' }], largest: [{ path, added: 1, removed: 1 }] }),
        checks: makeChecks({ state: 'failing', failing: ['lint <fast> & _slow'], passing: [] }),
        fixed: [makeFinding({ title: NASTY })],
        open: [makeFinding({ title: NASTY, file: path })],
        costs: [{ stage: 'build<x>', usd: 1 }],
      }),
      '⛔ <b>Not merged</b>: a note the desk built with html``',
    );
    assertTelegramHtml(text);
    expect(text).not.toContain('<script>');
    expect(text).not.toContain('<weird>');
    expect(text).toContain('<b>#12 Fix &lt;script&gt; &amp; my_var_name</b>');
    expect(text).toContain('me/a&amp;b');
    expect(text).toContain('href="https://github.com/me/app/pull/7?x=&lt;1&gt;&amp;y=&quot;2&quot;"');
    expect(text).toContain('<code>src/&lt;weird&gt;&amp;_name.ts</code> +1 −1');
    expect(text).toContain('<i>src/&lt;weird&gt;&amp;_name.ts</i>');
    expect(text).toContain('❌ failing: lint &lt;fast&gt; &amp; _slow');
    expect(text).toContain('build&lt;x&gt; $1.00');
  });

  it('shows the sensitive paths by kind, three at most per kind', () => {
    const auth: SensitiveFile[] = ['src/auth/a.ts', 'src/auth/b.ts', 'src/auth/c.ts', 'src/auth/d.ts', 'src/auth/e.ts'].map((path) => ({ path, kind: 'auth' }));
    const text = reviewCardText(makeFacts({ changes: makeChanges({ sensitive: [{ path: 'package.json', kind: 'dependencies' }, ...auth] }) }));
    expect(text).toContain('⚠️ touches dependencies: <code>package.json</code>');
    expect(text).toContain('⚠️ touches auth: <code>src/auth/a.ts</code>, <code>src/auth/b.ts</code>, <code>src/auth/c.ts</code> +2');
    expect(text).not.toContain('src/auth/d.ts');
  });

  it('says when the changes or the checks could not be read, and when GitHub shows another head', () => {
    const text = reviewCardText(
      makeFacts({ changes: { error: 'could not read the changes from git' }, checks: { error: 'GitHub could not be reached' }, prHeadSha: 'f00ba47'.padEnd(40, '9'), summary: null }),
    );
    assertTelegramHtml(text);
    expect(text).toContain('<b>Changes</b> ❔ could not read the changes from git');
    expect(text).toContain('<b>Checks</b> ❔ unknown (GitHub could not be reached)');
    expect(text).toContain('⚠️ GitHub shows head <code>f00ba47</code>, not the reviewed one');
    expect(text).toContain('<b>❔ No review summary</b>');
  });

  it('stays within one Telegram message with many files, findings and long names, and a note', () => {
    const long = (prefix: string, n = 400) => `${prefix} ${'word '.repeat(n)}`;
    const path = (i: number) => `src/${'deeply/nested/'.repeat(10)}file-${i}.ts`;
    const findings = Array.from({ length: 200 }, (_, i) => makeFinding({ id: i, title: long(`finding ${i}`), file: path(i), severity: 'high' }));
    const sensitive: SensitiveFile[] = (['secrets', 'ci', 'dependencies', 'migrations', 'auth'] as const).flatMap((kind) =>
      Array.from({ length: 30 }, (_, i) => ({ path: path(i), kind })),
    );
    const facts = makeFacts({
      item: makeItem({ id: 123456, title: long('title'), repo: 'some-organisation/some-rather-long-repository-name', prNumber: 98765, prUrl: `https://github.com/some-organisation/some-rather-long-repository-name/pull/98765` }),
      summary: makeSummary({ verdict: 'needs_judgment', rounds: 3, judgment: long('judgment', 1000), top: [long('one'), long('two'), long('three')] }),
      changes: makeChanges({ files: 400, added: 99999, removed: 88888, binary: 12, sensitive, largest: Array.from({ length: 5 }, (_, i) => ({ path: path(i), added: 9999, removed: 9999 })) }),
      checks: makeChecks({ state: 'failing', failing: Array.from({ length: 40 }, (_, i) => long(`check-${i}`, 20)), passing: [] }),
      fixed: findings,
      open: findings,
      backlog: findings.map((finding) => ({ finding, item: makeItem({ id: finding.id, state: 'proposed' }) })),
      costs: ['build', 'review', 'fix', 'triage', 'drift'].map((stage) => ({ stage, usd: 123.456 })),
      totalUsd: 617.28,
      pipelineMs: 40 * 24 * 3_600_000,
    });
    const note = approveNote({ kind: 'unclear', reason: long('reason', 1000) });
    const text = reviewCardText(facts, note);
    assertTelegramHtml(text);
    expect(text.length).toBeLessThanOrEqual(TELEGRAM_TEXT_LIMIT);
    // Cut lines end in an ellipsis rather than running on.
    expect(text).toContain('…');
  });
});

describe('reviewCardText with text that escapes to several times its length', () => {
  // Regression: `short` caps lines in raw characters and escaping comes after, so a card
  // whose model- or agent-written text is full of `&` and `<` grows to ~12,000 characters. The
  // desk would split it into several messages, and its later edits (a note after a refused
  // Approve) would replace the last part, which carries the buttons, with the first part's text.
  it('still fits one message', () => {
    const amp = (n: number) => '&<'.repeat(n / 2);
    const finding = (id: number) => makeFinding({ id, title: amp(200), file: amp(100), severity: 'high' });
    const kinds = ['secrets', 'ci', 'dependencies', 'migrations', 'auth'] as const;
    const text = reviewCardText(
      makeFacts({
        item: makeItem({ title: amp(200), prNumber: 7, prUrl: 'https://github.com/me/app/pull/7' }),
        summary: makeSummary({ judgment: amp(400), top: [amp(200), amp(200), amp(200)] }),
        changes: makeChanges({ sensitive: kinds.flatMap((kind) => [1, 2, 3].map(() => ({ path: amp(100), kind }))), largest: [1, 2, 3].map(() => ({ path: amp(100), added: 1, removed: 1 })) }),
        checks: makeChecks({ state: 'failing', failing: [amp(100), amp(100), amp(100)], passing: [] }),
        fixed: [finding(1)],
        open: [finding(2), finding(3), finding(4)],
      }),
      approveNote({ kind: 'unclear', reason: amp(200) }),
    );
    assertTelegramHtml(text);
    expect(text.length).toBeLessThanOrEqual(TELEGRAM_TEXT_LIMIT);
  });
});

describe('checksLine', () => {
  it('renders every state, naming three checks at most', () => {
    expect(checksLine(makeChecks({ state: 'passing', passing: ['a', 'b'] }))).toBe('✅ passing (2)');
    expect(checksLine(makeChecks({ state: 'failing', failing: ['a', 'b', 'c', 'd'] }))).toBe('❌ failing: a, b, c +1');
    expect(checksLine(makeChecks({ state: 'pending', pending: ['ci'] }))).toBe('⏳ pending: ci');
    expect(checksLine(makeChecks({ state: 'none', passing: [] }))).toBe('— none reported');
    expect(checksLine({ error: 'GitHub could not be reached' })).toBe('❔ unknown (GitHub could not be reached)');
  });
});

describe('keyboards', () => {
  // The review feature routes a callback to the cards only if its data has this shape (features/review.ts).
  const TOKEN = /^[A-Za-z0-9_-]{16}$/;
  let store: Store;
  let buttons: CardButton[];

  beforeEach(() => {
    store = makeStore().store;
    const card = store.cards.create({ kind: 'review', repo: 'me/app', chatId: 111 });
    buttons = store.cards.addButtons(card.id, [
      { action: 'approve' },
      { action: 'reject' },
      { action: 'defer-menu' },
      ...['hour', 'evening', 'morning', 'week'].map((arg) => ({ action: 'defer', arg })),
      { action: 'back' },
      { action: 'merge-anyway' },
      ...['wrong approach', 'too big', 'not needed', 'quality'].map((arg) => ({ action: 'reason', arg })),
      { action: 'reason-cancel' },
      { action: 'queue-item', arg: '13' },
      { action: 'queue-item', arg: '14' },
    ]);
  });
  afterEach(() => store.close());

  const labels = (k: { inline_keyboard: Array<Array<{ text: string }>> }) => k.inline_keyboard.map((row) => row.map((b) => b.text));
  const data = (k: { inline_keyboard: Array<Array<object>> }) => k.inline_keyboard.flat().map((b) => (b as { callback_data: string }).callback_data);
  const tokenOf = (action: string, arg?: string) => buttons.find((b) => b.action === action && (arg === undefined || b.arg === arg))!.token;

  it('carries only the stored tokens as callback data, each at most 64 bytes', () => {
    const proposed = [makeItem({ id: 13, title: 'Extract <helper> & co', state: 'proposed' })];
    const keyboards = [reviewCardKeyboard(buttons, { mergeAnyway: true, proposed }), deferKeyboard(buttons), rejectReasonKeyboard(buttons)];
    const all = new Set(buttons.map((b) => b.token));
    for (const keyboard of keyboards) {
      for (const d of data(keyboard)) {
        expect(all.has(d)).toBe(true);
        expect(d).toMatch(TOKEN);
        expect(Buffer.byteLength(d)).toBeLessThanOrEqual(64);
      }
    }
  });

  it('lays out the decision row, "merge anyway" only when offered, and one row per proposed item', () => {
    expect(labels(reviewCardKeyboard(buttons))).toEqual([['✅ Approve', '❌ Reject', '💤 Defer']]);
    expect(data(reviewCardKeyboard(buttons))).toEqual([tokenOf('approve'), tokenOf('reject'), tokenOf('defer-menu')]);
    const proposed = [makeItem({ id: 13, title: 'Extract a helper', state: 'proposed' }), makeItem({ id: 14, title: 'Add tests', state: 'proposed' })];
    const full = reviewCardKeyboard(buttons, { mergeAnyway: true, proposed });
    expect(labels(full)).toEqual([['✅ Approve', '❌ Reject', '💤 Defer'], ['⚠️ Merge anyway (checks failing)'], ['➕ Queue #13: Extract a helper'], ['➕ Queue #14: Add tests']]);
    expect(data(full).slice(3)).toEqual([tokenOf('merge-anyway'), tokenOf('queue-item', '13'), tokenOf('queue-item', '14')]);
  });

  it('drops a used one-shot button, and the whole row with it', () => {
    store.cards.useButton(tokenOf('queue-item', '13'));
    const fresh = store.cards.buttons(buttons[0]!.cardId!);
    const proposed = [makeItem({ id: 13, state: 'proposed' }), makeItem({ id: 14, title: 'Add tests', state: 'proposed' })];
    expect(labels(reviewCardKeyboard(fresh, { proposed }))).toEqual([['✅ Approve', '❌ Reject', '💤 Defer'], ['➕ Queue #14: Add tests']]);
    // Only the queue rows outlive a decision: no decision buttons, no empty rows.
    const afterDecision = reviewCardKeyboard(fresh.filter((b) => b.action === 'queue-item'), { proposed });
    expect(labels(afterDecision)).toEqual([['➕ Queue #14: Add tests']]);
    expect(reviewCardKeyboard([]).inline_keyboard).toEqual([]);
  });

  it('offers the defer choices two by two with a way back', () => {
    const k = deferKeyboard(buttons);
    expect(labels(k)).toEqual([['1 hour', 'This evening'], ['Tomorrow morning', 'Next week'], ['« Back']]);
    expect(data(k)).toEqual([tokenOf('defer', 'hour'), tokenOf('defer', 'evening'), tokenOf('defer', 'morning'), tokenOf('defer', 'week'), tokenOf('back')]);
  });

  it('offers the quick reasons two by two with a way to keep the PR', () => {
    const k = rejectReasonKeyboard(buttons);
    expect(labels(k)).toEqual([['wrong approach', 'too big'], ['not needed', 'quality'], ['« Keep the PR']]);
    expect(data(k).at(-1)).toBe(tokenOf('reason-cancel'));
  });
});

describe('digestText', () => {
  it('counts the PRs and groups the low-risk ones', () => {
    expect(digestText(['low-risk', 'touches auth', 'low-risk', 'low-risk'])).toBe('📬 4 PRs ready: 3 low-risk; 1 touches auth');
    expect(digestText(['low-risk'])).toBe('📬 1 PR ready: 1 low-risk');
    expect(digestText(['checks failing', 'needs judgment'])).toBe('📬 2 PRs ready: 1 checks failing; 1 needs judgment');
    // Same reasons are counted together; one PR's several reasons stay one phrase.
    expect(digestText(['touches auth', 'touches auth', 'needs judgment, checks failing'])).toBe('📬 3 PRs ready: 2 touches auth; 1 needs judgment and checks failing');
  });

  it('escapes what it is given', () => {
    const text = digestText(['touches <x> & y']);
    assertTelegramHtml(text);
    expect(text).toContain('1 touches &lt;x&gt; &amp; y');
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [-5 * 60_000, '0s'],
    [45_000, '45s'],
    [59_600, '1m'],
    [4 * 60_000, '4m'],
    [59 * 60_000 + 29_000, '59m'],
    [59 * 60_000 + 30_000, '1h 0m'],
    [130 * 60_000, '2h 10m'],
    [24 * 3_600_000 - 1, '1d 0h'],
    [(3 * 24 + 2) * 3_600_000, '3d 2h'],
  ])('%i ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('approveNote', () => {
  const failing = makeChecks({ state: 'failing', failing: ['ci <unit>'], passing: [] });
  const pending = makeChecks({ state: 'pending', pending: ['ci'], passing: [] });

  it('says nothing for outcomes that replace the card', () => {
    const item = makeItem({ state: 'merged' });
    expect(approveNote({ kind: 'merged', item, mergeCommitSha: HEAD, method: 'squash', at: 0, byGitHub: false })).toBe('');
    expect(approveNote({ kind: 'head-moved', item, headSha: null })).toBe('');
  });

  it.each<[string, ApproveOutcome, RegExp]>([
    ['failing checks, forcing allowed', { kind: 'checks', checks: failing, canForce: true }, /^⛔ <b>Not merged<\/b>: checks for this head are failing \(❌ failing: ci &lt;unit&gt;\)\. You can merge anyway\.$/],
    ['failing checks', { kind: 'checks', checks: failing, canForce: false }, /are failing \(❌ failing: ci &lt;unit&gt;\)\.$/],
    ['pending checks', { kind: 'checks', checks: pending, canForce: false }, /are pending \(⏳ pending: ci\)\. Tap Approve again when they finish\.$/],
    ['not mergeable', { kind: 'not-mergeable', reason: 'conflict in <a.ts> & b' }, /^⛔ <b>Not merged<\/b>: GitHub says the PR cannot be merged \(conflict in &lt;a\.ts&gt; &amp; b\)\.$/],
    ['mergeable unknown', { kind: 'mergeable-unknown' }, /^⏸ <b>Not merged<\/b>: GitHub is still working out/],
    ['unclear', { kind: 'unclear', reason: 'GitHub answered 502 & <gave up>' }, /^⏸ <b>Not merged<\/b>: GitHub did not confirm the merge \(GitHub answered 502 &amp; &lt;gave up&gt;\)/],
    ['closed', { kind: 'closed' }, /^⛔ <b>Not merged<\/b>: the PR was closed on GitHub\./],
    ['error', { kind: 'error', reason: 'socket <hang> up & out' }, /^⏸ <b>Not merged<\/b>: socket &lt;hang&gt; up &amp; out\. Tap Approve to try again\.$/],
    ['merged but not recorded', { kind: 'merged-unrecorded', mergeCommitSha: 'e4e4e4e'.padEnd(40, '1') }, /^✅ <b>Merged on GitHub<\/b> \(<code>e4e4e4e<\/code>\).*Do not merge again\.$/],
  ])('%s', (_name, outcome, expected) => {
    const note = approveNote(outcome);
    expect(note).toMatch(expected);
    assertTelegramHtml(note);
  });
});

describe('the card after a decision', () => {
  it('says who merged it, when in their time zone, how, and the merge commit', () => {
    const item = makeItem({ title: NASTY, state: 'merged', prNumber: 7, prUrl: 'https://github.com/me/app/pull/7', mergeCommitSha: 'e4e4e4e'.padEnd(40, '1') });
    const text = mergedCardText(item, { by: '@alice <x>', at: Date.UTC(2026, 10, 25, 9, 5), how: 'squash' }, 'Europe/Berlin');
    assertTelegramHtml(text);
    expect(text).toContain('<b>#12 Fix &lt;script&gt; &amp; my_var_name</b>');
    expect(text).toContain('Merged by @alice &lt;x&gt; at 10:05 · squash · <code>e4e4e4e</code>');
  });

  it('quotes the rejection reason, the lesson, and a PR it could not close', () => {
    const item = makeItem({ state: 'rejected' });
    const text = rejectedCardText(item, { by: 'Bob', reason: 'uses <eval> & globals', lessonId: 4, closeError: 'GitHub answered 500: <html>' });
    assertTelegramHtml(text);
    expect(text).toContain('Rejected by Bob: <i>uses &lt;eval&gt; &amp; globals</i>');
    expect(text).toContain('Saved as lesson #4 (/lessons).');
    expect(text).toContain('⚠️ The PR could not be closed on GitHub (GitHub answered 500: &lt;html&gt;); close it by hand.');
    expect(rejectedCardText(item, { by: 'Bob', reason: 'too big' })).not.toMatch(/lesson|could not be closed/);
  });
});
