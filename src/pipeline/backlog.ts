import { canTransition, type ItemState } from '../domain/item-state.js';
import { titleFromRequest, type RepoName } from '../domain/parse-request.js';
import type { Item, SizingStatus } from '../store/items.js';
import type { Store } from '../store/open-store.js';

/** A request to queue work. */
export interface QueueRequest {
  readonly repo: RepoName;
  readonly text: string;
  readonly chatId: number;
  readonly userId: number;
  /** The Telegram update that asked for it, so a redelivery can never create a second item. */
  readonly updateId?: number;
}

/** Outcome of a cancel request. */
export type CancelOutcome =
  | { readonly kind: 'cancelled'; readonly item: Item }
  | { readonly kind: 'not-found' }
  | { readonly kind: 'not-cancellable'; readonly item: Item }
  /** Its review card is being decided (a merge may be under way): try again in a moment. */
  | { readonly kind: 'deciding'; readonly item: Item };

/** A page of open items. */
export interface BacklogPage {
  readonly items: readonly Item[];
  /** 0-based, clamped to the existing pages. */
  readonly page: number;
  readonly pageCount: number;
  readonly total: number;
}

/** Overview for /status. */
export interface BacklogStatus {
  readonly counts: Partial<Record<ItemState, number>>;
  readonly active: readonly Item[];
  /** Requests still being sized, per sizing status. */
  readonly sizing?: Partial<Record<SizingStatus, number>>;
}

/** Items per /backlog page. @default 8 */
export const BACKLOG_PAGE_SIZE = 8;

/** The backlog use cases: queue, list, cancel and summarise work items. */
export function createBacklog(deps: {
  store: Store;
  /** Size new items before they are queued (`NIGHTSHIFT_SIZING`). @default false */
  sizing?: boolean;
}) {
  const { store } = deps;
  return {
    /** Stores a new item: `queued`, or with sizing on `proposed` and pending sizing (the sizer queues it). */
    queue(request: QueueRequest): Item {
      return store.items.create({
        repo: request.repo.fullName,
        title: titleFromRequest(request.text),
        request: request.text,
        chatId: request.chatId,
        createdBy: request.userId,
        ...(request.updateId === undefined ? {} : { sourceUpdateId: request.updateId }),
        ...(deps.sizing ? { state: 'proposed', sizing: 'pending' } as const : {}),
      });
    },

    /** Open items, newest first, one page of `pageSize`. */
    page(page: number, pageSize = BACKLOG_PAGE_SIZE): BacklogPage {
      const total = store.items.countOpen();
      const pageCount = Math.max(1, Math.ceil(total / pageSize));
      const clamped = Math.min(Math.max(0, Math.trunc(page)), pageCount - 1);
      return { items: store.items.listOpen(pageSize, clamped * pageSize), page: clamped, pageCount, total };
    },

    /** Cancels an item unless it has already ended. */
    cancel(id: number, reason: string): CancelOutcome {
      return store.transaction(() => {
        const item = store.items.get(id);
        if (!item) return { kind: 'not-found' } as const;
        if (!canTransition(item.state, 'cancelled')) return { kind: 'not-cancellable', item } as const;
        // Its card goes with it, unless a decision on it is in flight.
        if (!store.cards.supersedeOfItem(id, 'the item was cancelled')) return { kind: 'deciding', item } as const;
        return { kind: 'cancelled', item: store.items.transition(id, 'cancelled', reason) } as const;
      });
    },

    /** Counts by state, the items running, and the requests being sized. */
    status(): BacklogStatus {
      return { counts: store.items.countByState(), active: store.items.listActive(), sizing: store.items.countSizing() };
    },
  };
}

/** The backlog use cases. */
export type Backlog = ReturnType<typeof createBacklog>;
