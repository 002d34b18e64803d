import type { Logger } from 'pino';
import { DEFER_CHOICES, deferUntil, type DeferChoice } from '../domain/defer-until.js';
import type { RepoName } from '../domain/parse-request.js';
import type { ChecksState, GitHub, MergeOutcome } from '../github/create-github.js';
import type { Card, CardButton, Decider } from '../store/cards.js';
import type { Item } from '../store/items.js';
import type { Store } from '../store/open-store.js';
import type { Workspace } from '../workspace/create-workspace.js';
import { isTapOn } from '../store/outbox.js';

/** How GitHub merges an approved PR. */
export type MergeMethod = 'merge' | 'squash' | 'rebase';

/** How long a Reject waits for its reason before the card is open again. @default 10 minutes */
export const REASON_WAIT_MS = 10 * 60_000;
/** A decision claimed this long ago whose work is not running any more is settled by the tick. @default 15 minutes */
export const STUCK_DECISION_MS = 15 * 60_000;

/** Every action a stored button may carry; anything else read back is refused. */
export const BUTTON_ACTIONS = [
  'approve',
  'merge-anyway',
  'reject',
  'reason',
  'reason-cancel',
  'defer-menu',
  'back',
  'defer',
  'requeue',
  'drop',
  'queue-item',
  'on-track',
  'pause',
  'resume-repo',
  'delete-lesson',
  'run-confirm',
  'retry-item',
] as const;

/** The outcome of an approve whose merge GitHub reported without our call (by hand, or before a crash). */
export const MERGED_ON_GITHUB = 'merged on GitHub';

/** The quick reasons offered for a rejection (button label = lesson text). */
export const QUICK_REASONS = ['wrong approach', 'too big', 'not needed', 'quality'] as const;

/**
 * Card buttons. A decision claims the card's one decision (approve, reject, defer:<choice>,
 * on-track, pause); the rest navigate (defer-menu, back), answer a question (reason,
 * reason-cancel) or are one-shot follow-ups (requeue, drop, queue-item, resume-repo, delete-lesson).
 */
export type ButtonAction = (typeof BUTTON_ACTIONS)[number];

/** The result of validating (and, for decisions, claiming) a tap. */
export type TapResult =
  | { readonly kind: 'refused'; readonly why: string }
  | { readonly kind: 'taken'; readonly why: string }
  | { readonly kind: 'ok'; readonly action: ButtonAction; readonly button: CardButton; readonly card: Card | undefined; readonly item: Item | undefined };

/** Where a tap came from. */
export interface TapOrigin {
  readonly chatId: number;
  /** Telegram message id the button sits under. */
  readonly messageId: number;
  readonly by: Decider;
}

/** What an Approve ended in. */
export type ApproveOutcome =
  | { readonly kind: 'merged'; readonly item: Item; readonly mergeCommitSha: string; readonly method: MergeMethod; readonly at: number; readonly byGitHub: boolean }
  | { readonly kind: 'head-moved'; readonly item: Item; readonly headSha: string | null }
  | { readonly kind: 'checks'; readonly checks: ChecksState; readonly canForce: boolean }
  | { readonly kind: 'not-mergeable'; readonly reason: string }
  | { readonly kind: 'mergeable-unknown' }
  | { readonly kind: 'unclear'; readonly reason: string }
  | { readonly kind: 'closed' }
  | { readonly kind: 'error'; readonly reason: string }
  /** GitHub merged it but recording that failed; the next tick reads the PR and records it. */
  | { readonly kind: 'merged-unrecorded'; readonly mergeCommitSha: string };

/** What a Reject ended in. */
export type RejectOutcome =
  | { readonly kind: 'rejected'; readonly item: Item; readonly reason: string; readonly lessonId: number; /** Why the PR could not be closed (the rejection stands). */ readonly closeError?: string }
  /** The item left `ready` (cancelled) while the reason was awaited: the card is void. */
  | { readonly kind: 'void'; readonly why: string };

/** Collaborators of {@link createDecisions}. */
export interface DecisionsDeps {
  readonly store: Store;
  readonly github: Pick<GitHub, 'readMergeable' | 'checksFor' | 'mergePullRequest' | 'closePullRequest' | 'deleteBranch'>;
  readonly workspace: Pick<Workspace, 'remove'>;
  readonly repos: readonly RepoName[];
  /** Starts the review of an item sent back to `reviewing`. */
  readonly review: (itemId: number) => void;
  /** Called after an item was merged (drift checkpoints count merges). */
  readonly afterMerge: (item: Item) => void;
  readonly merge: {
    readonly method: MergeMethod;
    readonly allowFailingChecks: boolean;
    /** Reads of a PR whose `mergeable` GitHub is still computing, before parking. @default 5 */
    readonly mergeableAttempts?: number;
    readonly mergeableIntervalMs?: number;
  };
  readonly timeZone: string;
  readonly now: () => number;
  readonly log: Logger;
}

/**
 * The human's decisions on cards: Approve (a SHA-pinned merge that is never blindly retried),
 * Reject (a lesson, the PR closed), Defer (a persisted wake time), and the checkpoint answers.
 * Every decision is claimed with one conditional update, so a double tap or a race between
 * two buttons has exactly one winner; the loser is told what happened.
 */
export function createDecisions(deps: DecisionsDeps) {
  const { store, github, log } = deps;
  // Cards whose approve or reject is running in this process.
  const running = new Set<number>();

  const repoOf = (name: string): RepoName => {
    const repo = deps.repos.find((r) => r.fullName === name);
    if (!repo) throw new Error(`repo ${name} is not configured any more`);
    return repo;
  };

  /** Why a card no longer takes decisions, in words for the tapper. */
  function stale(card: Card): string | undefined {
    switch (card.status) {
      case 'superseded':
        return 'This card is out of date; use the newest card for this item.';
      case 'held':
        return 'This card has not been delivered yet.';
      default:
        return undefined;
    }
  }

  function taken(card: Card): string {
    const who = card.decidedByName ?? 'someone';
    if (card.status === 'deciding') return `Already being handled: ${card.decision} by ${who}.`;
    return `Already decided: ${card.outcome ?? card.decision ?? 'done'}.`;
  }

  /**
   * Validates a tap and, for decision buttons, claims the card's decision. Synchronous: call it
   * inside the transaction that claims the update id.
   */
  function tap(token: string, origin: TapOrigin): TapResult {
    const button = store.cards.button(token);
    if (!button) return { kind: 'refused', why: 'This button is not valid.' };
    const message = button.outboxId === null ? undefined : store.outbox.get(button.outboxId);
    if (!message || !isTapOn(message, origin.chatId, origin.messageId)) {
      return { kind: 'refused', why: 'This button does not belong to this message.' };
    }
    const card = button.cardId === null ? undefined : store.cards.get(button.cardId);
    const item = card?.itemId == null ? undefined : store.items.get(card.itemId);
    const action = BUTTON_ACTIONS.find((a) => a === button.action);
    if (!action) return { kind: 'refused', why: 'This button is not valid.' };
    const ok = { kind: 'ok', action, button, card, item } as const;

    // One-shot follow-ups: valid until used, whatever happened to the card since.
    if (action === 'requeue' || action === 'drop' || action === 'queue-item' || action === 'resume-repo' || action === 'delete-lesson' || action === 'run-confirm' || action === 'retry-item') {
      if (action === 'run-confirm') return store.cards.useButton(button.token) ? ok : { kind: 'taken', why: 'Already done.' };
      if (button.usedAt !== null) return { kind: 'taken', why: 'Already done.' };
      return ok;
    }
    if (!card) return { kind: 'refused', why: 'This button is not valid.' };
    const staleWhy = stale(card);
    if (staleWhy) return { kind: 'refused', why: staleWhy };

    if (card.kind === 'review') {
      if (!item) return { kind: 'refused', why: 'This item no longer exists.' };
      if (action === 'reason' || action === 'reason-cancel') {
        if (card.status !== 'deciding' || card.decision !== 'reject') return { kind: 'taken', why: taken(card) };
        return ok;
      }
      if (card.status !== 'open') return { kind: 'taken', why: taken(card) };
      // The card's buttons are bound to the head it shows: a card for an older head is refused.
      if (item.state !== 'ready') return { kind: 'refused', why: `#${item.id} is ${item.state} now; this card no longer applies.` };
      if (card.headSha !== null && item.headSha !== null && card.headSha !== item.headSha) {
        return { kind: 'refused', why: 'The PR changed since this card was made; a new card will follow its review.' };
      }
      if (action === 'defer-menu' || action === 'back') return ok;
      const decision = action === 'merge-anyway' ? 'approve' : action === 'defer' ? `defer` : action;
      if (action === 'merge-anyway' && !deps.merge.allowFailingChecks) return { kind: 'refused', why: 'Merging with failing checks is not allowed here.' };
      if (action === 'defer' && !DEFER_CHOICES.some((c) => c === button.arg)) return { kind: 'refused', why: 'This button is not valid.' };
      if (!['approve', 'reject', 'defer'].includes(decision)) return { kind: 'refused', why: 'This button is not valid.' };
      if (!store.cards.claim(card.id, decision, origin.by)) return { kind: 'taken', why: taken(store.cards.get(card.id)!) };
      if (action === 'reject') {
        // One question at a time per user: an earlier Reject still waiting for its reason is backed out.
        const earlier = store.cards.awaitedReply(origin.chatId, origin.by.id);
        if (earlier && earlier.cardId !== card.id) store.cards.release(earlier.cardId);
        store.cards.awaitReply({ chatId: origin.chatId, userId: origin.by.id, kind: 'reject-reason', cardId: card.id, expiresAt: deps.now() + REASON_WAIT_MS });
      }
      return { ...ok, card: store.cards.get(card.id)! };
    }

    // A drift checkpoint card.
    if (action !== 'on-track' && action !== 'pause') return { kind: 'refused', why: 'This button is not valid.' };
    if (card.status !== 'open') return { kind: 'taken', why: taken(card) };
    if (!store.cards.claim(card.id, action, origin.by)) return { kind: 'taken', why: taken(store.cards.get(card.id)!) };
    return { ...ok, card: store.cards.get(card.id)! };
  }

  /** Ends an approve that did not merge: the card is open again for another decision. */
  function giveBack<T extends ApproveOutcome>(card: Card, outcome: T): T {
    store.cards.release(card.id);
    return outcome;
  }

  /** The PR moved on from the reviewed head: the card is void and the item is reviewed again. */
  async function sendBack(card: Card, item: Item, headSha: string | null): Promise<ApproveOutcome> {
    const moved = store.transaction(() => {
      store.cards.supersede(card.id, `head moved to ${headSha?.slice(0, 7) ?? 'a new commit'}`);
      return store.items.transition(item.id, 'reviewing', `PR head moved from ${card.headSha?.slice(0, 7)} to ${headSha?.slice(0, 7) ?? 'unknown'} after review`);
    });
    log.warn({ itemId: item.id, reviewed: card.headSha, head: headSha }, 'PR head moved after review; reviewing again');
    // The worktree is rebuilt from the pushed branch, so the review sees the new commits.
    await deps.workspace.remove(item.id).catch((err: unknown) => log.warn({ err, itemId: item.id }, 'could not remove the worktree'));
    deps.review(item.id);
    return { kind: 'head-moved', item: moved, headSha };
  }

  function recordMerged(card: Card, item: Item, mergeCommitSha: string, byGitHub: boolean): ApproveOutcome {
    const at = deps.now();
    const merged = store.transaction(() => {
      store.items.setMergeCommit(item.id, mergeCommitSha);
      const done = store.items.transition(item.id, 'merged', byGitHub ? 'merged on GitHub' : `merged ${mergeCommitSha.slice(0, 7)} (${deps.merge.method})`);
      store.cards.decide(card.id, 'approve', byGitHub ? MERGED_ON_GITHUB : `merged (${deps.merge.method})`);
      store.cards.dropRepliesOf(card.id);
      return done;
    });
    return { kind: 'merged', item: merged, mergeCommitSha, method: deps.merge.method, at, byGitHub };
  }

  /**
   * What a decided card still owes the world: after a merge the branch and worktree go and
   * drift checkpoints count it; after a rejection the PR is closed (with the reason quoted) and
   * the worktree goes. Idempotent, so a crash in the middle is finished on the next start.
   */
  async function followUp(card: Card, reason?: string): Promise<{ closeError?: string }> {
    const item = card.itemId === null ? undefined : store.items.get(card.itemId);
    let closeError: string | undefined;
    if (item?.state === 'merged') {
      const repo = repoOf(item.repo);
      if (item.branch) await github.deleteBranch(repo, item.branch).catch((err: unknown) => log.warn({ err, itemId: item.id }, 'could not delete the merged branch'));
      try {
        deps.afterMerge(item);
      } catch (err) {
        log.error({ err, itemId: item.id }, 'could not check for a drift checkpoint');
      }
    } else if (item?.state === 'rejected' && item.prNumber !== null) {
      const text = reason ?? card.outcome?.replace(/^rejected: /, '') ?? 'rejected';
      try {
        await github.closePullRequest({
          repo: repoOf(item.repo),
          number: item.prNumber,
          comment: `Rejected by ${card.decidedByName ?? 'the developer'} from nightshift:\n\n${text.split('\n').map((l) => `> ${l}`).join('\n')}`,
          marker: `<!-- nightshift:rejected:${item.id} -->`,
        });
      } catch (error) {
        closeError = describeError(error);
        log.warn({ err: error, itemId: item.id }, 'could not close the rejected PR');
      }
    }
    if (item) await deps.workspace.remove(item.id).catch((err: unknown) => log.warn({ err, itemId: item.id }, 'could not remove the worktree'));
    store.cards.followedUp(card.id);
    return closeError ? { closeError } : {};
  }

  /** Runs `work` for a claimed card, marking it in flight so the stuck-decision sweep leaves it alone. */
  async function inFlight<T>(cardId: number, work: () => Promise<T>): Promise<T> {
    running.add(cardId);
    try {
      return await work();
    } finally {
      running.delete(cardId);
    }
  }

  /**
   * Merges the card's PR at exactly the reviewed head. The card must have been claimed with
   * `approve` by `tap`. Fails closed: anything unknown gives the card back without merging.
   */
  function approve(cardId: number, force: boolean): Promise<ApproveOutcome> {
    return inFlight(cardId, () => approveClaimed(cardId, force));
  }

  async function approveClaimed(cardId: number, force: boolean): Promise<ApproveOutcome> {
    const card = store.cards.get(cardId);
    const item = card?.itemId == null ? undefined : store.items.get(card.itemId);
    if (!card || !item || card.status !== 'deciding' || card.decision !== 'approve') throw new Error(`card ${cardId} is not being approved`);
    if (item.prNumber === null || card.headSha === null) return giveBack(card, { kind: 'error', reason: 'the item has no pull request' });
    const repo = repoOf(item.repo);
    const ilog = log.child({ itemId: item.id, pr: item.prNumber });
    let result: MergeOutcome;
    try {
      const pr = await github.readMergeable(repo, item.prNumber, {
        ...(deps.merge.mergeableAttempts === undefined ? {} : { attempts: deps.merge.mergeableAttempts }),
        ...(deps.merge.mergeableIntervalMs === undefined ? {} : { intervalMs: deps.merge.mergeableIntervalMs }),
      });
      if (pr.merged) return await settleMerged(card, item, pr.mergeCommitSha ?? pr.headSha, true);
      if (pr.state === 'closed') return giveBack(card, { kind: 'closed' });
      if (pr.headSha !== card.headSha) return await sendBack(card, item, pr.headSha);
      const checks = await github.checksFor(repo, card.headSha, pr.baseRef);
      // "Merge anyway" passes failing checks only: pending ones may still fail.
      const blocked = checks.state === 'pending' || (checks.state === 'failing' && !(force && deps.merge.allowFailingChecks));
      if (blocked) {
        ilog.info({ checks: checks.state, failing: checks.failing, pending: checks.pending }, 'merge refused: checks');
        return giveBack(card, { kind: 'checks', checks, canForce: deps.merge.allowFailingChecks && checks.state === 'failing' });
      }
      if (pr.mergeable === null) return giveBack(card, { kind: 'mergeable-unknown' });
      if (pr.mergeable === false) return giveBack(card, { kind: 'not-mergeable', reason: 'it conflicts with the base branch' });
      // The item may have been cancelled, or the card voided, while GitHub was read.
      const now = store.items.get(item.id);
      if (store.cards.get(card.id)?.status !== 'deciding' || now?.state !== 'ready' || now.headSha !== card.headSha) {
        return giveBack(card, { kind: 'error', reason: `#${item.id} changed while the PR was checked` });
      }
      result = await github.mergePullRequest({ repo, number: item.prNumber, sha: card.headSha, method: deps.merge.method, title: `${item.title} (#${item.prNumber})` });
    } catch (error) {
      ilog.error({ err: error }, 'approve failed before the merge; nothing merged');
      return giveBack(card, { kind: 'error', reason: describeError(error) });
    }
    switch (result.kind) {
      case 'merged':
        ilog.info({ mergeCommitSha: result.mergeCommitSha, force, alreadyMerged: result.alreadyMerged }, 'merged');
        return settleMerged(card, item, result.mergeCommitSha, result.alreadyMerged);
      case 'head-moved':
        return sendBack(card, item, result.headSha);
      case 'not-mergeable':
        return giveBack(card, { kind: 'not-mergeable', reason: result.reason });
      case 'unclear':
        ilog.warn({ reason: result.reason }, 'GitHub did not confirm the merge; nothing merged');
        return giveBack(card, { kind: 'unclear', reason: result.reason });
    }
  }

  /** GitHub says merged: record it, then the follow-ups. Never gives the card back after a merge. */
  async function settleMerged(card: Card, item: Item, mergeCommitSha: string, byGitHub: boolean): Promise<ApproveOutcome> {
    let outcome: ApproveOutcome;
    try {
      outcome = recordMerged(card, item, mergeCommitSha, byGitHub);
    } catch (error) {
      // The card stays `deciding`; the stuck-decision sweep reads the PR and records the merge.
      log.error({ err: error, itemId: item.id, mergeCommitSha }, 'merged on GitHub, but recording it failed; it is settled later');
      return { kind: 'merged-unrecorded', mergeCommitSha };
    }
    await followUp(store.cards.get(card.id)!);
    return outcome;
  }

  /**
   * Rejects the card's PR with `reason`: the lesson is stored, the item ends `rejected`, the
   * PR is closed with a comment quoting the reason, and the worktree goes.
   */
  function reject(cardId: number, reason: string, by: Decider): Promise<RejectOutcome> {
    return inFlight(cardId, async () => {
      const text = reason.trim().replace(/\s+/g, ' ').slice(0, 500) || 'no reason given';
      const decided = store.transaction(() => {
        const card = store.cards.get(cardId);
        const item = card?.itemId == null ? undefined : store.items.get(card.itemId);
        if (!card || card.status !== 'deciding' || card.decision !== 'reject') return { kind: 'void', why: 'This card was already decided.' } as const;
        if (!item || item.state !== 'ready') {
          store.cards.supersede(card.id, 'the item left ready');
          store.cards.dropRepliesOf(card.id);
          return { kind: 'void', why: `#${card.itemId} is ${item?.state ?? 'gone'} now; nothing to reject.` } as const;
        }
        const lesson = store.lessons.add({ repo: item.repo, text: `${text} (rejected #${item.id} "${item.title}")`, itemId: item.id, createdBy: by.id });
        const rejected = store.items.transition(item.id, 'rejected', `rejected by ${by.name}: ${text}`);
        store.cards.decide(card.id, 'reject', `rejected: ${text}`);
        store.cards.dropRepliesOf(card.id);
        return { kind: 'rejected', item: rejected, lessonId: lesson.id } as const;
      });
      if (decided.kind === 'void') return decided;
      const { closeError } = await followUp(store.cards.get(cardId)!, text);
      return { kind: 'rejected', item: decided.item, reason: text, lessonId: decided.lessonId, ...(closeError ? { closeError } : {}) };
    });
  }

  /**
   * Settles decisions whose work is not running: an approve whose merge may have happened is
   * settled by reading the PR (never by merging again), the rest are given back; decided cards
   * whose follow-ups a crash cut short get them now. At start, every such card; on a tick, only
   * those claimed longer than `STUCK_DECISION_MS` ago.
   */
  async function reconcile(opts: { olderThanMs?: number } = {}): Promise<Array<{ card: Card; outcome: ApproveOutcome | 'released' }>> {
    const results: Array<{ card: Card; outcome: ApproveOutcome | 'released' }> = [];
    const cutoff = deps.now() - (opts.olderThanMs ?? 0);
    for (const card of store.cards.deciding()) {
      if (running.has(card.id) || (card.decidedAt ?? 0) > cutoff) continue;
      const item = card.itemId === null ? undefined : store.items.get(card.itemId);
      // A Reject waiting for its reason keeps waiting (until the question lapses).
      if (card.decision === 'reject' && store.cards.awaitedReply(card.chatId, card.decidedBy ?? 0)?.cardId === card.id) continue;
      if (card.decision === 'approve' && item?.state === 'ready' && item.prNumber !== null) {
        try {
          const pr = await github.readMergeable(repoOf(item.repo), item.prNumber, { attempts: 1 });
          if (pr.merged) {
            results.push({ card, outcome: await settleMerged(card, item, pr.mergeCommitSha ?? pr.headSha, true) });
            continue;
          }
        } catch (err) {
          log.warn({ err, cardId: card.id }, 'could not read the PR of an interrupted approve; giving the card back');
        }
      }
      store.transaction(() => {
        store.cards.dropRepliesOf(card.id);
        store.cards.release(card.id);
      });
      results.push({ card, outcome: 'released' });
    }
    for (const card of store.cards.unfinished()) {
      if (card.followedUpAt === null && !running.has(card.id)) await followUp(card);
    }
    return results;
  }

  return {
    tap,
    approve,
    reject,
    reconcile,

    /** Backs out of a Reject whose reason was never given: the card is open again. */
    cancelReject(cardId: number): boolean {
      return store.transaction(() => {
        store.cards.dropRepliesOf(cardId);
        return store.cards.release(cardId);
      });
    },

    /** Defers the card's item: it sleeps until the chosen time, then a fresh card is sent. */
    defer(cardId: number, choice: DeferChoice): { item: Item; wakeAt: number } {
      const wakeAt = deferUntil(choice, deps.now(), deps.timeZone);
      return store.transaction(() => {
        const card = store.cards.get(cardId)!;
        const item = store.items.transition(card.itemId!, 'deferred', `deferred (${choice})`);
        store.items.setWakeAt(item.id, wakeAt);
        store.cards.decide(card.id, 'defer', `deferred until ${new Date(wakeAt).toISOString()}`);
        // Nothing to clean up: the worktree is kept for when the item wakes.
        store.cards.followedUp(card.id);
        return { item: store.items.get(item.id)!, wakeAt };
      });
    },

    /** Deferred items whose time has come go back to `ready`; returns them (each needs a fresh card). */
    wakeDeferred(): Item[] {
      return store.transaction(() =>
        store.items.dueDeferred(deps.now()).map((item) => {
          store.items.transition(item.id, 'ready', 'deferral ended');
          store.items.setWakeAt(item.id, null);
          return store.items.get(item.id)!;
        }),
      );
    },

    /** Queues a new item that redoes a rejected one with the reason as feedback. */
    requeue(button: CardButton): Item | undefined {
      return store.transaction(() => {
        const card = button.cardId === null ? undefined : store.cards.get(button.cardId);
        const old = card?.itemId == null ? undefined : store.items.get(card.itemId);
        if (!card || !old || !useAll(card.id, ['requeue', 'drop'])) return undefined;
        const reason = card.outcome?.replace(/^rejected: /, '') ?? '';
        return store.items.create({
          repo: old.repo,
          title: old.title,
          request: `${old.request}\n\nFeedback on an earlier attempt (#${old.id}${old.prNumber ? `, PR #${old.prNumber}` : ''}, rejected): ${reason}`,
          chatId: old.chatId,
          createdBy: old.createdBy,
          parentItemId: old.id,
        });
      });
    },

    /** Leaves a rejected item dropped (the re-queue offer is used up). */
    drop(button: CardButton): boolean {
      return button.cardId !== null && useAll(button.cardId, ['requeue', 'drop']);
    },

    /** Queues an item a review proposed (from its "Add to queue" button). */
    queueProposed(button: CardButton): { kind: 'queued'; item: Item } | { kind: 'gone'; item: Item | undefined } {
      return store.transaction(() => {
        const item = store.items.get(Number(button.arg));
        if (!item || item.state !== 'proposed' || !store.cards.useButton(button.token)) return { kind: 'gone', item } as const;
        return { kind: 'queued', item: store.items.transition(item.id, 'queued', 'queued from the review card') } as const;
      });
    },

    /** Answers a drift checkpoint: on track, or pause building the repo. */
    decideCheckpoint(cardId: number, answer: 'on-track' | 'pause'): Card {
      return store.transaction(() => {
        const card = store.cards.get(cardId)!;
        if (answer === 'pause') store.checkpoints.pause(card.repo, `paused at drift checkpoint ${card.checkpointId}`);
        store.cards.decide(card.id, answer, answer === 'pause' ? `building paused for ${card.repo}` : 'on track');
        store.cards.followedUp(card.id);
        return store.cards.get(card.id)!;
      });
    },

    /** Resumes building a paused repo; false if it was not paused. */
    resumeRepo(button: CardButton): boolean {
      return store.transaction(() => store.cards.useButton(button.token) && store.checkpoints.resume(button.arg ?? ''));
    },

    /** Sends a failed item back to the queue (its Retry button); it resumes from its last checkpoint. */
    retryItem(button: CardButton): { kind: 'queued'; item: Item } | { kind: 'gone'; item: Item | undefined } {
      return store.transaction(() => {
        const item = store.items.get(Number(button.arg));
        if (!item || item.state !== 'failed' || !store.cards.useButton(button.token)) return { kind: 'gone', item } as const;
        store.items.setNotBefore(item.id, null);
        store.items.clearAttempts(item.id);
        return { kind: 'queued', item: store.items.transition(item.id, 'queued', 'retried by the user') } as const;
      });
    },

    /** Deletes a lesson from its /lessons button. */
    deleteLesson(button: CardButton): boolean {
      return store.transaction(() => store.cards.useButton(button.token) && store.lessons.remove(Number(button.arg)));
    },
  };

  function useAll(cardId: number, actions: readonly string[]): boolean {
    const buttons = store.cards.buttons(cardId).filter((b) => actions.includes(b.action));
    let first = false;
    for (const [i, b] of buttons.entries()) {
      const used = store.cards.useButton(b.token);
      if (i === 0) first = used;
    }
    return first && buttons.length > 0;
  }
}

/** The decisions use cases. */
export type Decisions = ReturnType<typeof createDecisions>;

function describeError(error: unknown): string {
  if (error && typeof error === 'object' && 'status' in error && typeof error.status === 'number') {
    return `GitHub answered ${error.status}${error instanceof Error ? `: ${error.message.split('\n')[0]!.slice(0, 200)}` : ''}`;
  }
  return error instanceof Error ? error.message.slice(0, 200) : String(error);
}
