import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { DATABASE_FILE } from '../../src/main.js';
import type { FakeReply, RecordedRequest } from '../fakes/anthropic-server.js';
import type { SentMessage } from '../fakes/telegram-server.js';
import { ALICE, BWRAP_WORKS, CANARY, tempDir, type BotProcess } from '../helpers/bot-process.js';
import { startPipelineHarness, type PipelineHarness } from '../helpers/pipeline-harness.js';

// I-SECRET through the real process: one item goes from a queued message to an approved merge
// (build → review with findings → triage → fix → card → Approve → merge) with canary values for
// all three secrets, while every service fails once in a way whose error would echo a URL.
// Then everything the process produced is searched for each canary in its raw, URL-encoded and
// base64 forms: zero hits. And the agent's own bash tool cannot see the secrets at all.

const MERGE = 'PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge';
const CREATE_PR = 'POST /repos/{owner}/{repo}/pulls';

const tool = (name: string, input: Record<string, unknown>): FakeReply => ({ content: [{ type: 'tool_use', name, input }] });
const text = (t: string): FakeReply => ({ content: [{ type: 'text', text: t }] });
const body = (r: RecordedRequest) => r.body as { tools?: Array<{ name: string }>; system?: Array<{ text: string }>; messages: Array<{ role: string; content: unknown }>; tool_choice?: { name?: string } };
const isAgent = (r: RecordedRequest) => (body(r).tools ?? []).some((t) => t.name === 'bash');
const isFix = (r: RecordedRequest) => isAgent(r) && (body(r).system?.[0]?.text ?? '').includes('fixing problems that critical reviewers found');

type SecretName = keyof typeof CANARY;
const SECRETS = Object.entries(CANARY) as Array<[SecretName, string]>;

/**
 * The forms a secret can take on the way out: as is, URL-encoded, and base64 (standard and
 * URL-safe) at each of the three alignments it can have inside a longer base64 text; for those
 * the edge characters that depend on neighbouring bytes are dropped.
 */
function needlesOf(secret: string): string[] {
  const forms = new Set([secret, encodeURIComponent(secret)]);
  for (let shift = 0; shift < 3; shift += 1) {
    const b64 = Buffer.from('x'.repeat(shift) + secret).toString('base64');
    const core = b64.slice(shift === 0 ? 0 : 4, -4);
    forms.add(core);
    forms.add(core.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...forms];
}

/** Collects what was scanned and where a canary turned up. */
class Scanner {
  readonly hits: string[] = [];
  readonly counts = new Map<string, number>();
  bytes = 0;
  private readonly needles = SECRETS.map(([name, secret]) => ({ name, forms: needlesOf(secret).map((f) => Buffer.from(f)) }));

  /** Scans `content` from `where` (counted under `kind`); `allowed` is a secret whose presence there is its proper use. */
  scan(kind: string, where: string, content: string | Buffer, allowed?: SecretName, count = true): void {
    if (count) this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    this.bytes += bytes.length;
    for (const { name, forms } of this.needles) {
      if (name === allowed) continue;
      for (const form of forms) {
        const at = bytes.indexOf(form);
        if (at >= 0) {
          this.hits.push(`${name} in ${where} (${form.toString() === CANARY[name] ? 'raw' : 'encoded'}): …${bytes.subarray(Math.max(0, at - 60), at + form.length + 20).toString()}…`);
          break;
        }
      }
    }
  }

  /** Header values (counted with their request), except the expected auth header of the service, whose own secret is its proper use there. */
  scanHeaders(kind: string, where: string, headers: Record<string, string>, auth: { names: string[]; secret: SecretName }): void {
    for (const [name, value] of Object.entries(headers)) {
      this.scan(kind, `${where} header ${name}`, value, auth.names.includes(name) ? auth.secret : undefined, false);
    }
  }

  summary(): string {
    const forms = this.needles.reduce((n, { forms }) => n + forms.length, 0);
    return `${[...this.counts].map(([k, n]) => `${n} ${k}`).join(', ')}; ${this.bytes} bytes against ${SECRETS.length} secrets in ${forms} forms`;
  }
}

/** Every file under `dir`, recursively (symlinks not followed). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

let harness: PipelineHarness;

beforeEach(async () => {
  harness = await startPipelineHarness({
    'README.md': '# app\n',
    'src/sum.js': 'export const sum = (a, b) => a + b;\n',
    'tests/sum.test.js': "import { sum } from '../src/sum.js';\nif (sum(1, 2) !== 3) throw new Error('sum');\n",
  });
});

afterEach(async () => harness.close());

const buttons = (m: SentMessage) => ((m.reply_markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat();

/** Logs the process's warnings when a wait fails, so a hang says why. */
async function explain<T>(proc: BotProcess, wait: Promise<T>): Promise<T> {
  return wait.catch((error: unknown) => {
    console.log(proc.lines.filter((l) => /"level":(40|50)/.test(l)).join('\n'));
    console.log(harness.anthropic.requests.map((r) => `${r.seq} ${body(r).tool_choice?.name ?? (isFix(r) ? 'fix' : 'agent')} ${r.outcome ?? '?'}`).join('\n'));
    throw error;
  });
}

describe('the canary scanner', () => {
  it('finds a secret raw, URL-encoded and inside base64 at any alignment, and allows only the own auth header', () => {
    const s = new Scanner();
    s.scan('t', 'raw', `x ${CANARY.anthropicKey} y`);
    s.scan('t', 'url', `?t=${encodeURIComponent(CANARY.telegramToken)}`);
    for (const prefix of ['', 'a', 'ab']) s.scan('t', `b64+${prefix.length}`, Buffer.from(`${prefix}${CANARY.githubToken} trailing`).toString('base64'));
    s.scan('t', 'b64url', Buffer.from(`??>${CANARY.telegramToken}`).toString('base64url'));
    s.scanHeaders('t', 'own', { authorization: `token ${CANARY.githubToken}` }, { names: ['authorization'], secret: 'githubToken' });
    s.scanHeaders('t', 'foreign', { authorization: `Bearer ${CANARY.anthropicKey}` }, { names: ['authorization'], secret: 'githubToken' });
    s.scan('t', 'clean', 'nothing to see [REDACTED]');
    expect(s.hits.map((h) => h.split(' (')[0])).toEqual([
      'anthropicKey in raw',
      'telegramToken in url',
      'githubToken in b64+0',
      'githubToken in b64+1',
      'githubToken in b64+2',
      'telegramToken in b64url',
      'anthropicKey in foreign header authorization',
    ]);
  });
});

describe('secret canaries', () => {
  it('leave no trace anywhere after a full item to an approved merge, with faults that echo URLs', { timeout: 120_000 }, async () => {
    const { telegram, anthropic, github, bare, dataDir } = harness;
    let build = 0;
    let fix = 0;
    anthropic.onRequest((req) => {
      const b = body(req);
      if (isFix(req)) {
        fix += 1;
        if (fix === 1) return tool('str_replace_based_edit_tool', { command: 'str_replace', path: 'src/avg.js', old_str: '(values.length + 1)', new_str: 'values.length' });
        return text('fixed: divide by values.length.');
      }
      if (isAgent(req)) {
        build += 1;
        if (build === 1) return tool('str_replace_based_edit_tool', { command: 'create', path: 'src/avg.js', file_text: 'export function avg(values) {\n  const total = values.reduce((a, b) => a + b, 0);\n  return total / (values.length + 1);\n}\n' });
        // A tool result worth scanning: the command's output goes back to the model.
        if (build === 2) return tool('bash', { command: 'git status --short; git log --oneline -3; env | sort' });
        return text('Summary: added avg.\nTests: none.\nNotes: none');
      }
      if (b.tool_choice?.name === 'report_findings') {
        const fixed = JSON.stringify(b.system ?? '').includes('-  return total / (values.length + 1);');
        if (fixed || !/Review angle: correctness/.test(JSON.stringify(b.messages))) return tool('report_findings', { findings: [] });
        return tool('report_findings', {
          findings: [{ file: 'src/avg.js', line_start: 3, line_end: 3, severity: 'high', title: 'avg divides by one too many', evidence: 'return total / (values.length + 1);', failure: 'avg([2, 4]) returns 2', suggested_fix: 'divide by values.length', confidence: 0.9 }],
        });
      }
      if (b.tool_choice?.name === 'report_triage') {
        const prompt = b.system?.[0]?.text ?? '';
        const listed = JSON.parse(prompt.slice(prompt.lastIndexOf('<findings>') + '<findings>'.length, prompt.lastIndexOf('</findings>'))) as Array<{ id: number }>;
        return tool('report_triage', { verdict: 'ready_with_open_items', findings: listed.map((f) => ({ id: f.id, verdict: 'fix_now', reason: 'validated: the divisor is wrong' })) });
      }
      return undefined;
    });
    // Each service fails once on the way, in ways whose errors carry a URL (the Bot API's
    // carries the token in its path): retried by the transport, or later by the stage.
    anthropic.failNext({ kind: 'reset' });
    anthropic.failNext({ kind: 'server-error', status: 502, retryAfterMs: 10 });
    github.failNext(CREATE_PR, { kind: 'server-error', status: 502 });
    github.failNext('GET /repos/{owner}/{repo}/pulls/{pull_number}', { kind: 'reset' });
    telegram.failNext('sendMessage', { kind: 'reset' });

    const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0' });
    telegram.failNext('getUpdates', { kind: 'server-error', status: 502 });
    telegram.pushMessage(ALICE, 'Add an average function');
    await explain(proc, harness.waitForMessage(/Queued #1/));
    telegram.pushMessage(ALICE, '/run');
    const card = await explain(
      proc,
      telegram.waitFor(() => telegram.sent(ALICE.id).find((m) => buttons(m).some((x) => /Approve/.test(x.text))), { what: 'the review card', timeoutMs: 90_000 }),
    );
    const approve = buttons(card).find((x) => /Approve/.test(x.text))!.callback_data;
    // The merge's reply is lost; the bot settles it by reading the PR.
    github.failNext(MERGE, { kind: 'after', status: 502 });
    telegram.pushCallback(ALICE, { message_id: card.message_id, chat_id: ALICE.id }, approve);
    await explain(proc, telegram.waitFor(() => /Merged by @alice/.test(telegram.sent(ALICE.id).find((m) => m.message_id === card.message_id)!.text), { what: 'the merge', timeoutMs: 30_000 }));
    await github.waitFor(() => github.callsOf('DELETE /repos/{owner}/{repo}/git/refs/{ref}').length === 1, { what: 'the branch to be deleted' });
    expect(await proc.stop()).toBe(0);

    // The story happened as scripted: a finding, a fix, a merge, and every fault was hit.
    const findings = harness.query((d) => d.prepare('SELECT verdict, status FROM findings').all() as Array<{ verdict: string; status: string }>, []);
    expect(findings).toContainEqual({ verdict: 'fix_now', status: 'fixed' });
    expect(anthropic.requests.filter(isFix).length).toBeGreaterThan(0);
    expect(harness.query((d) => d.prepare('SELECT state FROM items WHERE id = 1').pluck().get(), undefined)).toBe('merged');
    expect(anthropic.requests.filter((r) => r.outcome === 'reset' || r.outcome === 'error').length).toBeGreaterThanOrEqual(2);
    expect(github.callsOf(CREATE_PR).some((c) => c.status === 502)).toBe(true);
    expect(github.callsOf(MERGE).some((c) => c.status === 502)).toBe(true);

    const s = new Scanner();
    // Requests to every fake: bodies, paths and every header but the service's own auth header.
    for (const r of [...anthropic.requests, ...anthropic.batchCalls]) {
      s.scan('anthropic requests', `anthropic #${r.seq} ${r.path}`, JSON.stringify(r.body ?? null) + r.path);
      s.scanHeaders('anthropic requests', `anthropic #${r.seq}`, r.headers, { names: ['x-api-key', 'authorization'], secret: 'anthropicKey' });
    }
    for (const c of github.calls) {
      s.scan('github requests', `github #${c.seq} ${c.route}`, JSON.stringify(c.body ?? null) + c.path);
      s.scanHeaders('github requests', `github #${c.seq}`, c.headers, { names: ['authorization'], secret: 'githubToken' });
    }
    for (const c of telegram.calls) {
      s.scan('telegram requests', `telegram #${c.seq} ${c.method}`, JSON.stringify(c.params));
      // The Bot API's token travels in the URL path only; no header is entitled to any secret.
      s.scanHeaders('telegram requests', `telegram #${c.seq}`, c.headers, { names: [], secret: 'telegramToken' });
    }
    // The agent's tool results, as the model received them.
    const toolResults = anthropic.requests.flatMap((r) =>
      body(r).messages.flatMap((m) => (Array.isArray(m.content) ? (m.content as Array<{ type: string }>).filter((c) => c.type === 'tool_result') : [])),
    );
    expect(toolResults.some((t) => JSON.stringify(t).includes('PATH='))).toBe(true);
    for (const [i, t] of toolResults.entries()) s.scan('tool results', `tool result ${i}`, JSON.stringify(t));
    // What people read: every Telegram text (each edit too), the PR and its comments.
    for (const m of telegram.sent()) {
      for (const t of [m.text, ...m.edits.map((e) => e.text ?? '')]) s.scan('telegram texts', `message ${m.message_id}`, t);
    }
    for (const pr of github.pulls) {
      s.scan('PR bodies', `PR #${pr.number}`, `${pr.title}\n${pr.body}`);
      for (const c of pr.comments) s.scan('PR comments', `PR #${pr.number} comment ${c.id}`, c.body);
    }
    // Every git object of the remote.
    const objects = execFileSync('git', ['cat-file', '--batch-all-objects', '--batch'], { cwd: bare.path, input: '', maxBuffer: 1 << 28 });
    const objectCount = execFileSync('git', ['cat-file', '--batch-all-objects', '--batch-check'], { cwd: bare.path, encoding: 'utf8' }).trim().split('\n').length;
    s.scan('git dumps', `git objects of ${bare.path}`, objects);
    // The database (with its WAL) and every other file the process left in its data directory.
    const files = filesUnder(dataDir);
    expect(files).toContain(join(dataDir, DATABASE_FILE));
    for (const file of files) s.scan(file.includes(DATABASE_FILE) ? 'database files' : 'data files', file, readFileSync(file));
    // All of the process's output.
    s.scan('log outputs', 'stdout+stderr', proc.output());
    // The faults did produce errors that echo a URL: the Bot API's, with the token in its path.
    expect(proc.output()).toContain('/bot[REDACTED]/sendMessage failed');

    console.log(
      `secret canaries: scanned ${s.summary()}; ${objectCount} git objects, ${proc.lines.length} log lines, ` +
        `${statSync(join(dataDir, DATABASE_FILE)).size} database bytes → ${s.hits.length} hits`,
    );
    expect(s.hits).toEqual([]);
  });

  describe("the agent's bash tool cannot see the secrets", () => {
    const PROBE = 'env; cat /proc/self/environ; echo; cat /proc/$PPID/environ; echo; git remote -v; cat ~/.git-credentials; echo probe-done';
    // Reads the bot's own environment in a form the output scrub does not know.
    const ENCODED_PROBE = 'base64 -w0 /proc/$PPID/environ; echo; env; git remote -v; echo probe-done';

    /** Queues an item whose build agent runs `command` once; the tool result as the model got it, and where canaries turned up in it. */
    async function probe(env: Record<string, string>, command = PROBE): Promise<{ result: string; hits: string[] }> {
      const { telegram, anthropic } = harness;
      anthropic.onRequest((req) => {
        if (!isAgent(req)) return undefined;
        if (body(req).messages.length === 1) return tool('bash', { command });
        return text('Summary: looked around.\nTests: none.\nNotes: none');
      });
      const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0', ...env });
      telegram.pushMessage(ALICE, 'Add an average function');
      await harness.waitForMessage(/Queued #1/);
      telegram.pushMessage(ALICE, '/run');
      const next = await explain(proc, anthropic.waitFor(() => anthropic.requests.find((r) => isAgent(r) && body(r).messages.length === 3), { what: 'the turn after the probe', timeoutMs: 60_000 }));
      const content = body(next).messages[2]!.content as Array<{ type: string; content?: unknown }>;
      const result = JSON.stringify(content);
      // The command did run and its output came back.
      const output = String(content.find((c) => c.type === 'tool_result')?.content);
      expect(output).toContain('probe-done');
      expect(output).toContain('PATH=');
      expect(output).toMatch(/origin\tfile:\/\//);
      const s = new Scanner();
      s.scan('tool results', 'the probe', result);
      return { result, hits: s.hits };
    }

    /** A directory holding a `bwrap` that fails the way it does under Docker's default seccomp profile, for the front of PATH. */
    function brokenBwrapDir(): string {
      const dir = tempDir('ns-broken-bwrap-');
      onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
      const bwrap = join(dir, 'bwrap');
      writeFileSync(bwrap, '#!/bin/sh\necho "bwrap: No permissions to create new namespace" >&2\nexit 1\n');
      chmodSync(bwrap, 0o755);
      return dir;
    }

    it('in the sandbox (the default), where not even a masked value shows', { timeout: 90_000 }, async (ctx) => {
      if (!BWRAP_WORKS) ctx.skip();
      const { result, hits } = await probe({}, ENCODED_PROBE);
      expect(hits).toEqual([]);
      // Not redacted after the fact: the secrets were never in reach (own PID namespace, scrubbed env).
      expect(result).not.toContain('[REDACTED]');
    });

    // Regression (I-SECRET): the default used to be `auto`, which, where bubblewrap did not work
    // (Docker's default seccomp profile), ran agent commands unconfined, and `base64
    // /proc/$PPID/environ` carried every secret past the output scrub. Now the build refuses
    // before its first model call, and says how to fix it, once.
    it.each<{ setting: string; env: Record<string, string | undefined> }>([
      { setting: 'the default', env: { NIGHTSHIFT_SANDBOX: undefined } },
      { setting: 'an old NIGHTSHIFT_SANDBOX=auto', env: { NIGHTSHIFT_SANDBOX: 'auto' } },
    ])('where bubblewrap does not work, $setting refuses the build before its first model call and says how to fix it, once', { timeout: 90_000 }, async ({ env }) => {
      const { telegram, anthropic } = harness;
      anthropic.onRequest((req) => (isAgent(req) ? tool('bash', { command: ENCODED_PROBE }) : undefined));
      const proc = await harness.startBot({ NIGHTSHIFT_DRIFT_EVERY: '0', PATH: `${brokenBwrapDir()}:${process.env.PATH ?? ''}`, ...env });
      telegram.pushMessage(ALICE, 'Add an average function');
      await explain(proc, harness.waitForMessage(/Queued #1/));
      telegram.pushMessage(ALICE, '/run');
      const told = await explain(proc, harness.waitForMessage(/bubblewrap does not work here/, 'the build to be refused'));
      await explain(proc, telegram.waitFor(() => harness.query((d) => d.prepare('SELECT state FROM items WHERE id = 1').pluck().get(), undefined) === 'failed', { what: 'item 1 to fail' }));
      expect(await proc.stop()).toBe(0);

      expect(told.text).toContain('--security-opt seccomp=unconfined --security-opt apparmor=unconfined');
      expect(told.text).toContain('NIGHTSHIFT_SANDBOX=never');
      expect(telegram.sent(ALICE.id).filter((m) => /bubblewrap/.test(m.text))).toHaveLength(1);
      // Not one agent turn was paid for, so no command ran, confined or not.
      expect(anthropic.requests.filter(isAgent)).toEqual([]);
      expect(harness.query((d) => d.prepare("SELECT COUNT(*) FROM llm_calls WHERE stage = 'build'").pluck().get(), undefined)).toBe(0);
      expect(harness.query((d) => d.prepare('SELECT state_reason FROM items WHERE id = 1').pluck().get(), undefined)).toMatch(/^bubblewrap does not work here: install it/);
      // The operator hears it at start too, once.
      expect(proc.lines.filter((l) => /bubblewrap does not work here, so builds will fail/.test(l))).toHaveLength(1);
      expect(proc.lines.filter((l) => /NIGHTSHIFT_SANDBOX=auto now means always/.test(l))).toHaveLength(env.NIGHTSHIFT_SANDBOX === 'auto' ? 1 : 0);
    });

    it('under NIGHTSHIFT_SANDBOX=never the plain forms are scrubbed from the output', { timeout: 90_000 }, async () => {
      const { hits } = await probe({ NIGHTSHIFT_SANDBOX: 'never' });
      expect(hits).toEqual([]);
    });

    // The documented trade-off of `never` (README, NIGHTSHIFT_SANDBOX): a command runs as the
    // bot's user and can read the bot's /proc/<pid>/environ, which keeps the initial environment
    // whatever process.env becomes; the output scrub knows only the plain and URL-encoded forms.
    it('under NIGHTSHIFT_SANDBOX=never agent commands are unconfined: an encoded read of the parent environment carries every secret out', { timeout: 90_000 }, async () => {
      const { hits } = await probe({ NIGHTSHIFT_SANDBOX: 'never' }, ENCODED_PROBE);
      for (const name of Object.keys(CANARY)) expect(hits.some((h) => h.startsWith(`${name} in the probe (encoded)`))).toBe(true);
    });
  });
});
