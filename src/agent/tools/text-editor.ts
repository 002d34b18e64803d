/**
 * The executor of Anthropic's text editor client tool (`text_editor_20250728`, named
 * `str_replace_based_edit_tool`), confined to one worktree.
 *
 * Confinement rules, checked on every call:
 * - paths are relative to the root or absolute inside it; every path is resolved to its real
 *   path (for `create`, the real path of the nearest existing ancestor) and refused when that
 *   lands outside the root: `..`, absolute paths elsewhere, symlinks and symlinked directories
 *   pointing out;
 * - a regular file with more than one hard link is neither read nor written (the other link may
 *   live outside the worktree);
 * - nothing is ever written through a symlink (the final component may not be one), nor to
 *   `.git` or anything under it, whether named directly or reached through a symlinked parent;
 * - files are opened with `O_NOFOLLOW` and re-checked with `fstat`, and writes go to a temporary
 *   file in the same directory that is renamed over the target, keeping its mode.
 * The agent's commands cannot race these checks in the sandbox: tool calls run one at a time
 * and a command's background processes die when it returns (see run-command.ts).
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, realpathSync, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, realpath, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { createRedactor } from '../../domain/redact.js';
import { ToolError } from './tool-error.js';

/** Options for {@link createTextEditor}. */
export interface TextEditorOptions {
  /** The worktree; nothing outside it is read or written. */
  readonly root: string;
  /** Longest `view` result before it is truncated with a note. @default 50_000 */
  readonly maxViewChars?: number;
  /** Values scrubbed from everything returned, errors included. */
  readonly secrets: readonly string[];
}

/** Executes one text editor tool call. */
export interface TextEditor {
  /** Returns the tool_result text; throws {@link ToolError} for bad input or a refusal. */
  execute(input: unknown): Promise<string>;
}

/** @default for {@link TextEditorOptions.maxViewChars} */
export const DEFAULT_MAX_VIEW_CHARS = 50_000;
/** Files larger than this are not read or edited. */
export const MAX_EDIT_FILE_BYTES = 10 * 1024 * 1024;
// A directory view lists at most this many entries.
const MAX_LISTED_ENTRIES = 1_000;
// Lines of context shown around an edit.
const SNIPPET_CONTEXT_LINES = 4;

const pathField = z.string().min(1, 'path must not be empty');
const inputSchema = z.discriminatedUnion('command', [
  z.object({
    command: z.literal('view'),
    path: pathField,
    view_range: z.tuple([z.number().int(), z.number().int()]).optional(),
  }),
  z.object({ command: z.literal('create'), path: pathField, file_text: z.string() }),
  z.object({
    command: z.literal('str_replace'),
    path: pathField,
    old_str: z.string(),
    new_str: z.string().optional(),
  }),
  z.object({
    command: z.literal('insert'),
    path: pathField,
    insert_line: z.number().int().min(0),
    // Older versions of the tool called it new_str; accept either.
    insert_text: z.string().optional(),
    new_str: z.string().optional(),
  }),
]);
type EditorInput = z.infer<typeof inputSchema>;

const COMMANDS = ['view', 'create', 'str_replace', 'insert'] as const;

/** Builds the text editor executor for one worktree. */
export function createTextEditor(opts: TextEditorOptions): TextEditor {
  const givenRoot = resolve(opts.root);
  const root = realpathSync.native(givenRoot);
  const maxViewChars = opts.maxViewChars ?? DEFAULT_MAX_VIEW_CHARS;
  const redact = createRedactor(opts.secrets);
  const editor = new Editor(givenRoot, root, maxViewChars);
  return {
    async execute(input) {
      try {
        return redact(await editor.execute(parseInput(input)));
      } catch (error) {
        if (error instanceof ToolError) throw new ToolError(redact(error.message), { cause: error.cause });
        throw error;
      }
    },
  };
}

function parseInput(input: unknown): EditorInput {
  const command = typeof input === 'object' && input !== null ? (input as { command?: unknown }).command : undefined;
  if (command === 'undo_edit') {
    throw new ToolError('undo_edit is not supported by this tool version; use str_replace to revert a change');
  }
  if (typeof command !== 'string' || !(COMMANDS as readonly string[]).includes(command)) {
    throw new ToolError(`invalid input: command must be one of ${COMMANDS.join(', ')}`);
  }
  const parsed = inputSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
      return `${where}${issue.message}`;
    });
    throw new ToolError(`invalid input for ${command}: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/** A path inside the root: `abs` is under the real root, `rel` is what the model is shown. */
interface Target {
  abs: string;
  rel: string;
}

/** A regular file read safely, with what is needed to write it back. */
interface LoadedFile {
  real: string;
  rel: string;
  text: string;
  mode: number;
}

class Editor {
  constructor(
    private readonly givenRoot: string,
    private readonly root: string,
    private readonly maxViewChars: number,
  ) {}

  async execute(input: EditorInput): Promise<string> {
    switch (input.command) {
      case 'view':
        return this.view(input.path, input.view_range);
      case 'create':
        return this.create(input.path, input.file_text);
      case 'str_replace':
        return this.strReplace(input.path, input.old_str, input.new_str ?? '');
      case 'insert': {
        const text = input.insert_text ?? input.new_str;
        if (text === undefined) throw new ToolError('invalid input for insert: insert_text: expected string');
        return this.insert(input.path, input.insert_line, text);
      }
    }
  }

  private async view(path: string, range: readonly [number, number] | undefined): Promise<string> {
    const target = this.target(path);
    const real = await this.realInside(target);
    const stats = await fsCall(target.rel, () => lstat(real));
    if (stats.isDirectory()) {
      if (range) throw new ToolError(`view_range is not allowed when viewing a directory (${target.rel})`);
      return this.listDirectory(real, target.rel);
    }
    const file = await this.load(real, target.rel);
    const lines = splitLines(file.text);
    let start = 1;
    let end = lines.length;
    if (range) {
      const [from, to] = range;
      if (from < 1 || from > Math.max(lines.length, 1)) {
        throw new ToolError(`view_range start ${from} is outside ${target.rel}, which has ${lines.length} lines`);
      }
      if (to !== -1 && to < from) {
        throw new ToolError(`view_range end ${to} is before its start ${from}; use -1 for the end of the file`);
      }
      start = from;
      end = to === -1 ? lines.length : Math.min(to, lines.length);
    }
    const header = `Here's the result of running \`cat -n\` on ${target.rel}:\n`;
    if (lines.length === 0) return `${header}(the file is empty)`;
    let body = '';
    let shownUpTo = start - 1;
    for (let n = start; n <= end; n += 1) {
      const line = `${numberLine(n, lines[n - 1] ?? '')}\n`;
      if (body.length + line.length > this.maxViewChars && n > start) break;
      body += line;
      shownUpTo = n;
    }
    if (shownUpTo < end) {
      body += `[output truncated at ${this.maxViewChars} characters: showing lines ${start}–${shownUpTo} of ${lines.length}; use view_range to see the rest]\n`;
    }
    return header + body;
  }

  private async listDirectory(real: string, rel: string): Promise<string> {
    const entries: string[] = [];
    let omitted = 0;
    const walk = async (dir: string, depth: number): Promise<void> => {
      const children = await fsCall(rel, () => readdir(dir, { withFileTypes: true }));
      children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const child of children) {
        if (child.name.startsWith('.') || child.name === 'node_modules') continue;
        if (entries.length >= MAX_LISTED_ENTRIES) {
          omitted += 1;
          continue;
        }
        const childPath = join(dir, child.name);
        const shown = relative(this.root, childPath);
        // Symlinks are listed, never followed.
        entries.push(child.isDirectory() ? `${shown}/` : child.isSymbolicLink() ? `${shown}@` : shown);
        if (child.isDirectory() && depth < 2) await walk(childPath, depth + 1);
      }
    };
    await walk(real, 1);
    const note = omitted > 0 ? `\n[${omitted} more entries not listed; view a subdirectory to see them]` : '';
    const list = entries.length > 0 ? entries.join('\n') : '(no visible entries)';
    return `Here are the files and directories up to 2 levels deep in ${rel}, excluding hidden items and node_modules:\n${list}${note}`;
  }

  private async create(path: string, text: string): Promise<string> {
    const target = this.target(path);
    refuseGitPath(target.rel);
    const existing = await lstatOrUndefined(target.rel, target.abs);
    if (existing) {
      const file = await this.loadForWrite(target);
      await writeAtomically(file.real, file.rel, text, file.mode);
      return `File overwritten: ${target.rel}`;
    }
    // The nearest existing ancestor decides where the new file really lands.
    let ancestor = dirname(target.abs);
    const missing: string[] = [basename(target.abs)];
    for (;;) {
      const stats = await lstatOrUndefined(target.rel, ancestor);
      if (stats) break;
      missing.unshift(basename(ancestor));
      ancestor = dirname(ancestor);
    }
    const realAncestor = await fsCall(target.rel, () => realpath(ancestor));
    const stats = await fsCall(target.rel, () => lstat(realAncestor));
    if (!stats.isDirectory()) throw new ToolError(`cannot create ${target.rel}: ${relative(this.root, ancestor)} is not a directory`);
    const real = join(realAncestor, ...missing);
    const realRel = this.relInside(real, target.rel);
    refuseGitPath(realRel);
    await fsCall(target.rel, () => mkdir(dirname(real), { recursive: true }));
    await writeAtomically(real, target.rel, text, undefined);
    return `File created successfully at: ${target.rel}`;
  }

  private async strReplace(path: string, oldStr: string, newStr: string): Promise<string> {
    if (oldStr === '') throw new ToolError('old_str must not be empty; use insert to add text or create to write a file');
    const file = await this.loadForWrite(this.target(path));
    let search = oldStr;
    let replacement = newStr;
    let positions = occurrences(file.text, search);
    // The model writes "\n"; a file with Windows line endings has "\r\n".
    if (positions.length === 0 && file.text.includes('\r\n') && !oldStr.includes('\r\n')) {
      search = oldStr.replace(/\n/g, '\r\n');
      replacement = newStr.replace(/\n/g, '\r\n');
      positions = occurrences(file.text, search);
    }
    if (positions.length === 0) {
      throw new ToolError(`old_str was not found in ${file.rel}; it must match the file exactly, including whitespace and indentation (view the file to check)`);
    }
    if (positions.length > 1) {
      const lineNumbers = positions.slice(0, 10).map((at) => lineNumberAt(file.text, at));
      throw new ToolError(`old_str appears ${positions.length} times in ${file.rel} (lines ${lineNumbers.join(', ')}); include more context to make it unique`);
    }
    const at = positions[0] ?? 0;
    const text = file.text.slice(0, at) + replacement + file.text.slice(at + search.length);
    await writeAtomically(file.real, file.rel, text, file.mode);
    const firstLine = lineNumberAt(text, at);
    const lastLine = firstLine + countNewlines(replacement);
    return editedMessage(file.rel, text, firstLine, lastLine);
  }

  private async insert(path: string, insertLine: number, insertText: string): Promise<string> {
    const file = await this.loadForWrite(this.target(path));
    const lines = file.text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
    if (insertLine > lines.length) {
      throw new ToolError(`insert_line ${insertLine} is past the end of ${file.rel}, which has ${lines.length} lines; use ${lines.length} to append`);
    }
    const before = lines.slice(0, insertLine);
    const last = before.length - 1;
    if (last >= 0 && !(before[last] ?? '').endsWith('\n')) before[last] = `${before[last] ?? ''}\n`;
    const added = insertText.endsWith('\n') || insertText === '' ? insertText : `${insertText}\n`;
    const text = before.join('') + added + lines.slice(insertLine).join('');
    await writeAtomically(file.real, file.rel, text, file.mode);
    return editedMessage(file.rel, text, insertLine + 1, insertLine + Math.max(1, countNewlines(added)));
  }

  /** Resolves the model's path lexically and refuses anything outside the root. */
  private target(path: string): Target {
    if (path.includes('\0')) throw new ToolError('path contains a NUL byte');
    let abs = isAbsolute(path) ? resolve(path) : resolve(this.root, path);
    // An absolute path may name the root as configured rather than as its real path.
    if (isAbsolute(path) && !isWithin(this.root, abs) && isWithin(this.givenRoot, abs)) {
      abs = join(this.root, relative(this.givenRoot, abs));
    }
    if (!isWithin(this.root, abs)) throw new ToolError(`${path}: path escapes the worktree; use a path inside it`);
    return { abs, rel: relative(this.root, abs) || '.' };
  }

  /** The real path of an existing target, refused when a symlink leads out of the root. */
  private async realInside(target: Target): Promise<string> {
    const real = await fsCall(target.rel, () => realpath(target.abs));
    this.relInside(real, target.rel);
    return real;
  }

  private relInside(real: string, shown: string): string {
    if (!isWithin(this.root, real)) throw new ToolError(`${shown}: path escapes the worktree through a symlink`);
    return relative(this.root, real) || '.';
  }

  /** Loads an existing file that is about to be rewritten. */
  private async loadForWrite(target: Target): Promise<LoadedFile> {
    refuseGitPath(target.rel);
    const stats = await fsCall(target.rel, () => lstat(target.abs));
    if (stats.isSymbolicLink()) {
      throw new ToolError(`${target.rel} is a symlink; refusing to write through it (edit the file it points to instead)`);
    }
    const real = await this.realInside(target);
    refuseGitPath(relative(this.root, real));
    return this.load(real, target.rel);
  }

  /** Reads a regular, singly linked, UTF-8 text file whose path is already real. */
  private async load(real: string, rel: string): Promise<LoadedFile> {
    const before = await fsCall(rel, () => lstat(real));
    checkRegularFile(before, rel);
    // O_NONBLOCK: a FIFO swapped in after the check must not hang the open.
    const flags = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;
    const handle = await fsCall(rel, () => open(real, flags));
    try {
      const stats = await handle.stat();
      checkRegularFile(stats, rel);
      if (stats.ino !== before.ino || stats.dev !== before.dev) throw new ToolError(`${rel} changed while it was being opened; try again`);
      if (stats.size > MAX_EDIT_FILE_BYTES) {
        throw new ToolError(`${rel} is ${stats.size} bytes, larger than the ${MAX_EDIT_FILE_BYTES}-byte limit of this tool; use a command to inspect it`);
      }
      const bytes = await handle.readFile();
      if (bytes.includes(0)) throw new ToolError(`${rel} is a binary file (${bytes.length} bytes); this tool only handles text`);
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
      } catch {
        throw new ToolError(`${rel} is not valid UTF-8 text; this tool only handles UTF-8`);
      }
      return { real, rel, text, mode: stats.mode & 0o7777 };
    } finally {
      await handle.close();
    }
  }
}

function checkRegularFile(stats: Stats, rel: string): void {
  if (stats.isDirectory()) throw new ToolError(`${rel} is a directory; view it to list its files`);
  if (stats.isSymbolicLink()) throw new ToolError(`${rel} is a symlink; refusing to follow it`);
  if (!stats.isFile()) throw new ToolError(`${rel} is not a regular file`);
  if (stats.nlink > 1) {
    throw new ToolError(`${rel} has ${stats.nlink} hard links; refusing to touch a file that may be linked from outside the worktree`);
  }
}

function refuseGitPath(rel: string): void {
  if (rel.split(sep).some((segment) => segment.toLowerCase() === '.git')) {
    throw new ToolError(`${rel}: writing to .git is not allowed; git metadata is managed by the bot`);
  }
}

async function writeAtomically(real: string, rel: string, text: string, mode: number | undefined): Promise<void> {
  const temp = join(dirname(real), `.${basename(real)}.${randomBytes(6).toString('hex')}.nightshift-tmp`);
  try {
    await fsCall(rel, () => writeFile(temp, text, { flag: 'wx', mode: mode ?? 0o666 }));
    // The umask applied at creation; the original mode (setuid bits aside) is restored exactly.
    if (mode !== undefined) await fsCall(rel, () => chmod(temp, mode));
    await fsCall(rel, () => rename(temp, real));
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

async function lstatOrUndefined(rel: string, path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if (isErrno(error) && error.code === 'ENOENT') return undefined;
    throw toToolError(rel, error);
  }
}

/** Runs a file system call, turning its failure into a ToolError that names only `rel`. */
async function fsCall<T>(rel: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toToolError(rel, error);
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a parent of it is not a directory',
  EISDIR: 'is a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ELOOP: 'too many levels of symlinks, or a symlink where none is allowed',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EEXIST: 'already exists',
};

function toToolError(rel: string, error: unknown): Error {
  if (error instanceof ToolError) return error;
  if (isErrno(error) && typeof error.code === 'string') {
    // Node's own message carries host paths; the model gets the worktree path and the reason.
    return new ToolError(`${rel}: ${ERRNO_TEXT[error.code] ?? error.code}`, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}

function isErrno(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && 'code' in error;
}

function isWithin(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (text.endsWith('\n')) lines.pop();
  return lines;
}

// The shape of `cat -n`, which Anthropic's reference implementation returns and the models read.
function numberLine(n: number, line: string): string {
  return `${String(n).padStart(6)}\t${line}`;
}

function occurrences(text: string, needle: string): number[] {
  const found: number[] = [];
  // Overlapping matches count too: "aa" in "aaa" is ambiguous.
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) found.push(at);
  return found;
}

function lineNumberAt(text: string, index: number): number {
  return countNewlines(text.slice(0, index)) + 1;
}

function countNewlines(text: string): number {
  let count = 0;
  for (const char of text) if (char === '\n') count += 1;
  return count;
}

function editedMessage(rel: string, text: string, firstLine: number, lastLine: number): string {
  const lines = splitLines(text);
  const from = Math.max(1, firstLine - SNIPPET_CONTEXT_LINES);
  const to = Math.min(lines.length, lastLine + SNIPPET_CONTEXT_LINES);
  const snippet: string[] = [];
  for (let n = from; n <= to; n += 1) snippet.push(numberLine(n, lines[n - 1] ?? ''));
  return [
    `The file ${rel} has been edited. Here's the result of running \`cat -n\` on a snippet of ${rel}:`,
    ...snippet,
    'Review the changes and make sure they are as expected. Edit the file again if necessary.',
  ].join('\n');
}
