import type { Item } from '../store/items.js';

/** Something the user should hear about an item. Telegram decides how it looks. */
export type ItemEvent =
  | { readonly kind: 'started'; readonly stage: string }
  | { readonly kind: 'progress'; readonly stage: string; readonly turn: number; readonly maxTurns: number; readonly itemUsd: number }
  | { readonly kind: 'pr-opened'; readonly prUrl: string; readonly prNumber: number; readonly summary: string; readonly itemUsd: number; readonly adopted: boolean }
  | { readonly kind: 'ready'; readonly itemUsd: number }
  /**
   * The item waits `retryInMs` and is tried again; `attempt` when the wait used one of its
   * attempts; `waitsForRun` when it is back in the queue and only /run starts the queue.
   */
  | {
      readonly kind: 'retry-later';
      readonly reason: string;
      readonly retryInMs: number;
      readonly attempt?: { readonly n: number; readonly of: number };
      readonly waitsForRun?: boolean;
    }
  | { readonly kind: 'stopped' }
  /** The item waits for work handed off (a Message Batch) until `until` at the latest. */
  | { readonly kind: 'waiting'; readonly reason: string; readonly until: number }
  | { readonly kind: 'failed'; readonly reason: string; readonly itemUsd: number }
  /**
   * The stage's outcome could not be written (the database failed, e.g. the disk is full): the
   * item stops where it was last recorded until the next start. `reason` is the database's error.
   */
  | { readonly kind: 'unrecorded'; readonly stage: string; readonly reason: string };

/** The pipeline's port for telling the user what happens to their items. */
export interface ItemNotifier {
  /**
   * Must not throw and must not block: delivery happens elsewhere (the outbox). A notice the
   * outbox cannot record is sent directly instead, once and unrecorded.
   */
  notify(item: Item, event: ItemEvent): void;
}
