// The fix agent is told to make the review's must-fix findings go away; the cheapest way to do
// that is to make the checks quieter instead of the code better. This guard reads the fix diff
// and names every change that could be doing that, so the review card can say it out loud.

/** What kind of check-gaming change a flag reports. */
export type GuardKind =
  | 'test-deleted'
  | 'test-skipped'
  | 'assertion-weakened'
  | 'assertions-removed'
  | 'ci-config-changed'
  | 'lint-config-changed'
  | 'test-config-changed'
  | 'snapshot-updated'
  | 'dependency-changed';

/** One suspicious change in a fix diff, written to be read on a phone. */
export interface GuardFlag {
  readonly kind: GuardKind;
  readonly file: string;
  /** New-file line for added lines, old-file line for removed lines; absent for whole-file flags. */
  readonly line?: number;
  /** One short line, e.g. "removed 3 assertions from test 'parses config'". */
  readonly detail: string;
  /** The diff lines behind the flag, at most ~300 characters. */
  readonly evidence: string;
}

/** One line of a hunk. */
export interface DiffLine {
  readonly type: 'add' | 'del' | 'ctx';
  readonly text: string;
  readonly oldLine?: number;
  readonly newLine?: number;
}

/** One `@@` hunk. */
export interface DiffHunk {
  readonly oldStart: number;
  readonly newStart: number;
  /** What git prints after the second `@@` (the enclosing function or section), if anything. */
  readonly heading?: string;
  readonly lines: ReadonlyArray<DiffLine>;
}

/** One file of a unified diff. */
export interface DiffFile {
  readonly oldPath: string | null;
  readonly newPath: string | null;
  readonly status: 'added' | 'deleted' | 'modified' | 'renamed';
  readonly binary: boolean;
  readonly hunks: ReadonlyArray<DiffHunk>;
}

const DEV_NULL = '/dev/null';
const MAX_EVIDENCE_CHARS = 300;
const MAX_DETAIL_CHARS = 160;
const MAX_NAME_CHARS = 60;
// Longer lines are minified code or lockfile noise; pattern scans read only their start.
const MAX_SCAN_CHARS = 2_000;

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

const HUNK_HEADER = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$/;

interface FileDraft {
  git: boolean;
  headerOld?: string;
  headerNew?: string;
  minus?: string;
  plus?: string;
  renameFrom?: string;
  renameTo?: string;
  copyTo?: string;
  binOld?: string;
  binNew?: string;
  newMode: boolean;
  deletedMode: boolean;
  binary: boolean;
  binaryPatch: boolean;
  hunks: HunkDraft[];
}

interface HunkDraft {
  oldStart: number;
  newStart: number;
  heading: string;
  lines: DiffLine[];
  oldNext: number;
  newNext: number;
  oldLeft: number;
  newLeft: number;
}

/**
 * Parses `git diff` output (also plain `---`/`+++` unified diffs) into files and hunks. Hunk line
 * counts decide where a hunk ends, so removed lines that look like headers stay content. Never
 * throws; unreadable parts are skipped.
 */
export function parseUnifiedDiff(diff: string): DiffFile[] {
  const out: DiffFile[] = [];
  const rows = diff.split('\n');
  let file: FileDraft | undefined;
  let hunk: HunkDraft | undefined;
  const finish = (): void => {
    if (file) out.push(toDiffFile(file));
    file = undefined;
    hunk = undefined;
  };
  for (let i = 0; i < rows.length; i++) {
    const row = stripCr(rows[i] ?? '');
    if (hunk && (hunk.oldLeft > 0 || hunk.newLeft > 0) && addHunkLine(hunk, row)) continue;
    hunk = undefined;
    if (row.startsWith('diff --git ')) {
      finish();
      file = newDraft(true);
      const [a, b] = splitGitHeader(row.slice('diff --git '.length));
      if (a !== undefined) file.headerOld = stripPrefix(a);
      if (b !== undefined) file.headerNew = stripPrefix(b);
      continue;
    }
    if (row.startsWith('diff --cc ') || row.startsWith('diff --combined ')) {
      // Merge-commit diffs have no two-sided hunks; keep the file, skip its content.
      finish();
      file = newDraft(true);
      file.headerOld = file.headerNew = unquote(row.slice(row.indexOf(' ', 5) + 1));
      file.binaryPatch = true;
      continue;
    }
    const h = HUNK_HEADER.exec(row);
    if (h) {
      file ??= newDraft(false);
      if (file.binaryPatch) continue;
      const oldStart = Number(h[1]);
      const newStart = Number(h[3]);
      hunk = {
        oldStart,
        newStart,
        heading: h[5] ?? '',
        lines: [],
        oldNext: oldStart,
        newNext: newStart,
        oldLeft: h[2] === undefined ? 1 : Number(h[2]),
        newLeft: h[4] === undefined ? 1 : Number(h[4]),
      };
      file.hunks.push(hunk);
      continue;
    }
    if (file?.binaryPatch) continue;
    if (row.startsWith('--- ') && stripCr(rows[i + 1] ?? '').startsWith('+++ ')) {
      if (!file || !file.git || file.hunks.length > 0 || file.minus !== undefined) {
        finish();
        file = newDraft(false);
      }
      file.minus = parsePath(row.slice(4));
      file.plus = parsePath(stripCr(rows[i + 1] ?? '').slice(4));
      i++;
      continue;
    }
    if (!file || file.hunks.length > 0) continue;
    readExtendedHeader(file, row);
  }
  finish();
  return out;
}

function newDraft(git: boolean): FileDraft {
  return { git, newMode: false, deletedMode: false, binary: false, binaryPatch: false, hunks: [] };
}

function addHunkLine(hunk: HunkDraft, row: string): boolean {
  const c = row.charAt(0);
  // An empty row is a context line whose single space was stripped by an editor or a mailer.
  if (c === ' ' || row === '') {
    hunk.lines.push({ type: 'ctx', text: row.slice(1), oldLine: hunk.oldNext++, newLine: hunk.newNext++ });
    hunk.oldLeft = Math.max(0, hunk.oldLeft - 1);
    hunk.newLeft = Math.max(0, hunk.newLeft - 1);
    return true;
  }
  if (c === '-' && hunk.oldLeft > 0) {
    hunk.lines.push({ type: 'del', text: row.slice(1), oldLine: hunk.oldNext++ });
    hunk.oldLeft--;
    return true;
  }
  if (c === '+' && hunk.newLeft > 0) {
    hunk.lines.push({ type: 'add', text: row.slice(1), newLine: hunk.newNext++ });
    hunk.newLeft--;
    return true;
  }
  return c === '\\';
}

function readExtendedHeader(file: FileDraft, row: string): void {
  if (row.startsWith('new file mode')) file.newMode = true;
  else if (row.startsWith('deleted file mode')) file.deletedMode = true;
  else if (row.startsWith('rename from ')) file.renameFrom = unquote(row.slice('rename from '.length));
  else if (row.startsWith('rename to ')) file.renameTo = unquote(row.slice('rename to '.length));
  else if (row.startsWith('copy to ')) file.copyTo = unquote(row.slice('copy to '.length));
  else if (row === 'GIT binary patch') {
    file.binary = true;
    file.binaryPatch = true;
  } else if (row.startsWith('Binary files ')) {
    file.binary = true;
    const m = /^Binary files (.+) and (.+) differ$/.exec(row);
    if (m) {
      file.binOld = parsePath(m[1] ?? '');
      file.binNew = parsePath(m[2] ?? '');
    }
  }
}

function toDiffFile(d: FileDraft): DiffFile {
  const real = (p: string | undefined): string | undefined => (p === DEV_NULL ? undefined : p);
  const renamed = d.renameFrom !== undefined || d.renameTo !== undefined;
  const deleted = d.deletedMode || d.plus === DEV_NULL || d.binNew === DEV_NULL;
  const added = d.newMode || d.copyTo !== undefined || d.minus === DEV_NULL || d.binOld === DEV_NULL;
  const oldPath = d.renameFrom ?? real(d.minus) ?? real(d.binOld) ?? d.headerOld ?? null;
  const newPath = d.renameTo ?? d.copyTo ?? real(d.plus) ?? real(d.binNew) ?? d.headerNew ?? null;
  const hunks: DiffHunk[] = d.hunks.map((h) => ({
    oldStart: h.oldStart,
    newStart: h.newStart,
    ...(h.heading === '' ? {} : { heading: h.heading }),
    lines: h.lines,
  }));
  const base = { binary: d.binary, hunks };
  if (renamed) return { ...base, oldPath, newPath, status: 'renamed' };
  if (deleted) return { ...base, oldPath: oldPath ?? newPath, newPath: null, status: 'deleted' };
  if (added) return { ...base, oldPath: null, newPath: newPath ?? oldPath, status: 'added' };
  return { ...base, oldPath: oldPath ?? newPath, newPath: newPath ?? oldPath, status: 'modified' };
}

function stripCr(row: string): string {
  return row.endsWith('\r') ? row.slice(0, -1) : row;
}

/** `a/x b/x`, `"a/x y" "b/x y"`, or (for renames) `a/x b/y`. */
function splitGitHeader(rest: string): [string | undefined, string | undefined] {
  if (rest.startsWith('"')) {
    const end = quotedEnd(rest, 0);
    const first = rest.slice(0, end);
    const second = rest.slice(end).trimStart();
    return [unquote(first), second === '' ? undefined : unquote(second)];
  }
  const q = rest.indexOf(' "');
  if (q >= 0) return [rest.slice(0, q), unquote(rest.slice(q + 1))];
  // Same path on both sides: the header is `a/X b/X`, split exactly in the middle.
  if (rest.length % 2 === 1) {
    const half = (rest.length - 1) / 2;
    const left = rest.slice(0, half);
    const right = rest.slice(half + 1);
    if (rest.charAt(half) === ' ' && stripPrefix(left) === stripPrefix(right)) return [left, right];
  }
  const b = rest.indexOf(' b/');
  if (b >= 0) return [rest.slice(0, b), rest.slice(b + 1)];
  const space = rest.indexOf(' ');
  return space < 0 ? [rest, undefined] : [rest.slice(0, space), rest.slice(space + 1)];
}

function quotedEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text.charAt(i);
    if (c === '\\') i += 2;
    else if (c === '"') return i + 1;
    else i++;
  }
  return text.length;
}

function parsePath(raw: string): string {
  // git appends a tab after paths containing spaces; GNU diff puts a timestamp there.
  const tab = raw.indexOf('\t');
  const p = unquote(tab >= 0 ? raw.slice(0, tab) : raw);
  return p === DEV_NULL ? p : stripPrefix(p);
}

function stripPrefix(path: string): string {
  return /^[abciow]\//.test(path) ? path.slice(2) : path;
}

const C_ESCAPES: Record<string, number> = { a: 7, b: 8, t: 9, n: 10, v: 11, f: 12, r: 13, '"': 34, '\\': 92 };

/** Decodes git's C-style quoted paths (`"caf\303\251.txt"`); unquoted text is returned as is. */
function unquote(text: string): string {
  if (!text.startsWith('"') || text.length < 2) return text;
  const end = text.endsWith('"') ? text.length - 1 : text.length;
  const bytes: number[] = [];
  for (let i = 1; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c !== 92) {
      for (const b of new TextEncoder().encode(text.charAt(i))) bytes.push(b);
      continue;
    }
    const next = text.charAt(i + 1);
    const octal = /^[0-7]{3}/.exec(text.slice(i + 1, i + 4));
    if (octal) {
      bytes.push(parseInt(octal[0], 8) & 0xff);
      i += 3;
    } else {
      bytes.push(C_ESCAPES[next] ?? next.charCodeAt(0));
      i += 1;
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

// ---------------------------------------------------------------------------------------------
// Paths and languages
// ---------------------------------------------------------------------------------------------

const TEST_DIRS = new Set(['test', 'tests', '__tests__', '__test__', 'spec', 'specs', 'e2e']);
const TEST_FILE_NAME = [
  /\.(?:test|spec|e2e-spec|e2e|cy)\.[^/]+$/,
  /^test_[^/]*\.(?:py|rb)$/,
  /_test\.(?:py|go|rb|exs|dart|c|cc|cpp)$/,
  /_spec\.rb$/,
  /(?:Test|Tests|IT|Spec)\.(?:java|kt|kts|scala|groovy|cs|swift)$/,
  /^conftest\.py$/,
];
const CODE_EXT = /\.(?:[cm]?[jt]sx?|vue|svelte|py|go|rs|java|kt|kts|scala|groovy|rb|exs?|cs|swift|php|dart|c|cc|cpp|h|hpp)$/;

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function isSnapshotPath(path: string): boolean {
  return /(?:^|\/)__snapshots__\//.test(path) || /\.(?:snap|ambr|golden)$/.test(path) || /\.approved\.[^/]+$/.test(path);
}

/** Whether a file name alone marks it a test (`x.test.ts`, `test_x.py`, `x_test.go`, `XTest.java`, …). */
function isTestFileName(path: string): boolean {
  const name = baseName(path.replace(/\\/g, '/'));
  return !isSnapshotPath(path) && TEST_FILE_NAME.some((re) => re.test(name));
}

/**
 * Whether a path is a test file: under a `test/`, `tests/`, `__tests__/`, `spec/` or `e2e/`
 * directory, or named like one (`*.test.*`, `*.spec.*`, `test_*.py`, `*_test.py`, `*_test.go`,
 * `*_spec.rb`, `*Test.java`, `conftest.py`, …). Snapshot files are not test files.
 */
export function isTestPath(path: string): boolean {
  const p = path.replace(/\\/g, '/');
  if (isSnapshotPath(p)) return false;
  if (isTestFileName(p)) return true;
  const dirs = p.split('/').slice(0, -1);
  return dirs.some((d) => TEST_DIRS.has(d.toLowerCase()));
}

type Lang = 'js' | 'py' | 'go' | 'rust' | 'jvm' | 'ruby' | 'cs' | 'other';

const LANG_BY_EXT: Record<string, Lang> = {
  js: 'js', jsx: 'js', ts: 'js', tsx: 'js', mjs: 'js', cjs: 'js', mts: 'js', cts: 'js', vue: 'js', svelte: 'js',
  py: 'py', pyi: 'py',
  go: 'go',
  rs: 'rust',
  java: 'jvm', kt: 'jvm', kts: 'jvm', scala: 'jvm', groovy: 'jvm',
  rb: 'ruby', rake: 'ruby', ex: 'ruby', exs: 'ruby',
  cs: 'cs',
};

function langOf(path: string): Lang {
  const name = baseName(path);
  const dot = name.lastIndexOf('.');
  return dot < 0 ? 'other' : (LANG_BY_EXT[name.slice(dot + 1).toLowerCase()] ?? 'other');
}

// Languages whose tests are marked by an attribute on the line(s) above the function.
const ATTRIBUTE_LANGS = new Set<Lang>(['rust', 'jvm', 'cs']);

// ---------------------------------------------------------------------------------------------
// Test declarations
// ---------------------------------------------------------------------------------------------

const STRING_BODY = String.raw`((?:\\.|(?!\1)[^\\])*)\1`;
const JS_TEST_DECL = new RegExp(
  String.raw`^\s*[xf]?(?:it|test|specify)(?:\.(?:only|skip|todo|concurrent|sequential|fails|failing|fixme|fail|slow|each\s*\([^)]*\)|for\s*\([^)]*\)|skipIf\s*\([^)]*\)|runIf\s*\([^)]*\)))*\s*\(\s*(['"\x60])` + STRING_BODY,
);
const RUBY_TEST_DECL = new RegExp(String.raw`^\s*(?:[xf]?it|[xf]?specify|scenario|example|test)\s*(?:\(\s*|\s+)(['"])` + STRING_BODY);
const DEF_TEST_DECL = /^\s*(?:async\s+)?def\s+(test\w*)/;
const GO_TEST_DECL = /^func\s+((?:Test|Fuzz)\w*)\s*\(/;
const GO_SUBTEST_DECL = /\bt\.Run\(\s*"((?:\\.|[^"\\])*)"/;
const JUNIT3_TEST_DECL = /^\s*public\s+void\s+(test\w*)\s*\(/;
const TEST_ATTRIBUTE =
  /^\s*(?:#\[(?:[\w:]+::)?test\b|#\[(?:rstest|test_case|wasm_bindgen_test|quickcheck|proptest)\b|@(?:Test|ParameterizedTest|RepeatedTest|TestFactory|TestTemplate|Property)\b|\[(?:Test|Fact|Theory|TestMethod|TestCase)\b)/;
const FN_NAME = /\b(?:fn|fun|void|Task|def)\s+(`[^`]+`|\w+)\s*[(<]/;
const ANNOTATION_OR_BLANK = /^\s*(?:$|@|#\[|\[|\/\/|\/\*|\*)/;
const COMMENT_PREFIX = /^\s*(?:\/\/+|#+(?![[!])|\/\*+|\*+(?!\/)|--)\s?/;

/** The test's name if this line declares a test by a call or a function name. */
function testDeclName(text: string, lang: Lang): string | undefined {
  const t = scan(text);
  switch (lang) {
    case 'js':
      return JS_TEST_DECL.exec(t)?.[2];
    case 'ruby':
      return RUBY_TEST_DECL.exec(t)?.[2] ?? DEF_TEST_DECL.exec(t)?.[1];
    case 'py':
      return DEF_TEST_DECL.exec(t)?.[1];
    case 'go':
      return GO_TEST_DECL.exec(t)?.[1] ?? GO_SUBTEST_DECL.exec(t)?.[1];
    case 'jvm':
      return JUNIT3_TEST_DECL.exec(t)?.[1];
    default:
      return undefined;
  }
}

function fnName(text: string): string | undefined {
  const m = FN_NAME.exec(scan(text));
  return m?.[1]?.replace(/`/g, '');
}

interface Decl {
  readonly name: string;
  /** The line that names the test. */
  readonly line: DiffLine;
  /** The `#[test]` / `@Test` line, for attribute-marked tests. */
  readonly attr?: DiffLine;
}

function declsOnSide(hunk: DiffHunk, side: Side, lang: Lang, byName: boolean): Decl[] {
  const seq = hunk.lines.filter((l) => onSide(l, side));
  const out: Decl[] = [];
  const seen = new Set<DiffLine>();
  for (let k = 0; k < seq.length; k++) {
    const line = seq[k]!;
    if (isCommentLine(line.text)) continue;
    if (ATTRIBUTE_LANGS.has(lang) && TEST_ATTRIBUTE.test(scan(line.text))) {
      for (let j = k + 1; j < seq.length && j <= k + 8; j++) {
        const next = seq[j]!;
        const name = fnName(next.text);
        if (name !== undefined) {
          out.push({ name, line: next, attr: line });
          seen.add(next);
          break;
        }
        if (!ANNOTATION_OR_BLANK.test(next.text)) break;
      }
    }
    if (!byName || seen.has(line)) continue;
    const name = testDeclName(line.text, lang);
    if (name !== undefined) out.push({ name, line });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Per-file view
// ---------------------------------------------------------------------------------------------

type Side = 'old' | 'new';

function onSide(line: DiffLine, side: Side): boolean {
  return line.type === 'ctx' || line.type === (side === 'old' ? 'del' : 'add');
}

interface Pos {
  readonly hunk: DiffHunk;
  readonly index: number;
  readonly block: number;
}

interface FileView {
  readonly file: DiffFile;
  readonly path: string;
  readonly lang: Lang;
  readonly test: boolean;
  readonly adds: readonly DiffLine[];
  readonly dels: readonly DiffLine[];
  /** Added and removed lines whose trimmed text also appears on the other side: moved, not changed. */
  readonly moved: ReadonlySet<DiffLine>;
  readonly pos: ReadonlyMap<DiffLine, Pos>;
  readonly blocks: ReadonlyArray<{ readonly dels: readonly DiffLine[]; readonly adds: readonly DiffLine[] }>;
  readonly removedDecls: readonly Decl[];
  readonly addedDecls: readonly Decl[];
  /** Filled on demand by `enclosingTestDecl`. */
  readonly enclosing: Map<DiffHunk, Record<Side, Array<Enclosing | undefined>>>;
}

function toView(file: DiffFile): FileView {
  const path = file.newPath ?? file.oldPath ?? '';
  const lang = langOf(path);
  const test = isTestPath(path);
  const adds: DiffLine[] = [];
  const dels: DiffLine[] = [];
  const pos = new Map<DiffLine, Pos>();
  const blocks: Array<{ dels: DiffLine[]; adds: DiffLine[] }> = [];
  const removedDecls: Decl[] = [];
  const addedDecls: Decl[] = [];
  for (const hunk of file.hunks) {
    let open = false;
    hunk.lines.forEach((line, index) => {
      if (line.type === 'ctx') {
        open = false;
      } else {
        if (!open) blocks.push({ dels: [], adds: [] });
        open = true;
        const block = blocks[blocks.length - 1]!;
        (line.type === 'add' ? block.adds : block.dels).push(line);
        (line.type === 'add' ? adds : dels).push(line);
      }
      pos.set(line, { hunk, index, block: open ? blocks.length - 1 : -1 });
    });
    if (file.binary) continue;
    for (const d of declsOnSide(hunk, 'old', lang, test)) {
      if (d.line.type === 'del' || d.attr?.type === 'del') removedDecls.push(d);
    }
    for (const d of declsOnSide(hunk, 'new', lang, test)) {
      if (d.line.type === 'add' || d.attr?.type === 'add') addedDecls.push(d);
    }
  }
  const moved = new Set<DiffLine>();
  const pending = new Map<string, { readonly lines: DiffLine[]; next: number }>();
  for (const d of dels) {
    const key = d.text.trim();
    const entry = pending.get(key) ?? { lines: [], next: 0 };
    entry.lines.push(d);
    pending.set(key, entry);
  }
  for (const a of adds) {
    const entry = pending.get(a.text.trim());
    const twin = entry?.lines[entry.next];
    if (entry && twin) {
      entry.next++;
      moved.add(a);
      moved.add(twin);
    }
  }
  return { file, path, lang, test, adds, dels, moved, pos, blocks, removedDecls, addedDecls, enclosing: new Map() };
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/**
 * Inspects a unified diff (`git diff base..head` output) and returns every change that could be
 * gaming the checks: deleted or skipped tests, removed or weakened assertions, edited CI / lint /
 * test config, updated snapshots, changed dependencies, and added lint suppressions. Pure and
 * deterministic; never throws on odd input (binary files, missing final newline, empty diff).
 */
export function inspectFixDiff(diff: string): GuardFlag[] {
  const views = parseUnifiedDiff(diff).map(toView);
  // Tests moved between files (or within one) are not deletions: match removed names against
  // every name the diff adds.
  const addedNames: AddedNames = new Map();
  for (const v of views) {
    for (const d of v.addedDecls) {
      const where = addedNames.get(d.name) ?? [];
      where.push(v);
      addedNames.set(d.name, where);
    }
  }
  const flags: GuardFlag[] = [];
  for (const v of views) {
    inspectTests(v, addedNames, flags);
    inspectConfig(v, flags);
  }
  return flags;
}

/** Where each added test name was added, one entry per declaration. */
type AddedNames = Map<string, FileView[]>;

/** Matches a removed test to an added one of the same name, in its own file first. */
function takeName(names: AddedNames, name: string, own: FileView): FileView | undefined {
  const where = names.get(name) ?? [];
  const i = where.includes(own) ? where.indexOf(own) : 0;
  const [found] = where.splice(i, 1);
  return found;
}

// ---------------------------------------------------------------------------------------------
// Tests: deleted, skipped, assertions removed or weakened
// ---------------------------------------------------------------------------------------------

function inspectTests(v: FileView, addedNames: AddedNames, out: GuardFlag[]): void {
  const { file } = v;
  if (file.status === 'renamed' && file.oldPath !== null && file.newPath !== null && leavesTestSuite(file.oldPath, file.newPath)) {
    out.push(
      makeFlag(
        'test-skipped',
        file.newPath,
        undefined,
        `renamed a test file so it no longer runs: ${baseName(file.oldPath)} → ${baseName(file.newPath)}`,
        `rename from ${file.oldPath}\nrename to ${file.newPath}`,
      ),
    );
  }
  if (file.binary) return;
  if (file.status === 'deleted') {
    inspectDeletedTestFile(v, addedNames, out);
    return;
  }
  const removedTests = inspectRemovedDecls(v, addedNames, out);
  inspectSkips(v, out);
  if (!v.test) return;
  inspectAssertionCount(v, removedTests, out);
  inspectWeakened(v, out);
}

function leavesTestSuite(oldPath: string, newPath: string): boolean {
  if (isTestFileName(oldPath) && !isTestFileName(newPath)) return true;
  return isTestPath(oldPath) && CODE_EXT.test(oldPath) && !CODE_EXT.test(newPath);
}

function inspectDeletedTestFile(v: FileView, addedNames: AddedNames, out: GuardFlag[]): void {
  const path = v.file.oldPath ?? v.path;
  if (!isTestPath(path)) return;
  const decls = v.removedDecls;
  const lost = decls.filter((d) => takeName(addedNames, d.name, v) === undefined);
  const assertions = v.dels.filter((l) => isAssertionLine(l.text, v.lang));
  if (decls.length === 0 && assertions.length === 0 && !isTestFileName(path)) return; // a fixture or helper
  if (decls.length > 0 && lost.length === 0) return; // every test reappears in another file
  const detail =
    decls.length === 0
      ? `deleted a test file (${plural(assertions.length, 'assertion')})`
      : `deleted a test file with ${plural(decls.length, 'test')}` +
        (lost.length < decls.length ? ` (${decls.length - lost.length} moved elsewhere)` : '') +
        `: ${quoteList(lost.map((d) => d.name))}`;
  const shown = lost.length > 0 ? lost.map((d) => d.line) : v.dels.slice(0, 4);
  out.push(makeFlag('test-deleted', path, undefined, detail, evidence(shown)));
}

/**
 * Flags removed test cases. Returns the declaration lines of tests that left this file (flagged,
 * or moved to another file): their assertions left with them and are not counted again.
 */
function inspectRemovedDecls(v: FileView, addedNames: AddedNames, out: GuardFlag[]): Set<DiffLine> {
  const gone = new Set<DiffLine>();
  for (const [opener, name] of blockCommentedTests(v)) {
    out.push(makeFlag('test-skipped', v.path, lineOf(opener), `commented out test '${short(name)}' in a block comment`, evidence([opener])));
  }
  if (v.removedDecls.length === 0) return gone;
  const oldNames = new Set(v.removedDecls.map((d) => d.name));
  const replacements = new Map<number, Decl>();
  for (const d of v.addedDecls) {
    const block = v.pos.get(d.line)?.block ?? -1;
    if (!oldNames.has(d.name) && block >= 0 && !replacements.has(block)) replacements.set(block, d);
  }
  const commented = commentedOutDecls(v);
  const strings = addedStrings(v);
  for (const d of v.removedDecls) {
    const movedTo = takeName(addedNames, d.name, v);
    if (movedTo !== undefined) {
      if (movedTo !== v && d.line.type === 'del') gone.add(d.line);
      continue;
    }
    if (d.line.type === 'ctx' && d.attr) {
      out.push(
        makeFlag(
          'test-skipped',
          v.path,
          lineOf(d.attr),
          `'${short(d.name)}' no longer runs: removed ${d.attr.text.trim()}`,
          evidence([d.attr, d.line]),
        ),
      );
      continue;
    }
    // Declared again in a shape the patterns do not read (a call reformatted over lines).
    if (strings.has(d.name)) continue;
    if (d.line.type === 'del') gone.add(d.line);
    const comment = commented.get(d.name);
    if (comment) {
      out.push(makeFlag('test-skipped', v.path, lineOf(comment), `commented out test '${short(d.name)}'`, evidence([d.line, comment])));
      continue;
    }
    const replacement = replacements.get(v.pos.get(d.line)?.block ?? -1);
    const detail = `removed test '${short(d.name)}'` + (replacement ? ` (replaced by '${short(replacement.name)}')` : '');
    out.push(makeFlag('test-deleted', v.path, lineOf(d.attr ?? d.line), detail, evidence(followingDels(v, d.attr ?? d.line, 4))));
  }
  return gone;
}

/** String literals on added code lines, for languages whose tests are named by a string. */
function addedStrings(v: FileView): Set<string> {
  const found = new Set<string>();
  if (v.lang !== 'js' && v.lang !== 'ruby' && v.lang !== 'go') return found;
  for (const l of v.adds) {
    if (isCommentLine(l.text)) continue;
    for (const m of scan(l.text).matchAll(/(['"`])((?:\\.|(?!\1)[^\\])*)\1/g)) found.add(m[2] ?? '');
  }
  return found;
}

/** Test declarations that reappear on added lines behind a line comment, by name. */
function commentedOutDecls(v: FileView): Map<string, DiffLine> {
  const found = new Map<string, DiffLine>();
  for (const l of v.adds) {
    const stripped = l.text.replace(COMMENT_PREFIX, '');
    if (stripped === l.text) continue;
    const name = testDeclName(stripped, v.lang) ?? (ATTRIBUTE_LANGS.has(v.lang) ? fnName(stripped) : undefined);
    if (name !== undefined && !found.has(name)) found.set(name, l);
  }
  return found;
}

const MAX_BLOCK_COMMENT_SCAN = 200;

/** Tests left in place but wrapped in a newly added `/* … *\/` comment. */
function blockCommentedTests(v: FileView): Array<[DiffLine, string]> {
  if (v.lang === 'py' || v.lang === 'ruby' || v.lang === 'other') return [];
  const found: Array<[DiffLine, string]> = [];
  for (const opener of v.adds) {
    const t = opener.text.trim();
    if (!t.startsWith('/*') || t.includes('*/')) continue;
    const p = v.pos.get(opener);
    if (!p) continue;
    for (const l of p.hunk.lines.slice(p.index + 1, p.index + 1 + MAX_BLOCK_COMMENT_SCAN)) {
      if (!onSide(l, 'new')) continue;
      if (l.text.includes('*/')) break;
      const name = l.type === 'ctx' ? (testDeclName(l.text, v.lang) ?? (TEST_ATTRIBUTE.test(l.text) ? 'attribute-marked test' : undefined)) : undefined;
      if (name !== undefined) {
        found.push([opener, name]);
        break;
      }
    }
  }
  return found;
}

function followingDels(v: FileView, start: DiffLine, max: number): DiffLine[] {
  const p = v.pos.get(start);
  if (!p) return [start];
  const out: DiffLine[] = [];
  for (const l of p.hunk.lines.slice(p.index, p.index + 4 * max)) {
    if (l.type === 'ctx' || out.length >= max) break;
    if (l.type === 'del') out.push(l);
  }
  return out;
}

interface SkipPattern {
  readonly re: RegExp;
  readonly langs: readonly Lang[];
  /** Also outside test paths (the marker only means "skip a test" wherever it appears). */
  readonly anyPath: boolean;
  readonly label?: string;
  readonly focus?: boolean;
  /** The marker lives in a comment (`//go:build ignore`). */
  readonly comment?: boolean;
}

const SKIP_PATTERNS: readonly SkipPattern[] = [
  { re: /\b(?:describe|it|test|suite|context|specify)\.only\b/, langs: ['js'], anyPath: false, focus: true },
  { re: /(?:^|[^\w.$])f(?:it|describe|test|context)\s*\(/, langs: ['js'], anyPath: false, focus: true },
  { re: /\b(?:describe|it|test|suite|context|specify|bench)\.(?:skip|todo|skipIf|fixme)\b/, langs: ['js'], anyPath: false },
  { re: /(?:^|[^\w.$])x(?:it|describe|test|context|specify)\s*\(/, langs: ['js'], anyPath: false },
  { re: /\b(?:this|ctx|context|t)\.skip\s*\(/, langs: ['js'], anyPath: false },
  { re: /\{\s*(?:skip|todo)\s*:\s*(?:true|['"`])/, langs: ['js'], anyPath: false, label: '{ skip: … }' },
  { re: /@?pytest\.mark\.(?:skip|skipif|xfail)\b/, langs: ['py'], anyPath: true },
  { re: /@unittest\.(?:skip|skipIf|skipUnless|expectedFailure)\b/, langs: ['py'], anyPath: true },
  { re: /\bpytest\.(?:skip|importorskip)\s*\(|\bself\.skipTest\s*\(|\braise\s+(?:unittest\.)?SkipTest\b/, langs: ['py'], anyPath: false },
  { re: /\b[tbf]\.Skip(?:f|Now)?\s*\(/, langs: ['go'], anyPath: false },
  { re: /^\s*\/\/\s*(?:go:build|\+build)\s+ignore\b/, langs: ['go'], anyPath: false, comment: true, label: '//go:build ignore' },
  { re: /#\[ignore\b[^\]]*\]/, langs: ['rust'], anyPath: true, label: '#[ignore]' },
  { re: /#!?\[cfg\((?:any\(\)|FALSE|false|ignore|never)\)\]/, langs: ['rust'], anyPath: false },
  { re: /@(?:Disabled\w*|Ignore)\b/, langs: ['jvm'], anyPath: true },
  { re: /\bAssume\.assume\w*\s*\(|\bAssumptions\.assume\w*\s*\(|\bassume(?:True|False|That)\s*\(/, langs: ['jvm'], anyPath: false },
  { re: /^\s*(?:skip|pending)(?:\s*\(|\s+['"]|\s*$)/, langs: ['ruby'], anyPath: false },
  { re: /^\s*x(?:it|describe|context|specify)\b/, langs: ['ruby'], anyPath: false },
  { re: /@(?:module)?tag\s+:skip\b/, langs: ['ruby'], anyPath: false },
  { re: /\[Ignore\b/, langs: ['cs'], anyPath: true, label: '[Ignore]' },
  { re: /\[(?:Fact|Theory|Test\w*)\s*\([^\]]*\bSkip\s*=/, langs: ['cs'], anyPath: true, label: 'Skip =' },
];

function inspectSkips(v: FileView, out: GuardFlag[]): void {
  for (const p of SKIP_PATTERNS) {
    if (!p.langs.includes(v.lang) || (!p.anyPath && !v.test)) continue;
    const matches = (l: DiffLine): boolean => !v.moved.has(l) && (p.comment === true || !isCommentLine(l.text)) && p.re.test(scan(l.text));
    for (const l of excess(v.adds.filter(matches), v.dels.filter(matches))) {
      const label = p.label ?? cleanLabel(p.re.exec(scan(l.text))?.[0] ?? '');
      const name = nameNear(v, l);
      const detail = p.focus
        ? `focused ${name ? `'${short(name)}'` : 'a test'} with ${label}: every other test in the file is skipped`
        : name
          ? `skipped '${short(name)}' with ${label}`
          : `added ${label}`;
      out.push(makeFlag('test-skipped', v.path, lineOf(l), detail, evidence([l])));
    }
  }
}

/** The added lines beyond the number of removed ones: a marker that was only edited is not new. */
function excess(adds: readonly DiffLine[], dels: readonly DiffLine[]): readonly DiffLine[] {
  return adds.slice(0, Math.max(0, adds.length - dels.length));
}

const GROUP_DECL = /^\s*[xf]?(?:describe|context|suite)(?:\.\w+(?:\([^)]*\))?)*\s*(?:\(\s*|\s+)(['"`])(.+?)\1/;

/** The test a line belongs to: declared on it, just below it (decorators), or enclosing it. */
function nameNear(v: FileView, line: DiffLine): string | undefined {
  const own = testDeclName(line.text, v.lang) ?? GROUP_DECL.exec(scan(line.text))?.[2];
  if (own !== undefined) return own;
  const p = v.pos.get(line);
  if (p && /^\s*(?:@|#\[|\[)/.test(line.text)) {
    const side: Side = line.type === 'del' ? 'old' : 'new';
    const after = p.hunk.lines.slice(p.index + 1, p.index + 13).filter((l) => onSide(l, side)).slice(0, 6);
    const target = after.find((l) => !ANNOTATION_OR_BLANK.test(l.text));
    const name = target && (testDeclName(target.text, v.lang) ?? (ATTRIBUTE_LANGS.has(v.lang) ? fnName(target.text) : undefined));
    if (name !== undefined) return name;
  }
  return enclosingTest(v, line);
}

function enclosingTest(v: FileView, line: DiffLine): string | undefined {
  return enclosingTestDecl(v, line)?.name;
}

interface Enclosing {
  readonly name: string;
  readonly line?: DiffLine;
}

function enclosingTestDecl(v: FileView, line: DiffLine): Enclosing | undefined {
  const p = v.pos.get(line);
  if (!p) return undefined;
  const side: Side = line.type === 'del' ? 'old' : 'new';
  // Per hunk and side, the test declared last before each line: one pass instead of a walk back
  // from every line, which is quadratic on a hunk that removes thousands of assertions.
  let cached = v.enclosing.get(p.hunk);
  if (!cached) {
    const pass = (s: Side): Array<Enclosing | undefined> => {
      let current: Enclosing | undefined;
      return p.hunk.lines.map((l) => {
        const before = current;
        if (onSide(l, s) && !isCommentLine(l.text)) {
          const name = testDeclName(l.text, v.lang) ?? (ATTRIBUTE_LANGS.has(v.lang) ? fnName(l.text) : undefined);
          if (name !== undefined) current = { name, line: l };
        }
        return before;
      });
    };
    cached = { old: pass('old'), new: pass('new') };
    v.enclosing.set(p.hunk, cached);
  }
  const found = cached[side][p.index];
  if (found) return found;
  const heading = p.hunk.heading ?? '';
  const name =
    testDeclName(heading, v.lang) ??
    (ATTRIBUTE_LANGS.has(v.lang) || v.lang === 'go' ? fnName(heading) : undefined) ??
    GROUP_DECL.exec(heading)?.[2];
  return name === undefined ? undefined : { name };
}

// Assertion lines, per language. A line counts once however many calls it holds.
const ASSERTION_ANY = [/\bexpect(?:TypeOf)?\s*[({]/, /\bassert(?:_\w+|[A-Z]\w*)?!?\s*\(/, /^\s*assert\b/];
const ASSERTION_BY_LANG: Record<Lang, readonly RegExp[]> = {
  js: [/\bassert\.\w+\s*\(/, /\.should\b/, /\bshould\.\w+\s*\(/, /\bt\.(?:is|not|deepEqual|notDeepEqual|truthy|falsy|true|false|throws|throwsAsync|notThrows|notThrowsAsync|regex|like|snapshot)\s*\(/],
  py: [/\bpytest\.raises\s*\(/, /\bself\.fail\s*\(/],
  go: [/\b(?:assert|require)\.\w+\s*\(/, /\b\w+\.(?:Assert|Require)\(\)\.\w+\s*\(/, /\b[tb]\.(?:Error|Errorf|Fatal|Fatalf|Fail|FailNow)\s*\(/],
  rust: [/\b(?:debug_)?assert\w*!\s*\(/],
  jvm: [/\bAssertions\.\w+\s*\(/, /\bverify\s*\(/, /\bfail\s*\(/, /\bshould[A-Z]\w*\b/, /\s(?:shouldBe|shouldNotBe)\s/],
  ruby: [/\bis_expected\b/, /\.should\b/, /\brefute\w*\b/, /\bassert_\w+\b/],
  cs: [/\bAssert\.\w+\s*\(/, /\.Should\(\)/],
  other: [],
};

function isAssertionLine(text: string, lang: Lang): boolean {
  if (isCommentLine(text)) return false;
  const t = scan(text);
  return ASSERTION_ANY.some((re) => re.test(t)) || ASSERTION_BY_LANG[lang].some((re) => re.test(t));
}

function inspectAssertionCount(v: FileView, removedTests: ReadonlySet<DiffLine>, out: GuardFlag[]): void {
  // Assertions of a test that left the file (flagged, or moved elsewhere) went with it.
  const removed = v.dels.filter((l) => {
    if (!isAssertionLine(l.text, v.lang)) return false;
    const owner = enclosingTestDecl(v, l)?.line;
    return !(owner && removedTests.has(owner));
  });
  const added = v.adds.filter((l) => isAssertionLine(l.text, v.lang));
  const lost = removed.length - added.length;
  if (lost <= 0) return;
  const first = removed[0]!;
  const owners = new Set(removed.map((l) => enclosingTest(v, l) ?? ''));
  const owner = owners.size === 1 ? [...owners][0] : '';
  const detail =
    `removed ${plural(lost, 'assertion')}` +
    (owner ? ` from test '${short(owner)}'` : '') +
    (added.length > 0 ? ` (${removed.length} removed, ${added.length} added)` : '');
  out.push(makeFlag('assertions-removed', v.path, lineOf(first), detail, evidence(removed)));
}

function inspectWeakened(v: FileView, out: GuardFlag[]): void {
  for (const block of v.blocks) {
    const dA = block.dels.filter((l) => isAssertionLine(l.text, v.lang));
    const aA = block.adds.filter((l) => isAssertionLine(l.text, v.lang));
    const asserting = new Set([...dA, ...aA]);
    for (const [d, a] of pairAssertions(dA, aA)) {
      const before = classifyAssertion(d.text, v.lang);
      const after = classifyAssertion(a.text, v.lang);
      const where = enclosingTest(v, a);
      const inTest = where ? ` in '${short(where)}'` : '';
      if (before && after && after.strength < before.strength) {
        out.push(makeFlag('assertion-weakened', v.path, lineOf(a), `weakened assertion${inTest}: ${before.label} → ${after.label}`, evidence([d, a])));
      } else if (expectedValueChanged(d.text, a.text)) {
        out.push(makeFlag('assertion-weakened', v.path, lineOf(a), `expected value changed${inTest}: ${literalChange(d.text, a.text)}`, evidence([d, a])));
      }
    }
    // Expected values that sit outside the assertion line: `want: 3`, `const expected = …`, or
    // a line inside a multi-line `expect(…).toEqual({ … })`.
    const others = pairBySameShape(
      block.dels.filter((l) => !asserting.has(l)),
      block.adds.filter((l) => !asserting.has(l)),
    );
    for (const [d, a] of others) {
      if (a.text.trim() === d.text.trim()) continue;
      if (!EXPECTATION_LINE.test(scan(d.text)) && !insideAssertion(v, d)) continue;
      const where = enclosingTest(v, a);
      out.push(
        makeFlag('assertion-weakened', v.path, lineOf(a), `expected value changed${where ? ` in '${short(where)}'` : ''}: ${literalChange(d.text, a.text)}`, evidence([d, a])),
      );
    }
  }
}

const EXPECTATION_LINE = /\b(?:want(?:ed)?|expected|expectation|exp|golden|WANT|EXPECTED)(?:[A-Z_]\w*)?\s*(?::=|[:=](?!=))/;

function pairAssertions(dels: readonly DiffLine[], adds: readonly DiffLine[]): Array<[DiffLine, DiffLine]> {
  const pairs: Array<[DiffLine, DiffLine]> = [];
  const usedD = new Set<DiffLine>();
  const usedA = new Set<DiffLine>();
  const bySubject = new Map<string, { readonly lines: DiffLine[]; next: number }>();
  for (const a of adds) {
    const key = subjectOf(a.text);
    const entry = bySubject.get(key) ?? { lines: [], next: 0 };
    entry.lines.push(a);
    bySubject.set(key, entry);
  }
  for (const d of dels) {
    const key = subjectOf(d.text);
    const entry = key === '' ? undefined : bySubject.get(key);
    const a = entry?.lines[entry.next];
    if (entry && a) {
      entry.next++;
      pairs.push([d, a]);
      usedD.add(d);
      usedA.add(a);
    }
  }
  // Same number of assertions in and out: pair the rest in order.
  if (dels.length === adds.length) {
    const restA = adds.filter((a) => !usedA.has(a));
    dels.filter((d) => !usedD.has(d)).forEach((d, i) => {
      const a = restA[i];
      if (a) pairs.push([d, a]);
    });
  }
  return pairs;
}

/** What an assertion is about (`expect(x)` → `x`), whitespace-free; '' when unknown. */
function subjectOf(text: string): string {
  const t = scan(text);
  const open = /\b(?:expect|assertThat|assert\w*!?)\s*\(/.exec(t);
  if (open) {
    const args = splitTopLevel(balancedInner(t, open.index + open[0].length - 1), ',');
    const subject = args.find((a) => !/^\s*(?:t|self|this)\s*$/.test(a) && normalizeLiterals(a).trim() !== 'L') ?? '';
    return subject.replace(/\s+/g, '');
  }
  const bare = /^\s*assert\s+(.+)$/.exec(t);
  if (bare) return (bare[1] ?? '').split(/==|!=|<=|>=|<|>|\bis\b|\bin\b|,/)[0]!.replace(/\s+/g, '');
  return '';
}

function expectedValueChanged(rawBefore: string, rawAfter: string): boolean {
  const before = assertionCore(rawBefore);
  const after = assertionCore(rawAfter);
  if (before.trim() === after.trim() || normalizeLiterals(before) !== normalizeLiterals(after)) return false;
  // With `expect(subject).matcher(expected)`, a change inside `expect(…)` alone is a new input.
  const tailOf = (text: string): string | undefined => {
    const m = /\bexpect\s*\(/.exec(text);
    if (!m) return undefined;
    const open = m.index + m[0].length - 1;
    return text.slice(open + 2 + balancedInner(text, open).length);
  };
  const tb = tailOf(before);
  const ta = tailOf(after);
  return tb === undefined || ta === undefined || tb.trim() !== ta.trim();
}

// Assertions whose arguments are only a message: `t.Errorf("got %d, want %d", got, want)`.
const MESSAGE_ONLY = /\b[tb]\.(?:Error|Errorf|Fatal|Fatalf|Fail|FailNow|Log|Logf)\s*\(|\b(?:self\.)?fail\s*\(/;
// Assertions that take one value before their optional message.
const ONE_VALUE = /^(?:(?:debug_)?assert!?|assertTrue|assertFalse|assertIsNone|assertIsNotNone|assertNull|assertNotNull|True|False|Nil|NotNil|NoError|Error|Empty|NotEmpty|Zero|NotZero|ok)$/;

/**
 * An assertion line without its message, so a reworded message is not read as a changed
 * expected value: `assert x == 1, "msg"` → `assert x == 1`; `assert_eq!(a, b, "msg")` →
 * `assert_eq!(a, b`; `assert.Equal(t, 1, got, "msg")` → `assert.Equal(t, 1, got`.
 */
function assertionCore(text: string): string {
  const t = scan(text);
  if (MESSAGE_ONLY.test(t)) return '';
  const bare = /^(\s*assert\s+)(?!\()(.+)$/.exec(t);
  if (bare) return (bare[1] ?? '') + (splitTopLevel(bare[2] ?? '', ',')[0] ?? '');
  const call = /\b(?:assert|require)\.(\w+)\s*\(|\b((?:debug_)?assert\w*!?)\s*\(/.exec(t);
  if (!call) return t;
  const name = call[1] ?? call[2] ?? '';
  const open = call.index + call[0].length - 1;
  const args = splitTopLevel(balancedInner(t, open), ',').filter((a) => !/^\s*msg\s*=/.test(a));
  const keep = (/^\s*t\s*$/.test(args[0] ?? '') ? 1 : 0) + (ONE_VALUE.test(name) ? 1 : 2);
  return t.slice(0, open + 1) + args.slice(0, keep).join(',');
}

/** Whether a removed line sits inside an assertion opened on an earlier line of the hunk. */
function insideAssertion(v: FileView, line: DiffLine): boolean {
  const p = v.pos.get(line);
  if (!p) return false;
  const before = p.hunk.lines.slice(Math.max(0, p.index - 20), p.index).filter((l) => onSide(l, 'old'));
  for (let i = before.length - 1; i >= 0; i--) {
    const l = before[i]!;
    if (testDeclName(l.text, v.lang) !== undefined) return false;
    if (!isAssertionLine(l.text, v.lang)) continue;
    const depth = before.slice(i).reduce((sum, x) => sum + bracketDepth(x.text), 0);
    return depth > 0;
  }
  return false;
}

interface Strength {
  /** 3 exact, 2 partial (contains, range, type), 1 existence or truthiness. */
  readonly strength: number;
  readonly label: string;
}

// Assertion strength by normalized name (lower case, no underscores, no `assert` prefix):
// 3 exact, 2 partial (contains, range, type), 1 existence or truthiness.
const STRENGTH_BY_NAME: ReadonlyMap<string, number> = new Map(
  (
    [
      [3, 'equal equals eq eql strictequal deepequal deepstrictequal equalvalues exactly len nil none ' +
        'isnone noerror erroris equalerror jsoneq yamleq indelta inepsilon same empty zero elementsmatch ' +
        'panicswithvalue panicswitherror listequal dictequal tupleequal setequal sequenceequal ' +
        'multilineequal almostequal almostequals is arrayequals iterableequals linesmatch null areequal ' +
        'aresame isnull isequalto containsexactly containsexactlyinanyorder hassize issameas isempty ' +
        'hasmessage iszero lengthof length tobe toequal tostrictequal tohavelength tohavebeencalledwith ' +
        'tohavebeencalledtimes tohavebeenlastcalledwith tohavebeennthcalledwith tohavereturnedwith ' +
        'tohavereturnedtimes tohavelastreturnedwith tohaventhreturnedwith tomatchsnapshot ' +
        'tomatchinlinesnapshot tomatchfilesnapshot tothrowerrormatchingsnapshot ' +
        'tothrowerrormatchinginlinesnapshot tobecloseto tobenull tobeundefined tobenan ' +
        'tohavebeencalledonce tohavebeencalledexactlyoncewith tobecalledwith tobecalledtimes tothrow ' +
        'tothrowerror shouldbe shouldequal matcharray containexactly benil beempty bewithin members keys ' +
        'closeto undefined raisesregex inrange'],
      [2, 'match matches regex regexp notregexp include includes contain contains containsonly subset ' +
        'greater greaterorequal less lessorequal above below least most within instanceof isinstance ' +
        'isinstanceof istype isoftype a an property throws throw raises raiseserror warns rejects ' +
        'errorcontains erroras panics in countequal startswith endswith isgreaterthan ' +
        'isgreaterthanorequalto islessthan islessthanorequalto containskey containsentry isbetween ' +
        'iscloseto hasmessagecontaining isin kindof tomatch tocontain tocontainequal tomatchobject ' +
        'tohaveproperty tobegreaterthan tobegreaterthanorequal tobelessthan tobelessthanorequal ' +
        'tobeinstanceof tobetypeof tohavebeencalled tobecalled tohavereturned tosatisfy tobeoneof ' +
        'startwith endwith bea bean bekindof beinstanceof havekey haveattributes raiseerror respondto ' +
        'change havereceived shouldcontain string hassizegreaterthan'],
      [1, 'ok true false istrue isfalse notnil notnone isnotnone notnull notempty notequal notequals ' +
        'notzero notcontains notpanics notsame isnot notin doesnotthrow error errorf isnotnull ' +
        'isnotempty isnotequalto isnotblank ispresent doesnotthrowanyexception notstrictequal ' +
        'notdeepequal notdeepstrictequal exist exists tobedefined tobetruthy tobefalsy betruthy befalsey ' +
        'befalsy bepresent shouldnotbenull condition ne anything nonnull notnullvalue truthy falsy ' +
        'arenotequal isnotnull'],
    ] as const
  ).flatMap(([strength, names]) => names.split(' ').map((name) => [name, strength] as const)),
);

function strengthOf(name: string): number | undefined {
  const key = name.toLowerCase().replace(/_/g, '').replace(/^assert(?=.)/, '');
  return STRENGTH_BY_NAME.get(key);
}

/** How strict an assertion line is; undefined when the line's assertion style is unknown. */
function classifyAssertion(text: string, lang: Lang): Strength | undefined {
  const t = scan(text);
  const found: Strength[] = [];
  const add = (label: string, strength: number | undefined): void => {
    if (strength !== undefined) found.push({ strength, label });
  };
  if (lang === 'js' || lang === 'ruby') {
    for (const m of t.matchAll(/\.(not\.)?(?:resolves\.|rejects\.)?(to[A-Z]\w*)\s*\(\s*(\))?/g)) {
      const name = m[2] ?? '';
      if (m[1]) add(`not.${name}`, 1);
      else if (/^toThrow(?:Error)?$/.test(name) && m[3]) add(`${name}()`, 2);
      else add(name, strengthOf(name));
    }
    for (const m of t.matchAll(/\bexpect\.(anything|any|arrayContaining|objectContaining|stringContaining|stringMatching|closeTo)\s*\(/g)) {
      const name = m[1] ?? '';
      add(`expect.${name}`, name === 'anything' ? 1 : name === 'closeTo' ? 3 : 2);
    }
    const chai = /((?:\.(?:to|be|been|is|that|which|and|has|have|with|at|of|same|deep|nested|own|ordered|not|does|still|should))+)\.(\w+)/.exec(t);
    if (chai && /\.(?:to|should)\b/.test(chai[1] ?? '')) {
      const name = chai[2] ?? '';
      add(`${/\.not\b/.test(chai[1] ?? '') ? 'not.' : ''}${name}`, /\.not\b/.test(chai[1] ?? '') ? 1 : strengthOf(name));
    }
    for (const m of t.matchAll(/\bassert\.(\w+)\s*\(/g)) add(`assert.${m[1] ?? ''}`, strengthOf(m[1] ?? ''));
    const rspec = /\.(to|not_to|to_not)\b\s*\(?\s*(\w+)(\s*[<>]=?)?/.exec(t);
    if (rspec) {
      const name = rspec[2] ?? '';
      if (rspec[1] !== 'to') add(`${rspec[1]} ${name}`, 1);
      else if (name === 'be' && rspec[3]) add(`be${rspec[3].trim()}`, 2);
      else add(name, name === 'be' ? 3 : strengthOf(name));
    }
  }
  if (lang === 'go') {
    for (const m of t.matchAll(/\b(?:assert|require|\w+\.(?:Assert|Require)\(\))\.(\w+)\s*\(/g)) add(m[1] ?? '', strengthOf(m[1] ?? ''));
  }
  if (lang === 'cs') {
    for (const m of t.matchAll(/\bAssert\.(\w+)\s*\(/g)) add(`Assert.${m[1] ?? ''}`, strengthOf(m[1] ?? ''));
  }
  if (lang === 'jvm' && /\bassertThat\s*\(/.test(t)) {
    for (const m of t.matchAll(/\)\s*\.(is\w+|has\w+|contains\w*|starts\w+|ends\w+|doesNot\w+|matches)\s*\(/g)) add(m[1] ?? '', strengthOf(m[1] ?? ''));
    for (const m of t.matchAll(/\b(equalTo|is|containsString|hasItems?|greaterThan\w*|lessThan\w*|startsWith|endsWith|instanceOf|notNullValue|nullValue|anything|not|hasSize)\s*\(/g)) {
      const name = m[1] ?? '';
      add(name, { equalto: 3, is: 3, nullvalue: 3, hassize: 3, notnullvalue: 1, anything: 1, not: 1 }[name.toLowerCase()] ?? 2);
    }
  }
  // Function-style asserts: assertEqual(, assert_equal, assertEquals(, assert_eq!(, refute_nil …
  for (const m of t.matchAll(/\b((?:debug_)?assert(?:_\w+|[A-Z]\w*)|refute\w*)(!)?\s*(?=[(\s])/g)) {
    const name = (m[1] ?? '').replace(/^debug_/, '');
    if (name.startsWith('refute')) add(name, 1);
    else add(`${name}${m[2] ?? ''}`, strengthOf(name));
  }
  // Bare `assert expr` (Python, Java, minitest) and `assert!(expr)` (Rust): judge the expression.
  const bare = /^\s*assert\s+(?!\()(.+)$/.exec(t) ?? /\b(?:debug_)?assert!?\s*\((.*)$/.exec(t);
  if (bare && found.length === 0) {
    const expr = splitTopLevel(bare[1] ?? '', ',')[0] ?? '';
    const s = expressionStrength(expr);
    add(s.label, s.strength);
  }
  if (found.length === 0) return undefined;
  return found.reduce((min, s) => (s.strength < min.strength ? s : min));
}

function expressionStrength(expr: string): Strength {
  const e = expr.replace(/(['"`])(?:\\.|(?!\1)[^\\])*\1/g, 'S');
  if (/\bis\s+not\s+None\b/.test(e)) return { strength: 1, label: 'assert is not None' };
  if (/!=/.test(e)) return { strength: 1, label: 'assert !=' };
  if (/\bis\s+None\b/.test(e)) return { strength: 3, label: 'assert is None' };
  if (/==/.test(e)) return { strength: 3, label: 'assert ==' };
  if (/\bnot\s+in\b/.test(e)) return { strength: 1, label: 'assert not in' };
  if (/\bin\b|\bisinstance\s*\(|\bmatches!|\.(?:contains|starts_with|ends_with|includes|startswith|endswith)\s*\(/.test(e)) return { strength: 2, label: 'assert contains' };
  if (/[<>]=?/.test(e.replace(/->|=>/g, ''))) return { strength: 2, label: 'assert comparison' };
  return { strength: 1, label: 'assert truthy' };
}

// ---------------------------------------------------------------------------------------------
// Config, suppressions, snapshots, dependencies
// ---------------------------------------------------------------------------------------------

type Role =
  | 'ci'
  | 'lint'
  | 'test-config'
  | 'lockfile'
  | 'manifest'
  | 'snapshot'
  | 'package-json'
  | 'composer-json'
  | 'toml-or-ini'
  | 'tsconfig'
  | 'vite'
  | 'pom'
  | 'gradle'
  | 'csproj'
  | 'setup-py'
  | 'gemspec'
  | 'none';

const CI_PATHS = [
  /^\.github\/(?:workflows|actions)\//,
  /(?:^|\/)\.gitlab-ci\.ya?ml$/,
  /^\.gitlab\/ci\//,
  /^\.circleci\//,
  /(?:^|\/)Jenkinsfile[^/]*$/,
  /(?:^|\/)azure-pipelines[^/]*\.ya?ml$/,
  /^\.azure-pipelines\//,
  /^\.?ci\//,
  /^\.buildkite\//,
  /(?:^|\/)buildkite\.ya?ml$/,
  /^\.travis\.ya?ml$/,
  /(?:^|\/)\.?appveyor\.ya?ml$/,
  /^\.drone\.ya?ml$/,
  /(?:^|\/)bitbucket-pipelines\.ya?ml$/,
  /^\.woodpecker(?:\/|\.ya?ml$)/,
  /(?:^|\/)cloudbuild\.ya?ml$/,
  /^\.tekton\//,
  /^buildspec\.ya?ml$/,
];
const LINT_NAMES = [
  /^\.eslintrc(?:\.\w+)?$/,
  /^eslint\.config\.[cm]?[jt]s$/,
  /^\.eslintignore$/,
  /^\.prettierrc(?:\.\w+)?$/,
  /^prettier\.config\.[cm]?[jt]s$/,
  /^\.prettierignore$/,
  /^\.stylelintrc(?:\.\w+)?$/,
  /^stylelint\.config\.[cm]?js$/,
  /^biome\.jsonc?$/,
  /^\.oxlintrc\.json$/,
  /^tslint\.json$/,
  /^\.jshintrc$/,
  /^\.?ruff\.toml$/,
  /^\.flake8$/,
  /^\.?pylintrc$/,
  /^\.?mypy\.ini$/,
  /^pyrightconfig\.json$/,
  /^\.pre-commit-config\.ya?ml$/,
  /^\.golangci\.(?:ya?ml|toml|json)$/,
  /^\.?clippy\.toml$/,
  /^\.?rustfmt\.toml$/,
  /^deny\.toml$/,
  /^\.rubocop(?:_todo)?\.ya?ml$/,
  /^\.swiftlint\.ya?ml$/,
  /^checkstyle[^/]*\.xml$/,
  /^lefthook\.ya?ml$/,
  /^\.lintstagedrc(?:\.\w+)?$/,
  /^\.markdownlint(?:\.\w+|rc)?$/,
  /^\.hadolint\.ya?ml$/,
  /^\.shellcheckrc$/,
  /^detekt[^/]*\.ya?ml$/,
  /^\.scalafmt\.conf$/,
  /^\.credo\.exs$/,
];
const TEST_CONFIG_NAMES = [
  /^vitest\.(?:config|workspace|setup)\.[cm]?[jt]s$/,
  /^vitest\.workspace\.json$/,
  /^jest\.(?:config|setup)\.[cm]?[jt]s$/,
  /^jest\.config\.json$/,
  /^karma\.conf\.[cm]?[jt]s$/,
  /^\.mocharc(?:\.\w+)?$/,
  /^pytest\.ini$/,
  /^\.coveragerc$/,
  /^\.?codecov\.ya?ml$/,
  /^\.nycrc(?:\.\w+)?$/,
  /^nyc\.config\.[cm]?js$/,
  /^\.c8rc(?:\.json)?$/,
  /^ava\.config\.[cm]?js$/,
  /^playwright\.config\.[cm]?[jt]s$/,
  /^cypress\.config\.[cm]?[jt]s$/,
  /^phpunit\.xml(?:\.dist)?$/,
  /^\.rspec$/,
  /^noxfile\.py$/,
  /^\.simplecov$/,
  /^jasmine\.json$/,
  /^\.taprc$/,
  /^tarpaulin\.toml$/,
  /^nextest\.toml$/,
];
const LOCKFILES = new Set([
  'package-lock.json', 'npm-shrinkwrap.json', 'pnpm-lock.yaml', 'yarn.lock', 'bun.lockb', 'bun.lock', 'poetry.lock',
  'Pipfile.lock', 'uv.lock', 'pdm.lock', 'Cargo.lock', 'go.sum', 'Gemfile.lock', 'composer.lock', 'mix.lock',
  'packages.lock.json', 'gradle.lockfile', 'flake.lock', 'Podfile.lock', 'pubspec.lock', 'deno.lock',
]);
const MANIFEST_NAMES = [/^requirements[^/]*\.(?:txt|in)$/, /^constraints[^/]*\.txt$/, /^Pipfile$/, /^go\.mod$/, /^Gemfile$/, /^Podfile$/, /^pubspec\.yaml$/, /^Directory\.Packages\.props$/];

function roleOf(path: string): Role {
  const name = baseName(path);
  if (isSnapshotPath(path)) return 'snapshot';
  if (CI_PATHS.some((re) => re.test(path))) return 'ci';
  if (LINT_NAMES.some((re) => re.test(name)) || /(?:^|\/)\.husky\//.test(path)) return 'lint';
  if (TEST_CONFIG_NAMES.some((re) => re.test(name)) || /(?:^|\/)\.config\/nextest\.toml$/.test(path)) return 'test-config';
  if (LOCKFILES.has(name)) return 'lockfile';
  if (MANIFEST_NAMES.some((re) => re.test(name)) || /(?:^|\/)requirements\/[^/]+\.(?:txt|in)$/.test(path)) return 'manifest';
  if (name === 'package.json') return 'package-json';
  if (name === 'composer.json') return 'composer-json';
  if (name === 'pyproject.toml' || name === 'setup.cfg' || name === 'tox.ini' || name === 'Cargo.toml') return 'toml-or-ini';
  if (/^[jt]sconfig(?:\.[\w-]+)*\.json$/.test(name)) return 'tsconfig';
  if (/^vite\.config\.[cm]?[jt]s$/.test(name)) return 'vite';
  if (name === 'pom.xml') return 'pom';
  if (/^build\.gradle(?:\.kts)?$/.test(name)) return 'gradle';
  if (/\.csproj$/.test(name)) return 'csproj';
  if (name === 'setup.py') return 'setup-py';
  if (/\.gemspec$/.test(name)) return 'gemspec';
  return 'none';
}

interface Acc {
  base: string;
  readonly notes: string[];
  readonly lines: DiffLine[];
}

const CONFIG_KIND_ORDER: readonly GuardKind[] = ['ci-config-changed', 'lint-config-changed', 'test-config-changed', 'snapshot-updated', 'dependency-changed'];

function inspectConfig(v: FileView, out: GuardFlag[]): void {
  const accs = new Map<GuardKind, Acc>();
  const acc = (kind: GuardKind): Acc => {
    let a = accs.get(kind);
    if (!a) {
      a = { base: '', notes: [], lines: [] };
      accs.set(kind, a);
    }
    return a;
  };
  const { file } = v;
  const roles = new Set<Role>([roleOf(v.path)]);
  if (file.oldPath !== null) roles.add(roleOf(file.oldPath));
  const changed = [...v.dels, ...v.adds].sort(byPosition(v));
  const size = file.binary ? 'binary' : `+${v.adds.length} −${v.dels.length}`;
  const what = (noun: string): string =>
    file.status === 'deleted' ? `deleted ${noun}` : `${file.status === 'modified' ? 'edited' : file.status} ${noun} (${size})`;
  const touched = file.status !== 'modified' || changed.length > 0 || file.binary;

  for (const role of roles) {
    switch (role) {
      case 'ci':
        if (touched) setBase(acc('ci-config-changed'), what('CI config'), changed);
        break;
      case 'lint':
        if (touched) setBase(acc('lint-config-changed'), what('lint config'), changed);
        break;
      case 'test-config':
        if (touched) setBase(acc('test-config-changed'), what('test config'), changed);
        break;
      case 'lockfile':
        if (touched) setBase(acc('dependency-changed'), `${file.status === 'modified' ? 'changed' : file.status} lockfile (${size})`, changed.slice(0, 4));
        break;
      case 'manifest':
        if (touched) setBase(acc('dependency-changed'), dependencySummary(v, v.dels, v.adds) ?? what('dependency manifest'), changed);
        break;
      case 'snapshot':
        if (file.status === 'deleted') setBase(acc('snapshot-updated'), 'deleted a snapshot file', changed.slice(0, 4));
        else if (v.dels.length > 0) setBase(acc('snapshot-updated'), snapshotSummary(v), changed);
        break;
      case 'tsconfig': {
        const strict = changed.filter((l) => STRICT_KEY.test(scan(l.text)));
        const keys = [...new Set(strict.map((l) => STRICT_KEY.exec(scan(l.text))?.[1] ?? ''))];
        if (strict.length > 0) setBase(acc('lint-config-changed'), `changed type-checking settings: ${keys.join(', ')}`, strict);
        break;
      }
      case 'vite': {
        const testLines = changed.filter((l) => /\b(?:test|coverage|thresholds?|include|exclude|environment|setupFiles|globals|passWithNoTests)\b/.test(scan(l.text)));
        if (testLines.length > 0) setBase(acc('test-config-changed'), 'edited test settings in the vite config', testLines);
        break;
      }
      case 'package-json':
      case 'composer-json':
      case 'toml-or-ini':
      case 'pom':
      case 'gradle':
      case 'csproj':
      case 'setup-py':
      case 'gemspec':
        sectionedFile(v, role, changed, acc);
        break;
      case 'none':
        break;
    }
  }

  if (!file.binary && !roles.has('lockfile') && !roles.has('snapshot') && !DOC_FILE.test(v.path)) {
    scanAddedTokens(v, roles, acc);
    scanThresholds(v, roles, acc);
  }

  for (const kind of CONFIG_KIND_ORDER) {
    const a = accs.get(kind);
    if (!a || (a.base === '' && a.notes.length === 0)) continue;
    const lines = [...new Set(a.lines)];
    const first = lines[0];
    out.push(makeFlag(kind, v.path, first ? lineOf(first) : undefined, [a.base, ...a.notes].filter((s) => s !== '').join('; '), evidence(lines)));
  }
}

function setBase(a: Acc, base: string, lines: readonly DiffLine[]): void {
  if (a.base === '') a.base = base;
  a.lines.push(...lines);
}

function note(a: Acc, text: string, lines: readonly DiffLine[]): void {
  if (!a.notes.includes(text)) a.notes.push(text);
  a.lines.unshift(...lines);
}

function byPosition(v: FileView): (a: DiffLine, b: DiffLine) => number {
  const order = new Map<DiffLine, number>();
  let i = 0;
  for (const h of v.file.hunks) for (const l of h.lines) order.set(l, i++);
  return (a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0);
}

// Prose mentions `--passWithNoTests` or `|| true` without running anything.
const DOC_FILE = /\.(?:md|mdx|markdown|rst|adoc|txt)$/i;

const STRICT_KEY =
  /"(strict\w*|noImplicit\w*|noUnchecked\w*|noUnused\w*|noFallthrough\w*|exactOptional\w*|noPropertyAccessFromIndexSignature|useUnknownInCatchVariables|alwaysStrict|skipLibCheck|checkJs|allowUnreachableCode|allowUnusedLabels|suppress\w*Errors|include|exclude|files)"\s*:/;

const DEP_SECTIONS = new Set(['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies', 'bundleDependencies', 'bundledDependencies', 'overrides', 'resolutions', 'pnpm', 'require', 'require-dev']);
const JSON_TEST_SECTIONS = new Set(['jest', 'vitest', 'c8', 'nyc', 'mocha', 'ava', 'jasmine']);
const JSON_LINT_SECTIONS = new Set(['eslintConfig', 'eslintIgnore', 'prettier', 'stylelint', 'lint-staged', 'husky', 'simple-git-hooks']);

function sectionedFile(v: FileView, role: Role, changed: readonly DiffLine[], acc: (kind: GuardKind) => Acc): void {
  const byKind = new Map<GuardKind, DiffLine[]>();
  for (const l of changed) {
    const kind = lineKind(v, role, l);
    if (!kind) continue;
    const list = byKind.get(kind) ?? [];
    list.push(l);
    byKind.set(kind, list);
  }
  const deps = byKind.get('dependency-changed');
  if (deps) {
    const summary = dependencySummary(v, deps.filter((l) => l.type === 'del'), deps.filter((l) => l.type === 'add'));
    setBase(acc('dependency-changed'), summary ?? `edited dependencies (+${deps.filter((l) => l.type === 'add').length} −${deps.filter((l) => l.type === 'del').length})`, deps);
  }
  const tests = byKind.get('test-config-changed');
  if (tests) {
    const script = scriptChange(tests, /^(?:pre|post)?test(?::[\w:-]+)?$/);
    setBase(acc('test-config-changed'), script ?? `edited test settings in ${baseName(v.path)}`, tests);
  }
  const lint = byKind.get('lint-config-changed');
  if (lint) {
    const script = scriptChange(lint, /^(?:pre|post)?(?:lint|typecheck|type-check|check|format)(?::[\w:-]+)?$/);
    setBase(acc('lint-config-changed'), script ?? `edited lint settings in ${baseName(v.path)}`, lint);
  }
}

/** `changed the "test" script: vitest run → vitest run --passWithNoTests`, for package.json script lines. */
function scriptChange(lines: readonly DiffLine[], name: RegExp): string | undefined {
  const entry = (l: DiffLine): [string, string] | undefined => {
    const m = /^\s*"([^"]+)"\s*:\s*"((?:\\.|[^"\\])*)"/.exec(scan(l.text));
    return m && name.test(m[1] ?? '') ? [m[1] ?? '', m[2] ?? ''] : undefined;
  };
  const before = lines.filter((l) => l.type === 'del').map(entry).find((e) => e !== undefined);
  const after = lines.filter((l) => l.type === 'add').map(entry).find((e) => e !== undefined);
  if (before && after) return `changed the "${after[0]}" script: ${short(before[1])} → ${short(after[1])}`;
  if (after) return `added the "${after[0]}" script: ${short(after[1])}`;
  if (before) return `removed the "${before[0]}" script`;
  return undefined;
}

function lineKind(v: FileView, role: Role, line: DiffLine): GuardKind | undefined {
  const t = scan(line.text);
  if (t.trim() === '') return undefined;
  switch (role) {
    case 'package-json':
    case 'composer-json': {
      const { chain, top } = jsonChain(v, line);
      const key = /^\s*"([^"]+)"\s*:/.exec(t)?.[1];
      const all = key === undefined ? chain : [...chain, key];
      if (all.some((k) => DEP_SECTIONS.has(k))) return 'dependency-changed';
      if (chain.includes('scripts')) {
        if (key !== undefined && /^(?:pre|post)?test(?::[\w:-]+)?$/.test(key)) return 'test-config-changed';
        if (key !== undefined && /^(?:pre|post)?(?:lint|typecheck|type-check|check|format)(?::[\w:-]+)?$/.test(key)) return 'lint-config-changed';
        return undefined;
      }
      if (all.some((k) => JSON_TEST_SECTIONS.has(k))) return 'test-config-changed';
      if (all.some((k) => JSON_LINT_SECTIONS.has(k))) return 'lint-config-changed';
      if (top) return undefined;
      // The hunk does not show the enclosing object: judge the line by its shape.
      if (chain.length === 0 && /"(?:pre|post)?test(?::[\w:-]+)?"\s*:/.test(t)) return 'test-config-changed';
      if (chain.length === 0 && /^\s*"(?:@[\w.-]+\/)?[\w.-]+"\s*:\s*"(?:[~^<>=]*\s*v?\d|workspace:|npm:|file:|link:|git|https?:|latest|\*)/.test(t)) return 'dependency-changed';
      return undefined;
    }
    case 'toml-or-ini':
      return tomlLineKind(v, line);
    case 'pom':
      return /<(?:dependency|artifactId|groupId|version|scope)>/.test(t) ? 'dependency-changed' : undefined;
    case 'gradle':
      return /^\s*(?:implementation|api|compileOnly|runtimeOnly|testImplementation|testRuntimeOnly|testCompileOnly|annotationProcessor|kapt|ksp|classpath|developmentOnly)\b/.test(t)
        ? 'dependency-changed'
        : undefined;
    case 'csproj':
      return /<Package(?:Reference|Version)\b/.test(t) ? 'dependency-changed' : undefined;
    case 'setup-py':
      return /install_requires|extras_require|tests_require|["'][A-Za-z0-9_.[\]-]+\s*(?:[<>=!~]=|[<>])/.test(t) ? 'dependency-changed' : undefined;
    case 'gemspec':
      return /\badd_(?:development_|runtime_)?dependency\b/.test(t) ? 'dependency-changed' : undefined;
    default:
      return undefined;
  }
}

/**
 * Keys of the JSON objects enclosing a line, outermost first, as far as the hunk shows them;
 * `top` when the hunk shows the chain up to the root object.
 */
function jsonChain(v: FileView, line: DiffLine): { chain: string[]; top: boolean } {
  const p = v.pos.get(line);
  if (!p) return { chain: [], top: false };
  const side: Side = line.type === 'del' ? 'old' : 'new';
  let indent = indentOf(line.text);
  const chain: string[] = [];
  for (let j = p.index - 1; j >= 0 && indent > 0; j--) {
    const l = p.hunk.lines[j]!;
    if (!onSide(l, side) || l.text.trim() === '') continue;
    const i = indentOf(l.text);
    if (i >= indent) continue;
    indent = i;
    const m = /^\s*"([^"]+)"\s*:\s*[{[]/.exec(scan(l.text));
    if (m) chain.unshift(m[1] ?? '');
  }
  return { chain, top: indent === 0 };
}

function indentOf(text: string): number {
  return /^\s*/.exec(text)?.[0].length ?? 0;
}

function tomlLineKind(v: FileView, line: DiffLine): GuardKind | undefined {
  const name = baseName(v.path);
  const t = scan(line.text);
  const p = v.pos.get(line);
  const side: Side = line.type === 'del' ? 'old' : 'new';
  let section: string | undefined;
  let array: string | undefined;
  let closed = false;
  const sectionOf = (text: string): string | undefined => /^\s*\[+\s*([^\]]+?)\s*\]+\s*(?:#.*)?$/.exec(text)?.[1];
  const own = sectionOf(t);
  if (own !== undefined) section = own;
  if (p && section === undefined) {
    for (let j = p.index - 1; j >= 0; j--) {
      const l = p.hunk.lines[j]!;
      if (!onSide(l, side)) continue;
      const s = sectionOf(l.text);
      if (s !== undefined) {
        section = s;
        break;
      }
      if (array !== undefined || closed) continue;
      if (/^\s*\]/.test(l.text)) {
        closed = true;
        continue;
      }
      const arr = /^\s*([\w.-]+)\s*=\s*\[\s*(?:#.*)?$/.exec(l.text);
      if (arr) {
        array = arr[1];
        continue;
      }
      // setup.cfg / tox.ini lists: indented lines continue the last unindented `key =`.
      if (indentOf(t) > 0 && indentOf(l.text) === 0 && l.text.trim() !== '') {
        const cont = /^([\w.-]+)\s*=\s*$/.exec(l.text);
        if (cont) array = cont[1];
        else closed = true;
      }
    }
    const heading = p.hunk.heading ?? '';
    section ??= sectionOf(heading);
    if (array === undefined && !closed) array = /^\s*([\w.-]+)\s*=\s*\[/.exec(heading)?.[1];
  }
  const key = /^\s*([\w.-]+)\s*[=:]/.exec(t)?.[1];
  const s = section ?? '';
  const isDepKey = (k: string | undefined): boolean => k !== undefined && /^(?:dependencies|optional-dependencies|dev-dependencies|install_requires|tests_require|setup_requires|requires)$/.test(k);
  if (name === 'Cargo.toml') {
    if (/(?:^|\.)(?:dev-|build-)?dependencies(?:\.|$)|^patch\.|^replace$/.test(s)) return 'dependency-changed';
    if (/^(?:workspace\.)?lints(?:\.|$)/.test(s)) return 'lint-config-changed';
    if (/^(?:test|bench)$/.test(s)) return 'test-config-changed';
    return section === undefined && /^\s*[\w-]+\s*=\s*(?:"[~^<>=]*\d|\{[^}]*version)/.test(t) ? 'dependency-changed' : undefined;
  }
  if (/^(?:project\.optional-dependencies|dependency-groups|options\.extras_require)(?:\.|$)/.test(s)) return 'dependency-changed';
  if (/^tool\.(?:poetry|pdm|uv)(?:\.group\.[^.]+)?(?:\.(?:dev-)?dependencies|\.dev-dependencies)$/.test(s)) return 'dependency-changed';
  if ((s === 'project' || s === 'options' || s === 'build-system' || /^tool\.(?:uv|pdm|hatch)/.test(s)) && (isDepKey(key) || isDepKey(array))) return 'dependency-changed';
  if (/^(?:tool\.)?(?:ruff|mypy|pylint|black|isort|flake8|pyright|basedpyright|pydocstyle|bandit|pycodestyle|pep8|autopep8|yapf|pyre|codespell)(?:[.:-]|$)/.test(s)) return 'lint-config-changed';
  if (/^(?:tool[.:])?(?:pytest|coverage|tox|nox)(?:[.:]|$)|^testenv|^tool\.pytest\.ini_options$/.test(s)) return 'test-config-changed';
  if (section === undefined) {
    if (isDepKey(key) || isDepKey(array)) return 'dependency-changed';
    if (key !== undefined && /^(?:addopts|testpaths|norecursedirs|fail_under|fail-under|python_files|python_functions|minversion)$/.test(key)) return 'test-config-changed';
    if (key !== undefined && /^(?:ignore|extend-ignore|select|extend-select|per-file-ignores|max-line-length|line-length|disable|strict|disallow_\w+|warn_\w+)$/.test(key)) return 'lint-config-changed';
  }
  return undefined;
}

type DepEntry = readonly [name: string, spec: string];

function depEntry(text: string, name: string): DepEntry | undefined {
  const t = scan(text);
  if (t.trim() === '' || /^\s*(?:#|\/\/)/.test(t) || /[[{]\s*$/.test(t)) return undefined;
  let m: RegExpExecArray | null;
  if (name === 'package.json' || name === 'composer.json') {
    m = /^\s*"([^"]+)"\s*:\s*"([^"]*)"/.exec(t);
    return m ? [m[1] ?? '', m[2] ?? ''] : undefined;
  }
  if (name === 'go.mod') {
    m = /^\s*(?:require\s+)?([\w.~-]+\.[\w.~/-]+)\s+(v[\w.+-]+)/.exec(t);
    return m ? [m[1] ?? '', m[2] ?? ''] : undefined;
  }
  if (name === 'Gemfile' || name.endsWith('.gemspec')) {
    m = /\b(?:gem|add_(?:development_|runtime_)?dependency)\s*\(?\s*['"]([^'"]+)['"](?:\s*,\s*['"]([^'"]+)['"])?/.exec(t);
    return m ? [m[1] ?? '', m[2] ?? ''] : undefined;
  }
  m = /^\s*([A-Za-z0-9_-]+)\s*=\s*(?:"([^"]*)"|\{[^}]*?version\s*=\s*"([^"]*)")/.exec(t);
  if (m) return [m[1] ?? '', m[2] ?? m[3] ?? ''];
  m = /^\s*["']?([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*([<>=!~^@][^"';#,]*)?["']?\s*,?\s*(?:#.*)?$/.exec(t);
  return m ? [m[1] ?? '', (m[2] ?? '').trim()] : undefined;
}

/** `added lodash ^4.17.21; zod ^3 → ^4; removed left-pad`, or undefined when no entry parses. */
function dependencySummary(v: FileView, dels: readonly DiffLine[], adds: readonly DiffLine[]): string | undefined {
  const name = baseName(v.path);
  const before = new Map<string, string>();
  const after = new Map<string, string>();
  for (const l of dels) {
    const e = depEntry(l.text, name);
    if (e) before.set(e[0], e[1]);
  }
  for (const l of adds) {
    const e = depEntry(l.text, name);
    if (e) after.set(e[0], e[1]);
  }
  const parts: string[] = [];
  for (const [dep, spec] of after) {
    const old = before.get(dep);
    if (old === undefined) parts.push(`added ${dep}${spec ? ` ${spec}` : ''}`);
    else if (old !== spec) parts.push(`${dep} ${old || '(any)'} → ${spec || '(any)'}`);
  }
  for (const dep of before.keys()) if (!after.has(dep)) parts.push(`removed ${dep}`);
  if (parts.length === 0) return undefined;
  const shown = parts.slice(0, 3).join('; ');
  return parts.length > 3 ? `${shown}; +${parts.length - 3} more` : shown;
}

function snapshotSummary(v: FileView): string {
  const names = new Set<string>();
  const nameOf = (text: string): string | undefined => (/^exports\[`(.*?)`\]/.exec(text) ?? /^\s*# name: (.+)$/.exec(text))?.[1];
  for (const hunk of v.file.hunks) {
    let current = nameOf(hunk.heading ?? '');
    for (const l of hunk.lines) {
      if (!onSide(l, 'old')) continue;
      current = nameOf(l.text) ?? current;
      if (l.type === 'del' && current !== undefined) names.add(current);
    }
  }
  if (names.size === 0) return `updated snapshots (+${v.adds.length} −${v.dels.length})`;
  return `updated ${plural(names.size, 'snapshot')}: ${quoteList([...names])}`;
}

interface TokenPattern {
  readonly re: RegExp;
  readonly label: string;
  readonly kind: GuardKind;
  readonly langs?: readonly Lang[];
}

// Added anywhere, these silence a check rather than satisfy it.
const TOKEN_PATTERNS: readonly TokenPattern[] = [
  { re: /(?:\/\/|\/\*)\s*eslint-disable\b/, label: 'eslint-disable', kind: 'lint-config-changed', langs: ['js'] },
  { re: /(?:\/\/|\/\*)\s*@ts-(?:ignore|nocheck)\b/, label: '@ts-ignore', kind: 'lint-config-changed', langs: ['js'] },
  { re: /(?:\/\/|\/\*)\s*@ts-expect-error\b/, label: '@ts-expect-error', kind: 'lint-config-changed', langs: ['js'] },
  { re: /(?:\/\/|\/\*)\s*(?:biome|oxlint|deno-lint)-ignore\b/, label: 'lint-ignore comment', kind: 'lint-config-changed', langs: ['js'] },
  { re: /(?:\/\/|\/\*)\s*tslint:disable\b/, label: 'tslint:disable', kind: 'lint-config-changed', langs: ['js'] },
  { re: /#\s*noqa\b/i, label: '# noqa', kind: 'lint-config-changed', langs: ['py'] },
  { re: /#\s*type:\s*ignore\b/, label: '# type: ignore', kind: 'lint-config-changed', langs: ['py'] },
  { re: /#\s*(?:pylint|pyright|ruff|mypy|pyre)\s*:\s*(?:disable|ignore|noqa)\b|#\s*pyre-ignore|#\s*nosec\b/, label: 'lint suppression comment', kind: 'lint-config-changed', langs: ['py'] },
  { re: /\/\/\s*nolint\b|\/\/\s*lint:ignore\b|\/\/\s*#nosec\b/, label: '//nolint', kind: 'lint-config-changed', langs: ['go'] },
  { re: /#!?\[(?:allow|expect)\s*\(/, label: '#[allow(…)]', kind: 'lint-config-changed', langs: ['rust'] },
  { re: /@Suppress(?:Warnings|FBWarnings)?\s*\(|\/\/\s*NOSONAR|CHECKSTYLE[:.]?\s*OFF/, label: '@SuppressWarnings', kind: 'lint-config-changed', langs: ['jvm'] },
  { re: /#\s*rubocop\s*:\s*(?:disable|todo)\b/, label: 'rubocop:disable', kind: 'lint-config-changed', langs: ['ruby'] },
  { re: /#pragma\s+warning\s+disable|\[SuppressMessage\s*\(/, label: 'warning suppression', kind: 'lint-config-changed', langs: ['cs'] },
  { re: /\/\*\s*(?:istanbul|c8|v8|node:coverage)\s+ignore\b|\/\/\s*(?:c8|v8|node:coverage)\s+ignore\b/, label: 'coverage ignore comment', kind: 'test-config-changed', langs: ['js'] },
  { re: /#\s*pragma:\s*no\s*cover\b/, label: '# pragma: no cover', kind: 'test-config-changed', langs: ['py'] },
  { re: /#\s*:nocov:/, label: ':nocov:', kind: 'test-config-changed', langs: ['ruby'] },
  { re: /\bcoverage\s*\(\s*off\s*\)/, label: 'coverage(off)', kind: 'test-config-changed', langs: ['rust'] },
  { re: /\[ExcludeFromCodeCoverage\b/, label: '[ExcludeFromCodeCoverage]', kind: 'test-config-changed', langs: ['cs'] },
  { re: /passWithNoTests/, label: '--passWithNoTests', kind: 'test-config-changed' },
  { re: /\b(?:testPathIgnorePatterns|modulePathIgnorePatterns|coveragePathIgnorePatterns|collect_ignore(?:_glob)?|norecursedirs)\b/, label: 'test ignore patterns', kind: 'test-config-changed' },
  { re: /\bskipTests\b|\bmaven\.test\.skip\b|\btestFailureIgnore\b|\bignoreFailures\s*=\s*true|\s-x\s+test\b|--exclude-task\s+test\b/, label: 'a build flag that skips tests', kind: 'test-config-changed' },
  { re: /--deselect\b|\s-k\s+["']?not\s|--ignore(?:-glob)?=/, label: 'a pytest deselection', kind: 'test-config-changed' },
  { re: /\bcontinue-on-error\s*:\s*true\b/, label: 'continue-on-error', kind: 'ci-config-changed' },
  { re: /\ballow_failure\s*:\s*true\b/, label: 'allow_failure', kind: 'ci-config-changed' },
  { re: /\|\|\s*(?:true|exit\s+0|:)\s*['"]?\s*$/, label: '`|| true`', kind: 'ci-config-changed' },
  { re: /^\s*(?:-\s*)?if\s*:\s*(?:false|\$\{\{\s*false\s*\}\})\s*$/, label: 'if: false', kind: 'ci-config-changed' },
];

const CHECK_COMMAND =
  /\b(?:npm|pnpm|yarn|bun)\s+(?:run\s+)?(?:test|lint|typecheck|check)\b|\b(?:vitest|jest|mocha|pytest|tox|nox|go\s+test|go\s+vet|cargo\s+(?:test|clippy|fmt)|golangci-lint|eslint|tsc|ruff|mypy|flake8|pylint|rubocop|rspec|gradlew?\s+(?:test|check)|mvn\s+[\w\s-]*(?:test|verify))\b/;

function scanAddedTokens(v: FileView, roles: ReadonlySet<Role>, acc: (kind: GuardKind) => Acc): void {
  const ci = roles.has('ci');
  for (const p of TOKEN_PATTERNS) {
    if (p.langs && !p.langs.includes(v.lang)) continue;
    if (p.kind === 'ci-config-changed' && !ci) continue;
    const matches = (l: DiffLine): boolean => !v.moved.has(l) && p.re.test(scan(l.text));
    const found = excess(v.adds.filter(matches), v.dels.filter(matches));
    if (found.length === 0) continue;
    const verb = p.kind === 'ci-config-changed' ? 'adds' : 'added';
    note(acc(p.kind), `${verb} ${p.label}${found.length > 1 ? ` ×${found.length}` : ''}`, found);
  }
  if (ci) {
    for (const l of v.dels) {
      if (v.moved.has(l) || !CHECK_COMMAND.test(scan(l.text))) continue;
      note(acc('ci-config-changed'), `removes \`${short(l.text.trim().replace(/^-\s*(?:run:\s*)?|^run:\s*/, ''))}\``, [l]);
    }
  }
}

/** Coverage thresholds lowered: the same setting line with a smaller number. */
function scanThresholds(v: FileView, roles: ReadonlySet<Role>, acc: (kind: GuardKind) => Acc): void {
  const keyword = roles.has('test-config')
    ? /cov|threshold|fail.?under|minimum|\b(?:lines|branches|functions|statements)\b/i
    : /cov|threshold|fail.?under/i;
  if (CODE_EXT.test(v.path) && !roles.has('test-config') && !roles.has('vite')) return;
  for (const block of v.blocks) {
    for (const [d, a] of pairBySameShape(block.dels.filter((l) => keyword.test(scan(l.text))), block.adds)) {
      const nb = numbersOf(d.text);
      const na = numbersOf(a.text);
      const i = nb.findIndex((n, k) => na[k] !== undefined && na[k] < n);
      if (i < 0) continue;
      const key = /^\s*["']?([\w.-]+)["']?\s*[:=]/.exec(d.text)?.[1] ?? 'threshold';
      note(acc('test-config-changed'), `lowered coverage ${key} ${nb[i]} → ${na[i]}`, [d, a]);
    }
  }
}

/** Pairs each removed line with the first unpaired added line that differs only in literals. */
function pairBySameShape(dels: readonly DiffLine[], adds: readonly DiffLine[]): Array<[DiffLine, DiffLine]> {
  const byShape = new Map<string, { readonly lines: DiffLine[]; next: number }>();
  for (const a of adds) {
    const shape = normalizeLiterals(a.text);
    const entry = byShape.get(shape) ?? { lines: [], next: 0 };
    entry.lines.push(a);
    byShape.set(shape, entry);
  }
  const pairs: Array<[DiffLine, DiffLine]> = [];
  for (const d of dels) {
    const entry = byShape.get(normalizeLiterals(d.text));
    const a = entry?.lines[entry.next];
    if (entry && a) {
      entry.next++;
      pairs.push([d, a]);
    }
  }
  return pairs;
}

function numbersOf(text: string): number[] {
  return [...scan(text).matchAll(/(?<![\w.])-?\d+(?:\.\d+)?/g)].map((m) => Number(m[0]));
}

// ---------------------------------------------------------------------------------------------
// Small text helpers
// ---------------------------------------------------------------------------------------------

function scan(text: string): string {
  return text.length > MAX_SCAN_CHARS ? text.slice(0, MAX_SCAN_CHARS) : text;
}

function isCommentLine(text: string): boolean {
  return /^\s*(?:\/\/|\/\*|\*(?!\/)|#(?![[!])|--\s)/.test(text);
}

const LITERAL = /(['"`])(?:\\.|(?!\1)[^\\])*\1|(?<![\w.])-?(?:0x[\da-f]+|\d[\d_]*(?:\.\d+)?(?:e[+-]?\d+)?)\b|\b(?:true|false|null|undefined|None|True|False|nil|NaN)\b/gi;

function normalizeLiterals(text: string): string {
  return scan(text).replace(LITERAL, 'L').replace(/\s+/g, ' ').trim();
}

/** `'ok' → 'error'`: the first literal that differs between two lines. */
function literalChange(before: string, after: string): string {
  const lb = [...scan(before).matchAll(LITERAL)].map((m) => m[0]);
  const la = [...scan(after).matchAll(LITERAL)].map((m) => m[0]);
  const i = lb.findIndex((x, k) => la[k] !== x);
  if (i < 0) return `${short(before.trim())} → ${short(after.trim())}`;
  return `${short(lb[i] ?? '')} → ${short(la[i] ?? '')}`;
}

/** The text between the bracket at `open` and its partner (to the end of the line when unclosed). */
function balancedInner(text: string, open: number): string {
  let depth = 0;
  let quote = '';
  for (let i = open; i < text.length; i++) {
    const c = text.charAt(i);
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) return text.slice(open + 1, i);
    }
  }
  return text.slice(open + 1);
}

/**
 * Walks `text` tracking bracket depth outside quoted strings; `visit` sees every character
 * outside quotes that is not a quote or a bracket, with the depth there. Returns the final depth.
 */
function walkBrackets(text: string, visit: (c: string, i: number, depth: number) => void = () => undefined): number {
  let depth = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else visit(c, i, depth);
  }
  return depth;
}

function splitTopLevel(text: string, sep: string): string[] {
  const parts: string[] = [];
  let start = 0;
  walkBrackets(text, (c, i, depth) => {
    if (c === sep && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  });
  parts.push(text.slice(start));
  return parts;
}

function bracketDepth(text: string): number {
  return walkBrackets(scan(text));
}

function cleanLabel(match: string): string {
  return match.replace(/^[^\w@#.[/]+/, '').replace(/[\s(]+$/, '');
}

function lineOf(line: DiffLine): number | undefined {
  return line.type === 'del' ? line.oldLine : (line.newLine ?? line.oldLine);
}

function evidence(lines: readonly DiffLine[]): string {
  const text = lines.map((l) => `${l.type === 'add' ? '+' : l.type === 'del' ? '-' : ' '}${scan(l.text).trim()}`).join('\n');
  return clip(text, MAX_EVIDENCE_CHARS);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function short(text: string): string {
  return clip(text.replace(/\s+/g, ' '), MAX_NAME_CHARS);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function quoteList(names: readonly string[]): string {
  const shown = names.slice(0, 3).map((n) => `'${short(n)}'`).join(', ');
  return names.length > 3 ? `${shown} +${names.length - 3} more` : shown;
}

function makeFlag(kind: GuardKind, file: string, line: number | undefined, detail: string, ev: string): GuardFlag {
  const d = clip(detail.replace(/\s*\n\s*/g, ' '), MAX_DETAIL_CHARS);
  return line === undefined ? { kind, file, detail: d, evidence: ev } : { kind, file, line, detail: d, evidence: ev };
}
