import { describe, expect, it } from 'vitest';
import { canTransition, IllegalTransition, ITEM_STATES, TERMINAL_STATES, transition } from '../../src/domain/item-state.js';

describe('item state transitions', () => {
  it('follows the happy path from queued to merged', () => {
    const path = ['queued', 'building', 'reviewing', 'fixing', 'reviewing', 'ready', 'merged'] as const;
    for (let i = 1; i < path.length; i++) expect(transition(path[i - 1]!, path[i]!)).toBe(path[i]);
  });

  it('refuses to skip review or to move backwards', () => {
    expect(() => transition('building', 'ready')).toThrow(IllegalTransition);
    expect(() => transition('merged', 'ready')).toThrow(/merged to ready/);
    expect(() => transition('queued', 'merged')).toThrow(IllegalTransition);
  });

  it('never leaves a terminal state', () => {
    for (const from of TERMINAL_STATES) for (const to of ITEM_STATES) expect(canTransition(from, to)).toBe(false);
  });

  it('lets every open state be cancelled, and failed be retried', () => {
    for (const from of ITEM_STATES.filter((s) => !TERMINAL_STATES.has(s))) expect(canTransition(from, 'cancelled')).toBe(true);
    expect(canTransition('failed', 'queued')).toBe(true);
  });

  it('sends a ready item back to review when its head moved, and a deferred one back to ready', () => {
    expect(canTransition('ready', 'reviewing')).toBe(true);
    expect(canTransition('deferred', 'ready')).toBe(true);
    // Rejected with a reason and sent back to be built again.
    expect(canTransition('ready', 'queued')).toBe(true);
  });
});
