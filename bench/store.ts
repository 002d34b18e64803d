/**
 * Benchmark 6a, the store under a big backlog: 10 000 items in a real SQLite file (the
 * production migrations), then `/backlog`'s first page rendered the way the bot renders it
 * (`backlog.page(0)` and `backlogText`). Baseline: the same render with one page of items.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ItemState } from '../src/domain/item-state.js';
import { createBacklog } from '../src/pipeline/backlog.js';
import { openStore } from '../src/store/open-store.js';
import { backlogText } from '../src/telegram/messages.js';
import { percentile, type BenchRow } from './lib/report.js';

/** Items in the big store. */
export const STORE_ITEMS = 10_000;
/** Renders timed (after the warm-up). */
const RENDERS = 300;
const WARM_UP = 20;

// Four in ten items are still open, as in a backlog a year old; the rest ended.
const STATES: readonly ItemState[] = ['merged', 'merged', 'rejected', 'cancelled', 'merged', 'cancelled', 'queued', 'proposed', 'deferred', 'ready'];

/** Milliseconds of each of `RENDERS` first-page renders on a store of `count` items. */
function timeRenders(count: number): { samples: number[]; cold: number; text: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ns-bench-store-'));
  let t = Date.UTC(2026, 0, 1);
  const store = openStore(join(dir, 'nightshift.db'), { now: () => (t += 60_000) });
  try {
    store.transaction(() => {
      for (let i = 0; i < count; i++) {
        store.items.create({
          repo: i % 3 === 0 ? 'me/site' : 'me/app',
          title: `Item ${i}: handle the ${['empty', 'unicode', 'huge', 'negative'][i % 4]} input in the ${['parser', 'exporter', 'scheduler'][i % 3]}`,
          request: `Please make the ${['parser', 'exporter', 'scheduler'][i % 3]} handle the edge case number ${i} and add a test for it.`,
          chatId: 1001,
          createdBy: 1001,
          state: STATES[i % STATES.length]!,
        });
      }
    });
    const backlog = createBacklog({ store });
    const render = () => backlogText(backlog.page(0));
    let start = performance.now();
    const text = render();
    const cold = performance.now() - start;
    for (let i = 0; i < WARM_UP; i++) render();
    const samples: number[] = [];
    for (let i = 0; i < RENDERS; i++) {
      start = performance.now();
      render();
      samples.push(performance.now() - start);
    }
    return { samples, cold, text };
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The row of benchmark 6a. */
export function benchBacklogRender(): BenchRow[] {
  const big = timeRenders(STORE_ITEMS);
  const small = timeRenders(8);
  if (!/Item 9999/.test(big.text)) throw new Error('the first page of the big backlog does not show its newest items');
  return [
    {
      bench: '6 store',
      metric: `/backlog first page, ${STORE_ITEMS.toLocaleString('en-US')} items (p99)`,
      figure: percentile(big.samples, 99),
      baseline: percentile(small.samples, 99),
      unit: 'ms',
      target: { on: 'figure', op: '<=', value: 20 },
      note: `p50 ${percentile(big.samples, 50).toFixed(2)} ms, first render after opening ${big.cold.toFixed(2)} ms; baseline: 8 items`,
    },
  ];
}
