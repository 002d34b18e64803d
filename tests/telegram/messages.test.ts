import { describe, expect, it } from 'vitest';
import type { Item } from '../../src/store/items.js';
import { makeItem as makeItemWith } from '../helpers/factories.js';
import { backlogText, helpText, queuedText, statusText, unknownRepoText } from '../../src/telegram/messages.js';

const makeItem = (overrides: Partial<Item> = {}) => makeItemWith({ title: 'Fix <b>bold</b> & "quotes"', chatId: 1, createdBy: 1, ...overrides });
const repos = [{ owner: 'me', name: 'app', fullName: 'me/app' }];

describe('messages', () => {
  it('confirms a queued item with its id, repo and escaped title', () => {
    expect(queuedText(makeItem())).toBe('Queued #12 for me/app\n<b>Fix &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quotes&quot;</b>');
  });

  it('shows backlog pages with state and repo, and says when it is empty', () => {
    const text = backlogText({ items: [makeItem({ state: 'building' })], page: 1, pageCount: 3, total: 17 });
    expect(text).toContain('17 open · page 2/3');
    expect(text).toContain('#12');
    expect(text).toContain('building · me/app');
    expect(backlogText({ items: [], page: 0, pageCount: 1, total: 0 })).toMatch(/empty/);
  });

  it('says an item to be sized is being sized, not queued', () => {
    expect(queuedText(makeItem({ state: 'proposed', sizing: 'pending' }))).toBe('📏 Sizing #12 for me/app…\n<b>Fix &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quotes&quot;</b>');
  });

  it('shows where sizing stands in the backlog, and a queued item’s estimate', () => {
    const text = backlogText({
      items: [
        makeItem({ id: 1, state: 'proposed', sizing: 'pending' }),
        makeItem({ id: 2, state: 'proposed', sizing: 'asked' }),
        makeItem({ id: 3, state: 'proposed', sizing: 'parked' }),
        makeItem({ id: 4, state: 'proposed' }),
        makeItem({ id: 5, state: 'queued', estimateLowUsd: 0.36, estimateHighUsd: 1.2 }),
      ],
      page: 0,
      pageCount: 1,
      total: 5,
    });
    expect(text).toContain('<i>being sized · me/app</i>');
    expect(text).toContain('<i>sized; waiting for your answer · me/app</i>');
    expect(text).toContain('<i>sizing stopped; waiting for you · me/app</i>');
    expect(text).toContain('<i>proposed · me/app</i>');
    expect(text).toContain('<i>queued · est. $0.36–$1.20 · me/app</i>');
  });

  it('summarises the requests being sized in /status', () => {
    expect(statusText({ counts: { proposed: 3 }, active: [], sizing: { pending: 1, asked: 2 } })).toContain('\n📏 Sizing: 1 being sized · 2 waiting for your answer\n');
    expect(statusText({ counts: { queued: 1 }, active: [], sizing: {} })).not.toContain('Sizing');
  });

  it('summarises counts and running items', () => {
    expect(statusText({ counts: { queued: 2, merged: 1 }, active: [] })).toContain('2 queued · 1 merged');
    expect(statusText({ counts: {}, active: [] })).toContain('No items yet.');
    expect(statusText({ counts: { building: 1 }, active: [makeItem({ state: 'building' })] })).toContain('Running now:');
  });

  it('lists the configured repos where the user needs them', () => {
    expect(unknownRepoText('<x>', repos)).toContain('"&lt;x&gt;"');
    expect(unknownRepoText('x', repos)).toContain('me/app');
    expect(helpText(repos)).toContain('/cancel &lt;id&gt;');
  });
});
