import { appendFileSync } from 'node:fs';

/** One row of the soak run's summary table. */
export interface FaultFigures {
  /** What ran, e.g. `kill -9` or `API faults`. */
  readonly suite: string;
  /** Seeds or cases run. */
  readonly runs: number;
  /** Kills survived or faults injected. */
  readonly injected: number;
  /** Runs that broke an invariant. */
  readonly violations: number;
  readonly durationMs: number;
  /** Further figures, one short line each (e.g. faults per call site). */
  readonly details: readonly string[];
}

/**
 * Records a suite's figures for the soak run's table (`npm run test:soak` sets
 * NIGHTSHIFT_FAULT_REPORT to a file); a no-op otherwise.
 */
export function reportFigures(figures: FaultFigures): void {
  const file = process.env.NIGHTSHIFT_FAULT_REPORT;
  if (file) appendFileSync(file, `${JSON.stringify(figures)}\n`);
}
