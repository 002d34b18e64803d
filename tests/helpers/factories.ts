import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Item, NewItem } from '../../src/store/items.js';
import { openStore, type Store } from '../../src/store/open-store.js';

/** A fresh store on a real SQLite file in a temp directory, with a controllable clock. */
export function makeStore(start = Date.UTC(2026, 10, 25, 9, 0, 0)): { store: Store; clock: { now: number }; path: string } {
  const clock = { now: start };
  const path = join(mkdtempSync(join(tmpdir(), 'ns-store-')), 'nightshift.db');
  return { store: openStore(path, { now: () => clock.now }), clock, path };
}

/** A new item with sensible defaults. */
export function makeNewItem(overrides: Partial<NewItem> = {}): NewItem {
  return { repo: 'me/app', title: 'Add a flag', request: 'Add a --json flag', chatId: 111, createdBy: 111, ...overrides };
}

/** A stored item as read back, with sensible defaults. */
export function makeItem(overrides: Partial<Item> = {}): Item {
  return {
    id: 12,
    repo: 'me/app',
    title: 'Add a flag',
    request: 'Add a --json flag',
    state: 'queued',
    stateReason: null,
    chatId: 111,
    createdBy: 111,
    createdAt: 0,
    updatedAt: 0,
    branch: null,
    prNumber: null,
    prUrl: null,
    headSha: null,
    progressOutboxId: null,
    wakeAt: null,
    mergeCommitSha: null,
    parentItemId: null,
    ...overrides,
  };
}
