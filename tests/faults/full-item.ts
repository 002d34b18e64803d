import type { FakeAnthropic, FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import type { SentMessage } from '../fakes/telegram-server.js';

// One full item for the fault suite: a request that is built, reviewed with one real finding,
// triaged "fix now", fixed, reviewed clean, carded and merged. The model's replies are derived
// from each request's own content, never from a counter, so a conversation that is resumed
// after a crash, or a call that is retried, gets the same answer as the first time.

/** The target repo's files. */
export const FULL_ITEM_FILES: Record<string, string> = {
  'README.md': '# app\n',
  'src/sum.js': 'export const sum = (a, b) => a + b;\n',
  'tests/sum.test.js': "import { sum } from '../src/sum.js';\nif (sum(1, 2) !== 3) throw new Error('sum');\n",
};

/** What the user asks for. */
export const FULL_ITEM_REQUEST = 'Add an average function';

/** The merge route of the fake GitHub. */
export const MERGE = 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge';
/** The PR-creation route of the fake GitHub. */
export const CREATE_PR = 'POST /repos/{owner}/{repo}/pulls';

type Body = {
  tools?: Array<{ name: string }>;
  system?: Array<{ text: string }>;
  messages: Array<{ role: string; content: unknown }>;
  tool_choice?: { name?: string };
};

/** A request's parsed body. */
export const bodyOf = (r: RecordedRequest) => r.body as Body;
/** Whether the request is an agent turn (build or fix): it offers the bash tool. */
export const isAgentTurn = (r: RecordedRequest) => (bodyOf(r).tools ?? []).some((t) => t.name === 'bash');
/** Whether the request is a turn of the fix agent. */
export const isFixTurn = (r: RecordedRequest) => isAgentTurn(r) && (bodyOf(r).system?.[0]?.text ?? '').includes('fixing problems that critical reviewers found');
/** A short name of what the request is for: `build`, `fix`, or the forced tool's name. */
export const callSiteOf = (r: RecordedRequest) => (isFixTurn(r) ? 'fix' : isAgentTurn(r) ? 'build' : (bodyOf(r).tool_choice?.name ?? 'other'));

const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const text = (t: string): FakeReply => ({ content: [{ type: 'text', text: t }] });

const BUGGY = 'export function avg(values) {\n  const total = values.reduce((a, b) => a + b, 0);\n  return total / (values.length + 1);\n}\n';

/**
 * The model's side of the full item. Each agent's step is the number of turns its conversation
 * already has; each reviewer's answer depends on whether the diff it sees still has the bug.
 */
export function fullItemReply(req: RecordedRequest): FakeReply | undefined {
  const b = bodyOf(req);
  const turn = Math.floor(b.messages.length / 2);
  // Like a model told that its tool call was cut short by a restart: it checks nothing and simply
  // makes the same call again (the edits here are idempotent).
  const interrupted = isAgentTurn(req) && JSON.stringify(b.messages.at(-1)?.content ?? '').includes('Interrupted by a restart');
  const again = interrupted ? (b.messages.at(-2)?.content as Array<{ type: string; name?: string; input?: Record<string, unknown> }> | undefined)?.find((c) => c.type === 'tool_use') : undefined;
  if (again?.name) return tool(again.name, again.input ?? {});
  if (isFixTurn(req)) {
    if (turn === 0) return tool('str_replace_based_edit_tool', { command: 'str_replace', path: 'src/avg.js', old_str: '(values.length + 1)', new_str: 'values.length' });
    return text('fixed: divide by values.length.');
  }
  if (isAgentTurn(req)) {
    if (turn === 0) return tool('str_replace_based_edit_tool', { command: 'create', path: 'src/avg.js', file_text: BUGGY });
    if (turn === 1) return tool('bash', { command: 'git status --short; node tests/sum.test.js && echo ok' });
    return text('Summary: added avg.\nTests: none.\nNotes: none');
  }
  if (b.tool_choice?.name === 'report_findings') {
    // Round two sees the fix's own diff (the bad line removed); without it, the bad line added.
    const seen = JSON.stringify(b.system ?? '');
    const fixed = seen.includes('-  return total / (values.length + 1);') || !seen.includes('+  return total / (values.length + 1);');
    if (fixed || !/Review angle: correctness/.test(JSON.stringify(b.messages))) return tool('report_findings', { findings: [] });
    return tool('report_findings', {
      findings: [
        {
          file: 'src/avg.js',
          line_start: 3,
          line_end: 3,
          severity: 'high',
          title: 'avg divides by one too many',
          evidence: 'return total / (values.length + 1);',
          failure: 'avg([2, 4]) returns 2',
          suggested_fix: 'divide by values.length',
          confidence: 0.9,
        },
      ],
    });
  }
  if (b.tool_choice?.name === 'report_triage') {
    const prompt = b.system?.[0]?.text ?? '';
    const listed = JSON.parse(prompt.slice(prompt.lastIndexOf('<findings>') + '<findings>'.length, prompt.lastIndexOf('</findings>'))) as Array<{ id: number }>;
    return tool('report_triage', { verdict: 'ready_with_open_items', findings: listed.map((f) => ({ id: f.id, verdict: 'fix_now', reason: 'validated: the divisor is wrong' })) });
  }
  return undefined;
}

/** Answers every model call of the full item on `anthropic`. */
export function scriptFullItem(anthropic: FakeAnthropic): void {
  anthropic.onRequest(fullItemReply);
}

/** The inline buttons of a message as sent (its edits may have removed them since). */
export const buttonsOf = (m: SentMessage) =>
  ((m.reply_markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat();

/** Whether a message went out as a review card (it carried an Approve button). */
export const isCard = (m: SentMessage) => buttonsOf(m).some((b) => /Approve/.test(b.text));

/** The short head SHA a review card names. */
export const cardHead = (m: SentMessage) => /head <code>([0-9a-f]{7})<\/code>/.exec(m.text)?.[1] ?? '?';
