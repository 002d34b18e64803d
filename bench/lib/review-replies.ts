/**
 * What the reviewers, triage and the fix agent answer in the standard scenario, by what each
 * request is (as a model would): round 1 finds a real bug in the `Option.env()` PR (the
 * command line loses to the environment when it repeats the default), a missing test and a
 * nit; triage sends the bug to the fix, the test to the backlog and ignores the nit; the fix
 * agent fixes it in three turns; round 2 finds nothing.
 */
import type { FakeReply, RecordedRequest } from '../../tests/fakes/anthropic-server.js';

type Body = { tools?: Array<{ name: string }>; system?: Array<{ text: string }>; messages: Array<{ content: unknown }>; tool_choice?: { name?: string } };

const tool = (name: string, input: Record<string, unknown>, text?: string): FakeReply => ({
  content: [...(text ? [{ type: 'text' as const, text }] : []), { type: 'tool_use', name, input }],
});

const FINDINGS: Record<string, unknown[]> = {
  correctness: [
    {
      file: 'index.js',
      line_start: 1584,
      line_end: 1586,
      severity: 'high',
      title: 'A value given on the command line loses to the environment when it equals the default',
      evidence: "const current = this._getOptionValue(optionKey);\nif (current === undefined || current === option.defaultValue) {\n  this.emit(`option:${option.name()}`, ...);",
      failure:
        "With `.env('PORT').default('8080')`, running `serve --port 8080` while PORT=9000 is set gives port '9000': the check cannot tell a default from the same value typed on the command line, so the environment overrides an explicit command-line value, breaking the documented precedence (command line > environment > default).",
      suggested_fix: 'Record which options were set from the command line (e.g. a Set filled in the option:<name> listener during parseOptions) and skip those in _parseOptionsEnv, instead of comparing with the default value.',
      confidence: 0.92,
    },
  ],
  security: [],
  tests: [
    {
      file: 'tests/options.env.test.js',
      line_start: 36,
      line_end: 42,
      severity: 'medium',
      title: 'No test covers a command-line value equal to the default while the variable is set',
      evidence: "test('the command line wins over the environment', () => {\n  process.env.PORT = '9000';\n  ...\n  program.parse(['--port', '80'], { from: 'user' });",
      failure: 'The precedence test uses a value different from the default, so the bug where `--port 8080` (the default) loses to PORT=9000 passes unnoticed; negated flags (--no-color) and variadic options read from the environment are untested too.',
      suggested_fix: "Add a test that sets PORT=9000, declares .default('8080') and parses ['--port', '8080'], expecting '8080'; add one for a --no-* flag with .env().",
      confidence: 0.85,
    },
  ],
  design: [
    {
      file: 'typings/index.d.ts',
      line_start: 46,
      line_end: 50,
      severity: 'low',
      title: 'The typings describe env() differently from the JSDoc in index.js',
      evidence: '/**\n * Set environment variable to check for option value.\n * Priority order of option values is default < env < cli\n */\nenv(name: string): this;',
      failure: 'Two descriptions of one method drift apart over time; the README generator reads the typings.',
      suggested_fix: 'Use the same sentence as the JSDoc in index.js.',
      confidence: 0.6,
    },
  ],
};

const FIX_TURNS: FakeReply[] = [
  tool(
    'str_replace_based_edit_tool',
    {
      command: 'str_replace',
      path: 'index.js',
      old_str: '        if (current === undefined || current === option.defaultValue) {',
      new_str: '        if (current === undefined || (current === option.defaultValue && !this.rawArgs.includes(option.long) && !this.rawArgs.includes(option.short))) {',
    },
    'The check compares with the default; it must also know whether the option was typed. I will check the raw arguments.',
  ),
  tool('bash', { command: 'node --test tests/ 2>&1 | tail -12' }, 'Running the tests.'),
  { content: [{ type: 'text', text: 'fixed: the command line now wins even when it repeats the default (checked against the raw arguments). Tests: node --test tests/ passes.' }] },
];

/** The scenario's replies, for `FakeAnthropic.onRequest`; stateful, one per run. */
export function reviewReplies(): (req: RecordedRequest) => FakeReply | undefined {
  const answeredByAngle = new Map<string, number>();
  let fixTurn = 0;
  return (req) => {
    const b = req.body as Body;
    const system = b.system?.map((s) => s.text).join('\n') ?? '';
    if ((b.tools ?? []).some((t) => t.name === 'bash') && system.includes('fixing problems')) return FIX_TURNS[fixTurn++];
    if (b.tool_choice?.name === 'report_findings') {
      const angle = /Review angle: ([a-z0-9-]+)/.exec(JSON.stringify(b.messages))?.[1] ?? '?';
      const round = (answeredByAngle.get(angle) ?? 0) + 1;
      answeredByAngle.set(angle, round);
      return tool('report_findings', { findings: round === 1 ? (FINDINGS[angle] ?? []) : [] });
    }
    if (b.tool_choice?.name === 'report_triage') {
      // The findings are fenced JSON in the prompt (system or message, wherever triage puts them).
      const texts = [system, ...b.messages.flatMap((m) => (Array.isArray(m.content) ? (m.content as Array<{ text?: string }>).map((c) => c.text ?? '') : [String(m.content)]))].join('\n');
      const fenced = texts.slice(texts.lastIndexOf('<findings>') + '<findings>'.length, texts.lastIndexOf('</findings>'));
      const listed = JSON.parse(fenced) as Array<{ id: number; angle: string }>;
      const verdict = (angle: string) => (angle === 'correctness' || angle === 'guard' ? 'fix_now' : angle === 'tests' ? 'backlog' : 'ignore');
      return tool('report_triage', {
        verdict: 'ready_with_open_items',
        findings: listed.map((f) => ({ id: f.id, verdict: verdict(f.angle), reason: verdict(f.angle) === 'fix_now' ? 'validated against index.js: the precedence is broken' : verdict(f.angle) === 'backlog' ? 'real, but separate work' : 'style preference' })),
      });
    }
    return undefined;
  };
}
