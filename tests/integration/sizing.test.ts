import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FakeAnthropic, FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import type { FakeTelegram, SentMessage } from '../fakes/telegram-server.js';
import { ALICE } from '../helpers/bot-process.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';

// Sizing at queue time through the real process against the fakes: a queued request is sized by
// the planning model (the fake Anthropic server), the verdict reaches the phone with buttons,
// and taps or a typed answer decide what is queued. Also: the tap is claimed once, and a
// sizing a kill -9 interrupted is done again after the restart.

let harness: PipelineHarness;
let telegram: FakeTelegram;
let anthropic: FakeAnthropic;

const body = (r: RecordedRequest) => r.body as { system?: Array<{ text: string }>; tool_choice?: { name?: string } };
const isSizing = (r: RecordedRequest) => body(r).tool_choice?.name === 'report_size';
const sizingCalls = () => anthropic.requests.filter(isSizing);
const promptOf = (r: RecordedRequest) => (body(r).system ?? []).map((b) => b.text).join('\n');
const size = (input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name: 'report_size', input }] });
const FITS = { context_needed: 'small', judgment_needed: 'low', risk: 'low', verdict: 'fits', reason: 'One function, clear request.' };

/** The planning model answers sizing calls with these reports, in order (then FITS). */
function scriptSizing(...reports: Array<Record<string, unknown>>): void {
  anthropic.onRequest((req) => (isSizing(req) ? size(reports.shift() ?? FITS) : undefined));
}

const buttons = (m: SentMessage) => ((m.reply_markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat();
const button = (m: SentMessage, label: RegExp) => {
  const found = buttons(m).find((b) => label.test(b.text));
  if (!found) throw new Error(`no button ${label} under message ${m.message_id}: ${buttons(m).map((b) => b.text).join(', ')}`);
  return found.callback_data;
};
const tap = (m: SentMessage, data: string) => telegram.pushCallback(ALICE, { message_id: m.message_id, chat_id: ALICE.id }, data);
const answerTo = (callbackId: string) =>
  telegram.waitFor(() => telegram.callsOf('answerCallbackQuery').find((c) => c.params.callback_query_id === callbackId), { what: `the answer to ${callbackId}` });
const current = (m: SentMessage) => telegram.sent(ALICE.id).find((s) => s.message_id === m.message_id)!;
const waitForText = (m: SentMessage, pattern: RegExp) => telegram.waitFor(() => pattern.test(current(m).text) && current(m), { what: `message ${m.message_id} to read ${pattern}`, timeoutMs: 30_000 });
const items = () =>
  harness.query(
    (d) => d.prepare('SELECT id, title, state, parent_item_id AS parent, sizing, request FROM items ORDER BY id').all() as Array<{ id: number; title: string; state: string; parent: number | null; sizing: string | null; request: string }>,
    [],
  );
const say = async (text: string, reply: RegExp) => {
  const before = telegram.sent(ALICE.id).length;
  telegram.pushMessage(ALICE, text);
  return telegram.waitFor(() => telegram.sent(ALICE.id).slice(before).find((m) => reply.test(m.text)), { what: `the reply to ${text}`, timeoutMs: 30_000 });
};

beforeEach(async () => {
  harness = await startPipelineHarness({ 'README.md': '# app\n', 'src/export.js': 'export const run = () => 1;\n' });
  ({ telegram, anthropic } = harness);
});

afterEach(async () => {
  await harness.close();
});

describe('sizing at queue time (real process)', () => {
  it("creates the split's proposed items, queued with their titles, when the user accepts a split; a redelivered tap does nothing", { timeout: 90_000 }, async () => {
    scriptSizing({
      context_needed: 'large',
      judgment_needed: 'medium',
      risk: 'low',
      verdict: 'too_large',
      reason: 'Two independent changes.',
      split: [
        { title: 'Add the --json flag to export', request: 'Add a --json flag to the export command.' },
        { title: 'Document the --json flag', request: 'Document the --json flag in the README.' },
      ],
    });
    const proc = await harness.startBot({ NIGHTSHIFT_SIZING: 'on' });

    const queued = await say('Add a --json flag to export and document it', /Sizing #1 for me\/app/);
    expect(queued.text).toBe('📏 Sizing #1 for me/app…\n<b>Add a --json flag to export and document it</b>');
    const proposal = await harness.waitForMessage(/looks too large for one run/, 'the split proposal');
    expect(proposal.text).toContain('1. <b>Add the --json flag to export</b>');
    expect(proposal.text).toContain('2. <b>Document the --json flag</b>');
    expect(buttons(proposal).map((b) => b.text)).toEqual(['✂️ Accept split', '➡️ Keep as is', '🚫 Cancel']);
    expect(items()).toMatchObject([{ id: 1, state: 'proposed', sizing: 'asked' }]);
    // The planning model saw the request and the repo's files.
    const prompt = promptOf(sizingCalls()[0]!);
    expect(prompt).toContain('<request>\nAdd a --json flag to export and document it\n</request>');
    expect(prompt).toContain('README.md\nsrc/export.js');
    expect(harness.query((d) => d.prepare('SELECT item_id AS itemId, stage FROM llm_calls').all(), [])).toEqual([{ itemId: 1, stage: 'sizing' }]);

    // Read now: the message object follows its edits, and the decision removes the buttons.
    const acceptSplit = button(proposal, /Accept split/);
    const accept = tap(proposal, acceptSplit);
    expect((await answerTo(accept.callback_query!.id)).params.text).toBe('Split into #2, #3.');
    await waitForText(proposal, /✂️ Split by @alice into #2 Add the --json flag to export, #3 Document the --json flag; they are queued\./);
    expect(buttons(current(proposal))).toEqual([]);
    expect(items().map(({ request: _, ...row }) => row)).toEqual([
      { id: 1, title: 'Add a --json flag to export and document it', state: 'cancelled', parent: null, sizing: 'done' },
      { id: 2, title: 'Add the --json flag to export', state: 'queued', parent: 1, sizing: null },
      { id: 3, title: 'Document the --json flag', state: 'queued', parent: 1, sizing: null },
    ]);
    expect(items()[1]!.request).toMatch(/^Add a --json flag to the export command\.\n\n\(Part 1 of 2 of #1 /);

    // The same update once more (a redelivery after a lost offset): nothing happens twice.
    const edits = current(proposal).edits.length;
    telegram.redeliver(accept.update_id);
    await proc.waitForLine(/already processed/);
    // A new tap on the same button: told, nothing done.
    const again = tap(proposal, acceptSplit);
    expect((await answerTo(again.callback_query!.id)).params.text).toBe('Already done.');
    expect(items()).toHaveLength(3);
    expect(current(proposal).edits).toHaveLength(edits);
    expect(sizingCalls()).toHaveLength(1);
  });

  it('asks before queueing an item estimated above NIGHTSHIFT_CONFIRM_ABOVE_USD, and queues it on the OK tap, once', { timeout: 90_000 }, async () => {
    scriptSizing({ ...FITS, context_needed: 'medium' });
    await harness.startBot({ NIGHTSHIFT_SIZING: 'on', NIGHTSHIFT_CONFIRM_ABOVE_USD: '1' });

    await say('Add a --json flag to export', /Sizing #1/);
    const ask = await harness.waitForMessage(/Queue it\?/, 'the confirmation');
    // Medium with no history: 10–30 % of the run ceiling ($12 with the default budgets).
    expect(ask.text).toContain('Size: <b>medium</b> (context medium, judgment low, risk low) · est. $1.20–$3.60 <i>(no history yet: a share of the budgets)</i>');
    expect(ask.text).toContain('It may cost more than $1.00 (NIGHTSHIFT_CONFIRM_ABOVE_USD). Queue it?');
    expect(buttons(ask).map((b) => b.text)).toEqual(['✅ Queue it', '🚫 Cancel']);
    const waiting = await say('/backlog', /Backlog/);
    expect(waiting.text).toContain('<b>#1</b> Add a --json flag to export\n    <i>sized; waiting for your answer · me/app</i>');

    const [queueIt, cancelIt] = [button(ask, /Queue it/), button(ask, /Cancel/)];
    const ok = tap(ask, queueIt);
    expect((await answerTo(ok.callback_query!.id)).params.text).toBe('Queued #1.');
    await waitForText(ask, /➡️ Queued by @alice\./);
    expect(items()).toMatchObject([{ id: 1, state: 'queued', sizing: 'done' }]);
    const cancel = tap(ask, cancelIt);
    expect((await answerTo(cancel.callback_query!.id)).params.text).toBe('Already done.');
    expect(items()).toMatchObject([{ id: 1, state: 'queued' }]);
    const list = await say('/backlog', /Backlog/);
    expect(list.text).toContain('queued · est. $1.20–$3.60 · me/app');
  });

  it('takes the next text message as the answer to a question, adds it to the request and sizes the item again', { timeout: 90_000 }, async () => {
    scriptSizing({ ...FITS, verdict: 'needs_decision', reason: 'The output format is open.', question: 'One JSON object, or one per line?' }, FITS);
    await harness.startBot({ NIGHTSHIFT_SIZING: 'on' });

    await say('Add a --json flag to export', /Sizing #1/);
    const question = await harness.waitForMessage(/needs a decision first/, 'the question');
    expect(question.text).toContain('One JSON object, or one per line?');
    const status = await say('/status', /Status/);
    expect(status.text).toContain('📏 Sizing: 1 waiting for your answer');

    const thanks = await say('One per line, please', /Your answer is added to #1/);
    expect(thanks.text).toBe('✍️ Thanks. Your answer is added to #1; sizing it again.');
    await waitForText(question, /✍️ Answered: <i>One per line, please<\/i>/);
    const done = await harness.waitForMessage(/is queued\./, 'the second sizing');
    expect(done.text).toContain('<b>#1 Add a --json flag to export</b> is queued.');
    expect(items()).toMatchObject([{ id: 1, state: 'queued', sizing: 'done' }]);
    expect(items()[0]!.request).toBe("Add a --json flag to export\n\nQuestion before building: One JSON object, or one per line?\nThe developer's answer: One per line, please");
    expect(sizingCalls()).toHaveLength(2);
    expect(promptOf(sizingCalls()[1]!)).toContain("The developer's answer: One per line, please");
  });

  it('sizes a request again after a kill -9 cut its sizing call short', { timeout: 90_000 }, async () => {
    scriptSizing(FITS);
    anthropic.failNext({ kind: 'stall' });
    const first = await harness.startBot({ NIGHTSHIFT_SIZING: 'on' });
    await say('Add a --json flag to export', /Sizing #1/);
    await anthropic.waitFor(() => sizingCalls()[0], { what: 'the sizing call in flight' });
    const status = await say('/status', /Status/);
    expect(status.text).toContain('📏 Sizing: 1 being sized');
    await first.kill9();
    expect(items()).toMatchObject([{ id: 1, state: 'proposed', sizing: 'pending' }]);

    await harness.startBot({ NIGHTSHIFT_SIZING: 'on' });
    await harness.waitForMessage(/#1 Add a --json flag to export<\/b> is queued\./, 'the sizing after the restart');
    expect(items()).toMatchObject([{ id: 1, state: 'queued', sizing: 'done' }]);
    expect(sizingCalls()).toHaveLength(2);
  });
});
