/** Every state a work item can be in (see ARCHITECTURE.md, "Work item states"). */
export const ITEM_STATES = [
  'proposed',
  'queued',
  'building',
  'reviewing',
  'fixing',
  'ready',
  'merged',
  'rejected',
  'deferred',
  'failed',
  'cancelled',
] as const;
export type ItemState = (typeof ITEM_STATES)[number];

/** States an item never leaves. */
export const TERMINAL_STATES: ReadonlySet<ItemState> = new Set(['merged', 'rejected', 'cancelled']);

/** States in which a stage is (or was, before a crash) doing work for the item. */
export const ACTIVE_STATES: ReadonlySet<ItemState> = new Set(['building', 'reviewing', 'fixing']);

// The legal moves. Anything not listed is refused, so a bug or a replayed event can never
// push an item backwards (e.g. merged -> ready) or skip review (building -> ready).
const MOVES: Readonly<Record<ItemState, readonly ItemState[]>> = {
  proposed: ['queued', 'cancelled'],
  queued: ['building', 'cancelled', 'failed'],
  building: ['reviewing', 'queued', 'failed', 'cancelled'],
  reviewing: ['fixing', 'ready', 'failed', 'cancelled'],
  fixing: ['reviewing', 'failed', 'cancelled'],
  // ready -> reviewing: the PR head moved after review, so the new head is reviewed again.
  // ready -> queued: rejected with a reason and sent back to be built again.
  ready: ['merged', 'rejected', 'deferred', 'reviewing', 'queued', 'failed', 'cancelled'],
  deferred: ['ready', 'cancelled'],
  // failed -> queued is the Retry button: the item starts again from its last checkpoint.
  failed: ['queued', 'cancelled'],
  merged: [],
  rejected: [],
  cancelled: [],
};

/** Thrown when code asks for a move the state machine forbids. */
export class IllegalTransition extends Error {
  override readonly name = 'IllegalTransition';
  constructor(
    readonly from: ItemState,
    readonly to: ItemState,
  ) {
    super(`an item cannot go from ${from} to ${to}`);
  }
}

/** Whether an item may move from `from` to `to`. */
export function canTransition(from: ItemState, to: ItemState): boolean {
  return MOVES[from].includes(to);
}

/** Returns `to` if the move is legal, else throws `IllegalTransition`. */
export function transition(from: ItemState, to: ItemState): ItemState {
  if (!canTransition(from, to)) throw new IllegalTransition(from, to);
  return to;
}

/** Whether `value` is a known item state (for validating rows read back from SQLite). */
export function isItemState(value: unknown): value is ItemState {
  return typeof value === 'string' && (ITEM_STATES as readonly string[]).includes(value);
}
