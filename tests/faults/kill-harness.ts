import type { BotProcess } from '../helpers/bot-process.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';
import { callSiteOf, FULL_ITEM_FILES, FULL_ITEM_REQUEST, scriptFullItem } from './full-item.js';
import { createItemUser, isItemFinished, itemState, itemViolations, tallyItem, type ItemTally } from './item-run.js';

// The kill harness: the real process takes one full item from the queued message to a merge
// (build → review with a finding → triage → fix → review → card → Approve → merge) while it is
// killed with SIGKILL at seeded random moments and restarted, until the item ends. Afterwards
// the invariants are checked against what the fakes saw and what the database says.

/** Where one kill landed. */
export interface Kill {
  /** Milliseconds after the (re)start it interrupted. */
  readonly afterMs: number;
  /** The item's state when it died (`none` before the item existed). */
  readonly state: string;
  /** What the last request to any fake was, e.g. `anthropic report_findings`, `github POST /repos/…/pulls`. */
  readonly lastCall: string;
}

/** What one seed did and which invariants it broke. */
export interface SeedResult extends ItemTally {
  readonly seed: number;
  readonly kills: readonly Kill[];
  readonly durationMs: number;
  /** Calls to the fakes, Telegram's polls left out. */
  readonly calls: number;
  /** Each broken invariant, in words; empty when all held. */
  readonly violations: string[];
  /** The processes' warnings and errors (and the last lines of each), to explain a violation. */
  readonly log: string[];
}

/** A small seeded PRNG (mulberry32), so a failing seed can be run again. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The most model calls in flight at once (NIGHTSHIFT_REVIEW_CONCURRENCY's default): a kill can
 * lose each of them, paid but unrecorded, so a seed may pay this many more calls per kill.
 */
export const IN_FLIGHT_MAX = 3;

/** The environment every run of the harness uses. */
export const KILL_ENV: Readonly<Record<string, string>> = { NIGHTSHIFT_DRIFT_EVERY: '0', LOG_LEVEL: process.env.NIGHTSHIFT_KILL_LOG_LEVEL ?? 'info' };

export interface SeedOptions {
  readonly seed: number;
  /** Kills stop after this many; the item then runs to its end. */
  readonly maxKills: number;
  /**
   * Calls to the fakes (all but Telegram's polls) of a run without kills; 0 runs without kills.
   * Each kill picks one of the calls still to come, uniformly, and lands 0–100 ms after it
   * arrives, so kills fall in every stage in proportion to its calls, also around the merge.
   */
  readonly baselineCalls: number;
  /** The seed fails as stuck after this long. @default 120 s */
  readonly deadlineMs?: number;
  /** Paid model calls of a run without kills; the seed may pay at most `IN_FLIGHT_MAX` more per kill. */
  readonly baselinePaidTurns?: number;
}

/** Runs one seed on fresh fakes, a fresh repo and a fresh data directory. */
export async function runKillSeed(opts: SeedOptions): Promise<SeedResult> {
  const harness = await startPipelineHarness(FULL_ITEM_FILES);
  try {
    return await drive(harness, opts);
  } finally {
    await harness.close();
  }
}

async function drive(harness: PipelineHarness, opts: SeedOptions): Promise<SeedResult> {
  const { telegram, anthropic, github } = harness;
  scriptFullItem(anthropic);
  const random = seededRandom(opts.seed);
  const deadline = Date.now() + (opts.deadlineMs ?? 120_000);
  const started = Date.now();
  const kills: Kill[] = [];
  const violations: string[] = [];
  const user = createItemUser(harness);
  let generation = 0;
  const lastCall = () => {
    const last = [
      ...anthropic.requests.slice(-1).map((r) => ({ at: r.at, what: `anthropic ${callSiteOf(r)}` })),
      ...github.calls.slice(-1).map((c) => ({ at: c.at, what: `github ${c.route}` })),
      ...telegram.calls.filter((c) => c.method !== 'getUpdates').slice(-1).map((c) => ({ at: c.at, what: `telegram ${c.method}` })),
    ].sort((a, b) => b.at - a.at)[0];
    return last?.what ?? 'none';
  };

  const procs: BotProcess[] = [];
  const start = async () => {
    const p = await harness.startBot({ ...KILL_ENV }, { pollTimeoutMs: 60_000 });
    procs.push(p);
    return p;
  };
  let proc = await start();
  user.ask(FULL_ITEM_REQUEST);
  let startedAt = Date.now();
  const callCount = () => anthropic.requests.length + github.calls.length + telegram.calls.filter((c) => c.method !== 'getUpdates').length;
  // The next kill: after call number `killAfter`, plus a delay drawn when that call arrives.
  const nextKill = () =>
    kills.length < opts.maxKills && opts.baselineCalls > 0 ? callCount() + 1 + Math.floor(random() * Math.max(1, opts.baselineCalls - callCount())) : Infinity;
  let killAfter = nextKill();
  let killAt = Infinity;
  for (;;) {
    user.act(generation);
    if (isItemFinished(harness)) break;
    if (Date.now() > deadline) {
      violations.push(`stuck: the item is ${itemState(harness)} after ${Math.round((Date.now() - started) / 1000)} s`);
      break;
    }
    if (killAt === Infinity && callCount() >= killAfter) killAt = Date.now() + random() * 100;
    if (Date.now() >= killAt) {
      const afterMs = Date.now() - startedAt;
      const call = lastCall();
      await proc.kill9();
      kills.push({ afterMs, state: itemState(harness), lastCall: call });
      generation += 1;
      proc = await start();
      startedAt = Date.now();
      killAfter = nextKill();
      killAt = Infinity;
      continue;
    }
    // Every check above is about what the fakes or the database show: look again at the next
    // call to a fake (or the kill's moment, or the fakes' safety poll for database changes).
    await harness.nextChange(killAt === Infinity ? undefined : killAt - Date.now());
  }
  const exit = await proc.stop();
  if (exit !== 0) violations.push(`the last process exited with ${exit} on SIGTERM`);

  const tally = tallyItem(harness, user);
  violations.push(...itemViolations(harness, tally, { maxMergeCalls: 1, baselinePaidTurns: opts.baselinePaidTurns, extraPaid: kills.length * IN_FLIGHT_MAX, why: `kills × ${IN_FLIGHT_MAX} calls in flight`, crashes: kills.length }));
  const log = procs.flatMap((p, i) => [`-- process ${i + 1}`, ...p.lines.filter((l) => /"level":(40|50|60)/.test(l)), ...p.lines.slice(process.env.NIGHTSHIFT_KILL_LOG_LEVEL ? -400 : -5)]);
  return { seed: opts.seed, kills, durationMs: Date.now() - started, calls: callCount(), ...tally, violations, log };
}

/** Runs `run` for each seed, `parallel` at a time, and returns the results in seed order. */
export async function runSeeds<T>(seeds: readonly number[], parallel: number, run: (seed: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(seeds.length);
  let next = 0;
  const worker = async () => {
    while (next < seeds.length) {
      const i = next++;
      results[i] = await run(seeds[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, seeds.length)) }, worker));
  return results;
}

/** One line per seed, then the totals: what `test:soak` and the CI test print. */
export function killSummary(results: readonly SeedResult[]): string {
  const kills = results.flatMap((r) => r.kills);
  const byState = new Map<string, number>();
  for (const k of kills) byState.set(k.state, (byState.get(k.state) ?? 0) + 1);
  const byCall = new Map<string, number>();
  for (const k of kills) byCall.set(k.lastCall.replace(/\/\{[^}]+\}/g, ''), (byCall.get(k.lastCall.replace(/\/\{[^}]+\}/g, '')) ?? 0) + 1);
  const broken = results.filter((r) => r.violations.length > 0);
  const extraPaid = results.reduce((n, r) => n + r.paidTurns, 0);
  return [
    `kill harness: ${results.length} seeds, ${kills.length} kills survived, ${broken.length} seeds with violations`,
    `  kills by item state: ${[...byState].map(([s, n]) => `${s} ${n}`).join(', ') || 'none'}`,
    `  kills by last call:  ${[...byCall].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${s} ${n}`).join(', ') || 'none'}`,
    `  PRs per seed: ${[...new Set(results.map((r) => r.prs))].join('/')}; merge calls per seed ≤ ${Math.max(0, ...results.map((r) => r.mergeCalls))}; cards per head ≤ ${Math.max(0, ...results.flatMap((r) => Object.values(r.cardsPerHead)))} (+${results.reduce((n, r) => n + r.resentCards, 0)} marked as sent again after a kill during their send)`,
    `  paid model calls: ${extraPaid} in all, ${(extraPaid / Math.max(1, results.length)).toFixed(1)} per seed`,
    ...broken.flatMap((r) => [`  seed ${r.seed}: ${r.violations.join('; ')} (kills: ${r.kills.map((k) => `${k.afterMs} ms in ${k.state} after ${k.lastCall}`).join(', ')})`]),
  ].join('\n');
}
