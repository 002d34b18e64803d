import type { Logger } from 'pino';
import type { CostEstimate, SizeClass } from '../domain/size-estimate.js';
import type { Decider } from '../store/cards.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import { parseSizeReport, type SizeReport, type SizingOutcome } from './sizing.js';
import { isTapOn } from '../store/outbox.js';

/** First wait before a failed sizing call is tried again; doubles with each counted failure. @default 30000 */
export const SIZING_RETRY_BASE_MS = 30_000;
/** Longest such wait. @default 30 minutes */
export const SIZING_RETRY_MAX_MS = 30 * 60_000;
/** Sizing calls running at once. @default 2 */
export const SIZING_MAX_PARALLEL = 2;
/**
 * How long the user's next text message counts as the answer to a sizing question. Later, a
 * text is new work again; a Telegram reply to the question still answers it. @default 30 minutes
 */
export const SIZING_ANSWER_WAIT_MS = 30 * 60_000;
/** Longest answer added to a request, in characters. @default 2000 */
export const ANSWER_MAX_CHARS = 2_000;

/** The actions of sizing's buttons (card-less, `arg` is the item id); one tap decides a message. */
export const SIZING_ACTIONS = ['size-queue', 'size-split', 'size-bundle', 'size-cancel'] as const;
export type SizingAction = (typeof SIZING_ACTIONS)[number];

/** Whether a stored button's action is one of sizing's. */
export function isSizingAction(action: string): action is SizingAction {
  return (SIZING_ACTIONS as readonly string[]).includes(action);
}

/** What the user is shown about an item's sizing. The telegram side picks words and buttons. */
export type SizingView =
  /** It fits (or is small with nothing to bundle with) and is under the confirm limit: queued already. */
  | { readonly kind: 'queued'; readonly report: SizeReport; readonly estimate: CostEstimate }
  /** It fits but is estimated above `confirmAboveUsd`: Queue it / Cancel. */
  | { readonly kind: 'confirm'; readonly report: SizeReport; readonly estimate: CostEstimate; readonly confirmAboveUsd: number }
  /** Too large: Accept split / Keep as is / Cancel. */
  | { readonly kind: 'split'; readonly report: SizeReport; readonly estimate: CostEstimate }
  /** Too small: Bundle with (these items) / Keep as is / Cancel. */
  | { readonly kind: 'bundle'; readonly report: SizeReport; readonly estimate: CostEstimate; readonly with: readonly Item[] }
  /** Needs a decision: the question (answered by the next text message) / Keep as is / Cancel. */
  | { readonly kind: 'question'; readonly report: SizeReport; readonly estimate: CostEstimate }
  /** A daily or monthly budget is spent: sized after its reset (`until`); Queue as is / Cancel meanwhile. */
  | { readonly kind: 'waiting'; readonly reason: string; readonly until: number }
  /** Sizing could not finish: Queue as is / Cancel. */
  | { readonly kind: 'parked'; readonly reason: string };

/** The buttons each view offers, in order. */
export const VIEW_ACTIONS: Readonly<Record<SizingView['kind'], readonly SizingAction[]>> = {
  queued: [],
  confirm: ['size-queue', 'size-cancel'],
  split: ['size-split', 'size-queue', 'size-cancel'],
  bundle: ['size-bundle', 'size-queue', 'size-cancel'],
  question: ['size-queue', 'size-cancel'],
  waiting: ['size-queue', 'size-cancel'],
  parked: ['size-queue', 'size-cancel'],
};

/** What a sizing tap did. */
export type SizingDecision =
  | { readonly kind: 'queued'; readonly item: Item }
  | { readonly kind: 'split'; readonly item: Item; readonly parts: readonly Item[] }
  /** `skipped`: items that had started (or ended) since and were left alone. */
  | { readonly kind: 'bundled'; readonly item: Item; readonly bundled: readonly Item[]; readonly skipped: readonly number[] }
  | { readonly kind: 'cancelled'; readonly item: Item }
  /** The item is no longer waiting for this decision (cancelled, queued, sized again): nothing changed. */
  | { readonly kind: 'gone'; readonly item: Item | undefined };

/** A validated and applied sizing tap, or why it was not. */
export type SizingTap =
  | { readonly kind: 'refused'; readonly why: string }
  | { readonly kind: 'taken'; readonly why: string }
  | { readonly kind: 'ok'; readonly decision: SizingDecision; /** The message that carried the button. */ readonly outboxId: number };

/** Where a tap came from. */
export interface SizingTapOrigin {
  readonly chatId: number;
  /** Telegram message id the button sits under. */
  readonly messageId: number;
  readonly by: Decider;
}

/** Collaborators of {@link createSizer}. */
export interface SizerDeps {
  readonly store: Store;
  /** The sizing stage (see `runSizingStage`). */
  readonly size: (item: Item, signal: AbortSignal) => Promise<SizingOutcome>;
  /** The cost range of a size class (see `estimateItemCost`). */
  readonly estimate: (sizeClass: SizeClass) => CostEstimate;
  /** `NIGHTSHIFT_CONFIRM_ABOVE_USD`: a fitting item estimated above this waits for an OK tap. */
  readonly confirmAboveUsd: number;
  /** Counted failed calls before sizing gives up and parks the item. */
  readonly maxAttempts: number;
  /** Writes the message showing `view` (synchronously, inside the transaction that recorded it). */
  readonly present: (item: Item, view: SizingView) => void;
  /** After a transaction that presented something committed (the outbox may send now). */
  readonly presented: () => void;
  /** After sizing queued an item by itself (the dispatcher may start it). */
  readonly queued?: () => void;
  /** @default SIZING_MAX_PARALLEL */
  readonly maxParallel?: number;
  readonly now: () => number;
  readonly log: Logger;
}

/**
 * Sizes queued requests in the background and applies the user's answers. A request is stored
 * `proposed` with sizing `pending` in the update's transaction; `sizeSoon` starts its sizing
 * once that committed, and `tick` finds every pending one whose backoff is over (after a crash,
 * a failed call, a budget reset). A result, the item's state change and the message about it
 * are one transaction, so a crash leaves either the item pending (sized again) or all of it.
 * Sizing is not a run: it happens at once, also during peak hours and while building is paused.
 */
export function createSizer(deps: SizerDeps) {
  const { store, log } = deps;
  const maxParallel = deps.maxParallel ?? SIZING_MAX_PARALLEL;
  const inFlight = new Map<number, { abort: AbortController; done: Promise<void> }>();
  let stopped = false;

  /** Starts sizing the item now if it is pending, due, and a slot is free; otherwise the tick finds it. */
  function sizeSoon(itemId: number): void {
    if (stopped || inFlight.has(itemId) || inFlight.size >= maxParallel) return;
    const item = store.items.get(itemId);
    if (item?.state !== 'proposed' || item.sizing !== 'pending' || (item.notBefore ?? 0) > deps.now()) return;
    const abort = new AbortController();
    const done = run(item, abort.signal).finally(() => {
      inFlight.delete(itemId);
      if (!stopped) drain();
    });
    inFlight.set(itemId, { abort, done });
  }

  function drain(): void {
    try {
      for (const item of store.items.dueForSizing(deps.now())) {
        if (inFlight.size >= maxParallel) return;
        sizeSoon(item.id);
      }
    } catch (err) {
      log.error({ err }, 'could not look for items to size; the next tick tries again');
    }
  }

  async function run(item: Item, signal: AbortSignal): Promise<void> {
    const ilog = log.child({ itemId: item.id });
    let outcome: SizingOutcome;
    try {
      outcome = await deps.size(item, signal);
    } catch (error) {
      ilog.error({ err: error }, 'sizing crashed');
      outcome = { kind: 'retry-later', reason: error instanceof Error ? error.message : String(error), counted: true };
    }
    // Stopping: the item stays pending and is sized on the next start.
    if (signal.aborted) return;
    try {
      const result = settle(item.id, outcome, ilog);
      if (result.presented) deps.presented();
      if (result.queued) deps.queued?.();
    } catch (error) {
      ilog.error({ err: error }, 'could not record the sizing; the item stays pending and is sized again');
    }
  }

  /** Records an outcome with its state change and message, in one transaction. */
  function settle(itemId: number, outcome: SizingOutcome, ilog: Logger): { presented: boolean; queued: boolean } {
    return store.transaction(() => {
      const item = store.items.get(itemId);
      // Cancelled (or decided from a waiting message) while the call ran: its new state stands.
      if (item?.state !== 'proposed' || item.sizing !== 'pending') {
        ilog.info({ outcome: outcome.kind, state: item?.state, sizing: item?.sizing }, 'the item left sizing while it was sized; result not used');
        return { presented: false, queued: false };
      }
      switch (outcome.kind) {
        case 'sized':
          return { presented: true, queued: presentReport(item, outcome.report) };
        case 'parked':
          park(item, outcome.reason);
          ilog.warn({ reason: outcome.reason }, 'sizing parked');
          return { presented: true, queued: false };
        case 'retry-later': {
          if (outcome.notBefore !== undefined) {
            // A daily or monthly cap: sized after its reset, and the user hears why it waits.
            store.items.retrySizing(item.id, outcome.notBefore, false);
            show(item, { kind: 'waiting', reason: outcome.reason, until: outcome.notBefore });
            ilog.info({ until: outcome.notBefore }, 'sizing waits for the budget reset');
            return { presented: true, queued: false };
          }
          const attempts = store.items.retrySizing(item.id, deps.now(), outcome.counted);
          if (outcome.counted && attempts >= deps.maxAttempts) {
            park(item, `sizing failed ${attempts} times; the last time: ${outcome.reason}`);
            ilog.warn({ reason: outcome.reason, attempts }, 'sizing failed too often; parked');
            return { presented: true, queued: false };
          }
          const delay = Math.min(SIZING_RETRY_MAX_MS, SIZING_RETRY_BASE_MS * 2 ** Math.max(0, attempts - 1));
          store.items.setNotBefore(item.id, deps.now() + delay);
          ilog.warn({ reason: outcome.reason, attempts, retryInMs: delay }, 'sizing will be tried again');
          return { presented: false, queued: false };
        }
      }
    });
  }

  /** Picks the view of a report, records it (queueing the item when it just fits) and shows it; true if queued. */
  function presentReport(item: Item, report: SizeReport): boolean {
    const estimate = deps.estimate(report.class);
    const partners = report.bundleWith.map((id) => store.items.get(id)).filter((other): other is Item => other !== undefined && isBundleable(other, item));
    const view: SizingView =
      report.verdict === 'too_large' ? { kind: 'split', report, estimate }
      : report.verdict === 'needs_decision' ? { kind: 'question', report, estimate }
      : report.verdict === 'too_small' && partners.length > 0 ? { kind: 'bundle', report, estimate, with: partners }
      : estimate.highUsd > deps.confirmAboveUsd ? { kind: 'confirm', report, estimate, confirmAboveUsd: deps.confirmAboveUsd }
      : { kind: 'queued', report, estimate };
    const stored = { ...report, estimate: { basis: estimate.basis, samples: estimate.samples } };
    store.items.recordSizing(item.id, { sizing: view.kind === 'queued' ? 'done' : 'asked', report: stored, lowUsd: estimate.lowUsd, highUsd: estimate.highUsd });
    if (view.kind === 'queued') store.items.transition(item.id, 'queued', `sized: ${report.class}, ${report.verdict === 'fits' ? 'fits' : 'small, nothing to bundle with'}`);
    if (view.kind === 'question') {
      store.cards.awaitAnswer({ chatId: item.chatId, userId: item.createdBy, itemId: item.id, expiresAt: deps.now() + SIZING_ANSWER_WAIT_MS });
    }
    show(item, view);
    return view.kind === 'queued';
  }

  function park(item: Item, reason: string): void {
    store.items.recordSizing(item.id, { sizing: 'parked' });
    show(item, { kind: 'parked', reason });
  }

  /** Shows a view; the item's earlier sizing buttons stop working (one live message per item). */
  function show(item: Item, view: SizingView): void {
    store.cards.retireItemButtons(item.id, SIZING_ACTIONS);
    deps.present(store.items.get(item.id)!, view);
  }

  /** An item waiting for the user's answer to its sizing question. */
  function isAsking(item: Item | undefined): item is Item {
    return item?.state === 'proposed' && item.sizing === 'asked' && parseSizeReport(store.items.sizeReport(item.id))?.verdict === 'needs_decision';
  }

  /** An item a small one may be bundled into: same repo, queued, not started. */
  function isBundleable(other: Item, into: Item): boolean {
    return other.id !== into.id && other.repo === into.repo && other.state === 'queued' && other.branch === null;
  }

  /**
   * Validates a tap on a sizing button and applies it; synchronous, so it runs inside the
   * transaction that claims the update. The tap claims every button of its message at once:
   * a double tap, or a second button of the same message, is told "Already done".
   */
  function decide(token: string, origin: SizingTapOrigin): SizingTap {
    return store.transaction((): SizingTap => {
      const button = store.cards.button(token);
      if (!button || button.cardId !== null || !isSizingAction(button.action)) return { kind: 'refused', why: 'This button is not valid.' };
      const message = button.outboxId === null ? undefined : store.outbox.get(button.outboxId);
      if (!message || !isTapOn(message, origin.chatId, origin.messageId)) {
        return { kind: 'refused', why: 'This button does not belong to this message.' };
      }
      const outboxId = button.outboxId!;
      if (store.cards.useButtonsOf(outboxId) === 0) return { kind: 'taken', why: 'Already done.' };
      const item = store.items.get(Number(button.arg));
      const gone = { kind: 'ok', outboxId, decision: { kind: 'gone', item } } as const;
      if (item?.state !== 'proposed' || item.sizing === null || item.sizing === 'done') return gone;
      const report = parseSizeReport(store.items.sizeReport(item.id));
      const by = origin.by.name;
      const decided = (decision: SizingDecision): SizingTap => {
        store.cards.dropAnswersOf(item.id);
        store.cards.retireItemButtons(item.id, SIZING_ACTIONS);
        return { kind: 'ok', outboxId, decision };
      };
      switch (button.action) {
        case 'size-queue':
          store.items.setSizing(item.id, 'done');
          return decided({ kind: 'queued', item: store.items.transition(item.id, 'queued', `queued as it is at sizing by ${by}`) });
        case 'size-cancel':
          store.items.setSizing(item.id, 'done');
          return decided({ kind: 'cancelled', item: store.items.transition(item.id, 'cancelled', `cancelled at sizing by ${by}`) });
        case 'size-split': {
          if (item.sizing !== 'asked' || report?.verdict !== 'too_large') return gone;
          const parts = report.split.map((part, i) =>
            store.items.create({
              repo: item.repo,
              title: part.title,
              request: partRequest(item, report.split, i),
              chatId: item.chatId,
              createdBy: item.createdBy,
              parentItemId: item.id,
            }),
          );
          store.items.setSizing(item.id, 'done');
          const split = store.items.transition(item.id, 'cancelled', `split into ${parts.map((p) => `#${p.id}`).join(', ')} by ${by}`);
          return decided({ kind: 'split', item: split, parts });
        }
        case 'size-bundle': {
          if (item.sizing !== 'asked' || report?.verdict !== 'too_small') return gone;
          const bundled: Item[] = [];
          const skipped: number[] = [];
          let request = item.request;
          for (const id of report.bundleWith) {
            const other = store.items.get(id);
            if (!other || !isBundleable(other, item)) {
              skipped.push(id);
              continue;
            }
            bundled.push(store.items.transition(other.id, 'cancelled', `bundled into #${item.id} by ${by}`));
            request += `\n\n---\nBundled in from #${other.id} (${other.title}):\n${other.request}`;
          }
          store.items.setRequest(item.id, request);
          store.items.setSizing(item.id, 'done');
          const queued = store.items.transition(item.id, 'queued', bundled.length > 0 ? `queued with ${bundled.map((b) => `#${b.id}`).join(', ')} bundled in by ${by}` : `queued at sizing by ${by}`);
          return decided({ kind: 'bundled', item: queued, bundled, skipped });
        }
      }
    });
  }

  return {
    sizeSoon,
    decide,

    /** Looks for pending items whose wait is over, and forgets sizing questions nobody answered in time. */
    tick(): void {
      if (stopped) return;
      try {
        store.cards.dropExpiredAnswers();
      } catch (err) {
        log.warn({ err }, 'could not drop expired sizing questions');
      }
      drain();
    },

    /**
     * The item whose sizing question the user's text answers, if any: the item of the message
     * it replies to when that item asks one, else the question still waiting for this user.
     */
    questionFor(chatId: number, userId: number, replyToMessageId?: number): number | undefined {
      if (replyToMessageId !== undefined) {
        const about = store.outbox.byTelegramMessage(chatId, replyToMessageId)?.itemId;
        if (about != null && isAsking(store.items.get(about))) return about;
      }
      const awaited = store.cards.awaitedAnswer(chatId, userId);
      return awaited && isAsking(store.items.get(awaited.itemId)) ? awaited.itemId : undefined;
    },

    /**
     * Adds the user's answer to the item's request (with the question) and sizes it again: the
     * item is pending once more and its question's buttons stop working. Returns the messages
     * that carried them, or undefined when the item no longer asks. Call `sizeSoon` after the
     * transaction committed.
     */
    answer(itemId: number, text: string): { item: Item; outboxIds: number[] } | undefined {
      return store.transaction(() => {
        const item = store.items.get(itemId);
        if (!isAsking(item)) return undefined;
        const question = parseSizeReport(store.items.sizeReport(item.id))?.question ?? '';
        const answer = [...text.trim()].slice(0, ANSWER_MAX_CHARS).join('');
        store.items.resize(item.id, `${item.request}\n\nQuestion before building: ${question}\nThe developer's answer: ${answer}`);
        store.cards.dropAnswersOf(item.id);
        const outboxIds = store.cards.retireItemButtons(item.id, SIZING_ACTIONS);
        return { item: store.items.get(item.id)!, outboxIds };
      });
    },

    /** Aborts the sizing calls in flight (their items stay pending) and waits for them. */
    async stop(): Promise<void> {
      stopped = true;
      for (const { abort } of inFlight.values()) abort.abort(new Error('stopping'));
      await Promise.all([...inFlight.values()].map((f) => f.done));
    },

    /** Settles when the sizing calls in flight have been recorded; for tests. */
    async idle(): Promise<void> {
      while (inFlight.size > 0) await Promise.all([...inFlight.values()].map((f) => f.done));
    },
  };
}

/** The sizer. */
export type Sizer = ReturnType<typeof createSizer>;

/** A split part's request: its own text, then where it came from and what the other parts do, so the agent keeps to its part. */
function partRequest(original: Item, parts: readonly { title: string; request: string }[], index: number): string {
  const others = parts.filter((_, i) => i !== index).map((p) => `"${p.title}"`).join(', ');
  return `${parts[index]!.request}\n\n(Part ${index + 1} of ${parts.length} of #${original.id} "${original.title}", split at sizing. The other parts are separate items: ${others}. Do only this part.)`;
}
