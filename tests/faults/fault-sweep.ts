import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AnthropicFault, RecordedRequest } from '../fakes/anthropic-server.js';
import type { GitHubFault, RecordedGitHubCall } from '../fakes/github-server.js';
import type { Fault as TelegramFault, RecordedCall } from '../fakes/telegram-server.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';
import { bodyOf, callSiteOf, FULL_ITEM_FILES, FULL_ITEM_REQUEST, fullItemReply, isAgentTurn, isFixTurn, MERGE } from './full-item.js';
import { createItemUser, isItemFinished, itemState, itemViolations, tallyItem, type ItemTally } from './item-run.js';
import { KILL_ENV, seededRandom } from './kill-harness.js';

// The API fault sweep: a baseline run of the full item lists every call it makes to each fake
// (a call site is a service, what the call is for and its occurrence: the 2nd build turn, the 3rd
// report_findings, the 1st merge, the 2nd sendMessage), then each fault that applies to that
// service is injected at that one call on fresh fakes and the item is run to its end. Nothing is
// hard-coded: a new call in the pipeline is swept as soon as the baseline makes it.

/** Which fake a call site lives on. */
export type Service = 'anthropic' | 'github' | 'telegram';

/** One call of the baseline run: the `occurrence`-th call of `name` on `service`. */
export interface CallSite {
  readonly service: Service;
  /** Anthropic: `callSiteOf` (build, fix, report_findings, …); GitHub: the route; Telegram: the method. */
  readonly name: string;
  readonly occurrence: number;
}

/** A fault a service can suffer, by the name the summary shows. */
export type FaultSpec =
  | { readonly service: 'anthropic'; readonly kind: string; readonly fault: AnthropicFault }
  | { readonly service: 'github'; readonly kind: string; readonly fault: GitHubFault; readonly writesOnly?: true }
  | { readonly service: 'telegram'; readonly kind: string; readonly fault: TelegramFault };

/** Every fault kind swept, per service. */
export const FAULTS: readonly FaultSpec[] = [
  { service: 'anthropic', kind: '429', fault: { kind: 'rate-limit', retryAfterMs: 200 } },
  { service: 'anthropic', kind: '529', fault: { kind: 'overloaded' } },
  { service: 'anthropic', kind: '500', fault: { kind: 'server-error' } },
  { service: 'anthropic', kind: 'reset', fault: { kind: 'reset' } },
  { service: 'anthropic', kind: 'stall', fault: { kind: 'stall' } },
  { service: 'anthropic', kind: 'cut-stream', fault: { kind: 'cut-stream' } },
  { service: 'anthropic', kind: 'stall-stream', fault: { kind: 'stall-stream' } },
  { service: 'github', kind: '502', fault: { kind: 'server-error', status: 502 } },
  { service: 'github', kind: 'reset', fault: { kind: 'reset' } },
  { service: 'github', kind: 'stall', fault: { kind: 'stall' } },
  { service: 'github', kind: '403-secondary', fault: { kind: 'secondary-rate-limit' } },
  // The write happened, its answer was lost: the "unclear outcome" a merge or PR creation must reconcile.
  { service: 'github', kind: 'lost-answer', fault: { kind: 'after' }, writesOnly: true },
  { service: 'telegram', kind: '429', fault: { kind: 'rate-limit', retryAfter: 1 } },
  { service: 'telegram', kind: '500', fault: { kind: 'server-error' } },
  { service: 'telegram', kind: 'reset', fault: { kind: 'reset' } },
  { service: 'telegram', kind: 'stall', fault: { kind: 'stall' } },
];

/** One (call site, fault) pair. */
export interface FaultCase {
  readonly site: CallSite;
  readonly spec: FaultSpec;
}

/** What one case did and which invariants it broke. */
export interface CaseResult extends ItemTally {
  readonly label: string;
  readonly site: CallSite;
  readonly kind: string;
  readonly durationMs: number;
  /** Approve taps the user sent. */
  readonly taps: number;
  readonly violations: string[];
}

const isMessagesCall = (r: RecordedRequest) => r.path === '/v1/messages' && !r.batch;
const isWrite = (route: string) => !route.startsWith('GET ');

/** The name a call has as a call site on its service. */
const anthropicName = callSiteOf;
const githubName = (c: RecordedGitHubCall) => c.route;
const telegramName = (c: RecordedCall) => c.method;

/** A reviewer's angle ("correctness"), for a review call; undefined for any other call. */
const reviewAngle = (r: RecordedRequest): string | undefined =>
  callSiteOf(r) === 'report_findings' ? (/Review angle: ([\w-]+)/.exec(JSON.stringify(bodyOf(r).messages))?.[1] ?? '') : undefined;

/** Numbers each call by how many calls of the same name came before it. */
function numbered<C>(calls: readonly C[], service: Service, name: (c: C) => string): CallSite[] {
  const seen = new Map<string, number>();
  return calls.map((c) => {
    const n = (seen.get(name(c)) ?? 0) + 1;
    seen.set(name(c), n);
    return { service, name: name(c), occurrence: n };
  });
}

/**
 * The call sites of a finished run. Telegram's long polls are one site only (the 2nd poll, the
 * first after the bot is up): every poll is the same call, and a fault there only delays the next.
 */
export function callSitesOf(harness: PipelineHarness): CallSite[] {
  const messages = harness.anthropic.requests.filter(isMessagesCall);
  // The reviewers of a round are one call site: the same code, run at once, in an order that
  // changes from run to run. Their first call of each round is swept (the k-th report_findings
  // of a faulted run is whichever reviewer asked k-th).
  const firstAngle = messages.map(reviewAngle).find((a) => a !== undefined);
  const anthropicSites = numbered(messages, 'anthropic', anthropicName).filter((_, i) => {
    const angle = reviewAngle(messages[i]!);
    return angle === undefined || angle === firstAngle;
  });
  return [
    ...anthropicSites,
    ...numbered(harness.github.calls, 'github', githubName),
    ...numbered(harness.telegram.calls, 'telegram', telegramName).filter((s) => s.name !== 'getUpdates' || s.occurrence === 2),
  ];
}

/**
 * Every (call site, fault) pair that applies. A stall is swept at the first call of each name
 * only: what it tests is that client's timeout, the same at every occurrence, and each costs a
 * whole timeout (Anthropic 120 s, Telegram 60 s, GitHub 30 s).
 */
export function allCases(sites: readonly CallSite[]): FaultCase[] {
  return sites.flatMap((site) =>
    FAULTS.filter(
      (spec) =>
        spec.service === site.service &&
        !(spec.service === 'github' && spec.writesOnly && !isWrite(site.name)) &&
        !(spec.kind.startsWith('stall') && site.occurrence > 1),
    ).map((spec) => ({ site, spec })),
  );
}

/**
 * A sample: for each fault kind of each service, `perKind` sites chosen by `seed`. Stalls only
 * with `stalls`: each costs a client's whole timeout (Anthropic 120 s, Telegram 60 s, GitHub 30 s).
 */
export function sampleCases(cases: readonly FaultCase[], seed: number, perKind: number, stalls = false): FaultCase[] {
  const random = seededRandom(seed);
  return FAULTS.filter((spec) => stalls || !spec.kind.startsWith('stall')).flatMap((spec) => {
    const pool = cases.filter((c) => c.spec === spec);
    const picked: FaultCase[] = [];
    while (picked.length < Math.min(perKind, pool.length)) {
      const c = pool.splice(Math.floor(random() * pool.length), 1)[0]!;
      picked.push(c);
    }
    return picked;
  });
}

/** `site` as the summary names it, e.g. `anthropic build#2`. */
export const siteLabel = (site: CallSite) => `${site.service} ${site.name.replace(/^(\w+) \/repos\/\{owner\}\/\{repo\}/, '$1 ')}#${site.occurrence}`;

function aim(harness: PipelineHarness, { site, spec }: FaultCase): void {
  const target = { occurrence: site.occurrence };
  if (spec.service === 'anthropic') harness.anthropic.failAt({ ...target, match: (r) => isMessagesCall(r) && anthropicName(r) === site.name }, spec.fault);
  else if (spec.service === 'github') harness.github.failAt({ ...target, match: (c) => githubName(c) === site.name }, spec.fault);
  else harness.telegram.failAt({ ...target, match: (c) => telegramName(c) === site.name }, spec.fault);
}

/** How many calls the run made to the site's name: the fault fired only if it reached the occurrence. */
function callsTo(harness: PipelineHarness, site: CallSite): number {
  if (site.service === 'anthropic') return harness.anthropic.requests.filter((r) => isMessagesCall(r) && anthropicName(r) === site.name).length;
  if (site.service === 'github') return harness.github.calls.filter((c) => githubName(c) === site.name).length;
  return harness.telegram.calls.filter((c) => telegramName(c) === site.name).length;
}

/** Every `src/avg.js` a worktree under the data directory holds, with its text. */
function avgFiles(dataDir: string): string[] {
  return (readdirSync(dataDir, { recursive: true, encoding: 'utf8' }) as string[])
    .filter((p) => p.endsWith(join('src', 'avg.js')) && !p.split('/').includes('.git'))
    .map((p) => readFileSync(join(dataDir, p), 'utf8'));
}

/**
 * The model's side, with a watch on the tools' effects: when an agent starts a conversation
 * (turn 0), its first tool call has not been executed yet, so the file it creates (build) or
 * edits (fix) must be as before. A cut reply that was executed anyway would show here.
 */
function scriptWatched(harness: PipelineHarness, violations: string[]): void {
  harness.anthropic.onRequest((req) => {
    if (isAgentTurn(req) && bodyOf(req).messages.length === 1) {
      const files = avgFiles(harness.dataDir);
      if (!isFixTurn(req) && files.length > 0) violations.push('src/avg.js exists before the build asked for it');
      if (isFixTurn(req) && files.some((f) => !f.includes('(values.length + 1)'))) violations.push('src/avg.js was edited before the fix asked for it');
    }
    return fullItemReply(req);
  });
}

/** Tool calls of replies that broke off midway, answered by a later request: the half-streamed tool call was executed. */
function answeredCutToolCalls(harness: PipelineHarness): string[] {
  const requests = harness.anthropic.requests.filter(isMessagesCall);
  const cutIds = new Set(
    requests.filter((r) => r.outcome === 'cut' || r.outcome === 'stall').flatMap((r) => (r.reply?.content ?? []).flatMap((b) => (b.type === 'tool_use' ? [b.id] : []))),
  );
  const answered = requests.flatMap((r) =>
    bodyOf(r).messages.flatMap((m) =>
      Array.isArray(m.content) ? (m.content as Array<{ type: string; tool_use_id?: string }>).filter((b) => b.type === 'tool_result' && cutIds.has(b.tool_use_id!)) : [],
    ),
  );
  return [...new Set(answered.map((b) => b.tool_use_id!))].map((id) => `a tool_result answers ${id}, a tool call that was cut off`);
}

/** Options of `runCase`. */
export interface CaseOptions {
  /** Paid model calls of the baseline; a case may pay one more. */
  readonly baselinePaidTurns?: number;
  /** The case fails as stuck after this long. @default 240 s */
  readonly deadlineMs?: number;
}

/** Runs the full item on fresh fakes with `fault` (or none, for the baseline) and checks the invariants. */
export async function runCase(fault: FaultCase | undefined, opts: CaseOptions = {}): Promise<CaseResult & { sites: CallSite[] }> {
  const harness = await startPipelineHarness(FULL_ITEM_FILES);
  try {
    const started = Date.now();
    const violations: string[] = [];
    scriptWatched(harness, violations);
    if (fault) aim(harness, fault);
    const user = createItemUser(harness);
    const proc = await harness.startBot({ ...KILL_ENV }, { pollTimeoutMs: 120_000 });
    user.ask(FULL_ITEM_REQUEST);
    const deadline = started + (opts.deadlineMs ?? 240_000);
    for (;;) {
      user.act(0);
      if (isItemFinished(harness)) break;
      if (Date.now() > deadline) {
        violations.push(`stuck: the item is ${itemState(harness)} after ${Math.round((Date.now() - started) / 1000)} s`);
        break;
      }
      // Every check above is about what the fakes or the database show: look again at the next
      // call to a fake (or after the fakes' safety poll, for changes only the database shows).
      await harness.nextChange();
    }
    const exit = await proc.stop();
    if (exit !== 0) violations.push(`the process exited with ${exit} on SIGTERM`);
    const tally = tallyItem(harness, user);
    violations.push(...itemViolations(harness, tally, { maxMergeCalls: user.taps(), baselinePaidTurns: opts.baselinePaidTurns, extraPaid: fault ? 1 : 0, why: 'for one fault', crashes: 0 }));
    // Exactly one merge performed: the PR is merged, and at most one merge call did it.
    const mergedPulls = harness.github.pulls.filter((p) => p.merged).length;
    if (tally.finalState === 'merged' && mergedPulls !== 1) violations.push(`the item is merged but ${mergedPulls} PRs are`);
    const merges = harness.github.callsOf(MERGE).filter((c) => c.status === 200).length;
    if (merges > 1) violations.push(`${merges} merge calls succeeded`);
    violations.push(...answeredCutToolCalls(harness));
    if (fault && callsTo(harness, fault.site) < fault.site.occurrence) violations.push('the fault never fired: the run made fewer calls than the baseline');
    return {
      label: fault ? `${siteLabel(fault.site)} ${fault.spec.kind}` : 'baseline',
      site: fault?.site ?? { service: 'anthropic', name: 'none', occurrence: 0 },
      kind: fault?.spec.kind ?? 'none',
      durationMs: Date.now() - started,
      taps: user.taps(),
      ...tally,
      violations,
      sites: callSitesOf(harness),
    };
  } finally {
    await harness.close();
  }
}

/** The table the sweep prints: per call site, each kind's outcome (✓ held, ✗ broke); then the totals and every violation. */
export function sweepSummary(results: readonly CaseResult[], durationMs: number): string {
  const kinds = [...new Set(FAULTS.map((f) => `${f.service[0]}:${f.kind}`))];
  const rows = new Map<string, Map<string, string>>();
  for (const r of results) {
    const row = rows.get(siteLabel(r.site)) ?? new Map<string, string>();
    row.set(`${r.site.service[0]}:${r.kind}`, r.violations.length === 0 ? '✓' : '✗');
    rows.set(siteLabel(r.site), row);
  }
  const width = Math.max(10, ...[...rows.keys()].map((k) => k.length));
  const perKind = kinds.map((k) => `${k} ${results.filter((r) => `${r.site.service[0]}:${r.kind}` === k).length}`);
  const broken = results.filter((r) => r.violations.length > 0);
  const slowest = [...results].sort((a, b) => b.durationMs - a.durationMs).slice(0, 3);
  return [
    `API fault sweep: ${results.length} cases on ${rows.size} call sites in ${Math.round(durationMs / 1000)} s, ${broken.length} with violations`,
    `  faults per kind: ${perKind.join(', ')}`,
    `  slowest: ${slowest.map((r) => `${r.label} ${Math.round(r.durationMs / 1000)} s`).join(', ')}`,
    `  ${'call site'.padEnd(width)}  ${kinds.join(' ')}`,
    ...[...rows].map(([site, row]) => `  ${site.padEnd(width)}  ${kinds.map((k) => (row.get(k) ?? '·').padEnd(k.length)).join(' ')}`),
    ...broken.map((r) => `  ✗ ${r.label}: ${r.violations.join('; ')}`),
  ].join('\n');
}
