import { describe, expect, it } from 'vitest';
import { reportFigures } from './fault-report.js';
import { killSummary, runKillSeed, runSeeds } from './kill-harness.js';

// I-LOST, I-ONCE and paid turns under kill -9: a full item is killed at seeded random moments
// and restarted until it ends. `npm run test:soak` runs many more seeds (NIGHTSHIFT_KILL_SEEDS).

/** Seeds run by `npm test`; the soak run sets more. @default 20 */
const SEEDS = Number(process.env.NIGHTSHIFT_KILL_SEEDS ?? 20);
/** Seeds run at once: most of a seed's time is spent waiting (GitHub's pacing of writes, process starts). @default 4 */
const PARALLEL = Number(process.env.NIGHTSHIFT_KILL_PARALLEL ?? 4);
/** Kills at most per seed (each followed by a restart). @default 3 */
const MAX_KILLS = Number(process.env.NIGHTSHIFT_KILL_MAX ?? 3);
/** First seed, to run one failing seed again. @default 1 */
const FIRST = Number(process.env.NIGHTSHIFT_KILL_FIRST_SEED ?? 1);

describe('kill -9 through a full item', () => {
  it(`holds the invariants over ${SEEDS} seeds`, { timeout: 120_000 + Math.ceil(SEEDS / PARALLEL) * 240_000 }, async () => {
    const started = Date.now();
    const baseline = await runKillSeed({ seed: 0, maxKills: 0, baselineCalls: 0 });
    expect(baseline.violations).toEqual([]);
    console.log(`kill harness baseline: ${baseline.durationMs} ms, ${baseline.calls} calls, ${baseline.paidTurns} paid calls ${JSON.stringify(baseline.paidBySite)}, ledger ${baseline.ledgerCalls}`);
    const results = await runSeeds(
      Array.from({ length: SEEDS }, (_, i) => FIRST + i),
      PARALLEL,
      // Stuck means not done long after the last kill: four clean runs and a minute.
      (seed) => runKillSeed({ seed, maxKills: MAX_KILLS, baselineCalls: baseline.calls, baselinePaidTurns: baseline.paidTurns, deadlineMs: 6 * baseline.durationMs + 60_000 }),
    );
    const summary = killSummary(results);
    console.log(summary);
    reportFigures({
      suite: 'kill -9',
      runs: results.length,
      injected: results.reduce((n, r) => n + r.kills.length, 0),
      violations: results.filter((r) => r.violations.length > 0).length,
      durationMs: Date.now() - started,
      details: summary.split('\n').slice(1).map((l) => l.trim()),
    });
    for (const r of results.filter((x) => x.violations.length > 0)) console.log(`seed ${r.seed} log:\n${r.log.join('\n')}`);
    expect(results.flatMap((r) => r.violations.map((v) => `seed ${r.seed}: ${v}`))).toEqual([]);
    expect(results.reduce((n, r) => n + r.kills.length, 0)).toBeGreaterThan(0);
  });
});
