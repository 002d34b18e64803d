import type { InlineKeyboardButton, InlineKeyboardMarkup } from 'grammy/types';
import { DEFER_CHOICES, DEFER_LABELS, describeWake, type DeferChoice } from '../domain/defer-until.js';
import { SENSITIVE_LABELS, type SensitiveKind } from '../domain/change-facts.js';
import { revealInvisible } from '../domain/visible-text.js';
import type { ChecksState } from '../github/create-github.js';
import type { CardFacts } from '../pipeline/card-facts.js';
import type { ApproveOutcome } from '../pipeline/decisions.js';
import type { DriftReport } from '../pipeline/drift-checkpoint.js';
import type { CardButton } from '../store/cards.js';
import type { Item } from '../store/items.js';
import type { Lesson } from '../store/lessons.js';
import { escapeHtml, formatDuration, html } from './format.js';

// The review card and everything said around it, as pure functions of their data.

/** Longest title or finding line on a card, in characters. @default 90 */
export const CARD_LINE_MAX_CHARS = 90;
/** Files listed by size on a card. @default 3 */
export const CARD_TOP_FILES = 3;

// Everything shortened is text for a decision (titles, paths, findings): nothing in it may hide.
const shorten = (text: string, max: number): string => {
  const chars = [...revealInvisible(text).replace(/\s+/g, ' ').trim()];
  return chars.length <= max ? chars.join('') : `${chars.slice(0, max - 1).join('')}…`;
};
const short = (text: string, max = CARD_LINE_MAX_CHARS): string => shorten(text, max);
const sha7 = (sha: string | null | undefined): string => (sha ? sha.slice(0, 7) : '?');
const usd = (n: number): string => `$${n.toFixed(2)}`;

/** "09:14" in `timeZone`. */
export function formatClock(at: number, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(at);
}

const VERDICTS: Record<string, string> = {
  ready: '✅ Reviewed: ready to merge',
  ready_with_open_items: '🟡 Reviewed: ready, with open items',
  needs_judgment: '🤔 Needs your judgment',
};

function header(item: Item, icon: string): string {
  const pr = item.prUrl ? ` · <a href="${escapeHtml(item.prUrl)}">PR #${item.prNumber}</a>` : '';
  return `${icon} <b>#${item.id} ${escapeHtml(short(item.title))}</b>\n${escapeHtml(item.repo)}${pr}`;
}

/** The checks line: state, and which checks fail or wait. */
export function checksLine(checks: CardFacts['checks']): string {
  if ('error' in checks) return `❔ unknown (${escapeHtml(checks.error)})`;
  return describeChecks(checks);
}

function describeChecks(checks: ChecksState): string {
  const names = (list: readonly string[]) => escapeHtml(short(list.slice(0, 3).join(', ') + (list.length > 3 ? ` +${list.length - 3}` : ''), 60));
  switch (checks.state) {
    case 'passing':
      return `✅ passing (${checks.passing.length})`;
    case 'failing':
      return `❌ failing: ${names(checks.failing)}`;
    case 'pending':
      return `⏳ pending: ${names(checks.pending)}`;
    case 'none':
      return '— none reported';
  }
}

/** Longest card text; the rest of a message is left for the notes added to an open card. @default 3500 */
export const CARD_MAX_CHARS = 3500;

/** How much detail a card shows; each level down is shorter. */
const DETAIL = [
  { top: 3, files: CARD_TOP_FILES, open: 3, perKind: 3, judgment: 300, line: CARD_LINE_MAX_CHARS },
  { top: 1, files: 1, open: 2, perKind: 1, judgment: 150, line: 60 },
  { top: 0, files: 0, open: 1, perKind: 1, judgment: 80, line: 30 },
] as const;

/**
 * The review card's text, always one message (so its buttons and later edits stay on it): the
 * details shrink until it fits `CARD_MAX_CHARS` (text full of `&` or `<` grows when escaped).
 */
export function reviewCardText(facts: CardFacts, note?: string): string {
  for (const detail of DETAIL) {
    const text = cardText(facts, detail);
    if (text.length <= CARD_MAX_CHARS) return note ? `${text}\n\n${note}` : text;
  }
  // Still too long (pathological input): cut whole lines, never a tag in half.
  const lines = cardText(facts, DETAIL[DETAIL.length - 1]!).split('\n');
  while (lines.join('\n').length > CARD_MAX_CHARS - 2) lines.splice(Math.max(2, lines.length - 2), 1);
  const text = `${lines.join('\n')}\n…`;
  return note ? `${text}\n\n${note}` : text;
}

function cardText(facts: CardFacts, detail: (typeof DETAIL)[number]): string {
  const { item, summary } = facts;
  const short = (text: string, max = detail.line): string => shorten(text, Math.min(max, detail.line));
  const lines = [header(item, '👀'), `head <code>${sha7(facts.headSha)}</code>`];
  if (facts.prHeadSha && facts.prHeadSha !== facts.headSha) lines.push(`⚠️ GitHub shows head <code>${sha7(facts.prHeadSha)}</code>, not the reviewed one`);
  lines.push('');
  lines.push(`<b>${VERDICTS[summary?.verdict ?? ''] ?? '❔ No review summary'}</b>` + (summary ? ` · ${summary.rounds} round${summary.rounds === 1 ? '' : 's'}` : ''));
  if (summary?.judgment) lines.push(`<i>${escapeHtml(shorten(summary.judgment, detail.judgment))}</i>`);
  for (const top of (summary?.top ?? []).slice(0, detail.top)) lines.push(`• ${escapeHtml(short(top))}`);
  lines.push('');

  if ('error' in facts.changes) lines.push(`<b>Changes</b> ❔ ${escapeHtml(facts.changes.error)}`);
  else {
    const c = facts.changes;
    lines.push(`<b>Changes</b> ${c.files} file${c.files === 1 ? '' : 's'} · +${c.added} −${c.removed}` + (c.binary > 0 ? ` · ${c.binary} binary` : ''));
    if (c.sensitive.length > 0) {
      const byKind = new Map<SensitiveKind, string[]>();
      for (const s of c.sensitive) byKind.set(s.kind, [...(byKind.get(s.kind) ?? []), s.path]);
      for (const [kind, paths] of byKind) {
        lines.push(`⚠️ touches ${SENSITIVE_LABELS[kind]}: ${paths.slice(0, detail.perKind).map((p) => `<code>${escapeHtml(short(p, 60))}</code>`).join(', ')}${paths.length > detail.perKind ? ` +${paths.length - detail.perKind}` : ''}`);
      }
    }
    for (const f of c.largest.slice(0, detail.files)) {
      lines.push(`  <code>${escapeHtml(short(f.path, 60))}</code> ${f.added === null ? 'binary' : `+${f.added} −${f.removed}`}`);
    }
  }
  lines.push(`<b>Checks</b> ${checksLine(facts.checks)}`);

  if (facts.fixed.length > 0) lines.push(`<b>Bots fixed</b> ${facts.fixed.length}: ${escapeHtml(short(facts.fixed.slice(0, 3).map((f) => f.title).join('; ')))}`);
  if (facts.open.length > 0) {
    lines.push(`<b>Still open</b> ${facts.open.length}:`);
    for (const f of facts.open.slice(0, detail.open)) lines.push(`• [${f.severity}] ${escapeHtml(short(f.title))} <i>${escapeHtml(shorten(f.file, Math.min(40, detail.line)))}</i>`);
  }
  const proposed = facts.backlog.filter((b) => b.item.state === 'proposed');
  if (facts.backlog.length > 0) {
    lines.push(`<b>To backlog</b> ${facts.backlog.length}` + (proposed.length > 0 ? ` (${proposed.length} waiting for you, buttons below)` : ''));
  }
  const stages = facts.costs.map((c) => `${escapeHtml(c.stage)} ${usd(c.usd)}`).join(' · ');
  lines.push(`<b>Cost</b> ${usd(facts.totalUsd)}${stages ? ` (${stages})` : ''} · <b>Time</b> ${formatDuration(facts.pipelineMs)} in the pipeline`);
  return lines.join('\n');
}

const find = (buttons: readonly CardButton[], action: string, arg?: string): CardButton | undefined =>
  buttons.find((b) => b.action === action && (arg === undefined || b.arg === arg) && b.usedAt === null);
const btn = (text: string, b: CardButton | undefined): InlineKeyboardButton[] => (b ? [{ text, callback_data: b.token }] : []);

/** The card's main keyboard: the decision, "merge anyway" when offered, one row per proposed backlog item. */
export function reviewCardKeyboard(buttons: readonly CardButton[], opts: { mergeAnyway?: boolean; proposed?: readonly Item[] } = {}): InlineKeyboardMarkup {
  const rows: InlineKeyboardButton[][] = [[...btn('✅ Approve', find(buttons, 'approve')), ...btn('❌ Reject', find(buttons, 'reject')), ...btn('💤 Defer', find(buttons, 'defer-menu'))]];
  if (opts.mergeAnyway) rows.push(btn('⚠️ Merge anyway (checks failing)', find(buttons, 'merge-anyway')));
  for (const item of opts.proposed ?? []) rows.push(btn(`➕ Queue #${item.id}: ${short(item.title, 40)}`, find(buttons, 'queue-item', String(item.id))));
  return { inline_keyboard: rows.filter((r) => r.length > 0) };
}

/** The Defer choices. */
export function deferKeyboard(buttons: readonly CardButton[]): InlineKeyboardMarkup {
  const choice = (c: DeferChoice) => btn(DEFER_LABELS[c], find(buttons, 'defer', c));
  const [a, b, c, d] = DEFER_CHOICES;
  return { inline_keyboard: [[...choice(a), ...choice(b)], [...choice(c), ...choice(d)], btn('« Back', find(buttons, 'back'))].filter((r) => r.length > 0) };
}

/** The question after Reject, with quick reasons. */
export function rejectReasonText(item: Item): string {
  return html`Why reject #${item.id} ${short(item.title, 60)}? Tap a reason or type your own; it becomes a lesson for future work on ${item.repo}.`;
}

/** The quick reasons, plus a way back. */
export function rejectReasonKeyboard(buttons: readonly CardButton[]): InlineKeyboardMarkup {
  const reasons = buttons.filter((b) => b.action === 'reason').map((b) => btn(b.arg ?? '?', b));
  const rows: InlineKeyboardButton[][] = [];
  for (let i = 0; i < reasons.length; i += 2) rows.push([...reasons[i]!, ...(reasons[i + 1] ?? [])]);
  rows.push(btn('« Keep the PR', find(buttons, 'reason-cancel')));
  return { inline_keyboard: rows.filter((r) => r.length > 0) };
}

/**
 * The outcome of an approve as a message of its own, for when the card cannot be updated (the
 * database could not record the edit, e.g. the disk is full): the tapper still learns it once.
 */
export function approveOutcomeText(item: Item, outcome: ApproveOutcome): string {
  const head = html`<b>#${item.id} ${short(item.title, 80)}</b>: `;
  switch (outcome.kind) {
    case 'merged':
      return `${head}✅ <b>Merged</b> (<code>${sha7(outcome.mergeCommitSha)}</code>).`;
    case 'head-moved':
      return `${head}⏸ <b>Not merged</b>: the PR head moved after review; it is reviewed again.`;
    default:
      return head + approveNote(outcome);
  }
}

/** What the card becomes after an approve, by outcome; `note` for the outcomes that keep it open. */
export function approveNote(outcome: ApproveOutcome): string {
  switch (outcome.kind) {
    case 'merged':
    case 'head-moved':
      return '';
    case 'merged-unrecorded':
      return `✅ <b>Merged on GitHub</b> (<code>${sha7(outcome.mergeCommitSha)}</code>), but recording it failed; nightshift settles it shortly. Do not merge again.`;
    case 'checks':
      return `⛔ <b>Not merged</b>: checks for this head are ${outcome.checks.state} (${describeChecks(outcome.checks)}).` +
        (outcome.canForce ? ' You can merge anyway.' : outcome.checks.state === 'pending' ? ' Tap Approve again when they finish.' : '');
    case 'not-mergeable':
      return html`⛔ <b>Not merged</b>: GitHub says the PR cannot be merged (${short(outcome.reason, 200)}).`;
    case 'mergeable-unknown':
      return '⏸ <b>Not merged</b>: GitHub is still working out whether the PR can be merged. Tap Approve again in a minute.';
    case 'unclear':
      return html`⏸ <b>Not merged</b>: GitHub did not confirm the merge (${short(outcome.reason, 200)}), and the PR is still open at the reviewed head. Tap Approve to try again.`;
    case 'closed':
      return '⛔ <b>Not merged</b>: the PR was closed on GitHub. Reject or /cancel the item.';
    case 'error':
      return html`⏸ <b>Not merged</b>: ${short(outcome.reason, 200)}. Tap Approve to try again.`;
  }
}

/** The card after a merge: who, when, how, and the merge commit. */
export function mergedCardText(item: Item, merge: { by: string; at: number; how: string }, timeZone: string): string {
  return `${header(item, '✅')}\nMerged by ${escapeHtml(merge.by)} at ${formatClock(merge.at, timeZone)} · ${escapeHtml(merge.how)} · <code>${sha7(item.mergeCommitSha)}</code>`;
}

/** The card after the PR head moved. */
export function headMovedCardText(item: Item, reviewed: string | null, now: string | null): string {
  return `${header(item, '🔁')}\nNot merged: the PR head moved from <code>${sha7(reviewed)}</code> to <code>${sha7(now)}</code> after the review. Reviewing the new commits; a new card follows.`;
}

/** The card after a rejection. */
export function rejectedCardText(item: Item, rejection: { by: string; reason: string; lessonId?: number; closeError?: string }): string {
  return (
    `${header(item, '❌')}\nRejected by ${escapeHtml(rejection.by)}: <i>${escapeHtml(short(rejection.reason, 300))}</i>` +
    (rejection.lessonId === undefined ? '' : `\nSaved as lesson #${rejection.lessonId} (/lessons).`) +
    (rejection.closeError ? html`\n⚠️ The PR could not be closed on GitHub (${short(rejection.closeError, 120)}); close it by hand.` : '')
  );
}

/** The follow-up offer after a rejection. */
export function requeueText(item: Item): string {
  return html`Re-queue #${item.id} with your feedback so an agent tries again, or drop it?`;
}

/** The card after a deferral. */
export function deferredCardText(item: Item, wakeAt: number, now: number, by: string, timeZone: string): string {
  return `${header(item, '💤')}\nDeferred by ${escapeHtml(by)} until ${escapeHtml(describeWake(wakeAt, now, timeZone))}. A fresh card comes then.`;
}

/** The one-line digest before a review session's cards. */
export function digestText(risks: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const risk of risks) counts.set(risk, (counts.get(risk) ?? 0) + 1);
  // Low-risk first; a combined reason stays one phrase ("1 needs judgment and touches auth").
  const order = [...counts].sort(([a], [b]) => (a === 'low-risk' ? -1 : b === 'low-risk' ? 1 : 0));
  const parts = order.map(([risk, n]) => `${n} ${risk.replace(/, ([^,]*)$/, ' and $1')}`);
  return html`📬 ${risks.length} PR${risks.length === 1 ? '' : 's'} ready: ${parts.join('; ')}`;
}

/** /lessons. */
export function lessonsText(lessons: readonly Lesson[]): string {
  if (lessons.length === 0) return 'No lessons yet. When you reject a PR, its reason becomes a lesson that later builds and reviews of that repo see.';
  const lines = lessons.map((l) => `<b>#${l.id}</b> <i>${escapeHtml(l.repo)}</i>: ${escapeHtml(short(l.text, 200))}`);
  return ['<b>Lessons</b> (fed into builds and reviews of their repo)', ...lines].join('\n');
}

/** One delete button per lesson. */
export function lessonsKeyboard(lessons: readonly Lesson[], buttons: readonly CardButton[]): InlineKeyboardMarkup {
  return { inline_keyboard: lessons.map((l) => btn(`🗑 Delete #${l.id}`, find(buttons, 'delete-lesson', String(l.id)))).filter((r) => r.length > 0) };
}

/** A drift checkpoint card. */
export function checkpointText(repo: string, report: DriftReport): string {
  const concerns = report.concerns.slice(0, 5).map((c) => `• [${c.severity}] ${escapeHtml(short(c.text, 200))}`);
  const merged = report.merged.map((m) => `#${m.id}`).join(', ');
  return [
    `🧭 <b>Drift checkpoint</b> · ${escapeHtml(repo)}`,
    `${report.merged.length} merges since the last one (${merged}) · ${report.files} files · +${report.added} −${report.removed}`,
    '',
    `<b>Direction</b> ${escapeHtml(short(report.direction, 600))}`,
    ...(concerns.length > 0 ? ['', `<b>Looks globally wrong</b>`, ...concerns] : ['', 'Nothing looks globally wrong.']),
    '',
    report.onTrack ? 'The design reviewer thinks this is on track.' : '<b>The design reviewer thinks this is drifting.</b>',
  ].join('\n');
}

/** The checkpoint's buttons. */
export function checkpointKeyboard(buttons: readonly CardButton[]): InlineKeyboardMarkup {
  return { inline_keyboard: [[...btn('👍 On track', find(buttons, 'on-track')), ...btn('⏸ Pause building', find(buttons, 'pause'))]] };
}
