import { describe, expect, it } from 'vitest';
import { killSummary, runKillSeed, runSeeds } from './kill-harness.js';

// I-LOST, I-ONCE and paid turns under kill -9: a full item is killed at seeded random moments
// and restarted until it ends. `npm run test:soak` runs many more seeds (NIGHTSHIFT_KILL_SEEDS).

/** Seeds run by `npm test`; the soak run sets more. @default 20 */
const SEEDS = Number(process.env.NIGHTSHIFT_KILL_SEEDS ?? 20);
/** Seeds run at once: most of a seed's time is spent waiting (GitHub's pacing of writes, process starts). @default 4 */
const PARALLEL = Number(process.env.NIGHTSHIFT_KILL_PARALLEL ?? 4);
/** First seed, to run one failing seed again. @default 1 */
const FIRST = Number(process.env.NIGHTSHIFT_KILL_FIRST_SEED ?? 1);

describe('kill -9 through a full item', () => {
  it(`holds the invariants over ${SEEDS} seeds`, { timeout: 120_000 + Math.ceil(SEEDS / PARALLEL) * 120_000 }, async () => {
    const baseline = await runKillSeed({ seed: 0, maxKills: 0, windowMs: 0 });
    expect(baseline.violations).toEqual([]);
    console.log(`kill harness baseline: ${baseline.durationMs} ms, ${baseline.paidTurns} paid calls ${JSON.stringify(baseline.paidBySite)}, ledger ${baseline.ledgerCalls}`);
    const results = await runSeeds(
      Array.from({ length: SEEDS }, (_, i) => FIRST + i),
      PARALLEL,
      (seed) => runKillSeed({ seed, maxKills: 3, windowMs: baseline.durationMs, baselinePaidTurns: baseline.paidTurns }),
    );
    console.log(killSummary(results));
    expect(results.flatMap((r) => r.violations.map((v) => `seed ${r.seed}: ${v}`))).toEqual([]);
    expect(results.reduce((n, r) => n + r.kills.length, 0)).toBeGreaterThan(0);
  });
});
