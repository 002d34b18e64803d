import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectFixDiff, isTestPath, parseUnifiedDiff, type GuardFlag, type GuardKind } from '../../src/domain/inspect-fix-diff.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The real `git diff` between two trees: `null` deletes a file, a Buffer writes binary content. */
function gitDiff(before: Record<string, string | Buffer>, after: Record<string, string | Buffer | null>): string {
  const dir = mkdtempSync(join(tmpdir(), 'inspect-fix-diff-'));
  dirs.push(dir);
  const env = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
  const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: dir, env, encoding: 'utf8' });
  const write = (files: Record<string, string | Buffer | null>): void => {
    for (const [path, content] of Object.entries(files)) {
      const full = join(dir, path);
      if (content === null) {
        unlinkSync(full);
        continue;
      }
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
    }
  };
  git('init', '-q');
  write(before);
  git('add', '-A');
  git('commit', '-q', '--allow-empty', '--no-gpg-sign', '-m', 'base');
  write(after);
  git('add', '-A');
  return git('diff', '--cached', '-M', '--no-color', '--no-ext-diff', '--src-prefix=a/', '--dst-prefix=b/');
}

const lines = (...xs: string[]): string => `${xs.join('\n')}\n`;
const kinds = (flags: readonly GuardFlag[]): GuardKind[] => flags.map((f) => f.kind);

const PARSE_TEST = lines(
  "import { describe, expect, it } from 'vitest';",
  "import { parseConfig } from '../src/config.js';",
  '',
  "describe('parseConfig', () => {",
  "  it('reads the port', () => {",
  "    expect(parseConfig('port=80').port).toBe(80);",
  '  });',
  '',
  "  it('rejects a bad port', () => {",
  "    expect(() => parseConfig('port=x')).toThrow('port');",
  '  });',
  '',
  "  it('keeps defaults', () => {",
  "    const config = parseConfig('');",
  '    expect(config.port).toBe(8080);',
  "    expect(config.host).toEqual('localhost');",
  '    expect(config.tags).toHaveLength(2);',
  '  });',
  '});',
);

describe('parseUnifiedDiff', () => {
  it('reads a modified file with two hunks and numbers every line', () => {
    const diff = [
      'diff --git a/src/a.ts b/src/a.ts',
      'index 1111111..2222222 100644',
      '--- a/src/a.ts',
      '+++ b/src/a.ts',
      '@@ -1,3 +1,3 @@ export function a() {',
      ' one',
      '-two',
      '+TWO',
      ' three',
      '@@ -10,2 +10,3 @@',
      ' ten',
      '+ten and a half',
      ' eleven',
      '',
    ].join('\n');
    const [file, ...rest] = parseUnifiedDiff(diff);
    expect(rest).toEqual([]);
    expect(file).toMatchObject({ oldPath: 'src/a.ts', newPath: 'src/a.ts', status: 'modified', binary: false });
    expect(file?.hunks).toEqual([
      {
        oldStart: 1,
        newStart: 1,
        heading: 'export function a() {',
        lines: [
          { type: 'ctx', text: 'one', oldLine: 1, newLine: 1 },
          { type: 'del', text: 'two', oldLine: 2 },
          { type: 'add', text: 'TWO', newLine: 2 },
          { type: 'ctx', text: 'three', oldLine: 3, newLine: 3 },
        ],
      },
      {
        oldStart: 10,
        newStart: 10,
        lines: [
          { type: 'ctx', text: 'ten', oldLine: 10, newLine: 10 },
          { type: 'add', text: 'ten and a half', newLine: 11 },
          { type: 'ctx', text: 'eleven', oldLine: 11, newLine: 12 },
        ],
      },
    ]);
  });

  it('reads new, deleted, renamed and binary files from real git output', () => {
    const diff = gitDiff(
      { 'old.txt': lines('a', 'b', 'c', 'd', 'e'), 'gone.txt': lines('bye'), 'logo.png': Buffer.from([0, 1, 2, 3, 0, 255]) },
      { 'old.txt': null, 'new.txt': lines('a', 'b', 'c', 'd', 'E'), 'gone.txt': null, 'fresh.txt': lines('hi'), 'logo.png': Buffer.from([0, 9, 9, 9, 0, 255]) },
    );
    const files = parseUnifiedDiff(diff);
    const byPath = (p: string) => files.find((f) => (f.newPath ?? f.oldPath) === p);
    expect(files).toHaveLength(4);
    expect(byPath('fresh.txt')).toMatchObject({ oldPath: null, status: 'added', hunks: [{ oldStart: 0, newStart: 1, lines: [{ type: 'add', text: 'hi', newLine: 1 }] }] });
    expect(byPath('gone.txt')).toMatchObject({ newPath: null, status: 'deleted', hunks: [{ lines: [{ type: 'del', text: 'bye', oldLine: 1 }] }] });
    expect(byPath('new.txt')).toMatchObject({ oldPath: 'old.txt', status: 'renamed' });
    expect(byPath('new.txt')?.hunks[0]?.lines.filter((l) => l.type !== 'ctx')).toEqual([
      { type: 'del', text: 'e', oldLine: 5 },
      { type: 'add', text: 'E', newLine: 5 },
    ]);
    expect(byPath('logo.png')).toMatchObject({ oldPath: 'logo.png', newPath: 'logo.png', status: 'modified', binary: true, hunks: [] });
  });

  it('reads a pure rename, a `GIT binary patch`, quoted and spaced paths', () => {
    const rename = ['diff --git a/tests/a.test.ts b/tests/b.test.ts', 'similarity index 100%', 'rename from tests/a.test.ts', 'rename to tests/b.test.ts', ''].join('\n');
    expect(parseUnifiedDiff(rename)).toEqual([{ oldPath: 'tests/a.test.ts', newPath: 'tests/b.test.ts', status: 'renamed', binary: false, hunks: [] }]);

    const binaryPatch = [
      'diff --git a/img.bin b/img.bin',
      'new file mode 100644',
      'index 0000000..e69de29',
      'GIT binary patch',
      'literal 6',
      'NcmZQzWMXDw0000A02lxO',
      '',
      'literal 0',
      'HcmV?d00001',
      '',
    ].join('\n');
    expect(parseUnifiedDiff(binaryPatch)).toEqual([{ oldPath: null, newPath: 'img.bin', status: 'added', binary: true, hunks: [] }]);

    const diff = gitDiff({ 'my notes.txt': lines('a'), 'café.txt': lines('x') }, { 'my notes.txt': lines('b'), 'café.txt': 'y' });
    const files = parseUnifiedDiff(diff);
    expect(files.map((f) => f.newPath).sort()).toEqual(['café.txt', 'my notes.txt']);
    const cafe = files.find((f) => f.newPath === 'café.txt');
    // "\ No newline at end of file" is not a line of the file.
    expect(cafe?.hunks[0]?.lines).toEqual([
      { type: 'del', text: 'x', oldLine: 1 },
      { type: 'add', text: 'y', newLine: 1 },
    ]);
  });

  it('keeps removed lines that look like headers as content', () => {
    const diff = gitDiff({ 'doc.md': lines('---', 'title: x', '---', '+++ plus', 'body') }, { 'doc.md': lines('title: x', 'body') });
    const [file] = parseUnifiedDiff(diff);
    expect(parseUnifiedDiff(diff)).toHaveLength(1);
    expect(file?.hunks[0]?.lines.filter((l) => l.type === 'del').map((l) => [l.text, l.oldLine])).toEqual([
      ['---', 1],
      ['---', 3],
      ['+++ plus', 4],
    ]);
  });

  it('reads CRLF output and a plain (non-git) unified diff', () => {
    const plain = ['--- a/x.txt\t2024-01-01 00:00:00', '+++ b/x.txt\t2024-01-02 00:00:00', '@@ -1 +1 @@', '-a', '+b', ''].join('\r\n');
    expect(parseUnifiedDiff(plain)).toEqual([
      {
        oldPath: 'x.txt',
        newPath: 'x.txt',
        status: 'modified',
        binary: false,
        hunks: [{ oldStart: 1, newStart: 1, lines: [{ type: 'del', text: 'a', oldLine: 1 }, { type: 'add', text: 'b', newLine: 1 }] }],
      },
    ]);
  });

  it('returns nothing for an empty diff and never throws on garbage', () => {
    expect(parseUnifiedDiff('')).toEqual([]);
    expect(inspectFixDiff('')).toEqual([]);
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pieces = ['diff --git a/x b/x', '@@ -1,2 +1 @@', '@@ -0,0 +1,3 @@', '+', '-', ' ', '+++ b/t.test.ts', '--- a/t.test.ts', '\\ No newline', 'rename from "q\\', 'Binary files a and b differ', "+it('x', () => {", "-  expect(a).toBe(1);", '+  expect(a).toBeDefined();', '-@pytest.mark.skip', '"', '\t', '@@', ''];
    for (let i = 0; i < 300; i++) {
      const text = Array.from({ length: rand(40) }, () => pieces[rand(pieces.length)]).join(rand(2) ? '\n' : '\r\n');
      expect(() => inspectFixDiff(text)).not.toThrow();
    }
  });
});

describe('isTestPath', () => {
  it.each([
    'tests/domain/redact.test.ts',
    'src/a.spec.tsx',
    'src/__tests__/a.ts',
    'pkg/test_api.py',
    'pkg/api_test.py',
    'internal/store/store_test.go',
    'spec/models/user_spec.rb',
    'src/test/java/com/x/UserServiceTest.java',
    'tests/integration.rs',
    'conftest.py',
  ])('%s is a test file', (path) => {
    expect(isTestPath(path)).toBe(true);
  });

  it.each(['src/domain/redact.ts', 'src/latest.ts', 'src/contest.py', 'tests/__snapshots__/a.test.ts.snap', 'testing.md', 'src/attest/x.go'])('%s is not a test file', (path) => {
    expect(isTestPath(path)).toBe(false);
  });
});

describe('inspectFixDiff: tests deleted or skipped', () => {
  it('flags a deleted test file with its tests named', () => {
    const flags = inspectFixDiff(gitDiff({ 'tests/config.test.ts': PARSE_TEST, 'src/config.ts': lines('export const a = 1;') }, { 'tests/config.test.ts': null }));
    expect(flags).toEqual([
      {
        kind: 'test-deleted',
        file: 'tests/config.test.ts',
        detail: "deleted a test file with 3 tests: 'reads the port', 'rejects a bad port', 'keeps defaults'",
        evidence: expect.stringContaining("-it('reads the port', () => {"),
      },
    ]);
  });

  it('flags a removed test case at its old line, and only that', () => {
    const after = PARSE_TEST.replace("  it('rejects a bad port', () => {\n    expect(() => parseConfig('port=x')).toThrow('port');\n  });\n\n", '');
    const flags = inspectFixDiff(gitDiff({ 'tests/config.test.ts': PARSE_TEST }, { 'tests/config.test.ts': after }));
    expect(flags).toEqual([
      {
        kind: 'test-deleted',
        file: 'tests/config.test.ts',
        line: 9,
        detail: "removed test 'rejects a bad port'",
        evidence: "-it('rejects a bad port', () => {\n-expect(() => parseConfig('port=x')).toThrow('port');\n-});\n-",
      },
    ]);
  });

  it('names the replacement when a test is swapped for another in place', () => {
    const after = PARSE_TEST.replace("it('rejects a bad port', () => {\n    expect(() => parseConfig('port=x')).toThrow('port');", "it('accepts any port', () => {\n    expect(parseConfig('port=x').port).toBe(8080);");
    const flags = inspectFixDiff(gitDiff({ 'tests/config.test.ts': PARSE_TEST }, { 'tests/config.test.ts': after }));
    expect(flags).toContainEqual(expect.objectContaining({ kind: 'test-deleted', line: 9, detail: "removed test 'rejects a bad port' (replaced by 'accepts any port')" }));
  });

  it('flags removed tests in Python, Go, Rust (inline module) and Java', () => {
    const py = lines('def test_parse():', '    assert parse("1") == 1', '', '', 'def test_reject():', '    with pytest.raises(ValueError):', '        parse("x")');
    const go = lines('package x', '', 'func TestParse(t *testing.T) {', '\tif Parse("1") != 1 {', '\t\tt.Fatal("bad")', '\t}', '}', '', 'func TestReject(t *testing.T) {', '\tif _, err := ParseErr("x"); err == nil {', '\t\tt.Fatal("want error")', '\t}', '}');
    const rs = lines('pub fn parse() {}', '', '#[cfg(test)]', 'mod tests {', '    #[test]', '    fn parses() {', '        assert_eq!(1, 1);', '    }', '', '    #[test]', '    fn rejects() {', '        assert!(true);', '    }', '}');
    const java = lines('class ParserTest {', '  @Test', '  void parses() {', '    assertEquals(1, parse("1"));', '  }', '', '  @Test', '  void rejects() {', '    assertThrows(IllegalArgumentException.class, () -> parse("x"));', '  }', '}');
    const flags = inspectFixDiff(
      gitDiff(
        { 'tests/test_parse.py': py, 'parse_test.go': go, 'src/lib.rs': rs, 'src/test/java/ParserTest.java': java },
        {
          'tests/test_parse.py': py.slice(0, py.indexOf('\n\n\ndef test_reject')) + '\n',
          'parse_test.go': go.slice(0, go.indexOf('\nfunc TestReject')),
          'src/lib.rs': rs.replace('\n    #[test]\n    fn rejects() {\n        assert!(true);\n    }\n', ''),
          'src/test/java/ParserTest.java': java.replace('\n  @Test\n  void rejects() {\n    assertThrows(IllegalArgumentException.class, () -> parse("x"));\n  }\n', ''),
        },
      ),
    );
    expect(flags.filter((f) => f.kind === 'test-deleted').map((f) => [f.file, f.detail, f.line])).toEqual([
      ['parse_test.go', "removed test 'TestReject'", 9],
      ['src/lib.rs', "removed test 'rejects'", 10],
      ['src/test/java/ParserTest.java', "removed test 'rejects'", 7],
      ['tests/test_parse.py', "removed test 'test_reject'", 5],
    ]);
  });

  it.each([
    ['it.skip', PARSE_TEST.replace("it('rejects a bad port'", "it.skip('rejects a bad port'"), "skipped 'rejects a bad port' with it.skip"],
    ['xit', PARSE_TEST.replace("it('rejects a bad port'", "xit('rejects a bad port'"), "skipped 'rejects a bad port' with xit"],
    ['it.todo', PARSE_TEST.replace("it('keeps defaults'", "it.todo('keeps defaults'"), "skipped 'keeps defaults' with it.todo"],
    ['describe.skip', PARSE_TEST.replace("describe('parseConfig'", "describe.skip('parseConfig'"), "skipped 'parseConfig' with describe.skip"],
    ['it.only', PARSE_TEST.replace("it('reads the port'", "it.only('reads the port'"), "focused 'reads the port' with it.only: every other test in the file is skipped"],
  ])('flags %s', (_name, after, detail) => {
    const flags = inspectFixDiff(gitDiff({ 'tests/config.test.ts': PARSE_TEST }, { 'tests/config.test.ts': after }));
    expect(flags).toEqual([expect.objectContaining({ kind: 'test-skipped', file: 'tests/config.test.ts', detail })]);
  });

  it('flags skip markers in Python, Go, Rust, Java and RSpec', () => {
    const flags = inspectFixDiff(
      gitDiff(
        {
          'tests/test_a.py': lines('import pytest', '', '', 'def test_a():', '    assert a() == 1'),
          'a_test.go': lines('package a', '', 'func TestA(t *testing.T) {', '\tif A() != 1 {', '\t\tt.Fatal("bad")', '\t}', '}'),
          'src/lib.rs': lines('#[cfg(test)]', 'mod tests {', '    #[test]', '    fn a() {', '        assert_eq!(super::a(), 1);', '    }', '}'),
          'src/test/java/ATest.java': lines('class ATest {', '  @Test', '  void a() {', '    assertEquals(1, A.a());', '  }', '}'),
          'spec/a_spec.rb': lines("describe A do", "  it 'works' do", '    expect(A.a).to eq(1)', '  end', 'end'),
        },
        {
          'tests/test_a.py': lines('import pytest', '', '', '@pytest.mark.skip(reason="flaky")', 'def test_a():', '    assert a() == 1'),
          'a_test.go': lines('package a', '', 'func TestA(t *testing.T) {', '\tt.Skip("later")', '\tif A() != 1 {', '\t\tt.Fatal("bad")', '\t}', '}'),
          'src/lib.rs': lines('#[cfg(test)]', 'mod tests {', '    #[test]', '    #[ignore]', '    fn a() {', '        assert_eq!(super::a(), 1);', '    }', '}'),
          'src/test/java/ATest.java': lines('class ATest {', '  @Test', '  @Disabled', '  void a() {', '    assertEquals(1, A.a());', '  }', '}'),
          'spec/a_spec.rb': lines("describe A do", "  xit 'works' do", '    expect(A.a).to eq(1)', '  end', 'end'),
        },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.line, f.detail])).toEqual([
      ['test-skipped', 'a_test.go', 4, "skipped 'TestA' with t.Skip"],
      ['test-skipped', 'spec/a_spec.rb', 2, "skipped 'works' with xit"],
      ['test-skipped', 'src/lib.rs', 4, "skipped 'a' with #[ignore]"],
      ['test-skipped', 'src/test/java/ATest.java', 3, "skipped 'a' with @Disabled"],
      ['test-skipped', 'tests/test_a.py', 4, "skipped 'test_a' with @pytest.mark.skip"],
    ]);
  });

  it('flags a commented-out test, a test that lost its #[test], and a test file renamed out of the suite', () => {
    const commented = PARSE_TEST.replace(
      "  it('rejects a bad port', () => {\n    expect(() => parseConfig('port=x')).toThrow('port');\n  });",
      "  // it('rejects a bad port', () => {\n  //   expect(() => parseConfig('port=x')).toThrow('port');\n  // });",
    );
    const rs = lines('#[cfg(test)]', 'mod tests {', '    #[test]', '    fn a() {', '        assert_eq!(super::a(), 1);', '    }', '}');
    const flags = inspectFixDiff(
      gitDiff(
        { 'tests/config.test.ts': PARSE_TEST, 'src/lib.rs': rs, 'tests/other.test.ts': PARSE_TEST.replace('parseConfig', 'other') },
        { 'tests/config.test.ts': commented, 'src/lib.rs': rs.replace('    #[test]\n', ''), 'tests/other.test.ts': null, 'tests/other.test.ts.bak': PARSE_TEST.replace('parseConfig', 'other') },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.line, f.detail])).toEqual([
      ['test-skipped', 'src/lib.rs', 3, "'a' no longer runs: removed #[test]"],
      ['test-skipped', 'tests/config.test.ts', 9, "commented out test 'rejects a bad port'"],
      ['test-skipped', 'tests/other.test.ts.bak', undefined, 'renamed a test file so it no longer runs: other.test.ts → other.test.ts.bak'],
    ]);
  });
});

describe('inspectFixDiff: assertions', () => {
  it('flags net removed assertions with the test they came from', () => {
    const after = PARSE_TEST.replace("    expect(config.host).toEqual('localhost');\n    expect(config.tags).toHaveLength(2);\n", '');
    const flags = inspectFixDiff(gitDiff({ 'tests/config.test.ts': PARSE_TEST }, { 'tests/config.test.ts': after }));
    expect(flags).toEqual([
      {
        kind: 'assertions-removed',
        file: 'tests/config.test.ts',
        line: 16,
        detail: "removed 2 assertions from test 'keeps defaults'",
        evidence: "-expect(config.host).toEqual('localhost');\n-expect(config.tags).toHaveLength(2);",
      },
    ]);
  });

  it('counts assertions in Python, Go and Rust test files', () => {
    const flags = inspectFixDiff(
      gitDiff(
        {
          'tests/test_a.py': lines('def test_a(self):', '    self.assertEqual(a(), 1)', '    self.assertIn("x", b())', '    assert c() == 3'),
          'a_test.go': lines('func TestA(t *testing.T) {', '\trequire.NoError(t, err)', '\tassert.Equal(t, 1, got)', '}'),
          'tests/a.rs': lines('#[test]', 'fn a() {', '    assert_eq!(a(), 1);', '    assert!(b());', '}'),
        },
        {
          'tests/test_a.py': lines('def test_a(self):', '    self.assertEqual(a(), 1)'),
          'a_test.go': lines('func TestA(t *testing.T) {', '\trequire.NoError(t, err)', '}'),
          'tests/a.rs': lines('#[test]', 'fn a() {', '    assert_eq!(a(), 1);', '}'),
        },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.line, f.detail])).toEqual([
      ['assertions-removed', 'a_test.go', 3, "removed 1 assertion from test 'TestA'"],
      ['assertions-removed', 'tests/a.rs', 4, "removed 1 assertion from test 'a'"],
      ['assertions-removed', 'tests/test_a.py', 3, "removed 2 assertions from test 'test_a'"],
    ]);
  });

  it.each([
    ["expect(config.host).toEqual('localhost');", 'expect(config.host).toBeDefined();', 'toEqual → toBeDefined'],
    ["expect(config.host).toEqual('localhost');", 'expect(config.host).toBeTruthy();', 'toEqual → toBeTruthy'],
    ["expect(config.host).toEqual('localhost');", 'expect(config.host).not.toBeNull();', 'toEqual → not.toBeNull'],
    ['expect(config.tags).toHaveLength(2);', 'expect(config.tags.length).toBeGreaterThan(0);', 'toHaveLength → toBeGreaterThan'],
    ["expect(config.host).toEqual('localhost');", 'expect(config.host).toEqual(expect.any(String));', 'toEqual → expect.any'],
  ])('flags %s → %s as weakened', (before, after, change) => {
    const flags = inspectFixDiff(gitDiff({ 'tests/config.test.ts': PARSE_TEST }, { 'tests/config.test.ts': PARSE_TEST.replace(before, after) }));
    expect(flags).toEqual([
      {
        kind: 'assertion-weakened',
        file: 'tests/config.test.ts',
        line: expect.any(Number),
        // The test's own line is beyond the 3 lines of context; git's hunk heading names the describe.
        detail: `weakened assertion in '${after.includes('tags') ? 'parseConfig' : 'keeps defaults'}': ${change}`,
        evidence: `-${before}\n+${after}`,
      },
    ]);
    expect(flags[0]?.line).toBe(after.includes('tags') ? 17 : 16);
  });

  it('flags weakened assertions in Python, Go, Rust and RSpec', () => {
    const flags = inspectFixDiff(
      gitDiff(
        {
          'tests/test_a.py': lines('def test_a(self):', '    self.assertEqual(a(), {"k": 1})', '    assert b() == 2'),
          'a_test.go': lines('func TestA(t *testing.T) {', '\tassert.Equal(t, 1, got)', '}'),
          'tests/a.rs': lines('#[test]', 'fn a() {', '    assert_eq!(a(), 1);', '}'),
          'spec/a_spec.rb': lines("it 'works' do", '  expect(A.a).to eq(1)', 'end'),
        },
        {
          'tests/test_a.py': lines('def test_a(self):', '    self.assertIsNotNone(a())', '    assert b()'),
          'a_test.go': lines('func TestA(t *testing.T) {', '\tassert.NotNil(t, got)', '}'),
          'tests/a.rs': lines('#[test]', 'fn a() {', '    assert!(a() > 0);', '}'),
          'spec/a_spec.rb': lines("it 'works' do", '  expect(A.a).to be_truthy', 'end'),
        },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.line, f.detail])).toEqual([
      ['assertion-weakened', 'a_test.go', 2, "weakened assertion in 'TestA': Equal → NotNil"],
      ['assertion-weakened', 'spec/a_spec.rb', 2, "weakened assertion in 'works': eq → be_truthy"],
      ['assertion-weakened', 'tests/a.rs', 3, "weakened assertion in 'a': assert_eq! → assert comparison"],
      ['assertion-weakened', 'tests/test_a.py', 2, "weakened assertion in 'test_a': assertEqual → assertIsNotNone"],
      ['assertion-weakened', 'tests/test_a.py', 3, "weakened assertion in 'test_a': assert == → assert truthy"],
    ]);
  });

  it('flags an expected value changed to match: on the assertion, in a `want:` field, inside a multi-line toEqual', () => {
    const ts = lines(
      "it('totals', () => {",
      '  expect(total([1, 2])).toBe(3);',
      '  expect(summary()).toEqual({',
      "    status: 'ok',",
      '    count: 2,',
      '  });',
      '});',
    );
    const go = lines('func TestTotal(t *testing.T) {', '\tcases := []struct{ in []int; want int }{', '\t\t{in: []int{1, 2}, want: 3},', '\t}', '}');
    const flags = inspectFixDiff(
      gitDiff(
        { 'tests/total.test.ts': ts, 'total_test.go': go },
        { 'tests/total.test.ts': ts.replace('toBe(3)', 'toBe(4)').replace("status: 'ok'", "status: 'error'"), 'total_test.go': go.replace('want: 3', 'want: 4') },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.line, f.detail])).toEqual([
      ['assertion-weakened', 'tests/total.test.ts', 2, "expected value changed in 'totals': 3 → 4"],
      ['assertion-weakened', 'tests/total.test.ts', 4, "expected value changed in 'totals': 'ok' → 'error'"],
      ['assertion-weakened', 'total_test.go', 3, "expected value changed in 'TestTotal': 3 → 4"],
    ]);
  });

  it('does not read a reworded assertion message as a changed expected value', () => {
    const py = lines('def test_a():', '    assert a() == 1, "a is one"', '    self.assertEqual(b(), 2, "b is two")');
    const go = lines('func TestA(t *testing.T) {', '\tif got := A(); got != 1 {', '\t\tt.Errorf("A() = %d, want 1", got)', '\t}', '\tassert.Equal(t, 1, A(), "A is one")', '}');
    const rs = lines('#[test]', 'fn a() {', '    assert_eq!(a(), 1, "a is one");', '}');
    const flags = inspectFixDiff(
      gitDiff(
        { 'tests/test_a.py': py, 'a_test.go': go, 'tests/a.rs': rs },
        { 'tests/test_a.py': py.replace('a is one', 'a must be 1').replace('b is two', 'b must be 2'), 'a_test.go': go.replace('want 1', 'expected 1').replace('A is one', 'A must be 1'), 'tests/a.rs': rs.replace('a is one', 'a must be 1') },
      ),
    );
    expect(flags).toEqual([]);
  });

  it('does not call a new input to the same expectation a changed expected value', () => {
    const ts = lines("it('totals', () => {", '  expect(total([1, 2])).toBe(3);', '});');
    expect(inspectFixDiff(gitDiff({ 'tests/t.test.ts': ts }, { 'tests/t.test.ts': ts.replace('[1, 2]', '[2, 1]') }))).toEqual([]);
  });
});

describe('inspectFixDiff: config, suppressions, snapshots, dependencies', () => {
  it('flags an edited CI workflow and says what it weakens', () => {
    const wf = lines('name: ci', 'on: [push]', 'jobs:', '  test:', '    runs-on: ubuntu-latest', '    steps:', '      - run: npm ci', '      - run: npm run lint', '      - run: npm test');
    const flags = inspectFixDiff(
      gitDiff({ '.github/workflows/ci.yml': wf }, { '.github/workflows/ci.yml': wf.replace('      - run: npm test\n', '').replace('    runs-on: ubuntu-latest\n', '    runs-on: ubuntu-latest\n    continue-on-error: true\n') }),
    );
    expect(flags).toEqual([
      {
        kind: 'ci-config-changed',
        file: '.github/workflows/ci.yml',
        line: 9,
        detail: 'edited CI config (+1 −1); adds continue-on-error; removes `npm test`',
        evidence: '-- run: npm test\n+continue-on-error: true',
      },
    ]);
  });

  it.each([
    ['.gitlab-ci.yml'],
    ['.circleci/config.yml'],
    ['Jenkinsfile'],
    ['azure-pipelines.yml'],
    ['.buildkite/pipeline.yml'],
  ])('flags CI config at %s', (path) => {
    expect(kinds(inspectFixDiff(gitDiff({ [path]: lines('a: 1') }, { [path]: lines('a: 2') })))).toEqual(['ci-config-changed']);
  });

  it('flags lint configs and tsconfig strictness, not other tsconfig edits', () => {
    const ts = lines('{', '  "compilerOptions": {', '    "strict": true,', '    "outDir": "dist"', '  }', '}');
    const flags = inspectFixDiff(
      gitDiff(
        { '.eslintrc.json': lines('{ "rules": { "no-console": "error" } }'), 'tsconfig.json': ts, 'tsconfig.build.json': ts, '.golangci.yml': lines('linters: {}'), 'ruff.toml': lines('line-length = 100') },
        {
          '.eslintrc.json': lines('{ "rules": { "no-console": "off" } }'),
          'tsconfig.json': ts.replace('"strict": true', '"strict": false'),
          'tsconfig.build.json': ts.replace('"dist"', '"build"'),
          '.golangci.yml': lines('linters: { disable: [errcheck] }'),
          'ruff.toml': lines('line-length = 200'),
        },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.line, f.detail])).toEqual([
      ['lint-config-changed', '.eslintrc.json', 1, 'edited lint config (+1 −1)'],
      ['lint-config-changed', '.golangci.yml', 1, 'edited lint config (+1 −1)'],
      ['lint-config-changed', 'ruff.toml', 1, 'edited lint config (+1 −1)'],
      ['lint-config-changed', 'tsconfig.json', 3, 'changed type-checking settings: strict'],
    ]);
  });

  it('flags added lint and type-check suppressions in any language, one flag per file', () => {
    const flags = inspectFixDiff(
      gitDiff(
        { 'src/a.ts': lines('export function a(x: unknown) {', '  return x.y;', '}'), 'app/b.py': lines('def b(x):', '    return x.y'), 'c.go': lines('package c', '', 'func C() { f() }') },
        {
          'src/a.ts': lines('// eslint-disable-next-line @typescript-eslint/no-explicit-any', 'export function a(x: any) {', '  // @ts-ignore', '  return x.y;', '}'),
          'app/b.py': lines('def b(x):', '    return x.y  # type: ignore  # noqa: E501'),
          'c.go': lines('package c', '', 'func C() { f() } //nolint:errcheck'),
        },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.line, f.detail])).toEqual([
      ['lint-config-changed', 'app/b.py', 2, 'added # noqa; added # type: ignore'],
      ['lint-config-changed', 'c.go', 3, 'added //nolint'],
      ['lint-config-changed', 'src/a.ts', 3, 'added eslint-disable; added @ts-ignore'],
    ]);
  });

  it('flags test config: thresholds lowered, the test script, ignore patterns, pytest options', () => {
    const vitest = lines('export default {', '  test: {', '    coverage: {', '      thresholds: { lines: 90, branches: 80 },', '    },', '  },', '};');
    const pkg = lines('{', '  "name": "app",', '  "version": "1.0.0",', '  "scripts": {', '    "build": "tsc",', '    "test": "vitest run"', '  },', '  "jest": {', '    "testEnvironment": "node"', '  }', '}');
    const pyproject = lines('[project]', 'name = "x"', '', '[tool.pytest.ini_options]', 'addopts = "-q"');
    const flags = inspectFixDiff(
      gitDiff(
        { 'vitest.config.ts': vitest, 'package.json': pkg, 'pyproject.toml': pyproject },
        {
          'vitest.config.ts': vitest.replace('lines: 90', 'lines: 60'),
          'package.json': pkg.replace('"vitest run"', '"vitest run --passWithNoTests"').replace('"testEnvironment": "node"', '"testEnvironment": "node",\n    "testPathIgnorePatterns": ["slow"]').replace('1.0.0', '1.0.1'),
          'pyproject.toml': pyproject.replace('"-q"', '"-q --deselect tests/test_a.py::test_b"'),
        },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.detail])).toEqual([
      ['test-config-changed', 'package.json', 'changed the "test" script: vitest run → vitest run --passWithNoTests; added --passWithNoTests; added test ignore patterns'],
      ['test-config-changed', 'pyproject.toml', 'edited test settings in pyproject.toml; added a pytest deselection'],
      ['test-config-changed', 'vitest.config.ts', 'edited test config (+1 −1); lowered coverage thresholds 90 → 60'],
    ]);
  });

  it('flags changed snapshots but not new ones', () => {
    const snap = lines('// Vitest Snapshot v1', '', 'exports[`card renders 1`] = `"ready"`;', '');
    const updated = inspectFixDiff(gitDiff({ 'tests/__snapshots__/card.test.ts.snap': snap }, { 'tests/__snapshots__/card.test.ts.snap': snap.replace('"ready"', '"failed"') }));
    expect(updated).toEqual([
      {
        kind: 'snapshot-updated',
        file: 'tests/__snapshots__/card.test.ts.snap',
        line: 3,
        detail: "updated 1 snapshot: 'card renders 1'",
        evidence: '-exports[`card renders 1`] = `"ready"`;\n+exports[`card renders 1`] = `"failed"`;',
      },
    ]);
    const added = inspectFixDiff(gitDiff({ 'tests/__snapshots__/card.test.ts.snap': snap }, { 'tests/__snapshots__/card.test.ts.snap': `${snap}exports[\`card renders 2\`] = \`"new"\`;\n` }));
    expect(added).toEqual([]);
  });

  it('flags dependency changes in manifests and lockfiles, not a version bump', () => {
    const pkg = lines('{', '  "name": "app",', '  "version": "1.0.0",', '  "dependencies": {', '    "zod": "^3.0.0"', '  }', '}');
    const flags = inspectFixDiff(
      gitDiff(
        { 'package.json': pkg, 'package-lock.json': lines('{', '  "lockfileVersion": 3', '}'), 'requirements.txt': lines('requests==2.31.0'), 'pyproject.toml': lines('[project]', 'name = "x"', 'dependencies = [', '    "httpx>=0.27",', ']'), 'go.sum': lines('a v1 h1:x') },
        {
          'package.json': pkg.replace('"zod": "^3.0.0"', '"lodash": "^4.17.21",\n    "zod": "^4.0.0"').replace('"1.0.0"', '"1.1.0"'),
          'package-lock.json': lines('{', '  "lockfileVersion": 3,', '  "packages": {}', '}'),
          'requirements.txt': lines('requests==2.32.0'),
          'pyproject.toml': lines('[project]', 'name = "x"', 'dependencies = [', '    "httpx>=0.27",', '    "rich",', ']'),
          'go.sum': lines('a v1 h1:y'),
        },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.detail])).toEqual([
      ['dependency-changed', 'go.sum', 'changed lockfile (+1 −1)'],
      ['dependency-changed', 'package-lock.json', 'changed lockfile (+2 −1)'],
      ['dependency-changed', 'package.json', 'added lodash ^4.17.21; zod ^3.0.0 → ^4.0.0'],
      ['dependency-changed', 'pyproject.toml', 'added rich'],
      ['dependency-changed', 'requirements.txt', 'requests ==2.31.0 → ==2.32.0'],
    ]);
  });
});

describe('inspectFixDiff: less common shapes', () => {
  it('flags a test wrapped in a block comment, a Go test file built out, a coverage pragma', () => {
    const go = lines('package a', '', 'func TestA(t *testing.T) {', '\tif A() != 1 {', '\t\tt.Fatal("bad")', '\t}', '}');
    const flags = inspectFixDiff(
      gitDiff(
        { 'tests/config.test.ts': PARSE_TEST, 'a_test.go': go, 'app/a.py': lines('def a(x):', '    if x:', '        return 1', '    return 2') },
        {
          'tests/config.test.ts': PARSE_TEST.replace("  it('rejects a bad port'", "  /*\n  it('rejects a bad port'").replace("toThrow('port');\n  });", "toThrow('port');\n  });\n  */"),
          'a_test.go': lines('//go:build ignore', '', ...go.split('\n').slice(0, -1)),
          'app/a.py': lines('def a(x):', '    if x:  # pragma: no cover', '        return 1', '    return 2'),
        },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.line, f.detail])).toEqual([
      ['test-skipped', 'a_test.go', 1, 'added //go:build ignore'],
      ['test-config-changed', 'app/a.py', 2, 'added # pragma: no cover'],
      ['test-skipped', 'tests/config.test.ts', 9, "commented out test 'rejects a bad port' in a block comment"],
    ]);
  });

  it('reads sections of Cargo.toml and setup.cfg', () => {
    const cargo = lines('[package]', 'name = "a"', 'version = "0.1.0"', '', '[dependencies]', 'serde = "1"', '', '[lints.clippy]', 'unwrap_used = "deny"');
    const cfg = lines('[metadata]', 'name = a', '', '[options]', 'install_requires =', '    requests>=2', '', '[flake8]', 'max-line-length = 100');
    const flags = inspectFixDiff(
      gitDiff(
        { 'Cargo.toml': cargo, 'setup.cfg': cfg },
        {
          'Cargo.toml': cargo.replace('version = "0.1.0"', 'version = "0.2.0"').replace('serde = "1"', 'serde = "1"\nanyhow = "1"').replace('"deny"', '"allow"'),
          'setup.cfg': cfg.replace('    requests>=2', '    requests>=2\n    rich').replace('100', '200'),
        },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.line, f.detail])).toEqual([
      ['lint-config-changed', 'Cargo.toml', 9, 'edited lint settings in Cargo.toml'],
      ['dependency-changed', 'Cargo.toml', 7, 'added anyhow 1'],
      ['lint-config-changed', 'setup.cfg', 9, 'edited lint settings in setup.cfg'],
      ['dependency-changed', 'setup.cfg', 7, 'added rich'],
    ]);
  });

  it('flags a deleted workflow, a deleted snapshot file and a binary lockfile; ignores prose', () => {
    const flags = inspectFixDiff(
      gitDiff(
        { '.github/workflows/ci.yml': lines('on: push'), 'tests/__snapshots__/a.test.ts.snap': lines('exports[`a 1`] = `1`;'), 'bun.lockb': Buffer.from([0, 1, 2]), 'README.md': lines('# app') },
        { '.github/workflows/ci.yml': null, 'tests/__snapshots__/a.test.ts.snap': null, 'bun.lockb': Buffer.from([0, 1, 3]), 'README.md': lines('# app', 'Run `vitest --passWithNoTests || true`.') },
      ),
    );
    expect(flags.map((f) => [f.kind, f.file, f.detail])).toEqual([
      ['ci-config-changed', '.github/workflows/ci.yml', 'deleted CI config'],
      ['dependency-changed', 'bun.lockb', 'changed lockfile (binary)'],
      ['snapshot-updated', 'tests/__snapshots__/a.test.ts.snap', 'deleted a snapshot file'],
    ]);
  });
});

describe('inspectFixDiff: benign fixes produce nothing', () => {
  it('a fix in src/ with a new test and new assertions', () => {
    const after = PARSE_TEST.replace(
      "    expect(config.tags).toHaveLength(2);\n  });\n",
      "    expect(config.tags).toHaveLength(2);\n    expect(config.debug).toBe(false);\n  });\n\n  it('trims the host', () => {\n    expect(parseConfig('host= a ').host).toBe('a');\n  });\n",
    );
    const diff = gitDiff(
      { 'src/config.ts': lines('export function parseConfig(text: string) {', '  return { host: text.split("=")[1] };', '}'), 'tests/config.test.ts': PARSE_TEST },
      { 'src/config.ts': lines('export function parseConfig(text: string) {', '  return { host: text.split("=")[1]?.trim() };', '}'), 'tests/config.test.ts': after, 'tests/helpers/make-config.ts': lines('export const makeConfig = () => ({});') },
    );
    expect(inspectFixDiff(diff)).toEqual([]);
  });

  it('a pure refactor in src/, a renamed test file, a test moved to another file, a reformatted test', () => {
    const moved = "  it('rejects a bad port', () => {\n    expect(() => parseConfig('port=x')).toThrow('port');\n  });\n";
    const reformatted = PARSE_TEST.replace(moved, '').replace(
      "  it('reads the port', () => {",
      "  it(\n    'reads the port',\n    () => {",
    );
    const diff = gitDiff(
      {
        'src/a.ts': lines('export function total(xs: number[]) {', '  let s = 0;', '  for (const x of xs) s += x;', '  return s;', '}'),
        'tests/a.test.ts': lines("import { total } from '../src/a.js';", '', "it('totals', () => {", '  expect(total([1, 2])).toBe(3);', '});'),
        'tests/config.test.ts': PARSE_TEST,
        'tests/port.test.ts': lines("import { it, expect } from 'vitest';", ''),
      },
      {
        'src/a.ts': lines('export function total(xs: number[]) {', '  return xs.reduce((s, x) => s + x, 0);', '}'),
        'tests/a.test.ts': null,
        'tests/total.test.ts': lines("import { total } from '../src/a.js';", '', "it('totals', () => {", '  expect(total([1, 2])).toBe(3);', '});'),
        'tests/config.test.ts': reformatted,
        'tests/port.test.ts': lines("import { it, expect } from 'vitest';", '', "describe('ports', () => {", moved, '});'),
      },
    );
    expect(inspectFixDiff(diff)).toEqual([]);
  });
});

describe('inspectFixDiff: a realistic fix diff', () => {
  it('flags exactly the test the fix deleted and the assertion it weakened, not the real fix', () => {
    const src = lines('export function parseConfig(text: string) {', '  const port = Number(text.split("=")[1]);', '  return { port };', '}');
    const after = PARSE_TEST
      .replace("  it('rejects a bad port', () => {\n    expect(() => parseConfig('port=x')).toThrow('port');\n  });\n\n", '')
      .replace('expect(config.port).toBe(8080);', 'expect(config.port).toBeDefined();');
    const flags = inspectFixDiff(
      gitDiff({ 'src/config.ts': src, 'tests/config.test.ts': PARSE_TEST }, { 'src/config.ts': src.replace('Number(text.split("=")[1])', 'Number(text.split("=")[1] ?? 8080)'), 'tests/config.test.ts': after }),
    );
    expect(flags.map((f) => [f.kind, f.line, f.detail])).toEqual([
      ['test-deleted', 9, "removed test 'rejects a bad port'"],
      ['assertion-weakened', 11, "weakened assertion in 'keeps defaults': toBe → toBeDefined"],
    ]);
    for (const f of flags) {
      expect(f.evidence.length).toBeLessThanOrEqual(300);
      expect(f.detail).not.toContain('\n');
    }
  });
});
