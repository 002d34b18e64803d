import { describe, expect, it } from 'vitest';
import { estimateCost, HISTORY_MAX_ITEMS, runCeilingUsd, sizeClassOf } from '../../src/domain/size-estimate.js';

describe('sizeClassOf', () => {
  it('is the larger of context and judgment; risk plays no part', () => {
    expect(sizeClassOf('small', 'low')).toBe('small');
    expect(sizeClassOf('small', 'medium')).toBe('medium');
    expect(sizeClassOf('medium', 'low')).toBe('medium');
    expect(sizeClassOf('small', 'high')).toBe('large');
    expect(sizeClassOf('large', 'low')).toBe('large');
  });
});

describe('runCeilingUsd', () => {
  it('adds build, review and a fix for every round but the last, bounded by the item cap', () => {
    // The defaults: 5 + 4 + 3 × (2 − 1) = 12, under the item's 15.
    expect(runCeilingUsd({ buildUsd: 5, reviewUsd: 4, fixUsd: 3, rounds: 2, itemUsd: 15 })).toBe(12);
    expect(runCeilingUsd({ buildUsd: 5, reviewUsd: 4, fixUsd: 3, rounds: 4, itemUsd: 15 })).toBe(15);
    expect(runCeilingUsd({ buildUsd: 5, reviewUsd: 4, fixUsd: 3, rounds: 1, itemUsd: 15 })).toBe(9);
  });
});

describe('estimateCost', () => {
  it('uses shares of the run ceiling while fewer than 3 finished items of the class exist', () => {
    expect(estimateCost('small', [], 12)).toEqual({ lowUsd: 0.36, highUsd: 1.2, basis: 'default', samples: 0 });
    expect(estimateCost('medium', [1, 2], 12)).toEqual({ lowUsd: 1.2, highUsd: 3.6, basis: 'default', samples: 0 });
    expect(estimateCost('large', [], 12)).toEqual({ lowUsd: 3.6, highUsd: 9.6, basis: 'default', samples: 0 });
  });

  it('takes the 20th to 80th percentile of past spend once there are 3 items', () => {
    // Sorted 1, 2, 4: positions 0.4 and 1.6.
    expect(estimateCost('medium', [4, 1, 2], 12)).toEqual({ lowUsd: 1.4, highUsd: 3.2, basis: 'history', samples: 3 });
    // One outlier moves the top of the range, not all of it.
    expect(estimateCost('small', [0.5, 0.6, 0.7, 0.8, 9], 12)).toEqual({ lowUsd: 0.58, highUsd: 2.44, basis: 'history', samples: 5 });
  });

  it('looks only at the newest items (history comes newest first)', () => {
    const newest = Array.from({ length: HISTORY_MAX_ITEMS }, () => 2);
    const older = Array.from({ length: 30 }, () => 50);
    expect(estimateCost('large', [...newest, ...older], 12)).toEqual({ lowUsd: 2, highUsd: 2, basis: 'history', samples: HISTORY_MAX_ITEMS });
  });

  it('ignores values that are not spend', () => {
    expect(estimateCost('small', [Number.NaN, -1, 1, 1], 12).basis).toBe('default');
  });
});
