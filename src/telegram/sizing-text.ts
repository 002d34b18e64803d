import type { InlineKeyboardMarkup } from 'grammy/types';
import type { CostEstimate } from '../domain/size-estimate.js';
import type { SizingAction, SizingDecision, SizingView } from '../pipeline/sizer.js';
import type { SizeReport } from '../pipeline/sizing.js';
import type { CardButton } from '../store/cards.js';
import type { Item } from '../store/items.js';
import { escapeHtml, html } from './format.js';

// What sizing says on the phone, as pure functions of their data (every value escaped here).

/** Longest part request quoted under a proposed split. @default 200 */
export const SPLIT_REQUEST_SHOWN_CHARS = 200;
/** Longest answer repeated back on the question it answered. @default 200 */
export const ANSWER_SHOWN_CHARS = 200;

const usd = (n: number): string => `$${n.toFixed(2)}`;

function shorten(text: string, max: number): string {
  const chars = [...text.replace(/\s+/g, ' ').trim()];
  return chars.length <= max ? chars.join('') : `${chars.slice(0, max - 1).join('')}…`;
}

/** "medium (context medium, judgment low, risk low) · est. $1.20–$3.60 (from 4 finished medium items)". */
export function sizeLine(report: SizeReport, estimate: CostEstimate): string {
  const basis = estimate.basis === 'history' ? `from ${estimate.samples} finished ${report.class} items` : `no history yet: a share of the budgets`;
  return (
    html`Size: <b>${report.class}</b> (context ${report.contextNeeded}, judgment ${report.judgmentNeeded}, risk ${report.risk})` +
    html` · est. ${usd(estimate.lowUsd)}–${usd(estimate.highUsd)} <i>(${basis})</i>`
  );
}

/** The message about an item's sizing. */
export function sizingText(item: Item, view: SizingView): string {
  const head = html`<b>#${item.id} ${item.title}</b>`;
  switch (view.kind) {
    case 'queued':
      return [`📏 ${head} is queued.`, sizeLine(view.report, view.estimate), html`<i>${view.report.reason}</i>`].join('\n');
    case 'confirm':
      return [
        `📏 ${head}`,
        sizeLine(view.report, view.estimate),
        html`<i>${view.report.reason}</i>`,
        '',
        html`It may cost more than ${usd(view.confirmAboveUsd)} (NIGHTSHIFT_CONFIRM_ABOVE_USD). Queue it?`,
      ].join('\n');
    case 'split':
      return [
        `✂️ ${head} looks too large for one run.`,
        html`<i>${view.report.reason}</i>`,
        '',
        'Proposed split, in build order:',
        ...view.report.split.map((part, i) => html`${i + 1}. <b>${part.title}</b>\n    ${shorten(part.request, SPLIT_REQUEST_SHOWN_CHARS)}`),
        '',
        `As one item: ${sizeLine(view.report, view.estimate)}`,
      ].join('\n');
    case 'bundle':
      return [
        `🧩 ${head} is small for a run of its own.`,
        html`<i>${view.report.reason}</i>`,
        '',
        'Bundle it with:',
        ...view.with.map((other) => html`#${other.id} ${other.title}`),
        '',
        sizeLine(view.report, view.estimate),
      ].join('\n');
    case 'question':
      return [
        `❓ ${head} needs a decision first:`,
        html`<b>${view.report.question ?? ''}</b>`,
        html`<i>${view.report.reason}</i>`,
        '',
        html`Send your answer as your next message (or reply to this one): it is added to the request and #${item.id} is sized again.`,
        sizeLine(view.report, view.estimate),
      ].join('\n');
    case 'waiting':
      return [`⏸ ${head} is not sized yet: ${escapeHtml(view.reason)}.`, 'Queue it as it is, or cancel it, meanwhile.'].join('\n');
    case 'parked':
      return [`⚠️ ${head} could not be sized: ${escapeHtml(view.reason)}`, 'Queue it as it is, or cancel it.'].join('\n');
  }
}

/** The label of a sizing button in a view. */
export function sizingButtonLabel(view: SizingView, action: SizingAction): string {
  switch (action) {
    case 'size-split':
      return '✂️ Accept split';
    case 'size-bundle':
      return view.kind === 'bundle' ? `🧩 Bundle with ${view.with.map((o) => `#${o.id}`).join(', ')}` : '🧩 Bundle';
    case 'size-cancel':
      return '🚫 Cancel';
    case 'size-queue':
      return view.kind === 'confirm' ? '✅ Queue it' : view.kind === 'waiting' || view.kind === 'parked' ? '➡️ Queue as is' : '➡️ Keep as is';
  }
}

/** The buttons under a sizing message: the main choice on its own row when there are three. */
export function sizingKeyboard(view: SizingView, buttons: readonly CardButton[]): InlineKeyboardMarkup {
  const row = (bs: readonly CardButton[]) => bs.map((b) => ({ text: sizingButtonLabel(view, b.action as SizingAction), callback_data: b.token }));
  return { inline_keyboard: buttons.length === 3 ? [row(buttons.slice(0, 1)), row(buttons.slice(1))] : buttons.length === 0 ? [] : [row(buttons)] };
}

/** The line a decided sizing message ends with (its buttons are gone). */
export function sizingOutcomeNote(decision: SizingDecision, by: string): string {
  switch (decision.kind) {
    case 'queued':
      return html`➡️ Queued by ${by}.`;
    case 'cancelled':
      return html`🚫 Cancelled by ${by}.`;
    case 'split':
      return html`✂️ Split by ${by} into ` + decision.parts.map((p) => html`#${p.id} ${p.title}`).join(', ') + '; they are queued.';
    case 'bundled': {
      const skipped = decision.skipped.length === 0 ? '' : html` (${decision.skipped.map((id) => `#${id}`).join(', ')} had started or ended and ${decision.skipped.length === 1 ? 'was' : 'were'} left alone)`;
      return decision.bundled.length === 0
        ? html`➡️ Nothing was left to bundle with; #${decision.item.id} is queued as it is.` + skipped
        : html`🧩 ${decision.bundled.map((b) => `#${b.id}`).join(', ')} bundled into #${decision.item.id} by ${by}; it is queued.` + skipped;
    }
    case 'gone':
      return decision.item ? html`#${decision.item.id} is ${decision.item.state} now; nothing to do.` : 'This item no longer exists.';
  }
}

/** The short answer to a sizing tap (a callback answer, at most 200 characters). */
export function sizingAnswerText(decision: SizingDecision): string {
  switch (decision.kind) {
    case 'queued':
      return `Queued #${decision.item.id}.`;
    case 'cancelled':
      return `Cancelled #${decision.item.id}.`;
    case 'split':
      return `Split into ${decision.parts.map((p) => `#${p.id}`).join(', ')}.`;
    case 'bundled':
      return `Queued #${decision.item.id}${decision.bundled.length > 0 ? ` with ${decision.bundled.map((b) => `#${b.id}`).join(', ')} bundled in` : ''}.`;
    case 'gone':
      return decision.item ? `#${decision.item.id} is ${decision.item.state} now; nothing to do.` : 'This item no longer exists.';
  }
}

/** The reply to an answer to a sizing question. */
export function sizingAnsweredText(item: Item): string {
  return html`✍️ Thanks. Your answer is added to #${item.id}; sizing it again.`;
}

/** What a question's message ends with once it is answered. */
export function answeredNote(answer: string): string {
  return html`✍️ Answered: <i>${shorten(answer, ANSWER_SHOWN_CHARS)}</i>`;
}
