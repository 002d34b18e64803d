/**
 * `npm run bench`: runs the benchmarks, prints one table (figure, baseline from the same run,
 * ratio, target, pass/fail) and exits non-zero when a target is missed. Benchmarks are not
 * tests: CI never runs them. `--only=cost,compaction` runs a subset (names below).
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { benchCompaction } from './compaction.js';
import { benchLlmCost } from './llm-cost.js';
import { formatTable, judge, type BenchRow, type JudgedRow } from './lib/report.js';
import { benchQueueing, benchResponsiveness } from './responsiveness.js';
import { benchScenario } from './scenario.js';
import { benchBacklogRender } from './store.js';

const ROOT = resolve(import.meta.dirname, '..');

/** Every benchmark by the name `--only` takes, in the order the table shows them. */
const BENCHES: ReadonlyArray<{ name: string; run: () => Promise<BenchRow[]> | BenchRow[] }> = [
  { name: 'cost', run: benchLlmCost },
  { name: 'scenario', run: benchScenario },
  { name: 'compaction', run: benchCompaction },
  { name: 'responsiveness', run: benchResponsiveness },
  { name: 'store', run: () => benchBacklogRender() },
  { name: 'queueing', run: benchQueueing },
];

async function main(): Promise<void> {
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
  const unknown = (only ?? []).filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHES.map((b) => b.name).join(', ')}`);
  // The process benchmarks run the compiled entry point, as `npm start` does.
  process.stderr.write('building dist/ …\n');
  execFileSync(process.execPath, [resolve(ROOT, 'node_modules/typescript/bin/tsc'), '-p', resolve(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  const rows: JudgedRow[] = [];
  const started = performance.now();
  for (const bench of BENCHES) {
    if (only && !only.includes(bench.name)) continue;
    const t = performance.now();
    process.stderr.write(`running ${bench.name} …\n`);
    try {
      rows.push(...(await bench.run()).map(judge));
    } catch (error) {
      // One broken benchmark is a miss in the table, not a crash that hides the others.
      rows.push(judge({ bench: bench.name, metric: 'run', figure: undefined, baseline: undefined, unit: 's', target: { on: 'figure', op: '<=', value: 0 }, note: `crashed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` }));
      process.stderr.write(`${bench.name} crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    process.stderr.write(`  ${bench.name} took ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  }
  process.stdout.write(`\n${formatTable(rows)}\n\n`);
  const missed = rows.filter((r) => r.pass === false);
  process.stdout.write(`${rows.length} rows, ${missed.length} missed, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  process.exitCode = missed.length > 0 ? 1 : 0;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 2;
});
