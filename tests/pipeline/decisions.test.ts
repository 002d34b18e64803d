import Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RepoName } from '../../src/domain/parse-request.js';
import type { ChecksState, GitHub, MergeOutcome, PullRequestState } from '../../src/github/create-github.js';
import { createDecisions, MERGED_ON_GITHUB, REASON_WAIT_MS, STUCK_DECISION_MS, type DecisionsDeps, type TapOrigin } from '../../src/pipeline/decisions.js';
import type { Card, CardButton, Decider } from '../../src/store/cards.js';
import type { Item, NewItem } from '../../src/store/items.js';
import type { Store } from '../../src/store/open-store.js';
import { HEAD, makeChecks, makeNewItem, makePr, makeStore } from '../helpers/factories.js';

const REPO: RepoName = { owner: 'me', name: 'app', fullName: 'me/app' };
const MOVED = 'f00ba47'.padEnd(40, '9');
const MERGE_SHA = 'e4e4e4e'.padEnd(40, '1');
const ALICE: Decider = { id: 111, name: '@alice' };
const BOB: Decider = { id: 222, name: 'Bob' };
const CHAT = 111;
const MINUTE = 60_000;
const log = pino({ level: 'silent' });

/** Every button a review card carries, as the card desk makes them. */
const CARD_ACTIONS = [
  { action: 'approve' },
  { action: 'reject' },
  { action: 'defer-menu' },
  { action: 'defer', arg: 'hour' },
  { action: 'defer', arg: 'evening' },
  { action: 'back' },
  { action: 'merge-anyway' },
];
const REASON_ACTIONS = [{ action: 'reason', arg: 'too big' }, { action: 'reason-cancel' }];

/** An error as Octokit throws it: a status and a message. */
function httpError(status: number, message: string): Error {
  return Object.assign(new Error(message), { status });
}

type GitHubPort = DecisionsDeps['github'];

/** The GitHub port of the decisions, answering from fields the test sets and recording every call. */
class FakeGitHub implements GitHubPort {
  pr = makePr();
  checks = makeChecks();
  mergeOutcome: MergeOutcome = { kind: 'merged', mergeCommitSha: MERGE_SHA, alreadyMerged: false };
  readError: unknown;
  closeError: unknown;
  deleteError: unknown;
  /** Runs during the PR read: what happens elsewhere while the approve waits on GitHub. */
  duringRead: (() => void) | undefined;
  /** While set, PR reads wait for it: an approve held in flight. */
  readGate: Promise<void> | undefined;
  readonly reads: Array<{ number: number; opts: unknown }> = [];
  readonly checkReads: Array<{ sha: string; base: string }> = [];
  readonly merges: Array<Parameters<GitHub['mergePullRequest']>[0]> = [];
  readonly closes: Array<Parameters<GitHub['closePullRequest']>[0]> = [];
  readonly deletes: Array<{ repo: string; branch: string }> = [];

  async readMergeable(repo: RepoName, number: number, opts?: { attempts?: number; intervalMs?: number }): Promise<PullRequestState> {
    expect(repo).toEqual(REPO);
    this.reads.push({ number, opts });
    this.duringRead?.();
    await this.readGate;
    if (this.readError) throw this.readError;
    return this.pr;
  }
  async checksFor(_repo: RepoName, sha: string, base: string): Promise<ChecksState> {
    this.checkReads.push({ sha, base });
    return this.checks;
  }
  async mergePullRequest(m: Parameters<GitHub['mergePullRequest']>[0]): Promise<MergeOutcome> {
    this.merges.push(m);
    return this.mergeOutcome;
  }
  async closePullRequest(c: Parameters<GitHub['closePullRequest']>[0]): Promise<void> {
    this.closes.push(c);
    if (this.closeError) throw this.closeError;
  }
  async deleteBranch(repo: RepoName, branch: string): Promise<void> {
    this.deletes.push({ repo: repo.fullName, branch });
    if (this.deleteError) throw this.deleteError;
  }
}

interface Harness {
  store: Store;
  path: string;
  clock: { now: number };
  github: FakeGitHub;
  removed: number[];
  reviewed: number[];
  afterMerge: Item[];
  decisions: ReturnType<typeof createDecisions>;
}

let h: Harness;
let nextMessageId = 500;

function harness(merge: Partial<DecisionsDeps['merge']> = {}, overrides: Partial<DecisionsDeps> = {}): Harness {
  const { store, clock, path } = makeStore();
  const github = new FakeGitHub();
  const removed: number[] = [];
  const reviewed: number[] = [];
  const afterMerge: Item[] = [];
  const decisions = createDecisions({
    store,
    github,
    workspace: { remove: async (itemId) => void removed.push(itemId) },
    repos: [REPO],
    review: (itemId) => void reviewed.push(itemId),
    afterMerge: (item) => void afterMerge.push(item),
    merge: { method: 'squash', allowFailingChecks: false, mergeableAttempts: 1, mergeableIntervalMs: 0, ...merge },
    timeZone: 'Europe/Berlin',
    now: () => clock.now,
    log,
    ...overrides,
  });
  return { store, path, clock, github, removed, reviewed, afterMerge, decisions };
}

beforeEach(() => {
  h = harness();
});
afterEach(() => {
  h.store.close();
});

/** An item with a PR at HEAD, moved through the legal states to `ready`. */
function readyItem(overrides: Partial<NewItem> = {}, store = h.store): Item {
  const item = store.items.create(makeNewItem(overrides));
  store.items.transition(item.id, 'building');
  store.items.setPullRequest(item.id, { branch: `nightshift/${item.id}-add-a-flag`, number: 7, url: 'https://github.com/me/app/pull/7', headSha: HEAD });
  store.items.transition(item.id, 'reviewing');
  return store.items.transition(item.id, 'ready', 'reviewed');
}

/** A sent message carrying `tokens`; returns where a tap on it comes from. */
function sendMessage(tokens: readonly string[], chatId = CHAT, store = h.store): Omit<TapOrigin, 'by'> {
  const [outboxId] = store.outbox.enqueue({ chatId, text: 'message' });
  const messageId = nextMessageId++;
  store.outbox.markSent(outboxId!, messageId);
  store.cards.attachButtons(tokens, outboxId!);
  return { chatId, messageId };
}

interface Shown {
  card: Card;
  item: Item;
  at: Omit<TapOrigin, 'by'>;
  /** The reject question's message, which carries the quick reasons. */
  question: Omit<TapOrigin, 'by'>;
  token: (action: string, arg?: string) => string;
}

/** A review card shown in the chat with every button, bound to the item's head. */
function showCard(item = readyItem(), opts: { held?: boolean } = {}): Shown {
  const card = h.store.cards.create({ kind: 'review', itemId: item.id, repo: item.repo, chatId: item.chatId, headSha: item.headSha!, held: true });
  const buttons = h.store.cards.addButtons(card.id, [...CARD_ACTIONS, ...REASON_ACTIONS]);
  const onCard = buttons.filter((b) => !b.action.startsWith('reason'));
  const at = sendMessage(onCard.map((b) => b.token));
  const question = sendMessage(buttons.filter((b) => b.action.startsWith('reason')).map((b) => b.token));
  if (!opts.held) h.store.cards.shown(card.id, { outboxId: h.store.cards.button(onCard[0]!.token)!.outboxId!, html: '<b>card</b>' });
  const token = (action: string, arg?: string) => buttons.find((b) => b.action === action && (arg === undefined || b.arg === arg))!.token;
  return { card: h.store.cards.get(card.id)!, item, at, question, token };
}

const tapAs = (by: Decider, shown: Shown, action: string, arg?: string) => h.decisions.tap(shown.token(action, arg), { ...shown.at, by });
const tap = (shown: Shown, action: string, arg?: string) => tapAs(ALICE, shown, action, arg);
const cardOf = (shown: Shown) => h.store.cards.get(shown.card.id)!;
const itemOf = (shown: Shown) => h.store.items.get(shown.item.id)!;

/** A card whose approve was claimed, ready for `approve`. */
function claimedForApprove(): Shown {
  const shown = showCard();
  expect(tap(shown, 'approve').kind).toBe('ok');
  return shown;
}

describe('tap', () => {
  it('refuses a token it never made', () => {
    const shown = showCard();
    expect(h.decisions.tap('AAAAAAAAAAAAAAAA', { ...shown.at, by: ALICE })).toEqual({ kind: 'refused', why: 'This button is not valid.' });
    expect(cardOf(shown).status).toBe('open');
  });

  it('takes a tap on the earlier copy of a card sent again after a crash mid-send, and nowhere else', () => {
    const shown = showCard();
    const approve = shown.token('approve');
    expect(h.decisions.tap(approve, { ...shown.at, messageId: shown.at.messageId - 1, by: ALICE })).toMatchObject({ kind: 'refused', why: expect.stringMatching(/does not belong/) });
    // The same buttons on a row that was sent again: a copy may be above it, at any earlier id.
    const [outboxId] = h.store.outbox.enqueue({ chatId: CHAT, text: 'card again' });
    h.store.outbox.markSending(outboxId!, true);
    const messageId = nextMessageId++;
    h.store.outbox.markSent(outboxId!, messageId);
    h.store.cards.attachButtons([approve], outboxId!);
    expect(h.decisions.tap(approve, { chatId: 999, messageId: messageId - 1, by: ALICE }).kind).toBe('refused');
    expect(h.decisions.tap(approve, { chatId: CHAT, messageId: messageId + 1, by: ALICE }).kind).toBe('refused');
    expect(h.decisions.tap(approve, { chatId: CHAT, messageId: shown.at.messageId, by: ALICE }).kind).toBe('ok');
    expect(cardOf(shown).status).toBe('deciding');
  });

  it('refuses a real token tapped under another message, in another chat, or never sent', () => {
    const shown = showCard();
    const other = sendMessage([]);
    const approve = shown.token('approve');
    expect(h.decisions.tap(approve, { ...other, by: ALICE })).toMatchObject({ kind: 'refused', why: expect.stringMatching(/does not belong/) });
    expect(h.decisions.tap(approve, { chatId: 999, messageId: shown.at.messageId, by: ALICE })).toMatchObject({ kind: 'refused', why: expect.stringMatching(/does not belong/) });
    // A button whose message is still in the outbox (no Telegram message id yet).
    const [unsent] = h.store.cards.addButtons(shown.card.id, [{ action: 'approve' }]);
    const [outboxId] = h.store.outbox.enqueue({ chatId: CHAT, text: 'pending' });
    h.store.cards.attachButtons([unsent!.token], outboxId!);
    expect(h.decisions.tap(unsent!.token, { chatId: CHAT, messageId: 0, by: ALICE }).kind).toBe('refused');
    const [loose] = h.store.cards.addButtons(shown.card.id, [{ action: 'approve' }]);
    expect(h.decisions.tap(loose!.token, { ...shown.at, by: ALICE }).kind).toBe('refused');
    expect(cardOf(shown).status).toBe('open');
  });

  it('refuses the buttons of a superseded card and of a card not delivered yet', () => {
    const old = showCard();
    h.store.cards.create({ kind: 'review', itemId: old.item.id, repo: 'me/app', chatId: CHAT, headSha: HEAD });
    expect(tap(old, 'approve')).toEqual({ kind: 'refused', why: 'This card is out of date; use the newest card for this item.' });

    const held = showCard(readyItem(), { held: true });
    expect(tap(held, 'approve')).toMatchObject({ kind: 'refused', why: expect.stringMatching(/not been delivered/) });
    expect(cardOf(held).status).toBe('held');
  });

  it('refuses a card whose item is no longer ready', () => {
    const shown = showCard();
    h.store.items.transition(shown.item.id, 'cancelled', 'cancelled by user');
    expect(tap(shown, 'approve')).toEqual({ kind: 'refused', why: `#${shown.item.id} is cancelled now; this card no longer applies.` });
    expect(cardOf(shown).status).toBe('open');
  });

  it('refuses a card made for another head than the item’s', () => {
    const shown = showCard();
    h.store.items.setHeadSha(shown.item.id, MOVED);
    expect(tap(shown, 'approve')).toMatchObject({ kind: 'refused', why: expect.stringMatching(/PR changed since this card was made/) });
    expect(cardOf(shown).status).toBe('open');
  });

  it('claims the decision for exactly one tap; the others are told who has it', () => {
    const shown = showCard();
    const won = tap(shown, 'approve');
    expect(won).toMatchObject({ kind: 'ok', card: { status: 'deciding', decision: 'approve', decidedBy: ALICE.id }, item: { id: shown.item.id } });
    expect(tap(shown, 'approve')).toEqual({ kind: 'taken', why: 'Already being handled: approve by @alice.' });
    expect(tapAs(BOB, shown, 'reject')).toEqual({ kind: 'taken', why: 'Already being handled: approve by @alice.' });
    expect(tapAs(BOB, shown, 'defer', 'hour').kind).toBe('taken');
    // The loser's Reject did not start a question.
    expect(h.store.cards.awaitedReply(CHAT, BOB.id)).toBeUndefined();
    expect(cardOf(shown)).toMatchObject({ status: 'deciding', decision: 'approve', decidedBy: ALICE.id });
  });

  it('tells a late tap what the card ended in', () => {
    const shown = showCard();
    h.store.cards.decide(shown.card.id, 'approve', 'merged e4e4e4e', ALICE);
    expect(tap(shown, 'reject')).toEqual({ kind: 'taken', why: 'Already decided: merged e4e4e4e.' });
  });

  it('navigates the defer menu without claiming the card', () => {
    const shown = showCard();
    expect(tap(shown, 'defer-menu').kind).toBe('ok');
    expect(tap(shown, 'back').kind).toBe('ok');
    expect(cardOf(shown).status).toBe('open');
    expect(tap(shown, 'defer', 'hour')).toMatchObject({ kind: 'ok', card: { status: 'deciding', decision: 'defer' } });
  });

  it('refuses "merge anyway" unless failing checks may be overridden, and claims it as an approve when they may', () => {
    const shown = showCard();
    expect(tap(shown, 'merge-anyway')).toEqual({ kind: 'refused', why: 'Merging with failing checks is not allowed here.' });
    expect(cardOf(shown).status).toBe('open');

    h.store.close();
    h = harness({ allowFailingChecks: true });
    const allowed = showCard();
    expect(tap(allowed, 'merge-anyway')).toMatchObject({ kind: 'ok', card: { status: 'deciding', decision: 'approve' } });
  });

  it('waits for the reason after Reject, for the tapper only, until REASON_WAIT_MS', () => {
    const shown = showCard();
    expect(tap(shown, 'reject')).toMatchObject({ kind: 'ok', card: { status: 'deciding', decision: 'reject' } });
    expect(h.store.cards.awaitedReply(CHAT, ALICE.id)).toEqual({ chatId: CHAT, userId: ALICE.id, kind: 'reject-reason', cardId: shown.card.id, expiresAt: h.clock.now + REASON_WAIT_MS });
    expect(h.store.cards.awaitedReply(CHAT, BOB.id)).toBeUndefined();
  });

  it('takes a quick reason only while the card waits for one', () => {
    const shown = showCard();
    const reason = () => h.decisions.tap(shown.token('reason', 'too big'), { ...shown.question, by: ALICE });
    expect(reason().kind).toBe('taken');
    tap(shown, 'approve');
    expect(reason().kind).toBe('taken');
    h.store.cards.release(shown.card.id);
    tap(shown, 'reject');
    expect(reason()).toMatchObject({ kind: 'ok', button: { action: 'reason', arg: 'too big' } });
    expect(h.decisions.tap(shown.token('reason-cancel'), { ...shown.question, by: ALICE }).kind).toBe('ok');
  });

  it('answers only On track and Pause on a checkpoint card, once', () => {
    const checkpoint = h.store.checkpoints.create('me/app', 4);
    const card = h.store.cards.create({ kind: 'checkpoint', checkpointId: checkpoint.id, repo: 'me/app', chatId: CHAT });
    const [onTrack, pause] = h.store.cards.addButtons(card.id, [{ action: 'on-track' }, { action: 'pause' }]);
    const [approve] = h.store.cards.addButtons(card.id, [{ action: 'approve' }]);
    const at = sendMessage([onTrack!.token, pause!.token, approve!.token]);
    h.store.cards.shown(card.id, { outboxId: h.store.cards.button(onTrack!.token)!.outboxId!, html: 'checkpoint' });

    expect(h.decisions.tap(approve!.token, { ...at, by: ALICE }).kind).toBe('refused');
    expect(h.decisions.tap(pause!.token, { ...at, by: ALICE })).toMatchObject({ kind: 'ok', card: { status: 'deciding', decision: 'pause' }, item: undefined });
    expect(h.decisions.tap(onTrack!.token, { ...at, by: BOB })).toEqual({ kind: 'taken', why: 'Already being handled: pause by @alice.' });
  });

  it('refuses a stored button whose action or defer choice it does not know', () => {
    const shown = showCard();
    const [unknown, forever] = h.store.cards.addButtons(shown.card.id, [{ action: 'merge-now' }, { action: 'defer', arg: 'forever' }]);
    const at = sendMessage([unknown!.token, forever!.token]);
    expect(h.decisions.tap(unknown!.token, { ...at, by: ALICE })).toEqual({ kind: 'refused', why: 'This button is not valid.' });
    expect(h.decisions.tap(forever!.token, { ...at, by: ALICE })).toEqual({ kind: 'refused', why: 'This button is not valid.' });
    expect(cardOf(shown).status).toBe('open');
  });

  it('lets a one-shot follow-up through once, whatever became of its card', () => {
    const shown = showCard();
    h.store.cards.decide(shown.card.id, 'reject', 'rejected: too big', ALICE);
    const [requeue] = h.store.cards.addButtons(shown.card.id, [{ action: 'requeue' }]);
    const at = sendMessage([requeue!.token]);
    expect(h.decisions.tap(requeue!.token, { ...at, by: ALICE })).toMatchObject({ kind: 'ok', button: { action: 'requeue' } });
    h.store.cards.useButton(requeue!.token);
    expect(h.decisions.tap(requeue!.token, { ...at, by: ALICE })).toEqual({ kind: 'taken', why: 'Already done.' });
  });
});

describe('approve', () => {
  it('merges exactly the reviewed head, records the merge, deletes the branch and the worktree, and counts the merge', async () => {
    const shown = claimedForApprove();
    const outcome = await h.decisions.approve(shown.card.id, false);

    expect(outcome).toMatchObject({ kind: 'merged', mergeCommitSha: MERGE_SHA, method: 'squash', at: h.clock.now, byGitHub: false, item: { state: 'merged' } });
    expect(h.github.merges).toEqual([{ repo: REPO, number: 7, sha: HEAD, method: 'squash', title: 'Add a flag (#7)' }]);
    expect(h.github.checkReads).toEqual([{ sha: HEAD, base: 'main' }]);
    expect(h.github.reads).toEqual([{ number: 7, opts: { attempts: 1, intervalMs: 0 } }]);
    expect(itemOf(shown)).toMatchObject({ state: 'merged', mergeCommitSha: MERGE_SHA });
    expect(cardOf(shown)).toMatchObject({ status: 'decided', decision: 'approve', outcome: 'merged (squash)', decidedBy: ALICE.id });
    expect(cardOf(shown).followedUpAt).toBe(h.clock.now);
    expect(h.github.deletes).toEqual([{ repo: 'me/app', branch: `nightshift/${shown.item.id}-add-a-flag` }]);
    expect(h.removed).toEqual([shown.item.id]);
    expect(h.afterMerge.map((i) => [i.id, i.state])).toEqual([[shown.item.id, 'merged']]);
  });

  it('merges when GitHub reports no checks at all', async () => {
    const shown = claimedForApprove();
    h.github.checks = makeChecks({ state: 'none', required: [], passing: [] });
    expect((await h.decisions.approve(shown.card.id, false)).kind).toBe('merged');
    expect(h.github.merges).toHaveLength(1);
  });

  it('records a PR already merged on GitHub without merging it again', async () => {
    const shown = claimedForApprove();
    h.github.pr = makePr({ state: 'closed', merged: true, mergeCommitSha: MERGE_SHA, mergedBy: 'someone', mergeable: null });
    const outcome = await h.decisions.approve(shown.card.id, false);

    expect(outcome).toMatchObject({ kind: 'merged', byGitHub: true, mergeCommitSha: MERGE_SHA });
    expect(h.github.merges).toEqual([]);
    expect(itemOf(shown)).toMatchObject({ state: 'merged', mergeCommitSha: MERGE_SHA, stateReason: 'merged on GitHub' });
    expect(cardOf(shown)).toMatchObject({ status: 'decided', outcome: MERGED_ON_GITHUB });
    expect(h.afterMerge).toHaveLength(1);
  });

  it('keeps the merge when deleting the branch, removing the worktree or counting the merge fails afterwards', async () => {
    h.store.close();
    h = harness({}, {
      workspace: { remove: async () => Promise.reject(new Error('disk gone')) },
      afterMerge: () => {
        throw new Error('drift check broke');
      },
    });
    const shown = claimedForApprove();
    h.github.deleteError = httpError(500, 'boom');
    expect((await h.decisions.approve(shown.card.id, false)).kind).toBe('merged');
    expect(itemOf(shown).state).toBe('merged');
    expect(cardOf(shown).status).toBe('decided');
    expect(h.github.merges).toHaveLength(1);
  });

  describe('gives the card back without merging', () => {
    it('while required checks fail, offering "merge anyway" only where allowed', async () => {
      const shown = claimedForApprove();
      const failing = makeChecks({ state: 'failing', failing: ['ci'], passing: [] });
      h.github.checks = failing;
      expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'checks', checks: failing, canForce: false });
      // Forcing is not allowed here: the force flag alone changes nothing.
      tap(shown, 'approve');
      expect(await h.decisions.approve(shown.card.id, true)).toMatchObject({ kind: 'checks', canForce: false });
      expect(h.github.merges).toEqual([]);
      expect(cardOf(shown)).toMatchObject({ status: 'open', decision: null, decidedBy: null });
      expect(itemOf(shown).state).toBe('ready');

      h.store.close();
      h = harness({ allowFailingChecks: true });
      const allowed = claimedForApprove();
      h.github.checks = failing;
      expect(await h.decisions.approve(allowed.card.id, false)).toMatchObject({ kind: 'checks', canForce: true });
      expect(h.github.merges).toEqual([]);
    });

    it('while checks are pending, without offering to force', async () => {
      h.store.close();
      h = harness({ allowFailingChecks: true });
      const shown = claimedForApprove();
      h.github.checks = makeChecks({ state: 'pending', pending: ['ci'], passing: [] });
      expect(await h.decisions.approve(shown.card.id, false)).toMatchObject({ kind: 'checks', canForce: false, checks: { state: 'pending' } });
      expect(h.github.merges).toEqual([]);
      expect(cardOf(shown).status).toBe('open');
    });

    it('while GitHub has not worked out whether it can merge, or says it cannot', async () => {
      const shown = claimedForApprove();
      h.github.pr = makePr({ mergeable: null });
      expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'mergeable-unknown' });
      expect(cardOf(shown).status).toBe('open');

      tap(shown, 'approve');
      h.github.pr = makePr({ mergeable: false });
      expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'not-mergeable', reason: 'it conflicts with the base branch' });
      expect(h.github.merges).toEqual([]);
      expect(cardOf(shown).status).toBe('open');
      expect(itemOf(shown).state).toBe('ready');
    });

    it('when the PR was closed on GitHub', async () => {
      const shown = claimedForApprove();
      h.github.pr = makePr({ state: 'closed', mergeable: null });
      expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'closed' });
      expect(h.github.merges).toEqual([]);
      expect(cardOf(shown).status).toBe('open');
    });

    it('when GitHub refuses the merge or does not confirm it, after exactly one merge call', async () => {
      const shown = claimedForApprove();
      h.github.mergeOutcome = { kind: 'unclear', reason: 'GitHub answered 502 to the merge call; the PR is still open and unmerged' };
      expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'unclear', reason: h.github.mergeOutcome.reason });
      expect(h.github.merges).toHaveLength(1);
      expect(cardOf(shown).status).toBe('open');
      expect(itemOf(shown)).toMatchObject({ state: 'ready', mergeCommitSha: null });

      tap(shown, 'approve');
      h.github.mergeOutcome = { kind: 'not-mergeable', reason: 'Required status check "ci" is expected.' };
      expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'not-mergeable', reason: 'Required status check "ci" is expected.' });
      expect(h.github.merges).toHaveLength(2);
      expect(cardOf(shown).status).toBe('open');
    });

    it('when GitHub cannot be read, saying why', async () => {
      const shown = claimedForApprove();
      h.github.readError = httpError(502, 'Bad Gateway\n<html>…</html>');
      expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'error', reason: 'GitHub answered 502: Bad Gateway' });
      expect(h.github.merges).toEqual([]);
      expect(cardOf(shown).status).toBe('open');

      tap(shown, 'approve');
      h.github.readError = new Error('socket hang up');
      expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'error', reason: 'socket hang up' });
    });

    it('when the item has no pull request', async () => {
      const item = h.store.items.create(makeNewItem());
      h.store.items.transition(item.id, 'building');
      h.store.items.transition(item.id, 'reviewing');
      const shown = showCard(h.store.items.transition(item.id, 'ready'));
      tap(shown, 'approve');
      expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'error', reason: 'the item has no pull request' });
      expect(h.github.reads).toEqual([]);
      expect(cardOf(shown).status).toBe('open');
    });
  });

  it('merges despite failing checks when forced and allowed, still pinned to the reviewed head', async () => {
    h.store.close();
    h = harness({ allowFailingChecks: true, method: 'rebase' });
    const shown = showCard();
    expect(tap(shown, 'merge-anyway').kind).toBe('ok');
    h.github.checks = makeChecks({ state: 'failing', failing: ['ci'], passing: [] });
    expect(await h.decisions.approve(shown.card.id, true)).toMatchObject({ kind: 'merged', method: 'rebase' });
    expect(h.github.merges).toEqual([expect.objectContaining({ sha: HEAD, method: 'rebase' })]);
  });

  it('sends the item back to review when the PR head moved after the review, before any merge call', async () => {
    const shown = claimedForApprove();
    h.github.pr = makePr({ headSha: MOVED });
    const outcome = await h.decisions.approve(shown.card.id, false);

    expect(outcome).toMatchObject({ kind: 'head-moved', headSha: MOVED, item: { state: 'reviewing' } });
    expect(h.github.merges).toEqual([]);
    expect(h.github.checkReads).toEqual([]);
    expect(itemOf(shown)).toMatchObject({ state: 'reviewing', stateReason: 'PR head moved from a1b2c3d to f00ba47 after review' });
    expect(cardOf(shown)).toMatchObject({ status: 'superseded', outcome: 'head moved to f00ba47' });
    expect(h.removed).toEqual([shown.item.id]);
    expect(h.reviewed).toEqual([shown.item.id]);
    // The old card's buttons are dead.
    expect(tap(shown, 'approve').kind).toBe('refused');
  });

  it('sends the item back to review when GitHub refuses the merge because the head moved (409)', async () => {
    const shown = claimedForApprove();
    h.github.mergeOutcome = { kind: 'head-moved', headSha: null };
    expect(await h.decisions.approve(shown.card.id, false)).toMatchObject({ kind: 'head-moved', headSha: null });
    expect(h.github.merges).toHaveLength(1);
    expect(itemOf(shown).state).toBe('reviewing');
    expect(cardOf(shown).status).toBe('superseded');
    expect(h.reviewed).toEqual([shown.item.id]);
  });

  it('says "already merged on GitHub" when the merge call finds the PR merged at another head', async () => {
    const shown = claimedForApprove();
    h.github.mergeOutcome = { kind: 'merged', mergeCommitSha: MERGE_SHA, alreadyMerged: true };
    expect(await h.decisions.approve(shown.card.id, false)).toMatchObject({ kind: 'merged', byGitHub: true });
    expect(h.github.merges).toHaveLength(1);
    expect(itemOf(shown).stateReason).toBe('merged on GitHub');
    expect(cardOf(shown).outcome).toBe(MERGED_ON_GITHUB);
  });

  it('refuses a card that was not claimed for an approve', async () => {
    const shown = showCard();
    await expect(h.decisions.approve(shown.card.id, false)).rejects.toThrow(/not being approved/);
    tap(shown, 'reject');
    await expect(h.decisions.approve(shown.card.id, false)).rejects.toThrow(/not being approved/);
    expect(h.github.reads).toEqual([]);
  });

  it('does not merge an item that left ready, or whose head changed, while the approve was reading GitHub', async () => {
    const shown = claimedForApprove();
    h.github.duringRead = () => h.store.items.transition(shown.item.id, 'cancelled', 'cancelled by user');
    expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'error', reason: `#${shown.item.id} changed while the PR was checked` });
    expect(h.github.merges).toEqual([]);
    expect(itemOf(shown).state).toBe('cancelled');

    const other = claimedForApprove();
    h.github.duringRead = () => h.store.items.setHeadSha(other.item.id, MOVED);
    expect((await h.decisions.approve(other.card.id, false)).kind).toBe('error');
    expect(h.github.merges).toEqual([]);
    expect(cardOf(other).status).toBe('open');
  });

  it('never gives the card back once GitHub merged, even when SQLite cannot record it; a later reconcile records it without merging again', async () => {
    const shown = claimedForApprove();
    // A real write failure inside the recording transaction.
    const raw = new Database(h.path);
    raw.exec(`CREATE TRIGGER fail_merge BEFORE UPDATE OF state ON items WHEN NEW.state = 'merged' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`);
    expect(await h.decisions.approve(shown.card.id, false)).toEqual({ kind: 'merged-unrecorded', mergeCommitSha: MERGE_SHA });
    expect(cardOf(shown)).toMatchObject({ status: 'deciding', decision: 'approve' });
    expect(itemOf(shown)).toMatchObject({ state: 'ready', mergeCommitSha: null });
    // The card refuses a second Approve meanwhile.
    expect(tap(shown, 'approve').kind).toBe('taken');

    raw.exec('DROP TRIGGER fail_merge');
    raw.close();
    h.github.pr = makePr({ state: 'closed', merged: true, mergeCommitSha: MERGE_SHA, mergeable: null });
    const [settled] = await h.decisions.reconcile();
    expect(settled?.outcome).toMatchObject({ kind: 'merged', mergeCommitSha: MERGE_SHA });
    expect(h.github.merges).toHaveLength(1);
    expect(itemOf(shown)).toMatchObject({ state: 'merged', mergeCommitSha: MERGE_SHA });
  });
});

describe('reject', () => {
  it('stores the reason as a lesson, ends the item rejected, and closes the PR quoting the reason', async () => {
    const shown = showCard();
    tap(shown, 'reject');
    const outcome = await h.decisions.reject(shown.card.id, '  Use the   existing\nsum helper ', ALICE);

    const reason = 'Use the existing sum helper';
    expect(outcome).toMatchObject({ kind: 'rejected', reason, item: { id: shown.item.id, state: 'rejected' } });
    expect(outcome).not.toHaveProperty('closeError');
    if (outcome.kind !== 'rejected') throw new Error('not rejected');
    expect(h.store.lessons.get(outcome.lessonId)).toMatchObject({ repo: 'me/app', itemId: shown.item.id, text: `${reason} (rejected #${shown.item.id} "Add a flag")` });
    expect(itemOf(shown)).toMatchObject({ state: 'rejected', stateReason: `rejected by @alice: ${reason}` });
    expect(cardOf(shown)).toMatchObject({ status: 'decided', decision: 'reject', outcome: `rejected: ${reason}`, decidedBy: ALICE.id });
    expect(h.store.cards.awaitedReply(CHAT, ALICE.id)).toBeUndefined();
    expect(h.github.closes).toEqual([
      { repo: REPO, number: 7, comment: `Rejected by @alice from nightshift:\n\n> ${reason}`, marker: `<!-- nightshift:rejected:${shown.item.id} -->` },
    ]);
    expect(h.removed).toEqual([shown.item.id]);
    expect(cardOf(shown).followedUpAt).toBe(h.clock.now);
  });

  it('caps a long reason at 500 characters, and names an empty one', async () => {
    const shown = showCard();
    tap(shown, 'reject');
    expect(await h.decisions.reject(shown.card.id, 'x'.repeat(2000), ALICE)).toMatchObject({ reason: 'x'.repeat(500) });
    const empty = showCard();
    tap(empty, 'reject');
    expect(await h.decisions.reject(empty.card.id, ' \n ', ALICE)).toMatchObject({ kind: 'rejected', reason: 'no reason given' });
  });

  it('keeps the rejection when the PR cannot be closed, and says why', async () => {
    const shown = showCard();
    tap(shown, 'reject');
    h.github.closeError = httpError(500, 'Server Error');
    const outcome = await h.decisions.reject(shown.card.id, 'too big', ALICE);
    expect(outcome).toMatchObject({ closeError: 'GitHub answered 500: Server Error', item: { state: 'rejected' } });
    expect(itemOf(shown).state).toBe('rejected');
    expect(h.store.lessons.list('me/app')).toHaveLength(1);
    expect(h.removed).toEqual([shown.item.id]);
  });

  it('does nothing for a card not waiting for a reject reason, or rejected already', async () => {
    const already = { kind: 'void', why: 'This card was already decided.' };
    const shown = showCard();
    expect(await h.decisions.reject(shown.card.id, 'too big', ALICE)).toEqual(already);
    tap(shown, 'approve');
    expect(await h.decisions.reject(shown.card.id, 'too big', ALICE)).toEqual(already);
    expect(cardOf(shown)).toMatchObject({ status: 'deciding', decision: 'approve' });
    h.store.cards.release(shown.card.id);
    tap(shown, 'reject');
    expect((await h.decisions.reject(shown.card.id, 'too big', ALICE)).kind).toBe('rejected');
    // A quick reason tapped and a reason typed at once: one lesson, one close.
    expect(await h.decisions.reject(shown.card.id, 'typed too', ALICE)).toEqual(already);
    expect(h.store.lessons.list()).toHaveLength(1);
    expect(h.github.closes).toHaveLength(1);
  });

  it('voids the card when the item left ready while the reason was awaited', async () => {
    const shown = showCard();
    tap(shown, 'reject');
    h.store.items.transition(shown.item.id, 'cancelled');
    expect(await h.decisions.reject(shown.card.id, 'too big', ALICE)).toEqual({ kind: 'void', why: `#${shown.item.id} is cancelled now; nothing to reject.` });
    expect(cardOf(shown)).toMatchObject({ status: 'superseded', outcome: 'the item left ready' });
    expect(h.store.cards.awaitedReply(CHAT, ALICE.id)).toBeUndefined();
    expect(h.store.lessons.list()).toEqual([]);
    expect(h.github.closes).toEqual([]);
  });

  it('backs out of a reject whose reason never came: the card is open and the question gone', () => {
    const shown = showCard();
    tap(shown, 'reject');
    expect(h.decisions.cancelReject(shown.card.id)).toBe(true);
    expect(cardOf(shown)).toMatchObject({ status: 'open', decision: null });
    expect(h.store.cards.awaitedReply(CHAT, ALICE.id)).toBeUndefined();
    expect(h.decisions.cancelReject(shown.card.id)).toBe(false);
    expect(tap(shown, 'approve').kind).toBe('ok');
  });

  it('backs out of the first Reject when the same user rejects a second card, so no card is left waiting forever', () => {
    const first = showCard();
    const second = showCard();
    tap(first, 'reject');
    tapAs(BOB, first, 'approve');
    tap(second, 'reject');
    expect(cardOf(first)).toMatchObject({ status: 'open', decision: null });
    expect(h.store.cards.awaitedReply(CHAT, ALICE.id)?.cardId).toBe(second.card.id);
    expect(cardOf(second)).toMatchObject({ status: 'deciding', decision: 'reject' });
    // Another user's question is not touched.
    const third = showCard();
    tapAs(BOB, third, 'reject');
    expect(cardOf(second).status).toBe('deciding');
  });
});

describe('defer', () => {
  it('puts the item to sleep until the chosen time and wakes it then, once', () => {
    const shown = showCard();
    tapAs(BOB, shown, 'defer', 'hour');
    const start = h.clock.now;
    const { item, wakeAt } = h.decisions.defer(shown.card.id, 'hour');

    expect(wakeAt).toBe(start + 60 * MINUTE);
    expect(item).toMatchObject({ state: 'deferred', wakeAt });
    expect(cardOf(shown)).toMatchObject({ status: 'decided', decision: 'defer', outcome: `deferred until ${new Date(wakeAt).toISOString()}`, decidedBy: BOB.id });

    h.clock.now = wakeAt - 1;
    expect(h.decisions.wakeDeferred()).toEqual([]);
    expect(itemOf(shown).state).toBe('deferred');
    h.clock.now = wakeAt;
    expect(h.decisions.wakeDeferred()).toMatchObject([{ id: shown.item.id, state: 'ready', wakeAt: null }]);
    expect(h.decisions.wakeDeferred()).toEqual([]);
    // The woken item needs a fresh card: the old one is decided.
    expect(h.store.cards.readyItemsWithoutCard()).toEqual([shown.item.id]);
  });

  it('reads "this evening" in the configured time zone', () => {
    // 10:00 in Berlin (UTC+1 in November): the evening is 18:00 Berlin, 17:00 UTC.
    h.clock.now = Date.UTC(2026, 10, 25, 9, 0);
    const shown = showCard();
    tap(shown, 'defer', 'evening');
    expect(h.decisions.defer(shown.card.id, 'evening').wakeAt).toBe(Date.UTC(2026, 10, 25, 17, 0));
  });

  it('wakes every item whose time has come, earliest first', () => {
    const later = showCard();
    const sooner = showCard();
    tap(later, 'defer', 'evening');
    tap(sooner, 'defer', 'hour');
    h.decisions.defer(later.card.id, 'evening');
    h.decisions.defer(sooner.card.id, 'hour');
    h.clock.now += 7 * 24 * 60 * MINUTE;
    expect(h.decisions.wakeDeferred().map((i) => i.id)).toEqual([sooner.item.id, later.item.id]);
  });
});

describe('the follow-up buttons', () => {
  /** A rejected card with its re-queue offer. */
  async function rejected(): Promise<{ shown: Shown; requeue: CardButton; drop: CardButton }> {
    const shown = showCard();
    tap(shown, 'reject');
    await h.decisions.reject(shown.card.id, 'too big', ALICE);
    const [requeue, drop] = h.store.cards.addButtons(shown.card.id, [{ action: 'requeue' }, { action: 'drop' }]);
    sendMessage([requeue!.token, drop!.token]);
    return { shown, requeue: h.store.cards.button(requeue!.token)!, drop: h.store.cards.button(drop!.token)! };
  }

  it('re-queues a rejected item once, with the reason as feedback', async () => {
    const { shown, requeue, drop } = await rejected();
    const queued = h.decisions.requeue(requeue);
    expect(queued).toMatchObject({
      state: 'queued',
      repo: 'me/app',
      title: 'Add a flag',
      parentItemId: shown.item.id,
      request: `Add a --json flag\n\nFeedback on an earlier attempt (#${shown.item.id}, PR #7, rejected): too big`,
    });
    expect(h.decisions.requeue(requeue)).toBeUndefined();
    expect(h.decisions.drop(drop)).toBe(false);
    expect(h.store.items.countByState().queued).toBe(1);
  });

  it('drops instead, after which re-queueing does nothing', async () => {
    const { requeue, drop } = await rejected();
    expect(h.decisions.drop(drop)).toBe(true);
    expect(h.decisions.drop(drop)).toBe(false);
    expect(h.decisions.requeue(requeue)).toBeUndefined();
    expect(h.store.items.countByState().queued).toBeUndefined();
  });

  it('queues an item a review proposed, once, and only while it is still proposed', () => {
    const parent = showCard();
    const proposed = h.store.items.create(makeNewItem({ state: 'proposed', title: 'Extract a helper', parentItemId: parent.item.id }));
    const cancelled = h.store.items.create(makeNewItem({ state: 'proposed' }));
    h.store.items.transition(cancelled.id, 'cancelled');
    const [queue, stale] = h.store.cards.addButtons(parent.card.id, [
      { action: 'queue-item', arg: String(proposed.id) },
      { action: 'queue-item', arg: String(cancelled.id) },
    ]);

    expect(h.decisions.queueProposed(queue!)).toMatchObject({ kind: 'queued', item: { id: proposed.id, state: 'queued' } });
    expect(h.decisions.queueProposed(queue!)).toMatchObject({ kind: 'gone', item: { state: 'queued' } });
    expect(h.decisions.queueProposed(stale!)).toMatchObject({ kind: 'gone', item: { state: 'cancelled' } });
    // A refused queue-item does not use the button up.
    expect(h.store.cards.button(stale!.token)?.usedAt).toBeNull();
  });

  it('deletes a lesson once from its button', () => {
    const lesson = h.store.lessons.add({ repo: 'me/app', text: 'too big' });
    const [button] = h.store.cards.addButtons(null, [{ action: 'delete-lesson', arg: String(lesson.id) }]);
    expect(h.decisions.deleteLesson(button!)).toBe(true);
    expect(h.decisions.deleteLesson(button!)).toBe(false);
    expect(h.store.lessons.list()).toEqual([]);
  });
});

describe('drift checkpoints', () => {
  function checkpointCard(): Card {
    const checkpoint = h.store.checkpoints.create('me/app', 4);
    const card = h.store.cards.create({ kind: 'checkpoint', checkpointId: checkpoint.id, repo: 'me/app', chatId: CHAT });
    h.store.cards.claim(card.id, 'pause', ALICE);
    return card;
  }

  it('pauses building the repo on Pause, and resumes it once from the Resume button', () => {
    const card = checkpointCard();
    const decided = h.decisions.decideCheckpoint(card.id, 'pause');
    expect(decided).toMatchObject({ status: 'decided', decision: 'pause', outcome: 'building paused for me/app', decidedBy: ALICE.id });
    expect(h.store.checkpoints.paused()).toEqual([{ repo: 'me/app', reason: `paused at drift checkpoint ${card.checkpointId}`, pausedAt: h.clock.now }]);

    const [resume] = h.store.cards.addButtons(null, [{ action: 'resume-repo', arg: 'me/app' }]);
    expect(h.decisions.resumeRepo(resume!)).toBe(true);
    expect(h.store.checkpoints.paused()).toEqual([]);
    h.store.checkpoints.pause('me/app', 'paused again by hand');
    expect(h.decisions.resumeRepo(resume!)).toBe(false);
    expect(h.store.checkpoints.paused()).toHaveLength(1);
  });

  it('leaves building alone on On track', () => {
    const card = checkpointCard();
    expect(h.decisions.decideCheckpoint(card.id, 'on-track')).toMatchObject({ status: 'decided', outcome: 'on track' });
    expect(h.store.checkpoints.paused()).toEqual([]);
  });
});

describe('reconcile after a restart', () => {
  it('records an interrupted approve whose PR is merged, without calling merge', async () => {
    const shown = claimedForApprove();
    h.github.pr = makePr({ state: 'closed', merged: true, mergeCommitSha: MERGE_SHA, mergeable: null });
    const results = await h.decisions.reconcile();

    expect(results).toEqual([{ card: expect.objectContaining({ id: shown.card.id }), outcome: expect.objectContaining({ kind: 'merged', mergeCommitSha: MERGE_SHA }) }]);
    expect(h.github.merges).toEqual([]);
    expect(h.github.reads).toEqual([{ number: 7, opts: { attempts: 1 } }]);
    expect(itemOf(shown)).toMatchObject({ state: 'merged', mergeCommitSha: MERGE_SHA });
    expect(cardOf(shown)).toMatchObject({ status: 'decided', outcome: MERGED_ON_GITHUB, decidedBy: ALICE.id });
    expect(h.github.deletes).toHaveLength(1);
    expect(h.afterMerge).toHaveLength(1);
  });

  it('gives back an interrupted approve whose PR is not merged, without calling merge', async () => {
    const shown = claimedForApprove();
    expect(await h.decisions.reconcile()).toEqual([{ card: expect.objectContaining({ id: shown.card.id }), outcome: 'released' }]);
    expect(h.github.merges).toEqual([]);
    expect(cardOf(shown).status).toBe('open');
    expect(itemOf(shown).state).toBe('ready');
    expect(await h.decisions.reconcile()).toEqual([]);
  });

  it('gives back an interrupted approve when GitHub cannot be read', async () => {
    const shown = claimedForApprove();
    h.github.readError = httpError(503, 'unavailable');
    expect((await h.decisions.reconcile())[0]?.outcome).toBe('released');
    expect(h.github.merges).toEqual([]);
    expect(cardOf(shown).status).toBe('open');
  });

  it('as the stuck-decision sweep, leaves recent claims and approves still running in this process alone', async () => {
    const recent = claimedForApprove();
    h.clock.now += STUCK_DECISION_MS - 1;
    expect(await h.decisions.reconcile({ olderThanMs: STUCK_DECISION_MS })).toEqual([]);
    expect(cardOf(recent).status).toBe('deciding');

    let open!: () => void;
    h.github.readGate = new Promise((resolve) => (open = resolve));
    const running = h.decisions.approve(recent.card.id, false);
    h.clock.now += 1;
    expect(await h.decisions.reconcile({ olderThanMs: STUCK_DECISION_MS })).toEqual([]);
    expect(cardOf(recent).status).toBe('deciding');
    open();
    expect((await running).kind).toBe('merged');
    expect(h.github.merges).toHaveLength(1);
    expect(h.github.reads).toHaveLength(1);

    // Stuck for real: claimed long ago and nothing running.
    const stuck = claimedForApprove();
    h.clock.now += STUCK_DECISION_MS;
    expect((await h.decisions.reconcile({ olderThanMs: STUCK_DECISION_MS })).map((r) => [r.card.id, r.outcome])).toEqual([[stuck.card.id, 'released']]);
  });

  it('finishes the follow-ups of a rejection a crash cut short: the PR is closed quoting the reason, once', async () => {
    const shown = showCard();
    tap(shown, 'reject');
    // What the reject transaction leaves when the process dies before the follow-ups.
    h.store.items.transition(shown.item.id, 'rejected', 'rejected by @alice: too big');
    h.store.cards.decide(shown.card.id, 'reject', 'rejected: too big');

    expect(await h.decisions.reconcile()).toEqual([]);
    expect(h.github.closes).toEqual([expect.objectContaining({ number: 7, comment: 'Rejected by @alice from nightshift:\n\n> too big' })]);
    expect(h.removed).toEqual([shown.item.id]);
    expect(cardOf(shown).followedUpAt).toBe(h.clock.now);
    await h.decisions.reconcile();
    expect(h.github.closes).toHaveLength(1);
  });

  it('finishes the follow-ups of a merge a crash cut short: the branch goes and the merge is counted, once', async () => {
    const shown = claimedForApprove();
    h.store.items.setMergeCommit(shown.item.id, MERGE_SHA);
    h.store.items.transition(shown.item.id, 'merged', 'merged');
    h.store.cards.decide(shown.card.id, 'approve', 'merged (squash)');

    await h.decisions.reconcile();
    expect(h.github.deletes).toEqual([{ repo: 'me/app', branch: `nightshift/${shown.item.id}-add-a-flag` }]);
    expect(h.afterMerge.map((i) => i.id)).toEqual([shown.item.id]);
    expect(h.github.merges).toEqual([]);
    await h.decisions.reconcile();
    expect(h.github.deletes).toHaveLength(1);
    expect(h.afterMerge).toHaveLength(1);
  });

  it('leaves a reject that still waits for its reason, and gives back one whose question lapsed', async () => {
    const waiting = showCard();
    tap(waiting, 'reject');
    const lapsed = showCard();
    tapAs(BOB, lapsed, 'reject');
    h.store.cards.awaitReply({ chatId: CHAT, userId: BOB.id, kind: 'reject-reason', cardId: lapsed.card.id, expiresAt: h.clock.now - 1 });
    const deferring = showCard();
    tap(deferring, 'defer', 'hour');

    const results = await h.decisions.reconcile();
    expect(results.map((r) => [r.card.id, r.outcome])).toEqual([
      [lapsed.card.id, 'released'],
      [deferring.card.id, 'released'],
    ]);
    expect(cardOf(waiting)).toMatchObject({ status: 'deciding', decision: 'reject' });
    expect(cardOf(lapsed).status).toBe('open');
    expect(h.store.cards.expiredReplies()).toEqual([]);
    expect(h.github.reads).toEqual([]);
  });
});
