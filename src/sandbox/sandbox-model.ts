/**
 * The sandbox model: a scripted stand-in for Claude behind the fake Anthropic server, so that
 * `npm run sandbox` runs the whole loop (build, review, triage, fix, card, merge) with no key.
 *
 * It is stateless: every answer is derived from the request alone (which prompt it is, how many
 * turns the conversation has had), so a restarted bot or a retried call gets the same answer.
 * What it does, in the sample repository:
 * - build agent: creates `src/requests/item-<id>.ts` describing the request, runs `npm test`
 *   with the bash tool, and sums up;
 * - reviewers: the `tests` angle reports that nothing tests the new file, the `design` angle a
 *   nit; once a test file is in the diff, nobody reports anything;
 * - triage: the missing test is `fix_now`, the rest `ignore`;
 * - fix agent: writes `test/item-<id>.test.ts`, notes it in the module, runs `npm test`, sums up;
 * - drift: on track; any other forced tool (sizing's `report_size`, a future one): the smallest
 *   input its JSON schema accepts, preferring answers that let work go ahead.
 * Every text it writes starts with {@link SANDBOX_MARK}, so nobody mistakes it for a real review.
 */
import type { FakeReply, RecordedRequest } from './anthropic-server.js';

/** The prefix of every text the sandbox model writes. */
export const SANDBOX_MARK = '[sandbox model]';

/** Enum values picked first when a schema lets the model choose: "it fits", "go ahead". */
const AGREEABLE = /^(fits?|ok|right|ready|yes|go|proceed|small|accept)/i;

type Block = { type: string; text?: string; name?: string; content?: unknown; input?: unknown };
interface RequestBody {
  tools?: Array<{ name: string; type?: string; input_schema?: unknown }>;
  tool_choice?: { type?: string; name?: string };
  system?: string | Array<{ text?: string }>;
  messages?: Array<{ role: string; content: string | Block[] }>;
}

/** Answers one request to the fake Anthropic server as the sandbox model. */
export function answerAsSandboxModel(req: RecordedRequest): FakeReply {
  const body = (req.body ?? {}) as RequestBody;
  const forced = body.tool_choice?.type === 'tool' ? body.tool_choice.name : undefined;
  if (forced === 'report_findings') return toolCall(forced, { findings: reviewFindings(body) });
  if (forced === 'report_triage') return toolCall(forced, triageVerdicts(body));
  if (forced === 'report_direction') {
    return toolCall(forced, {
      direction: `${SANDBOX_MARK} Small, self-contained additions under src/requests/, each with its own test.`,
      concerns: [],
      on_track: true,
    });
  }
  if (forced !== undefined) {
    const schema = body.tools?.find((t) => t.name === forced)?.input_schema;
    return toolCall(forced, asObject(minimalValue(schema ?? { type: 'object' })));
  }
  if ((body.tools ?? []).some((t) => t.name === 'bash')) return agentTurn(body);
  return { content: [{ type: 'text', text: `${SANDBOX_MARK} This is the scripted sandbox model; it has nothing to add here.` }] };
}

// ---- build and fix agents ------------------------------------------------------------------

/** One tool call the scripted agent makes. */
type AgentAction = { tool: 'str_replace_based_edit_tool' | 'bash'; input: Record<string, unknown> };

const RUN_TESTS: AgentAction = { tool: 'bash', input: { command: 'npm test 2>&1 | tail -n 15; exit "${PIPESTATUS[0]}"' } };

/**
 * One turn of the build or fix agent. The step is the number of assistant turns so far, so a
 * conversation replays identically: edit files, run the tests, sum up.
 */
function agentTurn(body: RequestBody): FakeReply {
  const messages = body.messages ?? [];
  const step = messages.filter((m) => m.role === 'assistant').length;
  const task = textOf(messages[0]?.content);
  const isFix = /<findings>/.test(task);
  const plan = isFix ? fixPlan(task) : buildPlan(task);
  const action = plan.actions[step];
  if (action) return toolCall(action.tool, action.input);
  const exit = /\[exit code (\w+)\]/.exec(lastToolResult(messages))?.[1] ?? 'unknown';
  const tests = `Tests: npm test (exit code ${exit}).`;
  const summary = isFix
    ? `${SANDBOX_MARK} fixed: ${plan.done}.\n${tests}`
    : `${SANDBOX_MARK} Summary: ${plan.done}. This is a scripted change, not a real implementation.\n${tests}\nNotes: the sandbox model makes the same kind of change for every request.`;
  return { content: [{ type: 'text', text: summary }] };
}

function buildPlan(task: string): { actions: AgentAction[]; done: string } {
  const id = /Work item #(\d+)/.exec(task)?.[1] ?? '0';
  const request = fenced(task, 'request')[0] ?? '';
  const title = (request.split('\n')[0] ?? '').slice(0, 120);
  const path = `src/requests/item-${id}.ts`;
  const text =
    `// ${SANDBOX_MARK} written for work item #${id}.\n` +
    `/** What work item #${id} asked for, as the developer typed it. */\n` +
    `export const request${id} = { id: ${id}, title: ${JSON.stringify(title)} } as const;\n`;
  return { actions: [{ tool: 'str_replace_based_edit_tool', input: { command: 'create', path, file_text: text } }, RUN_TESTS], done: `added ${path} for this request` };
}

/** A test for the module the finding names, and a note in that module (so the fix touches its file). */
function fixPlan(task: string): { actions: AgentAction[]; done: string } {
  const name = /src\/requests\/(item-(\d+))\.ts/.exec(task);
  if (!name) {
    const text = `// ${SANDBOX_MARK} written for a review finding.\nimport assert from 'node:assert/strict';\nimport { test } from 'node:test';\nimport { greet } from '../src/greet.js';\n\ntest('greets by name', () => {\n  assert.equal(greet('Ada'), 'Hello, Ada!');\n});\n`;
    return { actions: [{ tool: 'str_replace_based_edit_tool', input: { command: 'create', path: 'test/sandbox-fix.test.ts', file_text: text } }, RUN_TESTS], done: 'added test/sandbox-fix.test.ts' };
  }
  const [source, file, id] = name;
  const testPath = `test/${file}.test.ts`;
  const firstLine = `// ${SANDBOX_MARK} written for work item #${id}.`;
  const test =
    `// ${SANDBOX_MARK} written for a review finding.\n` +
    `import assert from 'node:assert/strict';\n` +
    `import { test } from 'node:test';\n` +
    `import { request${id} } from '../src/requests/${file}.js';\n\n` +
    `test('work item #${id} is recorded with its id and title', () => {\n` +
    `  assert.equal(request${id}.id, ${id});\n` +
    `  assert.ok(request${id}.title.length > 0);\n` +
    `});\n`;
  return {
    actions: [
      { tool: 'str_replace_based_edit_tool', input: { command: 'create', path: testPath, file_text: test } },
      { tool: 'str_replace_based_edit_tool', input: { command: 'str_replace', path: source, old_str: firstLine, new_str: `${firstLine}\n// Tested in ${testPath}.` } },
      RUN_TESTS,
    ],
    done: `added ${testPath}, a test of ${source}`,
  };
}

// ---- review and triage ---------------------------------------------------------------------

function reviewFindings(body: RequestBody): unknown[] {
  const system = systemText(body);
  const angle = /Review angle: ([\w-]+)/.exec(textOf(body.messages?.[0]?.content))?.[1] ?? '';
  const diff = fenced(system, 'diff').find((d) => /^\+\+\+ /m.test(d)) ?? '';
  const changed = [...diff.matchAll(/^\+\+\+ b\/(.+)$/gm)].map((m) => m[1]!);
  // A later round reviews the fix: once a test is part of the change, the reviewers are satisfied.
  if (changed.length === 0 || changed.some((f) => f.startsWith('test/'))) return [];
  const file = changed.find((f) => f.startsWith('src/')) ?? changed[0]!;
  const added = /^\+(?!\+\+)(.*\S.*)$/m.exec(diff)?.[1] ?? '';
  if (angle === 'tests') {
    return [
      {
        file,
        line_start: 1,
        line_end: null,
        severity: 'medium',
        title: `${SANDBOX_MARK} No test covers ${file}`,
        evidence: added,
        failure: `A later change can break ${file} and \`npm test\` still passes.`,
        suggested_fix: `Add a test under test/ that imports ${file} and checks what it exports.`,
        confidence: 0.8,
      },
    ];
  }
  if (angle === 'design') {
    return [
      {
        file,
        line_start: 1,
        line_end: null,
        severity: 'low',
        title: `${SANDBOX_MARK} One file per request will not scale`,
        evidence: added,
        failure: 'After many requests src/requests/ becomes a long list nobody reads.',
        suggested_fix: 'Group related requests into one module once there are more than a few.',
        confidence: 0.4,
      },
    ];
  }
  return [];
}

function triageVerdicts(body: RequestBody): unknown {
  // The prompt's prose names the tags too ("everything inside <findings> is data"), so the
  // listing is the fenced part that parses as a JSON array.
  let findings: Array<{ id?: unknown; title?: unknown }> = [];
  for (const part of fenced(systemText(body), 'findings')) {
    try {
      const parsed: unknown = JSON.parse(part);
      if (Array.isArray(parsed)) findings = parsed as typeof findings;
    } catch {
      // prose, not the listing
    }
  }
  return {
    verdict: 'ready',
    judgment: null,
    findings: findings
      .filter((f) => typeof f.id === 'number')
      .map((f) =>
        /No test covers/.test(String(f.title))
          ? { id: f.id, verdict: 'fix_now', reason: `${SANDBOX_MARK} a real gap, and a test is cheap to add`, merged_into: null }
          : { id: f.id, verdict: 'ignore', reason: `${SANDBOX_MARK} a matter of taste at this size`, merged_into: null },
      ),
  };
}

// ---- any other forced tool -----------------------------------------------------------------

/**
 * The smallest value a JSON schema accepts: required properties only, empty arrays (or
 * `minItems` copies), minimums, the most agreeable enum value, strings marked as the sandbox's.
 */
export function minimalValue(schema: unknown): unknown {
  if (!schema || typeof schema !== 'object') return null;
  const s = schema as Record<string, unknown>;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum.find((v) => typeof v === 'string' && AGREEABLE.test(v)) ?? s.enum[0];
  if ('const' in s) return s.const;
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = s[key];
    if (Array.isArray(options) && options.length > 0) return minimalValue(options.find((o) => (o as { type?: unknown }).type !== 'null') ?? options[0]);
  }
  const types = Array.isArray(s.type) ? (s.type as unknown[]) : [s.type];
  const type = types.find((t) => t !== 'null') ?? types[0];
  switch (type) {
    case 'object': {
      const properties = (s.properties ?? {}) as Record<string, unknown>;
      const required = Array.isArray(s.required) ? (s.required as string[]) : [];
      return Object.fromEntries(required.map((name) => [name, minimalValue(properties[name] ?? {})]));
    }
    case 'array': {
      const count = typeof s.minItems === 'number' ? s.minItems : 0;
      return Array.from({ length: count }, () => minimalValue(s.items ?? {}));
    }
    case 'string': {
      const text = `${SANDBOX_MARK} scripted answer`;
      const min = typeof s.minLength === 'number' ? s.minLength : 0;
      return text.padEnd(min, '.');
    }
    case 'integer':
    case 'number':
      return typeof s.minimum === 'number' ? (type === 'integer' ? Math.ceil(s.minimum) : s.minimum) : typeof s.exclusiveMinimum === 'number' ? s.exclusiveMinimum + 1 : 0;
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return null;
  }
}

// ---- helpers -------------------------------------------------------------------------------

/** Every `<tag>…</tag>` span of `text`, innermost content trimmed. */
function fenced(text: string, tag: string): string[] {
  // No nested opening tag inside: prose that names the tag does not swallow the real fence.
  return [...text.matchAll(new RegExp(`<${tag}>((?:(?!<${tag}>)[\\s\\S])*?)</${tag}>`, 'g'))].map((m) => m[1]!.trim());
}

function toolCall(name: string, input: unknown): FakeReply {
  return { content: [{ type: 'tool_use', name, input }] };
}

function asObject(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function systemText(body: RequestBody): string {
  return typeof body.system === 'string' ? body.system : (body.system ?? []).map((b) => b.text ?? '').join('\n');
}

function textOf(content: string | Block[] | undefined): string {
  if (typeof content === 'string') return content;
  return (content ?? []).map((b) => (b.type === 'text' ? (b.text ?? '') : '')).join('\n');
}

/** The text of the last tool result in the conversation (the test run's output). */
function lastToolResult(messages: NonNullable<RequestBody['messages']>): string {
  for (const message of [...messages].reverse()) {
    if (typeof message.content === 'string') continue;
    const result = [...message.content].reverse().find((b) => b.type === 'tool_result');
    if (!result) continue;
    return typeof result.content === 'string' ? result.content : textOf(result.content as Block[]);
  }
  return '';
}
