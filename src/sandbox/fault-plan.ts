/**
 * Which call a fault from a fake's `failAt` hits: the `occurrence`-th call (1-based, counted
 * from the moment `failAt` was called) that `match` accepts. Earlier matching calls are answered
 * normally, so "the 3rd report_findings call" or "the 2nd merge call" can be failed exactly once.
 */
export interface CallTarget<C> {
  readonly match: (call: C) => boolean;
  /** @default 1 */
  readonly occurrence?: number;
}

/** One-shot faults aimed at given calls; each fake keeps one. */
export interface FaultPlan<C, F> {
  /** Aim `fault` at the call `target` names. */
  add(target: CallTarget<C>, fault: F): void;
  /**
   * Counts `call` against every pending target and returns the fault of the first target it
   * completes (removing that target); undefined when none. A second target due on the same call
   * hits the next call it matches. Every call must pass through here,
   * whether or not some other fault applies, so occurrences count every matching call.
   */
  take(call: C): F | undefined;
}

/** An empty plan. */
export function createFaultPlan<C, F>(): FaultPlan<C, F> {
  const pending: Array<{ match: (call: C) => boolean; left: number; fault: F }> = [];
  return {
    add(target, fault) {
      const occurrence = target.occurrence ?? 1;
      if (!Number.isInteger(occurrence) || occurrence < 1) throw new Error(`failAt: occurrence must be a positive integer, got ${occurrence}`);
      pending.push({ match: target.match, left: occurrence, fault });
    },
    take(call) {
      let hit: F | undefined;
      for (let i = 0; i < pending.length; ) {
        const entry = pending[i]!;
        if (entry.match(call)) {
          // Two targets due on the same call: the later one waits for the next matching call.
          if (entry.left === 1 && hit === undefined) {
            pending.splice(i, 1);
            hit = entry.fault;
            continue;
          }
          if (entry.left > 1) entry.left -= 1;
        }
        i += 1;
      }
      return hit;
    },
  };
}
