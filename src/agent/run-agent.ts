import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { costUsd, priceFor, type ModelPrice } from '../domain/pricing.js';
import { admitCall, isPeriodStop, recordPartialCall, type CallBudget, type PeriodBudget } from '../llm/metered-call.js';
import { PartialCallError, type ContentBlock, type ContentBlockParam, type MessageParam, type ModelClient, type ModelResponse, type ToolParam } from '../llm/model-client.js';
import { classifyModelError } from '../llm/classify-model-error.js';
import type { AgentMessage } from '../store/agent-runs.js';
import type { Store } from '../store/open-store.js';

/** Runs one tool call; `isError` results go back to the model as `is_error` tool results. */
export type ToolExecutor = (input: unknown, signal: AbortSignal) => Promise<{ content: string; isError: boolean }>;

/** The limits one agent loop runs under; each is checked before every model call. */
export interface AgentLimits {
  readonly maxTurns: number;
  readonly maxOutputTokens: number;
  readonly maxWallClockMs: number;
  readonly stageBudgetUsd: number;
  readonly itemBudgetUsd: number;
}

/** Which limit stopped a run. */
export type LimitName = 'turns' | 'wall-clock' | 'stage-budget' | 'item-budget' | 'daily-budget' | 'monthly-budget' | 'stuck' | 'output-limit';

/** How a run ended. */
export type AgentOutcome =
  | { readonly kind: 'done'; readonly finalText: string; readonly turns: number }
  | { readonly kind: 'limit'; readonly limit: LimitName; readonly message: string; readonly turns: number }
  /** Worth going on later; `notBefore` (epoch ms) when a daily or monthly cap stopped it until its reset; `throttled` after a rate limit or overload. */
  | { readonly kind: 'retry-later'; readonly message: string; readonly notBefore?: number; readonly throttled?: true }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'aborted' };

/** What a run is asked to do. */
export interface AgentTask {
  readonly itemId: number;
  readonly stage: string;
  readonly model: string;
  readonly system: string;
  readonly initialMessage: string;
  readonly tools: readonly ToolParam[];
  readonly executors: Readonly<Record<string, ToolExecutor>>;
  readonly limits: AgentLimits;
  readonly signal?: AbortSignal;
  /** Called after every paid turn, for progress messages. */
  readonly onTurn?: (progress: { turn: number; maxTurns: number; itemUsd: number }) => void;
}

/** Same tool call with the same result this many times in a row means the loop is stuck. @default 3 */
export const STUCK_REPEATS = 3;
/** Replies cut at the output limit this many times in a row stop the run. @default 3 */
export const MAX_TOKENS_REPEATS = 3;

/** What the loop needs from the process. */
export interface AgentDeps {
  readonly model: ModelClient;
  readonly store: Store;
  readonly prices: Readonly<Record<string, ModelPrice>>;
  readonly redact: (text: string) => string;
  readonly log: Logger;
  /** Monotonic milliseconds, for durations. @default performance.now */
  readonly clock?: () => number;
  /** The process's daily and monthly caps; without it only the stage and item caps apply. */
  readonly period?: PeriodBudget | undefined;
}

/**
 * The tool-use loop. Every turn (the model's reply with its usage, then the tool results) is
 * written to SQLite before the next call, so a run interrupted by a crash, `kill -9` or a lost
 * connection resumes from its last completed turn and never pays for a turn twice.
 */
export async function runAgent(deps: AgentDeps, task: AgentTask): Promise<AgentOutcome> {
  const { store, log: rootLog } = deps;
  const clock = deps.clock ?? (() => performance.now());
  const price = priceFor(task.model, deps.prices);
  if (!price) return { kind: 'failed', message: `no price is known for model ${task.model}` };
  // A run that already finished (the crash came later, during push or PR) is not paid again.
  const latest = store.agentRuns.latest(task.itemId, task.stage);
  if (latest?.status === 'done') {
    const final = store.agentRuns.messages(latest.id).filter((m) => m.role === 'assistant').at(-1);
    return { kind: 'done', finalText: finalTextOf(final), turns: latest.turns };
  }
  const { run, resumed } = store.agentRuns.openOrCreate(task.itemId, task.stage);
  const log = rootLog.child({ itemId: task.itemId, stage: task.stage, runId: run.id });
  if (resumed) log.info({ turns: run.turns }, 'resuming the agent run from its last completed turn');

  const messages: AgentMessage[] = store.agentRuns.messages(run.id);
  if (messages.length === 0) {
    const first: AgentMessage = { role: 'user', content: [{ type: 'text', text: task.initialMessage }] };
    store.agentRuns.append(run.id, first);
    messages.push(first);
  }
  let turns = run.turns;
  const budget: CallBudget = { itemId: task.itemId, stage: task.stage, stageBudgetUsd: task.limits.stageBudgetUsd, itemBudgetUsd: task.limits.itemBudgetUsd };
  let elapsedBefore = run.elapsedMs;
  let segmentStart = clock();
  const elapsed = () => elapsedBefore + (clock() - segmentStart);
  const stop = (limit: LimitName, message: string): AgentOutcome => {
    store.agentRuns.finish(run.id, 'stopped', `${limit}: ${message}`);
    log.warn({ limit, turns }, `agent run stopped: ${message}`);
    return { kind: 'limit', limit, message, turns };
  };

  // Whether the newest reply came from the model in this process. A stored reply whose tools
  // have no results was interrupted while they ran: they may have partly run, so they are
  // reported as interrupted instead of run twice (an insert or an append would double).
  let freshReply = false;
  for (;;) {
    if (task.signal?.aborted) return { kind: 'aborted' };
    const last = messages.at(-1)!;

    if (last.role === 'assistant') {
      const toolUses = last.content.filter(isToolUse);
      if (toolUses.length === 0) {
        store.agentRuns.finish(run.id, 'done', 'end_turn');
        return { kind: 'done', finalText: finalTextOf(last), turns };
      }
      const started = clock();
      const deadline = deadlineSignal(task.signal, task.limits.maxWallClockMs - elapsed());
      const results = freshReply
        ? await runTools(toolUses, task, deadline.signal, deps.redact, log)
        : toolUses.map((use) => toolResult(use.id, 'Interrupted by a restart while it ran; it may have partly run. Check the current state before doing it again.', true));
      deadline.clear();
      if (task.signal?.aborted) return { kind: 'aborted' };
      freshReply = false;
      const message: AgentMessage = { role: 'user', content: results };
      store.agentRuns.append(run.id, message, { elapsedMs: clock() - started });
      elapsedBefore += clock() - started;
      segmentStart = clock();
      messages.push(message);
      const stuck = stuckCall(messages);
      if (stuck) return stop('stuck', `the same ${stuck} call returned the same result ${STUCK_REPEATS} times in a row`);
      continue;
    }

    // Limits, checked before every call against the worst case of that call.
    if (turns >= task.limits.maxTurns) return stop('turns', `reached the limit of ${task.limits.maxTurns} turns`);
    if (elapsed() >= task.limits.maxWallClockMs) {
      return stop('wall-clock', `ran for ${Math.round(elapsed() / 60_000)} of ${Math.round(task.limits.maxWallClockMs / 60_000)} minutes allowed`);
    }
    const request = buildRequest(task, messages);
    const admission = admitCall(store, budget, request, price, { period: deps.period });
    if (admission.kind === 'stop') {
      const budgetStop = admission.stop;
      // A daily or monthly cap: the run stays open (not finished) and resumes from this turn
      // after the reset; nothing of this turn was sent or paid.
      if (isPeriodStop(budgetStop) && budgetStop.resumable) {
        log.info({ limit: budgetStop.limit, resetsAt: budgetStop.resetsAt, turns }, `agent run paused: ${budgetStop.message}`);
        return { kind: 'retry-later', message: budgetStop.message, notBefore: budgetStop.resetsAt };
      }
      return stop(budgetStop.limit, budgetStop.message);
    }

    // The wall clock also bounds a call in flight.
    const deadline = deadlineSignal(task.signal, task.limits.maxWallClockMs - elapsed());
    const callStart = clock();
    let response: ModelResponse;
    try {
      response = await deps.model.complete({ ...request, signal: deadline.signal });
    } catch (error) {
      // A call that broke off midway was still billed for what it streamed: record that.
      if (error instanceof PartialCallError) {
        recordPartialCall(store, budget, error, price);
        store.agentRuns.addElapsed(run.id, clock() - callStart);
      }
      if (task.signal?.aborted) return { kind: 'aborted' };
      if (deadline.expired()) return stop('wall-clock', `ran out of its ${Math.round(task.limits.maxWallClockMs / 60_000)} minutes during a model call`);
      const classified = classifyModelError(error);
      log.warn({ err: error, outcome: classified.kind }, 'model call failed');
      if (classified.kind === 'failed') store.agentRuns.finish(run.id, 'failed', classified.message);
      return classified;
    } finally {
      deadline.clear();
      admission.release();
    }

    // The paid turn, its cost, the reply and what the reply means (a note after a cut reply,
    // the end of the run) are one transaction, so a resume can never misread a stored reply.
    turns += 1;
    const content = response.content.map(toParam);
    const assistant: AgentMessage = { role: 'assistant', content: content.length > 0 ? content : [{ type: 'text', text: '…' }] };
    const next = afterReply(response.stopReason, assistant, messages, task.limits.maxOutputTokens);
    const callMs = clock() - callStart;
    store.transaction(() => {
      store.ledger.record({
        itemId: task.itemId,
        stage: task.stage,
        model: response.model,
        ...response.usage,
        batch: false,
        // Priced by the configured model id: the API answers with a dated id that a price
        // override keyed by the configured one would miss.
        costUsd: costUsd(response.usage, price),
        requestId: response.requestId,
      });
      store.agentRuns.append(run.id, assistant, { turns: 1, elapsedMs: callMs });
      if (next.followUp) store.agentRuns.append(run.id, next.followUp);
      if (next.end) store.agentRuns.finish(run.id, next.end.status, next.end.outcome);
    });
    elapsedBefore += callMs;
    segmentStart = clock();
    messages.push(assistant);
    if (next.followUp) messages.push(next.followUp);
    freshReply = true;
    log.debug({ turn: turns, stopReason: response.stopReason, usage: response.usage }, 'agent turn');
    task.onTurn?.({ turn: turns, maxTurns: task.limits.maxTurns, itemUsd: store.ledger.itemUsd(task.itemId) });
    if (next.end) {
      if (next.end.status === 'stopped') return { kind: 'limit', limit: 'output-limit', message: next.end.outcome, turns };
      return { kind: 'failed', message: next.end.message };
    }
  }
}

/** What a reply leads to: a message to add after it, or the end of the run. */
function afterReply(
  stopReason: string | null,
  assistant: AgentMessage,
  messages: readonly AgentMessage[],
  maxOutputTokens: number,
): { followUp?: AgentMessage; end?: { status: 'stopped' | 'failed'; outcome: string; message: string } } {
  switch (stopReason) {
    case 'end_turn':
    case 'stop_sequence':
    case 'tool_use':
      return {}; // the top of the loop finishes, or runs the tools
    case 'pause_turn':
      // A long server-side turn was paused: asking it to go on continues it. (The build tools
      // are client tools, so this is rare.) A paused reply with tool calls gets their results.
      return assistant.content.some(isToolUse) ? {} : { followUp: { role: 'user', content: [{ type: 'text', text: 'Continue.' }] } };
    case 'max_tokens': {
      if (cutAtOutputLimit([...messages, assistant]) >= MAX_TOKENS_REPEATS) {
        const message = `${MAX_TOKENS_REPEATS} replies in a row were cut at the ${maxOutputTokens}-token output limit`;
        return { end: { status: 'stopped', outcome: `output-limit: ${message}`, message } };
      }
      // A cut reply may hold a half-written tool call: never run it, say why instead.
      const content: ContentBlockParam[] = [
        ...assistant.content.filter(isToolUse).map((b) => toolResult(b.id, 'Not run: your reply was cut off at the output limit before this call was complete.', true)),
        { type: 'text', text: `${CUT_NOTE} ${maxOutputTokens}-token output limit. Continue in smaller steps (write big files in parts).` },
      ];
      return { followUp: { role: 'user', content } };
    }
    case 'refusal':
      return { end: { status: 'failed', outcome: 'refusal', message: 'the model declined to do this task (refusal)' } };
    case 'model_context_window_exceeded':
      return { end: { status: 'failed', outcome: 'context window exceeded', message: "the conversation outgrew the model's context window; split the item into smaller ones" } };
    default:
      return { end: { status: 'failed', outcome: `stop_reason ${String(stopReason)}`, message: `the model stopped for an unknown reason (${String(stopReason)})` } };
  }
}

/** An abort signal for the rest of the wall-clock budget that also follows `parent`. */
function deadlineSignal(parent: AbortSignal | undefined, remainingMs: number) {
  const controller = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort(new Error('wall-clock limit'));
  }, Math.max(0, remainingMs));
  const onAbort = () => controller.abort(parent?.reason);
  parent?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    expired: () => expired,
    clear() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
  };
}

function finalTextOf(message: AgentMessage | undefined): string {
  return (message?.content ?? []).filter(isText).map((b) => b.text).join('\n').trim();
}

type ToolUseParam = { type: 'tool_use'; id: string; name: string; input: unknown };
type TextParam = { type: 'text'; text: string };
const isToolUse = (b: unknown): b is ToolUseParam => (b as { type?: string }).type === 'tool_use';
const isText = (b: unknown): b is TextParam => (b as { type?: string }).type === 'text';

function toolResult(id: string, content: string, isError: boolean): ContentBlockParam {
  return { type: 'tool_result', tool_use_id: id, content, ...(isError ? { is_error: true } : {}) };
}

async function runTools(toolUses: ToolUseParam[], task: AgentTask, signal: AbortSignal, redact: (t: string) => string, log: Logger): Promise<ContentBlockParam[]> {
  const results: ContentBlockParam[] = [];
  for (const use of toolUses) {
    const executor = task.executors[use.name];
    if (!executor) {
      results.push(toolResult(use.id, `Unknown tool ${use.name}. Available: ${Object.keys(task.executors).join(', ')}.`, true));
      continue;
    }
    try {
      const result = await executor(use.input, signal);
      results.push(toolResult(use.id, redact(result.content), result.isError));
    } catch (error) {
      log.warn({ err: error, tool: use.name }, 'tool failed');
      results.push(toolResult(use.id, redact(error instanceof Error ? error.message : String(error)), true));
    }
  }
  return results;
}

/** Strips a reply block to what the API accepts back as input. */
function toParam(block: ContentBlock): ContentBlockParam {
  switch (block.type) {
    case 'text':
      return { type: 'text', text: block.text };
    case 'tool_use':
      return { type: 'tool_use', id: block.id, name: block.name, input: block.input };
    default:
      return block as unknown as ContentBlockParam;
  }
}

/**
 * The request, laid out for prompt caching: tools and system prompt are a cached prefix; the
 * transcript carries a moving breakpoint on its newest message (and one on the message before,
 * so a turn whose newest breakpoint missed still reads the previous prefix). Four in all.
 */
function buildRequest(task: AgentTask, messages: readonly AgentMessage[]) {
  const cache = { type: 'ephemeral' as const };
  const tools = task.tools.map((t, i) => (i === task.tools.length - 1 ? { ...t, cache_control: cache } : t));
  const marked = new Set([messages.length - 1, messages.length - 3].filter((i) => i >= 0));
  const apiMessages: MessageParam[] = messages.map((m, i) => {
    const content = m.content as ContentBlockParam[];
    if (!marked.has(i) || content.length === 0) return { role: m.role, content };
    return { role: m.role, content: content.map((b, j) => (j === content.length - 1 ? ({ ...b, cache_control: cache } as ContentBlockParam) : b)) };
  });
  return {
    model: task.model,
    maxTokens: task.limits.maxOutputTokens,
    system: [{ type: 'text' as const, text: task.system, cache_control: cache }],
    tools: tools as ToolParam[],
    messages: apiMessages,
  };
}

/** The tool name if the last STUCK_REPEATS tool calls were one call with one result. */
function stuckCall(messages: readonly AgentMessage[]): string | undefined {
  const signatures: Array<{ name: string; signature: string }> = [];
  for (let i = messages.length - 1; i > 0 && signatures.length < STUCK_REPEATS; i -= 2) {
    const results = messages[i]!;
    const call = messages[i - 1]!;
    if (results.role !== 'user' || call.role !== 'assistant') break;
    const uses = call.content.filter(isToolUse);
    if (uses.length === 0) break;
    const hash = createHash('sha256').update(JSON.stringify([uses.map((u) => [u.name, u.input]), results.content.map((r) => ({ ...(r as object), tool_use_id: undefined }))])).digest('hex');
    signatures.push({ name: uses.map((u) => u.name).join('+'), signature: hash });
  }
  if (signatures.length < STUCK_REPEATS) return undefined;
  return signatures.every((s) => s.signature === signatures[0]!.signature) ? signatures[0]!.name : undefined;
}

/** How many replies in a row, the newest (last in `messages`) included, were cut at the output limit. */
function cutAtOutputLimit(messages: readonly AgentMessage[]): number {
  let count = 1; // the newest reply, just received
  for (let i = messages.length - 2; i >= 0; i -= 2) {
    const note = messages[i]!;
    if (note.role !== 'user' || !note.content.some((b) => isText(b) && b.text.startsWith(CUT_NOTE))) break;
    count += 1;
  }
  return count;
}

const CUT_NOTE = 'Your reply was cut off at the';
