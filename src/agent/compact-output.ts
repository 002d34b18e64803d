/**
 * Command output is the largest and least useful part of an agent transcript: installers and
 * test runners print thousands of lines the model pays for on every later turn. This module
 * shrinks it while keeping everything that looks like a problem.
 */

/** Options for {@link compactOutput}. */
export interface CompactOutputOptions {
  /** Longest result, in characters, before the middle is elided. @default 20_000 */
  readonly maxChars?: number;
}

/** @default for {@link CompactOutputOptions.maxChars} */
export const DEFAULT_COMPACT_MAX_CHARS = 20_000;

// CSI (colours, cursor movement, erase line), OSC (titles, hyperlinks), DCS/PM/APC strings,
// and the remaining two-character escapes.
const ANSI_PATTERN =
  /\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\|\x1b[@-Z\\-_]|\x1b/g;
// Control characters other than tab, newline, carriage return and backspace (handled apart).
const CONTROL_PATTERN = /[\x00-\x07\x0b\x0c\x0e-\x1f\x7f]/g;

// Known-benign installer and git chatter. Matched against the trimmed line, and dropped even
// though some of it says "WARN" (npm's deprecation notices): these exact shapes never carry a
// failure of the command being run.
const CHATTER_PATTERNS: readonly RegExp[] = [
  // npm
  /^npm (?:WARN|warn) deprecated\b/,
  /^npm notice\b/,
  /^\d+ packages? (?:are|is) looking for funding\b/,
  /^run `npm fund` for details$/,
  /^found 0 vulnerabilities$/,
  // pip
  /^(?:Collecting|Downloading|Using cached|Requirement already satisfied:|Obtaining|Preparing metadata|Getting requirements to build|Installing build dependencies|Building wheels? for|Created wheel for|Stored in directory:|Looking in indexes:|Installing collected packages:)/,
  // yarn classic, yarn berry (YN0000 is the informational code), pnpm
  /^\[\d+\/\d+\] (?:Resolving|Fetching|Linking|Building|Validating)/,
  /^➤ YN0000:/,
  /^Progress: resolved \d+/,
  /^Packages: [+-]\d+/,
  // pnpm's added-packages bar; a line of dashes is left alone (Markdown rules, table borders).
  /^\+{10,}$/,
  // git
  /^remote: (?:Enumerating|Counting|Compressing|Total|Finding sources)/,
  /^(?:Enumerating|Counting|Compressing|Writing|Receiving|Resolving|Unpacking) (?:objects|deltas):/,
  /^Updating files:\s+\d+%/,
];

// npm's log levels below warn (`--loglevel=http|verbose|silly`, timing): one line per request
// or step. Dropped unless a line looks like a problem; the `npm error` lines say what failed.
const NPM_DEBUG_LOG = /^npm (?:http|verbose|timing|sill|silly|info)\b/;
// npm's empty error lines (`npm error` alone) separate paragraphs and say nothing.
const EMPTY_NPM_ERROR = /^npm (?:error|ERR!)$/;
// A marker line under code (tsc's ~~~~, vitest/jest/Python carets, a gutter `|`): the column
// it points at is in the file:line:col reference above it.
const COLUMN_MARKER = /^[\s|]*(?:~+|\^+)[\s~^]*$/;

// Characters progress bars are drawn with.
const BAR_CHARS = /[█▉▊▋▌▍▎▏▓▒░■□━─╸╺=#]/g;
const PROGRESS_HINT = /\d+(?:\.\d+)?\s?%|\beta\b|\d+(?:\.\d+)?\s?[kKMG]i?B\/s|\d+\/\d+/;
const SPINNER_START = /^[\u2800-\u28ff◐◓◑◒⣾⣽⣻⢿⡿⣟⣯⣷]/;
const NPM_PROGRESS = /⸨[^⸩]*⸩/;
const BARE_PERCENT = /^\d+(?:\.\d+)?%$/;

// Lines that must survive every reduction: errors, failures, warnings, assertion diffs and
// stack frames of the common runtimes (JS, Python, Go, Rust, vitest's ❯ pointer, compilers).
const IMPORTANT_PATTERN = new RegExp(
  [
    'error',
    'fail',
    'exception',
    'traceback',
    'warn',
    'panic',
    'assert',
    'expected',
    'fatal',
    'abort',
    'denied',
    'not found',
    'cannot',
    'unable to',
    'segmentation fault',
    'timed? ?out',
    'undefined reference',
    '^not ok\\b',
    '[✗✘×✕]',
    '❯ .*:\\d+',
    '^\\s+at\\s',
    '^\\s*File ".*", line \\d+',
    '\\.\\w+:\\d+:\\d+',
    '\\.go:\\d+ \\+0x',
    '^\\s*-->\\s',
  ].join('|'),
  'i',
);
// Upper-case markers only: a lower-case `err` is an ordinary Go variable.
const IMPORTANT_CASED = /\bERR!|\bERR\b/;
// Passing-test lines and zero counts mention "fail"/"error" without being a problem.
const PASS_LINE = /^\s*(?:✓|✔|√|PASS\b|ok\s+\d+\b)/;
// A passing test in pytest's verbose listing: `tests/test_x.py::test_y[1] PASSED   [ 12%]`.
const PYTEST_PASSED = /^\S+::\S.*\sPASSED\b/;
// Runs of passing-test lines at least this long fold into one count: which tests passed is
// not worth paying for on every later turn (the runner's summary still counts them).
const MIN_PASSING_RUN = 3;
const ZERO_COUNTS = /\b0 (?:errors?|failures?|failed|failing|warnings?)\b/gi;

// Shorter runs of lines that differ only in digits stay (a short `ls` of numbered files).
const MIN_SIMILAR_RUN = 6;
// A single line longer than this is cut in the middle (minified bundles, base64 blobs).
const MAX_LINE_CHARS = 2_000;
// Share of maxChars given to the head and the tail when the middle must go; the rest holds
// error lines from the middle and the elision markers.
const HEAD_SHARE = 0.3;
const TAIL_SHARE = 0.3;
// What one elision marker costs, with room for its counts.
const MARKER_CHARS = 80;

/**
 * Cleans command output for the model: strips ANSI escape codes and carriage-return progress
 * redraws (keeping the last state of a `\r`-rewritten line), drops progress bars, spinner lines
 * and package-manager chatter (npm, pip, yarn, pnpm, git transfer progress, npm's debug log
 * levels, empty `npm error` lines, the ~~~ and ^^^ column markers under quoted code), folds
 * runs of passing-test lines into a count, collapses runs of
 * identical lines into `line (×N)` and runs of lines that differ only in their digits into
 * first … last, and if the result is still longer than `maxChars` keeps the head and the tail
 * around `… N lines elided …` markers. Lines that look like errors, failures, warnings,
 * assertion output or stack frames are never dropped as chatter or noise and are kept, with
 * one line of context either side, even from the elided middle (up to a share of the budget;
 * the marker says how many were left out). Deterministic and pure.
 */
export function compactOutput(text: string, opts: CompactOutputOptions = {}): string {
  const maxChars = Math.max(200, opts.maxChars ?? DEFAULT_COMPACT_MAX_CHARS);
  const cleaned = splitCleanLines(text);
  const kept = cleaned.filter((line) => !isNoise(line));
  const collapsed = collapseRuns(kept);
  const lineCap = Math.min(MAX_LINE_CHARS, Math.floor(maxChars / 8));
  const capped = collapsed.map((line) => ({ ...line, text: capLine(line.text, lineCap) }));
  return elideMiddle(capped, maxChars);
}

interface Line {
  text: string;
  important: boolean;
}

/** True when a line looks like an error, failure, warning, assertion or stack frame. */
export function isImportantLine(line: string): boolean {
  if (PASS_LINE.test(line)) return false;
  const rest = line.replace(ZERO_COUNTS, '');
  return IMPORTANT_PATTERN.test(rest) || IMPORTANT_CASED.test(rest);
}

function splitCleanLines(text: string): Line[] {
  const stripped = applyBackspaces(text.replace(ANSI_PATTERN, '')).replace(CONTROL_PATTERN, '');
  const lines: Line[] = [];
  for (const raw of stripped.replace(/\r+\n/g, '\n').split('\n')) {
    const line = lastRedraw(raw).trimEnd();
    lines.push({ text: line, important: isImportantLine(line) });
  }
  return lines;
}

// A spinner written as "x\b" pairs: each backspace erases the character before it.
function applyBackspaces(text: string): string {
  if (!text.includes('\b')) return text;
  let current = text;
  for (let pass = 0; pass < 64 && current.includes('\b'); pass += 1) {
    const next = current.replace(/[^\n\b]\x08/g, '');
    if (next === current) break;
    current = next;
  }
  return current.replace(/\x08/g, '');
}

// "Downloading 10%\rDownloading 60%\rDone" shows as "Done" on a terminal.
function lastRedraw(line: string): string {
  if (!line.includes('\r')) return line;
  const states = line.split('\r');
  for (let i = states.length - 1; i >= 0; i -= 1) {
    const state = states[i];
    if (state !== undefined && state.trim() !== '') return state;
  }
  return '';
}

function isNoise(line: Line): boolean {
  const trimmed = line.text.trim();
  if (trimmed === '') return false;
  if (CHATTER_PATTERNS.some((pattern) => pattern.test(trimmed)) || EMPTY_NPM_ERROR.test(trimmed)) return true;
  if (line.important) return false;
  if (NPM_DEBUG_LOG.test(trimmed) || COLUMN_MARKER.test(trimmed)) return true;
  if (SPINNER_START.test(trimmed) || NPM_PROGRESS.test(trimmed) || BARE_PERCENT.test(trimmed)) return true;
  const barChars = trimmed.match(BAR_CHARS)?.length ?? 0;
  return barChars >= 10 && PROGRESS_HINT.test(trimmed);
}

function collapseRuns(lines: readonly Line[]): Line[] {
  const out: Line[] = [];
  let i = 0;
  while (i < lines.length) {
    const first = lines[i];
    if (first === undefined) break;
    if (first.text === '') {
      // Blank runs shrink to one blank line; leading blank lines go entirely.
      let j = i;
      while (j < lines.length && lines[j]?.text === '') j += 1;
      if (out.length > 0 && j < lines.length) out.push(first);
      i = j;
      continue;
    }
    if (isPassingTest(first.text)) {
      let passing = i + 1;
      while (passing < lines.length && isPassingTest(lines[passing]!.text)) passing += 1;
      if (passing - i >= MIN_PASSING_RUN) {
        out.push({ text: `… ${passing - i} passing test lines …`, important: false });
        i = passing;
        continue;
      }
    }
    let identical = i + 1;
    while (identical < lines.length && lines[identical]?.text === first.text) identical += 1;
    if (identical - i > 1) {
      out.push({ text: `${first.text} (×${identical - i})`, important: first.important });
      i = identical;
      continue;
    }
    // Stack frames differ only in line numbers, so only unimportant lines fold by shape.
    let similar = i + 1;
    if (!first.important) {
      const shape = digitShape(first.text);
      while (similar < lines.length) {
        const next = lines[similar];
        if (next === undefined || next.important || digitShape(next.text) !== shape) break;
        similar += 1;
      }
    }
    const count = similar - i;
    if (count >= MIN_SIMILAR_RUN) {
      const last = lines[similar - 1];
      out.push(first, { text: `… ${count - 2} similar lines …`, important: false });
      if (last !== undefined) out.push(last);
      i = similar;
      continue;
    }
    out.push(first);
    i += 1;
  }
  return out;
}

function isPassingTest(text: string): boolean {
  return (PASS_LINE.test(text) || PYTEST_PASSED.test(text)) && !IMPORTANT_CASED.test(text);
}

function digitShape(text: string): string {
  return text.replace(/\d+/g, '0');
}

function capLine(text: string, cap: number): string {
  if (text.length <= cap) return text;
  const head = Math.floor(cap * 0.6);
  const tail = Math.floor(cap * 0.3);
  return `${text.slice(0, head)} … ${text.length - head - tail} chars elided … ${text.slice(-tail)}`;
}

function elideMiddle(lines: readonly Line[], maxChars: number): string {
  const joined = lines.map((line) => line.text).join('\n');
  if (joined.length <= maxChars) return joined;

  const cost = (index: number): number => (lines[index]?.text.length ?? 0) + 1;
  const headBudget = Math.floor(maxChars * HEAD_SHARE);
  const tailBudget = Math.floor(maxChars * TAIL_SHARE);
  let head = 0;
  for (let used = 0; head < lines.length && used + cost(head) <= headBudget; head += 1) used += cost(head);
  let tail = lines.length;
  for (let used = 0; tail > head && used + cost(tail - 1) <= tailBudget; tail -= 1) used += cost(tail - 1);

  // From the middle [head, tail), keep important lines with one line of context either side,
  // in order, while they fit in what the head and tail left over.
  const middleBudget = maxChars - headBudget - tailBudget - MARKER_CHARS;
  const keep = new Set<number>();
  let used = 0;
  for (let i = head; i < tail; i += 1) {
    if (!lines[i]?.important) continue;
    const group = [i - 1, i, i + 1].filter((j) => j >= head && j < tail && !keep.has(j));
    const startsSegment = !keep.has(i - 1);
    const groupCost = group.reduce((sum, j) => sum + cost(j), 0) + (startsSegment ? MARKER_CHARS : 0);
    if (used + groupCost > middleBudget) continue;
    used += groupCost;
    for (const j of group) keep.add(j);
  }

  const out: string[] = [];
  for (let i = 0; i < head; i += 1) out.push(lines[i]?.text ?? '');
  let gapStart = -1;
  let gapImportant = 0;
  const closeGap = (end: number): void => {
    if (gapStart < 0) return;
    const count = end - gapStart;
    const note = gapImportant > 0 ? ` (${gapImportant} error-like ${gapImportant === 1 ? 'line' : 'lines'} among them)` : '';
    out.push(`… ${count} ${count === 1 ? 'line' : 'lines'} elided${note} …`);
    gapStart = -1;
    gapImportant = 0;
  };
  for (let i = head; i < tail; i += 1) {
    if (keep.has(i)) {
      closeGap(i);
      out.push(lines[i]?.text ?? '');
    } else {
      if (gapStart < 0) gapStart = i;
      if (lines[i]?.important) gapImportant += 1;
    }
  }
  closeGap(tail);
  for (let i = tail; i < lines.length; i += 1) out.push(lines[i]?.text ?? '');

  const result = out.join('\n');
  // Only reachable with a tiny maxChars and one enormous line; a hard cut keeps the promise.
  if (result.length <= maxChars) return result;
  const half = Math.floor((maxChars - MARKER_CHARS) / 2);
  return `${result.slice(0, half)}\n… ${result.length - 2 * half} chars elided …\n${result.slice(-half)}`;
}
