import type { ItemState } from '../domain/item-state.js';
import type { RepoName } from '../domain/parse-request.js';
import type { BacklogPage, BacklogStatus } from '../pipeline/backlog.js';
import type { Item } from '../store/items.js';
import { escapeHtml, formatDuration, html } from './format.js';

// The texts the bot sends, as pure functions of their data, so they are unit-tested and every
// value is escaped in one place.

const STATE_ICONS: Record<ItemState, string> = {
  proposed: '💭',
  queued: '⏳',
  building: '🔨',
  reviewing: '🔍',
  fixing: '🩹',
  ready: '👀',
  merged: '✅',
  rejected: '❌',
  deferred: '💤',
  failed: '⚠️',
  cancelled: '🚫',
};

/** Reply to a queued item; an item to be sized first (still `proposed`) says so. */
export function queuedText(item: Item): string {
  if (item.state === 'proposed') return html`📏 Sizing #${item.id} for ${item.repo}…` + `\n<b>${escapeHtml(item.title)}</b>`;
  return html`Queued #${item.id} for ${item.repo}` + `\n<b>${escapeHtml(item.title)}</b>`;
}

/** How an item's state reads in lists: sizing's part of `proposed` in words, a queued item's estimate. */
export function stateLabel(item: Item): string {
  if (item.state === 'proposed') {
    switch (item.sizing) {
      case 'pending':
        return 'being sized';
      case 'asked':
        return 'sized; waiting for your answer';
      case 'parked':
        return 'sizing stopped; waiting for you';
      default:
        return 'proposed';
    }
  }
  const estimate = item.estimateLowUsd !== null && item.estimateHighUsd !== null ? ` · est. $${item.estimateLowUsd.toFixed(2)}–$${item.estimateHighUsd.toFixed(2)}` : '';
  return item.state === 'queued' ? `queued${estimate}` : item.state;
}

/** The /help text. */
export function helpText(repos: readonly RepoName[]): string {
  const [first] = repos;
  const example = first ? first.name : 'repo';
  return [
    '<b>nightshift</b> queues work for agents and brings you the result to review.',
    '',
    '<b>Queue work</b>: just send what you want done, e.g. <i>Add a --json flag to the export command</i>.',
    html`It goes to ${first?.fullName ?? 'the default repo'}. For another repo start with its name: <i>${example}: fix the login redirect</i>.`,
    '',
    '/queue &lt;text&gt; — same as sending the text',
    '/backlog — open items, newest first',
    '/cancel &lt;id&gt; — cancel an item, e.g. /cancel 12',
    '/run — start the oldest queued item now (items also start by themselves off-peak)',
    '/pause, /resume — stop and restart automatic building; /stop also aborts the runs in progress',
    '/review — the next review card now (when cards wait for a review session)',
    '/lessons — what rejections taught the bot (with delete buttons)',
    '/status — counts by state and what is running',
    '/costs — spend today, this week and this month, with a 30-day chart',
    '/help — this message',
    '',
    html`Repos: ${repos.map((r) => r.fullName).join(', ')}`,
  ].join('\n');
}

/** Usage line for /queue or an empty request. */
export function queueUsageText(): string {
  return 'Usage: /queue &lt;what to do&gt; — or just send the text. To target another repo: <i>name: what to do</i>.';
}

/** Reply when a message names a repo that is not configured. */
export function unknownRepoText(asked: string, repos: readonly RepoName[]): string {
  return (
    html`I don't know the repo "${shorten(asked)}". Configured repos: ${repos.map((r) => r.fullName).join(', ')}.` +
    '\nStart the message with one of them (<i>name: text</i>), or leave the prefix out for the default repo.'
  );
}

/** Reply when a short repo name matches several configured repos. */
export function ambiguousRepoText(asked: string, matches: readonly RepoName[]): string {
  return html`"${asked}" matches ${matches.map((r) => r.fullName).join(' and ')}. Use owner/name: text.`;
}

/** One /backlog page. */
export function backlogText(page: BacklogPage): string {
  if (page.total === 0) return 'The backlog is empty. Send a message to queue work.';
  const lines = page.items.map(
    (item) => `${STATE_ICONS[item.state]} <b>#${item.id}</b> ${escapeHtml(item.title)}\n    <i>${escapeHtml(stateLabel(item))} · ${escapeHtml(item.repo)}</i>`,
  );
  const header = `<b>Backlog</b> · ${page.total} open` + (page.pageCount > 1 ? ` · page ${page.page + 1}/${page.pageCount}` : '');
  return [header, '', ...lines].join('\n');
}

/** The review side of /status: cards waiting and how fast they get decided. */
export interface ReviewStatus {
  readonly waiting: number;
  /** Median ms from a card shown to decided, this week; undefined before the first decision. */
  readonly medianDecisionMs: number | undefined;
  readonly pausedRepos: readonly string[];
}

/** The /status text. */
export function statusText(status: BacklogStatus, review?: ReviewStatus): string {
  const counts = Object.entries(status.counts)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([state, n]) => `${n} ${state}`)
    .join(' · ');
  const running =
    status.active.length === 0
      ? 'Nothing is running.'
      : 'Running now:\n' +
        status.active.map((item) => `${STATE_ICONS[item.state]} #${item.id} ${escapeHtml(item.title)} <i>(${item.state}, ${escapeHtml(item.repo)})</i>`).join('\n');
  const cards = review
    ? [
        '',
        `${review.waiting} card${review.waiting === 1 ? '' : 's'} waiting for you` +
          (review.medianDecisionMs === undefined ? '' : ` · median time to decide this week: ${formatDuration(review.medianDecisionMs)}`),
        ...(review.pausedRepos.length > 0 ? [`⏸ Building paused: ${escapeHtml(review.pausedRepos.join(', '))}`] : []),
      ]
    : [];
  const sized = status.sizing ?? {};
  const sizingParts = [
    (sized.pending ?? 0) > 0 ? `${sized.pending} being sized` : '',
    (sized.asked ?? 0) > 0 ? `${sized.asked} waiting for your answer` : '',
    (sized.parked ?? 0) > 0 ? `${sized.parked} whose sizing stopped` : '',
  ].filter((p) => p !== '');
  const sizing = sizingParts.length === 0 ? [] : [`📏 Sizing: ${sizingParts.join(' · ')}`];
  return [`<b>Status</b>`, counts === '' ? 'No items yet.' : counts, ...sizing, '', running, ...cards].join('\n');
}


/** Reply to /cancel. */
export const cancelTexts = {
  usage: () => 'Usage: /cancel &lt;id&gt;, e.g. /cancel 12',
  notFound: (id: number) => `There is no item #${id}.`,
  notCancellable: (item: Item) => html`#${item.id} is already ${item.state}; there is nothing to cancel.`,
  deciding: (item: Item) => html`#${item.id} is being merged or rejected right now; try again in a moment.`,
  cancelled: (item: Item) => html`Cancelled #${item.id}: ${item.title}`,
};

/** Longest piece of user input repeated back in a reply. @default 64 */
export const ECHO_MAX_CHARS = 64;

function shorten(text: string): string {
  const chars = [...text];
  return chars.length <= ECHO_MAX_CHARS ? text : `${chars.slice(0, ECHO_MAX_CHARS - 1).join('')}…`;
}

/** Reply to a command the bot does not know. */
export function unknownCommandText(command: string): string {
  return html`I don't know ${shorten(command)}. Send /help for the list.`;
}

/** Reply to an edited message: edits do not change what was queued. */
export function editIgnoredText(): string {
  return 'Edits don\'t change a queued item. To change it, /cancel &lt;id&gt; and send the new text.';
}

/** Reply to a photo, sticker, voice message or anything else that is not text. */
export function notTextText(): string {
  return 'I only understand text messages. Send what you want done as text, or /help.';
}

/**
 * The line under a message with buttons that is sent again because the process died while
 * sending it: Telegram has no idempotency key, so the first copy may have arrived. Both copies'
 * buttons work, and a decision is taken once.
 */
export const RESENT_AFTER_RESTART_NOTE = '<i>↻ Sent again after a restart; if the same message is above, either copy works.</i>';
