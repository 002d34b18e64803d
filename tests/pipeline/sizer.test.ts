import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSizer, SIZING_ANSWER_WAIT_MS, SIZING_RETRY_BASE_MS, type Sizer, type SizingTap } from '../../src/pipeline/sizer.js';
import { estimateItemCost, type SizeReport, type SizingOutcome } from '../../src/pipeline/sizing.js';
import type { Item } from '../../src/store/items.js';
import type { Store } from '../../src/store/open-store.js';
import { createSizingDesk } from '../../src/telegram/sizing-desk.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

// The sizer against a real store and the real sizing desk; the stage is replaced by scripted
// outcomes (it has its own tests against the fake Anthropic server), so each verdict, failure
// and tap can be driven exactly.

const ALICE = { id: 111, name: '@alice' };
const CHAT = 111;

let store: Store;
let clock: { now: number };
let sizer: Sizer;
let script: Array<SizingOutcome | (() => Promise<SizingOutcome>)>;
let sizedItems: number[];
let queuedCalls: number;
let nextMessageId: number;

function start(opts: { confirmAboveUsd?: number; maxParallel?: number } = {}): Sizer {
  const desk = createSizingDesk({ store, sender: { kick: () => undefined } });
  return createSizer({
    store,
    size: async (item) => {
      sizedItems.push(item.id);
      const next = script.shift();
      if (!next) throw new Error(`no scripted sizing outcome for #${item.id}`);
      return typeof next === 'function' ? next() : next;
    },
    estimate: (sizeClass) => estimateItemCost(store, sizeClass, 12),
    confirmAboveUsd: opts.confirmAboveUsd ?? 5,
    maxAttempts: 3,
    present: desk.present,
    presented: desk.kick,
    queued: () => void (queuedCalls += 1),
    ...(opts.maxParallel === undefined ? {} : { maxParallel: opts.maxParallel }),
    now: () => clock.now,
    log: pino({ level: 'silent' }),
  });
}

beforeEach(() => {
  ({ store, clock } = makeStore());
  script = [];
  sizedItems = [];
  queuedCalls = 0;
  nextMessageId = 500;
  sizer = start();
});

afterEach(async () => {
  await sizer.stop();
  store.close();
});

const request = (overrides: Parameters<typeof makeNewItem>[0] = {}) =>
  store.items.create(makeNewItem({ title: 'Add a --json flag', request: 'Add a --json flag to export', state: 'proposed', sizing: 'pending', ...overrides }));

const report = (overrides: Partial<SizeReport> = {}): SizeReport => ({
  contextNeeded: 'small',
  judgmentNeeded: 'low',
  risk: 'low',
  verdict: 'fits',
  reason: 'A flag on one command.',
  split: [],
  bundleWith: [],
  question: null,
  class: 'small',
  ...overrides,
});
const sized = (overrides: Partial<SizeReport> = {}): SizingOutcome => ({ kind: 'sized', report: report(overrides) });

/** Sizes the item now and waits until the outcome is recorded. */
async function size(item: Item, outcome: SizingOutcome | (() => Promise<SizingOutcome>)): Promise<Item> {
  script.push(outcome);
  sizer.sizeSoon(item.id);
  await sizer.idle();
  return store.items.get(item.id)!;
}

/** "Sends" every pending message (Telegram message ids from 500) and returns them. */
function deliver() {
  const sent = [];
  // One message per chat is due at a time (they go out in order).
  for (let due = store.outbox.due(); due.length > 0; due = store.outbox.due()) {
    for (const m of due) {
      const messageId = nextMessageId++;
      store.outbox.markSent(m.id, messageId);
      sent.push({ ...m, messageId, buttons: ((m.replyMarkup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat() });
    }
  }
  return sent;
}

/** The last message about the item, delivered, with its buttons. */
function lastMessage(itemId: number) {
  const sent = deliver().filter((m) => m.itemId === itemId);
  const last = sent[sent.length - 1];
  if (!last) throw new Error(`no message about #${itemId}`);
  return last;
}

function tap(message: { messageId: number; buttons: Array<{ text: string; callback_data: string }> }, label: RegExp): SizingTap {
  const button = message.buttons.find((b) => label.test(b.text));
  if (!button) throw new Error(`no button ${label}: ${message.buttons.map((b) => b.text).join(', ')}`);
  return sizer.decide(button.callback_data, { chatId: CHAT, messageId: message.messageId, by: ALICE });
}

describe('sizing outcomes', () => {
  it('queues a fitting item under the confirm limit at once, with its size and estimate', async () => {
    const item = request();

    const after = await size(item, sized());

    expect(after).toMatchObject({ state: 'queued', sizing: 'done', estimateLowUsd: 0.36, estimateHighUsd: 1.2 });
    expect(store.items.sizeReport(item.id)).toMatchObject({ verdict: 'fits', class: 'small', estimate: { basis: 'default', samples: 0 } });
    const message = lastMessage(item.id);
    expect(message.text).toContain(`📏 <b>#${item.id} Add a --json flag</b> is queued.`);
    expect(message.text).toContain('est. $0.36–$1.20');
    expect(message.buttons).toEqual([]);
    expect(queuedCalls).toBe(1);
  });

  it('asks before queueing an item estimated above the confirm limit; the tap is claimed once', async () => {
    const item = request();
    const asked = await size(item, sized({ contextNeeded: 'large', class: 'large' }));
    expect(asked).toMatchObject({ state: 'proposed', sizing: 'asked', estimateHighUsd: 9.6 });
    const message = lastMessage(item.id);
    expect(message.text).toContain('It may cost more than $5.00');
    expect(message.buttons.map((b) => b.text)).toEqual(['✅ Queue it', '🚫 Cancel']);

    expect(tap(message, /Queue it/)).toMatchObject({ kind: 'ok', decision: { kind: 'queued', item: { id: item.id, state: 'queued' } } });
    expect(tap(message, /Queue it/)).toEqual({ kind: 'taken', why: 'Already done.' });
    expect(tap(message, /Cancel/)).toEqual({ kind: 'taken', why: 'Already done.' });
    expect(store.items.get(item.id)).toMatchObject({ state: 'queued', sizing: 'done' });
  });

  it('with a zero confirm limit, every item asks', async () => {
    await sizer.stop();
    sizer = start({ confirmAboveUsd: 0 });
    const item = request();
    expect(await size(item, sized())).toMatchObject({ state: 'proposed', sizing: 'asked' });
  });

  it('splits a too large item into queued items with the proposed titles, linked to it, and cancels it', async () => {
    const item = request({ title: 'Export and docs' });
    await size(item, sized({ verdict: 'too_large', contextNeeded: 'large', class: 'large', split: [{ title: 'Add the --json flag', request: 'Add --json to export.' }, { title: 'Document the flag', request: 'Document --json.' }] }));
    const message = lastMessage(item.id);
    expect(message.text).toContain('looks too large for one run');
    expect(message.text).toContain('1. <b>Add the --json flag</b>');
    expect(message.buttons.map((b) => b.text)).toEqual(['✂️ Accept split', '➡️ Keep as is', '🚫 Cancel']);

    const result = tap(message, /Accept split/);

    expect(result.kind).toBe('ok');
    const parts = result.kind === 'ok' && result.decision.kind === 'split' ? result.decision.parts : [];
    expect(parts.map((p) => ({ title: p.title, state: p.state, parentItemId: p.parentItemId, repo: p.repo, chatId: p.chatId }))).toEqual([
      { title: 'Add the --json flag', state: 'queued', parentItemId: item.id, repo: 'me/app', chatId: CHAT },
      { title: 'Document the flag', state: 'queued', parentItemId: item.id, repo: 'me/app', chatId: CHAT },
    ]);
    expect(parts[0]!.request).toBe(`Add --json to export.\n\n(Part 1 of 2 of #${item.id} "Export and docs", split at sizing. The other parts are separate items: "Document the flag". Do only this part.)`);
    expect(store.items.get(item.id)).toMatchObject({ state: 'cancelled', stateReason: `split into #${parts[0]!.id}, #${parts[1]!.id} by @alice` });
    // A second tap creates nothing more.
    expect(tap(message, /Accept split/)).toEqual({ kind: 'taken', why: 'Already done.' });
    expect(store.items.countByState()).toEqual({ queued: 2, cancelled: 1 });
  });

  it('bundles a too small item with the named queued items that have not started', async () => {
    const partner = store.items.create(makeNewItem({ title: 'Fix the export header', request: 'The header is wrong.' }));
    const started = store.items.create(makeNewItem({ title: 'Rework export' }));
    const item = request({ title: 'Fix a typo in export', request: 'Fix the typo "exprot".' });
    await size(item, sized({ verdict: 'too_small', bundleWith: [partner.id, started.id] }));
    const message = lastMessage(item.id);
    expect(message.buttons.map((b) => b.text)).toEqual([`🧩 Bundle with #${partner.id}, #${started.id}`, '➡️ Keep as is', '🚫 Cancel']);
    // It starts building before the tap: it is left alone.
    store.items.setBranch(started.id, `nightshift/${started.id}-rework-export`);

    const result = tap(message, /Bundle/);

    expect(result).toMatchObject({ kind: 'ok', decision: { kind: 'bundled', item: { id: item.id, state: 'queued' }, bundled: [{ id: partner.id, state: 'cancelled' }], skipped: [started.id] } });
    expect(store.items.get(item.id)!.request).toBe(`Fix the typo "exprot".\n\n---\nBundled in from #${partner.id} (Fix the export header):\nThe header is wrong.`);
    expect(store.items.get(partner.id)!.stateReason).toBe(`bundled into #${item.id} by @alice`);
    expect(store.items.get(started.id)!.state).toBe('queued');
  });

  it('queues a too small item with nothing left to bundle with like a fitting one', async () => {
    const item = request();
    expect(await size(item, sized({ verdict: 'too_small', bundleWith: [] }))).toMatchObject({ state: 'queued', sizing: 'done' });
    expect(store.items.get(item.id)!.stateReason).toBe('sized: small, small, nothing to bundle with');
  });

  it('asks the question of an item that needs a decision; the next text answers it and the item is sized again', async () => {
    const item = request();
    await size(item, sized({ verdict: 'needs_decision', question: 'One JSON object, or one per line?' }));
    const question = lastMessage(item.id);
    expect(question.text).toContain('needs a decision first:\n<b>One JSON object, or one per line?</b>');
    expect(question.buttons.map((b) => b.text)).toEqual(['➡️ Keep as is', '🚫 Cancel']);
    expect(sizer.questionFor(CHAT, ALICE.id)).toBe(item.id);
    expect(sizer.questionFor(CHAT, 999)).toBeUndefined();

    const answered = sizer.answer(item.id, 'One per line.');

    expect(answered).toEqual({ item: expect.objectContaining({ id: item.id, state: 'proposed', sizing: 'pending' }), outboxIds: [question.id] });
    expect(store.items.get(item.id)!.request).toBe("Add a --json flag to export\n\nQuestion before building: One JSON object, or one per line?\nThe developer's answer: One per line.");
    expect(sizer.questionFor(CHAT, ALICE.id)).toBeUndefined();
    // The question's buttons are spent: the item is being sized again.
    expect(tap(question, /Keep as is/)).toEqual({ kind: 'taken', why: 'Already done.' });

    expect(await size(item, sized())).toMatchObject({ state: 'queued' });
    expect(sizedItems).toEqual([item.id, item.id]);
  });

  it('takes a reply to the question as its answer after the wait for the next message is over', async () => {
    const item = request();
    await size(item, sized({ verdict: 'needs_decision', question: 'Which format?' }));
    const question = lastMessage(item.id);
    clock.now += SIZING_ANSWER_WAIT_MS + 1;

    expect(sizer.questionFor(CHAT, ALICE.id)).toBeUndefined();
    expect(sizer.questionFor(CHAT, ALICE.id, question.messageId)).toBe(item.id);
    // A reply to some other message is new work.
    expect(sizer.questionFor(CHAT, ALICE.id, question.messageId + 100)).toBeUndefined();
  });

  it('parks an item whose reply was not a valid report, with Queue as is and Cancel', async () => {
    const item = request();
    const parked = await size(item, { kind: 'parked', reason: "the planning model's reply was not a valid size report (bad verdict)" });
    expect(parked).toMatchObject({ state: 'proposed', sizing: 'parked' });
    const message = lastMessage(item.id);
    expect(message.text).toContain("could not be sized: the planning model's reply was not a valid size report (bad verdict)");
    expect(message.buttons.map((b) => b.text)).toEqual(['➡️ Queue as is', '🚫 Cancel']);

    expect(tap(message, /Cancel/)).toMatchObject({ kind: 'ok', decision: { kind: 'cancelled', item: { state: 'cancelled', stateReason: 'cancelled at sizing by @alice' } } });
  });

  it('backs off after a failed call, does not count rate limits, and parks after the last attempt', async () => {
    const item = request();
    const t0 = clock.now;
    await size(item, { kind: 'retry-later', reason: 'connection to Anthropic failed', counted: true });
    expect(store.items.get(item.id)).toMatchObject({ state: 'proposed', sizing: 'pending', notBefore: t0 + SIZING_RETRY_BASE_MS });
    expect(deliver()).toEqual([]);
    // Not due yet: the tick leaves it.
    sizer.tick();
    await sizer.idle();
    expect(sizedItems).toEqual([item.id]);

    clock.now += SIZING_RETRY_BASE_MS;
    script.push({ kind: 'retry-later', reason: 'Anthropic rate limit (429)', counted: false });
    sizer.tick();
    await sizer.idle();
    expect(store.items.get(item.id)!.notBefore).toBe(clock.now + SIZING_RETRY_BASE_MS);

    clock.now += SIZING_RETRY_BASE_MS;
    await size(item, { kind: 'retry-later', reason: 'Anthropic server error (500)', counted: true });
    expect(store.items.get(item.id)!.notBefore).toBe(clock.now + 2 * SIZING_RETRY_BASE_MS);

    clock.now += 2 * SIZING_RETRY_BASE_MS;
    const parked = await size(item, { kind: 'retry-later', reason: 'Anthropic server error (502)', counted: true });
    expect(parked).toMatchObject({ state: 'proposed', sizing: 'parked' });
    expect(lastMessage(item.id).text).toContain('could not be sized: sizing failed 3 times; the last time: Anthropic server error (502)');
    expect(sizedItems).toHaveLength(4);
  });

  it('waits for a spent daily budget to reset, says so, and sizes the item after it', async () => {
    const item = request();
    const reset = clock.now + 5 * 60 * 60_000;
    await size(item, { kind: 'retry-later', reason: 'the daily budget of $1.00 would be crossed', notBefore: reset, counted: false });
    expect(store.items.get(item.id)).toMatchObject({ sizing: 'pending', notBefore: reset });
    const message = lastMessage(item.id);
    expect(message.text).toContain('is not sized yet: the daily budget of $1.00 would be crossed.');
    expect(message.buttons.map((b) => b.text)).toEqual(['➡️ Queue as is', '🚫 Cancel']);

    clock.now = reset;
    script.push(sized());
    sizer.tick();
    await sizer.idle();
    expect(store.items.get(item.id)!.state).toBe('queued');
    // The waiting message's buttons went with the new message.
    expect(tap(message, /Queue as is/)).toEqual({ kind: 'taken', why: 'Already done.' });
  });

  it('drops a result that comes back after the item was cancelled', async () => {
    const item = request();
    let finish!: (o: SizingOutcome) => void;
    script.push(() => new Promise<SizingOutcome>((resolve) => (finish = resolve)));
    sizer.sizeSoon(item.id);
    await new Promise((resolve) => setImmediate(resolve));
    store.items.transition(item.id, 'cancelled', 'cancelled by user 111');
    finish(sized());
    await sizer.idle();

    expect(store.items.get(item.id)!.state).toBe('cancelled');
    expect(deliver()).toEqual([]);
  });

  it('refuses a button tapped under another message, and tokens it never made', async () => {
    const item = request();
    await size(item, sized({ contextNeeded: 'large', class: 'large' }));
    const message = lastMessage(item.id);
    const token = message.buttons[0]!.callback_data;

    expect(sizer.decide(token, { chatId: CHAT, messageId: message.messageId + 1, by: ALICE })).toEqual({ kind: 'refused', why: 'This button does not belong to this message.' });
    expect(sizer.decide(token, { chatId: 222, messageId: message.messageId, by: ALICE })).toEqual({ kind: 'refused', why: 'This button does not belong to this message.' });
    expect(sizer.decide('AAAAAAAAAAAAAAAA', { chatId: CHAT, messageId: message.messageId, by: ALICE })).toEqual({ kind: 'refused', why: 'This button is not valid.' });
    expect(store.items.get(item.id)!.state).toBe('proposed');
  });

  it('tells a tap on an item cancelled meanwhile that there is nothing to do', async () => {
    const item = request();
    await size(item, sized({ contextNeeded: 'large', class: 'large' }));
    const message = lastMessage(item.id);
    store.items.transition(item.id, 'cancelled', 'cancelled by /cancel');

    expect(tap(message, /Queue it/)).toMatchObject({ kind: 'ok', decision: { kind: 'gone', item: { state: 'cancelled' } } });
    expect(store.items.get(item.id)!.state).toBe('cancelled');
  });
});

describe('the sizer after a restart', () => {
  it('sizes every pending item whose wait is over, a few at a time, and leaves the rest', async () => {
    await sizer.stop();
    sizer = start({ maxParallel: 1 });
    const first = request();
    const second = request();
    const waiting = request();
    store.items.setNotBefore(waiting.id, clock.now + 60_000);
    const asked = request();
    store.items.setSizing(asked.id, 'asked');
    script.push(sized(), sized());

    sizer.tick();
    await sizer.idle();

    expect(sizedItems).toEqual([first.id, second.id]);
    expect(store.items.get(first.id)!.state).toBe('queued');
    expect(store.items.get(second.id)!.state).toBe('queued');
    expect(store.items.get(waiting.id)!.sizing).toBe('pending');
    expect(store.items.get(asked.id)!.sizing).toBe('asked');
  });

  it('leaves an item pending when it stops in the middle of sizing it', async () => {
    const item = request();
    const slow = createSizer({
      store,
      size: (_item, signal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve({ kind: 'retry-later', reason: 'stopped by request', counted: false }))),
      estimate: (sizeClass) => estimateItemCost(store, sizeClass, 12),
      confirmAboveUsd: 5,
      maxAttempts: 3,
      present: () => undefined,
      presented: () => undefined,
      now: () => clock.now,
      log: pino({ level: 'silent' }),
    });
    slow.sizeSoon(item.id);
    await slow.stop();

    expect(store.items.get(item.id)).toMatchObject({ state: 'proposed', sizing: 'pending', notBefore: null });
  });
});
