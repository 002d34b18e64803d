import { describe, expect, it } from 'vitest';
import { reportFigures } from './fault-report.js';
import { allCases, runCase, sampleCases, siteLabel, sweepSummary } from './fault-sweep.js';
import { MERGE } from './full-item.js';
import { runSeeds } from './kill-harness.js';

// I-ONCE, I-LOST, I-COST and "a half-streamed tool call is never executed" under API faults:
// every fault kind of each service injected at a call of a full item, one fault per run.
// `npm test` runs a seeded sample covering every kind of every service but the stalls (each
// costs a client's whole timeout); NIGHTSHIFT_SWEEP=full (the soak run) runs every (call site,
// fault) pair.

/** `full` sweeps every pair; `stalls` adds the stalls to the sample. @default sample */
const FULL = process.env.NIGHTSHIFT_SWEEP === 'full';
/** Sites per fault kind in the sample. @default 1 */
const PER_KIND = Number(process.env.NIGHTSHIFT_SWEEP_PER_KIND ?? 1);
/** Seed of the sample, to run one sample again. @default 7 */
const SEED = Number(process.env.NIGHTSHIFT_SWEEP_SEED ?? 7);
/** Cases run at once: most of a case's time is spent waiting (GitHub's pacing, backoffs). @default 4 */
const PARALLEL = Number(process.env.NIGHTSHIFT_SWEEP_PARALLEL ?? 4);
/** Only the cases whose label ("anthropic build#1 stall") matches this regular expression, to run one failing case again. */
const ONLY = process.env.NIGHTSHIFT_SWEEP_ONLY ? new RegExp(process.env.NIGHTSHIFT_SWEEP_ONLY) : undefined;

describe('API faults at every call site of a full item', () => {
  it(FULL ? 'holds the invariants for every (call site, fault) pair' : 'holds the invariants for a seeded sample of every fault kind', { timeout: FULL ? 30 * 60_000 : 10 * 60_000 }, async () => {
    const started = Date.now();
    const baseline = await runCase(undefined);
    expect(baseline.violations).toEqual([]);
    const cases = allCases(baseline.sites);
    // The sample's lost answer is always the merge's: the one write that must never be sent twice.
    const lostMerge = cases.filter((c) => c.spec.kind === 'lost-answer' && c.site.name === MERGE);
    expect(lostMerge.length).toBeGreaterThan(0);
    const chosen = ONLY ? cases.filter((c) => ONLY.test(`${siteLabel(c.site)} ${c.spec.kind}`)) : FULL ? cases : [...sampleCases(cases, SEED, PER_KIND, process.env.NIGHTSHIFT_SWEEP === 'stalls').filter((c) => c.spec.kind !== 'lost-answer'), ...lostMerge];
    console.log(`API fault sweep baseline: ${baseline.durationMs} ms, ${baseline.sites.length} call sites, ${cases.length} cases in all, running ${chosen.length}; paid ${baseline.paidTurns} ${JSON.stringify(baseline.paidBySite)}`);
    const results = await runSeeds(
      chosen.map((_, i) => i),
      PARALLEL,
      async (i) => {
        const result = await runCase(chosen[i]!, { baselinePaidTurns: baseline.paidTurns });
        // One line per case as it ends, so a run cut short still shows what it got through.
        console.log(`  ${result.violations.length === 0 ? '✓' : '✗'} ${result.label} ${Math.round(result.durationMs / 1000)} s ${result.violations.join('; ')}`);
        return result;
      },
    );
    const summary = sweepSummary(results, Date.now() - started);
    console.log(summary);
    const sites = new Set(results.map((r) => `${r.site.service} ${r.site.name}#${r.site.occurrence}`));
    reportFigures({
      suite: FULL ? 'API faults (every site × kind)' : 'API faults (sample)',
      runs: results.length,
      injected: results.length,
      violations: results.filter((r) => r.violations.length > 0).length,
      durationMs: Date.now() - started,
      details: [`${sites.size} call sites of ${baseline.sites.length}, ${(results.length / Math.max(1, sites.size)).toFixed(1)} faults per site`, ...summary.split('\n').slice(1, 3).map((l) => l.trim())],
    });
    expect(results.flatMap((r) => r.violations.map((v) => `${r.label}: ${v}`))).toEqual([]);
  });
});
