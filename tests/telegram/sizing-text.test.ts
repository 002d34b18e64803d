import { describe, expect, it } from 'vitest';
import type { CostEstimate } from '../../src/domain/size-estimate.js';
import type { SizeReport } from '../../src/pipeline/sizing.js';
import { sizingAnswerText, sizingKeyboard, sizingOutcomeNote, sizingText } from '../../src/telegram/sizing-text.js';
import { makeItem } from '../helpers/factories.js';

const item = makeItem({ id: 3, title: 'Export <json> & docs', state: 'proposed', sizing: 'asked' });
const estimate: CostEstimate = { lowUsd: 3.6, highUsd: 9.6, basis: 'default', samples: 0 };
const report = (overrides: Partial<SizeReport> = {}): SizeReport => ({
  contextNeeded: 'large',
  judgmentNeeded: 'medium',
  risk: 'high',
  verdict: 'too_large',
  reason: 'Two changes </i><b>injected',
  split: [
    { title: 'Add <json>', request: 'Add the flag.' },
    { title: 'Docs', request: 'x'.repeat(400) },
  ],
  bundleWith: [],
  question: null,
  class: 'large',
  ...overrides,
});

describe('sizing messages', () => {
  it('escapes everything the model and the user wrote', () => {
    const text = sizingText(item, { kind: 'split', report: report(), estimate });
    expect(text).toContain('✂️ <b>#3 Export &lt;json&gt; &amp; docs</b> looks too large for one run.');
    expect(text).toContain('<i>Two changes &lt;/i&gt;&lt;b&gt;injected</i>');
    expect(text).toContain('1. <b>Add &lt;json&gt;</b>\n    Add the flag.');
    // Long part requests are shortened on the phone (the item keeps them whole).
    expect(text).toContain(`2. <b>Docs</b>\n    ${'x'.repeat(199)}…`);
    expect(text).toContain('As one item: Size: <b>large</b> (context large, judgment medium, risk high) · est. $3.60–$9.60 <i>(no history yet: a share of the budgets)</i>');
  });

  it('names the basis of a history estimate', () => {
    const text = sizingText(item, { kind: 'queued', report: report({ verdict: 'fits', split: [] }), estimate: { lowUsd: 1, highUsd: 2, basis: 'history', samples: 7 } });
    expect(text).toContain('est. $1.00–$2.00 <i>(from 7 finished large items)</i>');
  });

  it('lays out the buttons: the main choice alone on top when there are three', () => {
    const tokens = ['size-split', 'size-queue', 'size-cancel'].map((action, i) => ({ token: `t${i}`, cardId: null, action, arg: '3', outboxId: 1, usedAt: null }));
    expect(sizingKeyboard({ kind: 'split', report: report(), estimate }, tokens)).toEqual({
      inline_keyboard: [
        [{ text: '✂️ Accept split', callback_data: 't0' }],
        [
          { text: '➡️ Keep as is', callback_data: 't1' },
          { text: '🚫 Cancel', callback_data: 't2' },
        ],
      ],
    });
    const bundle = { kind: 'bundle' as const, report: report({ verdict: 'too_small' }), estimate, with: [makeItem({ id: 4 }), makeItem({ id: 5 })] };
    expect(sizingKeyboard(bundle, [{ ...tokens[0]!, action: 'size-bundle' }]).inline_keyboard[0]![0]!.text).toBe('🧩 Bundle with #4, #5');
    expect(sizingKeyboard({ kind: 'parked', reason: 'x' }, [{ ...tokens[1]! }]).inline_keyboard[0]![0]!.text).toBe('➡️ Queue as is');
  });

  it('ends a decided message with what happened', () => {
    const parts = [makeItem({ id: 4, title: 'A <1>' }), makeItem({ id: 5, title: 'B' })];
    expect(sizingOutcomeNote({ kind: 'split', item, parts }, '@alice')).toBe('✂️ Split by @alice into #4 A &lt;1&gt;, #5 B; they are queued.');
    expect(sizingOutcomeNote({ kind: 'bundled', item, bundled: [parts[1]!], skipped: [6] }, 'Al')).toBe('🧩 #5 bundled into #3 by Al; it is queued. (#6 had started or ended and was left alone)');
    expect(sizingOutcomeNote({ kind: 'gone', item: makeItem({ id: 3, state: 'cancelled' }) }, 'Al')).toBe('#3 is cancelled now; nothing to do.');
    expect(sizingAnswerText({ kind: 'split', item, parts })).toBe('Split into #4, #5.');
  });
});
