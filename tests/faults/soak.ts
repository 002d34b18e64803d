// `npm run test:soak`: the fault suite's long version. Runs the kill harness over many seeds and
// the API fault sweep over every call site and fault kind (through vitest, on the compiled
// process), then prints one summary table. Exits non-zero when any invariant broke.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FaultFigures } from './fault-report.js';

/** Kill seeds the soak run uses unless NIGHTSHIFT_KILL_SEEDS says otherwise. @default 200 */
const SOAK_KILL_SEEDS = 200;
/** The soak run's time budget on a 2-core machine. @default 30 minutes */
const BUDGET_MS = 30 * 60_000;

const report = join(mkdtempSync(join(tmpdir(), 'ns-soak-')), 'figures.jsonl');
const started = Date.now();
const run = spawnSync('npx', ['vitest', 'run', 'tests/faults/kill.test.ts', 'tests/faults/api-faults.test.ts'], {
  stdio: 'inherit',
  env: {
    ...process.env,
    NIGHTSHIFT_KILL_SEEDS: process.env.NIGHTSHIFT_KILL_SEEDS ?? String(SOAK_KILL_SEEDS),
    // Two kills a seed (CI runs three): a restart is the costliest part of a seed, and 200 seeds
    // with three would not fit the 30 minutes on two cores next to the full sweep.
    NIGHTSHIFT_KILL_MAX: process.env.NIGHTSHIFT_KILL_MAX ?? '2',
    NIGHTSHIFT_SWEEP: 'full',
    // A run alone keeps a little over half a core busy: four at a time in each of the two files
    // keeps two cores busy (more only slows every process down and makes timeouts fire).
    NIGHTSHIFT_KILL_PARALLEL: process.env.NIGHTSHIFT_KILL_PARALLEL ?? '4',
    NIGHTSHIFT_SWEEP_PARALLEL: process.env.NIGHTSHIFT_SWEEP_PARALLEL ?? '4',
    NIGHTSHIFT_FAULT_REPORT: report,
  },
});
const elapsed = Date.now() - started;
const rows: FaultFigures[] = existsSync(report)
  ? readFileSync(report, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as FaultFigures)
  : [];

const minutes = (ms: number) => `${(ms / 60_000).toFixed(1)} min`;
const table = [
  '| suite | runs | kills / faults injected | runs with violations | time |',
  '| --- | ---: | ---: | ---: | ---: |',
  ...rows.map((r) => `| ${r.suite} | ${r.runs} | ${r.injected} | ${r.violations} | ${minutes(r.durationMs)} |`),
];
console.log(`\nSoak summary (${new Date().toISOString()}):\n${table.join('\n')}`);
for (const r of rows) for (const d of r.details) console.log(`  ${r.suite}: ${d}`);
const violations = rows.reduce((n, r) => n + r.violations, 0);
console.log(
  `\nTotal ${minutes(elapsed)} (budget ${minutes(BUDGET_MS)}: ${elapsed <= BUDGET_MS ? 'within' : 'OVER'}); ` +
    `${violations} invariant violations; vitest exit ${run.status ?? run.signal}.`,
);
if (rows.length < 2) console.log('Some suites reported no figures: see the vitest output above.');
process.exit(run.status === 0 && violations === 0 && rows.length >= 2 ? 0 : 1);
