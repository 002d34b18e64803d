import { chmodSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTextEditor, type TextEditor } from '../../../src/agent/tools/text-editor.js';
import { ToolError } from '../../../src/agent/tools/tool-error.js';

const CANARY = 'canary-secret-value-0123456789';

let base: string;
let root: string;
let outside: string;
let editor: TextEditor;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'ns-editor-'));
  root = join(base, 'worktree');
  outside = join(base, 'outside');
  mkdirSync(join(root, 'src', 'deep', 'deeper'), { recursive: true });
  mkdirSync(join(root, 'node_modules', 'dep'), { recursive: true });
  mkdirSync(join(root, '.hidden'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(root, 'src', 'a.ts'), 'const a = 1;\nconst b = 2;\nconst c = 3;\n');
  writeFileSync(join(root, 'src', 'deep', 'deeper', 'too-deep.ts'), 'x\n');
  writeFileSync(join(root, 'README.md'), '# demo\n');
  writeFileSync(join(outside, 'secret.txt'), 'outside secret\n');
  editor = createTextEditor({ root, secrets: [CANARY] });
});

afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

async function refusal(input: unknown): Promise<string> {
  const error = await editor.execute(input).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ToolError);
  return (error as ToolError).message;
}

describe('view', () => {
  it('numbers lines like cat -n', async () => {
    expect(await editor.execute({ command: 'view', path: 'src/a.ts' })).toBe(
      "Here's the result of running `cat -n` on src/a.ts:\n     1\tconst a = 1;\n     2\tconst b = 2;\n     3\tconst c = 3;\n",
    );
  });

  it('shows a range, with -1 meaning the end of the file, and accepts absolute paths inside the root', async () => {
    const out = await editor.execute({ command: 'view', path: join(root, 'src/a.ts'), view_range: [2, -1] });
    expect(out).toBe("Here's the result of running `cat -n` on src/a.ts:\n     2\tconst b = 2;\n     3\tconst c = 3;\n");
    expect(await refusal({ command: 'view', path: 'src/a.ts', view_range: [9, 10] })).toMatch(/outside src\/a.ts, which has 3 lines/);
  });

  it('lists a directory two levels deep, skipping hidden entries and node_modules', async () => {
    const out = await editor.execute({ command: 'view', path: '.' });
    expect(out.split('\n').slice(1)).toEqual(['README.md', 'src/', 'src/a.ts', 'src/deep/']);
  });

  it('truncates a long file with a note', async () => {
    writeFileSync(join(root, 'long.txt'), `${'x'.repeat(50)}\n`.repeat(1_000));
    const small = createTextEditor({ root, secrets: [], maxViewChars: 1_000 });
    const out = await small.execute({ command: 'view', path: 'long.txt' });
    expect(out.length).toBeLessThan(1_300);
    expect(out).toMatch(/output truncated at 1000 characters: showing lines 1–\d+ of 1000; use view_range/);
  });

  it('scrubs secrets from what it returns', async () => {
    writeFileSync(join(root, '.env.example'), `TOKEN=${CANARY}\n`);
    const out = await editor.execute({ command: 'view', path: '.env.example' });
    expect(out).not.toContain(CANARY);
    expect(out).toContain('TOKEN=[REDACTED]');
  });
});

describe('create', () => {
  it('creates a file and its missing directories', async () => {
    expect(await editor.execute({ command: 'create', path: 'lib/new/b.ts', file_text: 'export {};\n' })).toBe(
      'File created successfully at: lib/new/b.ts',
    );
    expect(readFileSync(join(root, 'lib/new/b.ts'), 'utf8')).toBe('export {};\n');
  });

  it('overwrites an existing file keeping its mode, leaving no temp file behind', async () => {
    const script = join(root, 'run.sh');
    writeFileSync(script, 'echo old\n');
    chmodSync(script, 0o755);
    expect(await editor.execute({ command: 'create', path: 'run.sh', file_text: 'echo new\n' })).toBe('File overwritten: run.sh');
    expect(readFileSync(script, 'utf8')).toBe('echo new\n');
    expect(statSync(script).mode & 0o777).toBe(0o755);
    expect(readdirSync(root).filter((name) => name.includes('nightshift-tmp'))).toEqual([]);
  });
});

describe('str_replace', () => {
  it('replaces a unique match and shows a snippet', async () => {
    const out = await editor.execute({ command: 'str_replace', path: 'src/a.ts', old_str: 'const b = 2;', new_str: 'const b = 20;' });
    expect(readFileSync(join(root, 'src/a.ts'), 'utf8')).toBe('const a = 1;\nconst b = 20;\nconst c = 3;\n');
    expect(out).toContain('The file src/a.ts has been edited.');
    expect(out).toContain('     2\tconst b = 20;');
  });

  it('deletes when new_str is omitted', async () => {
    await editor.execute({ command: 'str_replace', path: 'src/a.ts', old_str: 'const c = 3;\n' });
    expect(readFileSync(join(root, 'src/a.ts'), 'utf8')).toBe('const a = 1;\nconst b = 2;\n');
  });

  it('refuses a missing or ambiguous old_str and changes nothing', async () => {
    expect(await refusal({ command: 'str_replace', path: 'src/a.ts', old_str: 'const d', new_str: 'x' })).toMatch(/old_str was not found in src\/a.ts/);
    expect(await refusal({ command: 'str_replace', path: 'src/a.ts', old_str: 'const ', new_str: 'let ' })).toBe(
      'old_str appears 3 times in src/a.ts (lines 1, 2, 3); include more context to make it unique',
    );
    expect(readFileSync(join(root, 'src/a.ts'), 'utf8')).toBe('const a = 1;\nconst b = 2;\nconst c = 3;\n');
  });

  it('matches across Windows line endings', async () => {
    writeFileSync(join(root, 'crlf.txt'), 'one\r\ntwo\r\nthree\r\n');
    await editor.execute({ command: 'str_replace', path: 'crlf.txt', old_str: 'one\ntwo', new_str: 'uno\ndos' });
    expect(readFileSync(join(root, 'crlf.txt'), 'utf8')).toBe('uno\r\ndos\r\nthree\r\n');
  });
});

describe('insert', () => {
  it('inserts at the top with insert_line 0', async () => {
    await editor.execute({ command: 'insert', path: 'src/a.ts', insert_line: 0, insert_text: "'use strict';" });
    expect(readFileSync(join(root, 'src/a.ts'), 'utf8')).toBe("'use strict';\nconst a = 1;\nconst b = 2;\nconst c = 3;\n");
  });

  it('appends at the end of the file, also one without a final newline', async () => {
    await editor.execute({ command: 'insert', path: 'src/a.ts', insert_line: 3, insert_text: 'const d = 4;\n' });
    expect(readFileSync(join(root, 'src/a.ts'), 'utf8')).toBe('const a = 1;\nconst b = 2;\nconst c = 3;\nconst d = 4;\n');
    writeFileSync(join(root, 'no-eol.txt'), 'a\nb');
    const out = await editor.execute({ command: 'insert', path: 'no-eol.txt', insert_line: 2, insert_text: 'c' });
    expect(readFileSync(join(root, 'no-eol.txt'), 'utf8')).toBe('a\nb\nc\n');
    expect(out).toContain('     3\tc');
  });

  it('refuses a line past the end', async () => {
    expect(await refusal({ command: 'insert', path: 'src/a.ts', insert_line: 4, insert_text: 'x' })).toMatch(/past the end of src\/a.ts, which has 3 lines/);
  });
});

describe('confinement', () => {
  it('refuses paths that escape the worktree', async () => {
    expect(await refusal({ command: 'view', path: '../outside/secret.txt' })).toMatch(/path escapes the worktree/);
    expect(await refusal({ command: 'view', path: '/etc/passwd' })).toMatch(/path escapes the worktree/);
    expect(await refusal({ command: 'create', path: 'src/../../outside/new.txt', file_text: 'x' })).toMatch(/path escapes the worktree/);
    expect(readdirSync(outside)).toEqual(['secret.txt']);
  });

  it('refuses a symlink to a file outside, for reading and writing', async () => {
    symlinkSync(join(outside, 'secret.txt'), join(root, 'link.txt'));
    expect(await refusal({ command: 'view', path: 'link.txt' })).toMatch(/escapes the worktree through a symlink/);
    expect(await refusal({ command: 'str_replace', path: 'link.txt', old_str: 'outside', new_str: 'pwned' })).toMatch(/is a symlink/);
    expect(await refusal({ command: 'create', path: 'link.txt', file_text: 'pwned' })).toMatch(/is a symlink/);
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('outside secret\n');
  });

  it('refuses a symlinked directory that leads outside', async () => {
    symlinkSync(outside, join(root, 'linkdir'));
    expect(await refusal({ command: 'view', path: 'linkdir/secret.txt' })).toMatch(/escapes the worktree through a symlink/);
    expect(await refusal({ command: 'view', path: 'linkdir' })).toMatch(/escapes the worktree through a symlink/);
    expect(await refusal({ command: 'create', path: 'linkdir/planted.txt', file_text: 'x' })).toMatch(/escapes the worktree through a symlink/);
    expect(await refusal({ command: 'create', path: 'linkdir/new/planted.txt', file_text: 'x' })).toMatch(/escapes the worktree through a symlink/);
    expect(readdirSync(outside)).toEqual(['secret.txt']);
  });

  it('refuses to write through a symlink that stays inside', async () => {
    symlinkSync('src/a.ts', join(root, 'alias.ts'));
    expect(await refusal({ command: 'insert', path: 'alias.ts', insert_line: 0, insert_text: 'x' })).toMatch(/alias.ts is a symlink; refusing to write through it/);
    expect(await editor.execute({ command: 'view', path: 'alias.ts' })).toContain('const a = 1;');
  });

  it('refuses a hard link to a file outside', async () => {
    linkSync(join(outside, 'secret.txt'), join(root, 'hard.txt'));
    expect(await refusal({ command: 'view', path: 'hard.txt' })).toMatch(/has 2 hard links/);
    expect(await refusal({ command: 'str_replace', path: 'hard.txt', old_str: 'outside', new_str: 'pwned' })).toMatch(/has 2 hard links/);
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('outside secret\n');
  });

  it('refuses writes to .git, the directory and a worktree .git file, also through a symlink', async () => {
    mkdirSync(join(root, '.git'));
    writeFileSync(join(root, '.git', 'config'), '[core]\n');
    expect(await refusal({ command: 'str_replace', path: '.git/config', old_str: '[core]', new_str: '[core]\n\tfsmonitor = evil' })).toMatch(/writing to .git is not allowed/);
    expect(await refusal({ command: 'create', path: '.git/hooks/pre-commit', file_text: 'evil' })).toMatch(/writing to .git is not allowed/);
    symlinkSync('.git', join(root, 'gitlink'));
    expect(await refusal({ command: 'create', path: 'gitlink/hooks/post-checkout', file_text: 'evil' })).toMatch(/writing to .git is not allowed/);
    expect(await refusal({ command: 'insert', path: 'gitlink/config', insert_line: 0, insert_text: 'evil' })).toMatch(/writing to .git is not allowed/);
    expect(readFileSync(join(root, '.git', 'config'), 'utf8')).toBe('[core]\n');
    expect(readdirSync(join(root, '.git'))).toEqual(['config']);

    rmSync(join(root, '.git'), { recursive: true });
    writeFileSync(join(root, '.git'), 'gitdir: /somewhere/.git/worktrees/x\n');
    expect(await refusal({ command: 'create', path: '.git', file_text: 'gitdir: /tmp/evil\n' })).toMatch(/writing to .git is not allowed/);
    expect(await refusal({ command: 'str_replace', path: '.git', old_str: '/somewhere', new_str: '/tmp/evil' })).toMatch(/writing to .git is not allowed/);
    expect(readFileSync(join(root, '.git'), 'utf8')).toBe('gitdir: /somewhere/.git/worktrees/x\n');
  });

  it('does not name host paths outside the worktree in its errors', async () => {
    const message = await refusal({ command: 'view', path: 'missing/file.ts' });
    expect(message).toBe('missing/file.ts: no such file or directory');
    expect(message).not.toContain(base);
  });
});

describe('input validation', () => {
  it('turns a bad input shape into one readable ToolError', async () => {
    expect(await refusal({ command: 'str_replace', path: 'src/a.ts' })).toMatch(/^invalid input for str_replace: old_str: /);
    expect(await refusal({ command: 'view', path: 'src/a.ts', view_range: [1] })).toMatch(/^invalid input for view: view_range/);
    expect(await refusal({ command: 'insert', path: 'src/a.ts', insert_line: -1, insert_text: 'x' })).toMatch(/^invalid input for insert: insert_line/);
    expect(await refusal({ command: 'delete', path: 'src/a.ts' })).toBe('invalid input: command must be one of view, create, str_replace, insert');
    expect(await refusal('view src/a.ts')).toMatch(/^invalid input: command must be one of/);
    expect(await refusal({ command: 'undo_edit', path: 'src/a.ts' })).toMatch(/undo_edit is not supported/);
    expect(await refusal({ command: 'view', path: '' })).toMatch(/path must not be empty/);
  });

  it('refuses binary files and empty old_str', async () => {
    writeFileSync(join(root, 'blob.bin'), Buffer.from([0x89, 0x50, 0x00, 0x01]));
    expect(await refusal({ command: 'view', path: 'blob.bin' })).toMatch(/binary file/);
    expect(await refusal({ command: 'str_replace', path: 'src/a.ts', old_str: '', new_str: 'x' })).toMatch(/old_str must not be empty/);
  });
});
