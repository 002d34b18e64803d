import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { StaleLease } from '../../src/store/items.js';
import { makeNewItem, makeStore } from '../helpers/factories.js';

// Item leases and fencing tokens: every claim gets a larger token, and a write carrying an
// older one (a worker that lost its lease) changes nothing.

function leaseColumns(path: string, id: number) {
  const db = new Database(path, { readonly: true });
  try {
    const row = db.prepare('SELECT lease_owner AS owner, lease_expires_at AS expiresAt, lease_fence AS fence FROM items WHERE id = ?').get(id) as { owner: string | null; expiresAt: number | null; fence: number };
    const { n } = db.prepare('SELECT count(*) AS n FROM item_events WHERE item_id = ?').get(id) as { n: number };
    return { ...row, events: n };
  } finally {
    db.close();
  }
}

describe('item leases', () => {
  it('gives every claim a larger fencing token', () => {
    const { store, clock } = makeStore();
    const item = store.items.create(makeNewItem());
    const first = store.items.lease(item.id, 'worker-a', clock.now + 60_000);
    const second = store.items.lease(item.id, 'worker-b', clock.now + 60_000);
    expect(second).toBeGreaterThan(first);
    expect(store.items.fence(item.id)).toBe(second);
  });

  it('rejects a stale worker’s late write and changes nothing', () => {
    const { store, clock, path } = makeStore();
    const item = store.items.create(makeNewItem());
    store.items.transition(item.id, 'building', 'run started');
    const stale = store.items.lease(item.id, 'worker-a', clock.now + 60_000);
    const fresh = store.items.lease(item.id, 'worker-b', clock.now + 60_000);
    const before = leaseColumns(path, item.id);

    let thrown: unknown;
    try {
      store.items.transitionFenced(item.id, stale, 'failed', 'late outcome of the old worker');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(StaleLease);
    expect(thrown).toMatchObject({ itemId: item.id, fence: stale, current: fresh });
    expect(store.items.get(item.id)).toMatchObject({ state: 'building', stateReason: 'run started' });
    expect(leaseColumns(path, item.id)).toEqual(before);

    // The current holder's write goes through.
    expect(store.items.transitionFenced(item.id, fresh, 'reviewing', 'pull request opened').state).toBe('reviewing');
  });

  it('lets only the current token release the lease, and renews only the owner’s leases', () => {
    const { store, clock, path } = makeStore();
    const item = store.items.create(makeNewItem());
    const stale = store.items.lease(item.id, 'worker-a', clock.now + 60_000);
    const fresh = store.items.lease(item.id, 'worker-b', clock.now + 60_000);

    // The old worker winding down must not end the new worker's lease.
    store.items.releaseLease(item.id, stale);
    expect(leaseColumns(path, item.id)).toMatchObject({ owner: 'worker-b', fence: fresh });
    store.items.renewLeases('worker-a', [item.id], clock.now + 120_000);
    expect(leaseColumns(path, item.id).expiresAt).toBe(clock.now + 60_000);
    store.items.renewLeases('worker-b', [item.id], clock.now + 120_000);
    expect(leaseColumns(path, item.id).expiresAt).toBe(clock.now + 120_000);

    store.items.releaseLease(item.id, fresh);
    // Released, but the token stays: the next claim is larger still.
    expect(leaseColumns(path, item.id)).toMatchObject({ owner: null, expiresAt: null, fence: fresh });
    expect(store.items.lease(item.id, 'worker-c', clock.now + 60_000)).toBeGreaterThan(fresh);
  });

  it('keeps an item in backoff out of the queue until its not-before time', () => {
    const { store, clock } = makeStore();
    const item = store.items.create(makeNewItem());
    store.items.setNotBefore(item.id, clock.now + 60_000);
    expect(store.items.oldestQueued()).toBeUndefined();
    clock.now += 60_000;
    expect(store.items.oldestQueued()?.id).toBe(item.id);
  });
});
