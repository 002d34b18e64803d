import { revealInvisible } from './visible-text.js';

/** A repository as the domain sees it: `owner/name`. */
export interface RepoName {
  readonly owner: string;
  readonly name: string;
  readonly fullName: string;
}

/** What a user's message asks for: the target repo and the request text. */
export type ParsedRequest =
  | { readonly kind: 'ok'; readonly repo: RepoName; readonly text: string }
  | { readonly kind: 'empty' }
  | { readonly kind: 'unknown-repo'; readonly asked: string }
  | { readonly kind: 'ambiguous-repo'; readonly asked: string; readonly matches: readonly RepoName[] };

// A leading "target:" is a repo only if it is one token: "name" or "owner/name".
const PREFIX_RE = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*(?:\/[A-Za-z0-9._-]+)?)\s*:\s*([\s\S]*)$/;

// Conventional-commit words people start requests with ("fix: the login bug"). They are
// read as text, not as a misspelt repo, unless a configured repo has that exact name.
const COMMIT_TYPES = new Set([
  'fix', 'feat', 'feature', 'chore', 'docs', 'doc', 'refactor', 'test', 'tests', 'perf', 'ci',
  'build', 'style', 'revert', 'bug', 'todo', 'note', 'idea', 'task', 'http', 'https',
]);

/**
 * Splits "repo: text" / "owner/name: text" / "text" into a target repo and the request.
 * The first repo in `repos` is the default. Repo names match case-insensitively.
 */
export function parseRequest(input: string, repos: readonly RepoName[]): ParsedRequest {
  const [defaultRepo] = repos;
  if (!defaultRepo) throw new Error('parseRequest needs at least one repo');
  const trimmed = input.trim();
  if (trimmed === '') return { kind: 'empty' };

  const match = PREFIX_RE.exec(trimmed);
  if (!match) return { kind: 'ok', repo: defaultRepo, text: trimmed };
  const asked = match[1] ?? '';
  const rest = (match[2] ?? '').trim();
  const key = asked.toLowerCase();

  if (key.includes('/')) {
    const repo = repos.find((r) => r.fullName.toLowerCase() === key);
    if (!repo) return { kind: 'unknown-repo', asked };
    return rest === '' ? { kind: 'empty' } : { kind: 'ok', repo, text: rest };
  }
  const matches = repos.filter((r) => r.name.toLowerCase() === key);
  if (matches.length > 1) return { kind: 'ambiguous-repo', asked, matches };
  const [repo] = matches;
  if (repo) return rest === '' ? { kind: 'empty' } : { kind: 'ok', repo, text: rest };
  // "sitee: …" is a typo of a repo name: ask rather than queue for the wrong repo. Anything
  // else ("TypeError: x is undefined", "Note: …") is just text that happens to have a colon.
  if (!COMMIT_TYPES.has(key) && repos.some((r) => isLikelyTypo(key, r.name.toLowerCase()))) {
    return { kind: 'unknown-repo', asked };
  }
  return { kind: 'ok', repo: defaultRepo, text: trimmed };
}

/** Whether `word` is within two edits of `name`, and not most of a rewrite of a short name. */
function isLikelyTypo(word: string, name: string): boolean {
  const distance = editDistance(word, name);
  return distance <= 2 && distance * 2 < Math.max(word.length, name.length);
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Maximum length of an item title, in characters. @default 80 */
export const TITLE_MAX_CHARS = 80;

/**
 * A one-line title from the request: its first non-empty line, invisible and bidi characters
 * shown (see revealInvisible; the title is what the user, the PR and the card read), shortened
 * at a word boundary.
 */
export function titleFromRequest(text: string): string {
  const firstLine = revealInvisible(text.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? '');
  const chars = [...firstLine];
  if (chars.length <= TITLE_MAX_CHARS) return firstLine;
  const cut = chars.slice(0, TITLE_MAX_CHARS - 1).join('');
  const space = cut.lastIndexOf(' ');
  return `${space > TITLE_MAX_CHARS / 2 ? cut.slice(0, space) : cut}…`;
}
