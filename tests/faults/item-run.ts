import { RESENT_AFTER_RESTART_NOTE } from '../../src/telegram/messages.js';
import { ALICE } from '../helpers/bot-process.js';
import type { PipelineHarness } from '../helpers/pipeline-harness.js';
import { buttonsOf, callSiteOf, cardHead, CREATE_PR, isCard, MERGE } from './full-item.js';

// What the kill harness and the API fault sweep share about one full item driven through the
// real process: the user who drives it, when it counts as finished, and the invariants checked
// against what the fakes saw and what the database says.

/** The item's state (`none` before the item exists). */
export const itemState = (harness: PipelineHarness): string =>
  harness.query((d) => (d.prepare('SELECT state FROM items WHERE id = 1').pluck().get() as string | undefined) ?? 'none', 'none');

/**
 * Merged, and its branch deleted: the last step of a full item. The deletion is done once GitHub
 * answered it 2xx, or 422 (the branch is gone: a deletion whose answer was lost, sent again).
 */
export const isItemFinished = (harness: PipelineHarness): boolean =>
  itemState(harness) === 'merged' &&
  harness.github.callsOf('DELETE /repos/{owner}/{repo}/git/refs/{ref}').some((c) => (c.status >= 200 && c.status < 300) || c.status === 422);

/** The user of a full item, see `createItemUser`. */
export interface ItemUser {
  /**
   * Looks at the chat once and acts: presses /run when the item waits in the queue (once per
   * process generation), taps Approve on every card that still asks while the item is ready
   * (again after a restart, `generation` being the number of restarts so far, or after the card
   * was edited).
   */
  act(generation: number): void;
  /**
   * Every review card seen, by message id: its short head SHA, Approve button's data, and whether
   * it says it was sent again because a crash left its first send unclear.
   */
  readonly cards: ReadonlyMap<number, { head: string; approve: string; resent: boolean }>;
  /** Approve taps sent. */
  taps(): number;
}

/** The user: asks for the full item once (call `ask`) and then follows `act`. */
export function createItemUser(harness: PipelineHarness): ItemUser & { ask(text: string): void } {
  const { telegram } = harness;
  const cards = new Map<number, { head: string; approve: string; resent: boolean }>();
  // Per card message: the generation and the number of edits it had when last tapped.
  const tapped = new Map<number, { generation: number; edits: number }>();
  let taps = 0;
  let runSentFor = -1;
  return {
    cards,
    taps: () => taps,
    ask(text) {
      telegram.pushMessage(ALICE, text);
    },
    act(generation) {
      for (const m of telegram.sent(ALICE.id)) {
        if (!cards.has(m.message_id) && isCard(m)) {
          cards.set(m.message_id, { head: cardHead(m), approve: buttonsOf(m).find((b) => /Approve/.test(b.text))!.callback_data, resent: m.text.includes(RESENT_AFTER_RESTART_NOTE) });
        }
      }
      const state = itemState(harness);
      if (state === 'queued' && runSentFor !== generation) {
        runSentFor = generation;
        telegram.pushMessage(ALICE, '/run');
      }
      for (const [messageId, card] of cards) {
        const current = telegram.sent(ALICE.id).find((m) => m.message_id === messageId);
        const stillAsks = current !== undefined && buttonsOf(current).some((b) => /Approve/.test(b.text));
        const last = tapped.get(messageId);
        // Like a person: tap a card that asks, and again after a restart or once the card changed
        // (e.g. "decide again" after a restart cut a decision short).
        if (stillAsks && state === 'ready' && (!last || last.generation < generation || current.edits.length > last.edits)) {
          tapped.set(messageId, { generation, edits: current.edits.length });
          taps += 1;
          telegram.pushCallback(ALICE, { message_id: messageId, chat_id: ALICE.id }, card.approve);
        }
      }
    },
  };
}

/** What one run of the full item left behind. */
export interface ItemTally {
  readonly finalState: string;
  readonly prs: number;
  /**
   * Merge calls that may have merged: every attempt but those GitHub refused outright with a 4xx
   * (a rate limit, a conflict, a moved head), which did nothing. Waiting out a rate limit and
   * sending the SHA-pinned merge again is not a blind retry.
   */
  readonly mergeCalls: number;
  /** Review cards delivered, per short head SHA (not counting `resentCards`). */
  readonly cardsPerHead: Readonly<Record<string, number>>;
  /** Cards sent again, marked so, because a crash came while Telegram had the first send in hand. */
  readonly resentCards: number;
  /** Model calls answered in full (what Anthropic bills), and by call site. */
  readonly paidTurns: number;
  readonly paidBySite: Readonly<Record<string, number>>;
  /** Model calls the ledger recorded. */
  readonly ledgerCalls: number;
}

/** Counts what the fakes and the database say about the item. */
export function tallyItem(harness: PipelineHarness, user: ItemUser): ItemTally {
  const { anthropic, github } = harness;
  const cardsPerHead: Record<string, number> = {};
  for (const { head, resent } of user.cards.values()) if (!resent) cardsPerHead[head] = (cardsPerHead[head] ?? 0) + 1;
  const paid = anthropic.requests.filter((r) => r.outcome === 'ok');
  const paidBySite: Record<string, number> = {};
  for (const r of paid) paidBySite[callSiteOf(r)] = (paidBySite[callSiteOf(r)] ?? 0) + 1;
  return {
    finalState: itemState(harness),
    prs: github.pulls.length,
    mergeCalls: github.callsOf(MERGE).filter((c) => !(c.status >= 400 && c.status < 500)).length,
    cardsPerHead,
    resentCards: [...user.cards.values()].filter((c) => c.resent).length,
    paidTurns: paid.length,
    paidBySite,
    ledgerCalls: harness.query((d) => d.prepare('SELECT count(*) FROM llm_calls').pluck().get() as number, 0),
  };
}

/**
 * The invariants of a full item that should have ended merged: one PR, at most `maxMergeCalls`
 * merge calls and one merge done, one card per head, nothing left in a working state, paid calls
 * within `baselinePaidTurns + extraPaid`, no ledger row without a paid call.
 */
export function itemViolations(
  harness: PipelineHarness,
  tally: ItemTally,
  opts: { readonly maxMergeCalls: number; readonly baselinePaidTurns?: number | undefined; readonly extraPaid: number; readonly why: string; readonly crashes: number },
): string[] {
  const violations: string[] = [];
  const stuck = harness.query(
    (d) => d.prepare("SELECT id, state FROM items WHERE state NOT IN ('merged', 'rejected', 'cancelled')").all() as Array<{ id: number; state: string }>,
    [],
  );
  if (tally.finalState !== 'merged') violations.push(`the item ended ${tally.finalState}, not merged`);
  if (tally.prs !== 1) violations.push(`${tally.prs} PRs (${harness.github.callsOf(CREATE_PR).length} create calls)`);
  if (tally.mergeCalls > opts.maxMergeCalls) violations.push(`${tally.mergeCalls} merge calls, more than ${opts.maxMergeCalls}`);
  const merged = harness.github.pulls.filter((p) => p.merged).length;
  if (merged > 1) violations.push(`${merged} PRs merged`);
  // One card per head; a card whose first send a crash left unclear may reach the phone only
  // as its marked copy (the first never got to Telegram), so it counts towards "a card came".
  for (const [head, n] of Object.entries(tally.cardsPerHead)) if (n > 1) violations.push(`${n} cards for head ${head}`);
  if (Object.keys(tally.cardsPerHead).length === 0 && tally.resentCards === 0) violations.push('no review card');
  // Only a crash mid-send may send a card again (see the outbox); a fault without one may not.
  if (tally.resentCards > opts.crashes) violations.push(`${tally.resentCards} cards sent again after a crash, with ${opts.crashes} crashes`);
  for (const s of stuck) violations.push(`item #${s.id} left ${s.state}`);
  if (opts.baselinePaidTurns !== undefined && tally.paidTurns > opts.baselinePaidTurns + opts.extraPaid) {
    violations.push(`${tally.paidTurns} paid model calls, more than ${opts.baselinePaidTurns} + ${opts.extraPaid} ${opts.why}`);
  }
  if (tally.ledgerCalls > tally.paidTurns) violations.push(`the ledger has ${tally.ledgerCalls} calls for ${tally.paidTurns} paid`);
  return violations;
}
