// How big a work item is, and what it will probably cost. The planning model judges how much
// context and judgment an item needs; the size class and the dollar range follow from that by
// code, so a number shown to the user is never one a model made up.

/** How much of the code base an item needs to be understood: a file or two, a module, the design. */
export const CONTEXT_LEVELS = ['small', 'medium', 'large'] as const;
/** How many decisions an item leaves to the builder. */
export const JUDGMENT_LEVELS = ['low', 'medium', 'high'] as const;
/** What breaks if the item is done wrong. */
export const RISK_LEVELS = ['low', 'medium', 'high'] as const;
/** The size classes an item's cost is estimated by. */
export const SIZE_CLASSES = ['small', 'medium', 'large'] as const;

export type ContextLevel = (typeof CONTEXT_LEVELS)[number];
export type JudgmentLevel = (typeof JUDGMENT_LEVELS)[number];
export type RiskLevel = (typeof RISK_LEVELS)[number];
export type SizeClass = (typeof SIZE_CLASSES)[number];

/**
 * The size class of an item: the larger of its context and judgment (each on a three-step
 * scale). Risk is shown to the user but does not change the class: a risky one-line change is
 * cheap to build, it is the review that has to be careful.
 */
export function sizeClassOf(context: ContextLevel, judgment: JudgmentLevel): SizeClass {
  return SIZE_CLASSES[Math.max(CONTEXT_LEVELS.indexOf(context), JUDGMENT_LEVELS.indexOf(judgment))]!;
}

/** Finished items of a class needed before their spend, not the defaults, sets the range. @default 3 */
export const HISTORY_MIN_ITEMS = 3;
/** The most recent finished items of a class that the range is computed from. @default 20 */
export const HISTORY_MAX_ITEMS = 20;
/** The percentiles of past spend that make the range (the cheapest and dearest fifth left out). */
export const HISTORY_PERCENTILES = { low: 0.2, high: 0.8 } as const;

/**
 * Without history, each class's range as shares of the run ceiling (see {@link runCeilingUsd}):
 * a small item spends a few percent of what the caps would allow, a large one most of it.
 */
export const DEFAULT_SHARES: Readonly<Record<SizeClass, { readonly low: number; readonly high: number }>> = {
  small: { low: 0.03, high: 0.1 },
  medium: { low: 0.1, high: 0.3 },
  large: { low: 0.3, high: 0.8 },
};

/** The per-stage caps one run of an item is held to. */
export interface RunCaps {
  readonly buildUsd: number;
  /** Reviewers and triage, all rounds. */
  readonly reviewUsd: number;
  /** Each fix run. */
  readonly fixUsd: number;
  /** Review rounds; a fix is made only while a round is left to review it. */
  readonly rounds: number;
  /** All stages together. */
  readonly itemUsd: number;
}

/** The most one run may spend by its caps: build, review, a fix per round but the last, bounded by the item cap. */
export function runCeilingUsd(caps: RunCaps): number {
  return Math.min(caps.itemUsd, caps.buildUsd + caps.reviewUsd + caps.fixUsd * Math.max(0, caps.rounds - 1));
}

/** An estimated dollar range and where it came from. */
export interface CostEstimate {
  readonly lowUsd: number;
  readonly highUsd: number;
  /** `history`: the spend of finished items of the class; `default`: shares of the run ceiling. */
  readonly basis: 'history' | 'default';
  /** Finished items the history range was computed from (0 for defaults). */
  readonly samples: number;
}

/**
 * The cost range of an item of `sizeClass`. With at least {@link HISTORY_MIN_ITEMS} finished
 * items of the class (`history`: what each cost in all, newest first), the 20th to 80th
 * percentile of the newest {@link HISTORY_MAX_ITEMS}; else {@link DEFAULT_SHARES} of `ceilingUsd`.
 * Rounded to cents.
 */
export function estimateCost(sizeClass: SizeClass, history: readonly number[], ceilingUsd: number): CostEstimate {
  const spend = history.slice(0, HISTORY_MAX_ITEMS).filter((usd) => Number.isFinite(usd) && usd >= 0);
  if (spend.length >= HISTORY_MIN_ITEMS) {
    const sorted = [...spend].sort((a, b) => a - b);
    return {
      lowUsd: cents(percentile(sorted, HISTORY_PERCENTILES.low)),
      highUsd: cents(percentile(sorted, HISTORY_PERCENTILES.high)),
      basis: 'history',
      samples: sorted.length,
    };
  }
  const share = DEFAULT_SHARES[sizeClass];
  return { lowUsd: cents(ceilingUsd * share.low), highUsd: cents(ceilingUsd * share.high), basis: 'default', samples: 0 };
}

/** The `q` quantile of ascending `sorted` values, interpolated between neighbours. */
function percentile(sorted: readonly number[], q: number): number {
  const pos = q * (sorted.length - 1);
  const below = Math.floor(pos);
  const above = Math.ceil(pos);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (pos - below);
}

function cents(usd: number): number {
  return Math.round(usd * 100) / 100;
}
