/**
 * One file of a change, as `git diff --numstat` reports it: `null` counts mean a binary file.
 * Renames must already be split into `oldPath` and `path` (use `-z`; the default
 * `dir/{old => new}` form is not parsed here).
 */
export interface ChangeEntry {
  readonly path: string;
  readonly added: number | null;
  readonly removed: number | null;
  readonly oldPath?: string;
}

/** Kinds of file a reviewer should look at twice, in matching priority order. */
export const SENSITIVE_KINDS = ['secrets', 'ci', 'dependencies', 'migrations', 'auth'] as const;

/** One kind of sensitive file. */
export type SensitiveKind = (typeof SENSITIVE_KINDS)[number];

/** How each kind reads in a card. */
export const SENSITIVE_LABELS: Readonly<Record<SensitiveKind, string>> = {
  secrets: 'secrets',
  ci: 'CI config',
  dependencies: 'dependencies',
  migrations: 'migrations',
  auth: 'auth',
};

/** A sensitive file of a change; `oldPath` is set when it was renamed. */
export interface SensitiveFile {
  readonly path: string;
  readonly kind: SensitiveKind;
  readonly oldPath?: string;
}

/** A file by size of its change. */
export interface ChangedFile {
  readonly path: string;
  readonly added: number;
  readonly removed: number;
}

/** What code (not a model) can say about a change. */
export interface ChangeSummary {
  readonly files: number;
  readonly added: number;
  readonly removed: number;
  readonly binary: number;
  readonly sensitive: SensitiveFile[];
  readonly largest: ChangedFile[];
}

/** How many of the largest files a summary lists. @default 5 */
export const LARGEST_FILES_SHOWN = 5;

const DEPENDENCY_FILES = new Set([
  'package.json',
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'bun.lockb',
  'pipfile',
  'pipfile.lock',
  'poetry.lock',
  'pyproject.toml',
  'go.mod',
  'go.sum',
  'cargo.toml',
  'cargo.lock',
  'gemfile',
  'gemfile.lock',
  'composer.json',
  'composer.lock',
  'pom.xml',
  'build.gradle',
  'build.gradle.kts',
]);

const CI_FILES = new Set(['.gitlab-ci.yml', '.gitlab-ci.yaml', 'jenkinsfile', 'azure-pipelines.yml', 'azure-pipelines.yaml', '.travis.yml']);
const CI_DIRS = new Set(['.circleci', '.buildkite']);
const SECRET_FILES = new Set(['.npmrc', '.netrc', '.pypirc']);
const SECRET_EXTENSIONS = ['.pem', '.key', '.p12', '.pfx'];
const MIGRATION_STEMS = new Set(['migrations', 'migrate']);

// Whole words only: "author" and "tokenizer" are not auth. A plural "s" is also accepted.
const AUTH_WORDS = new Set([
  'auth',
  'authn',
  'authz',
  'authenticate',
  'authentication',
  'authenticator',
  'authorize',
  'authorization',
  'authorizer',
  'oauth',
  'login',
  'logout',
  'signin',
  'session',
  'password',
  'passwd',
  'jwt',
  'permission',
  'acl',
  'rbac',
  'crypto',
  'token',
]);

/** "accessToken.ts" → access, token, ts; "OAuth2Client" → o, auth, 2, client. */
function words(segment: string): string[] {
  return segment
    .replace(/(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])/g, ' ')
    .replace(/(?<=[a-zA-Z])(?=[0-9])|(?<=[0-9])(?=[a-zA-Z])/g, ' ')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w !== '');
}

function isAuthWord(word: string): boolean {
  return AUTH_WORDS.has(word) || (word.endsWith('s') && AUTH_WORDS.has(word.slice(0, -1)));
}

function stem(name: string): string {
  const dot = name.indexOf('.', 1);
  return dot === -1 ? name : name.slice(0, dot);
}

function kindsOf(path: string): Record<SensitiveKind, boolean> {
  const original = path.replace(/\\/g, '/').replace(/^(\.\/)+/, '').split('/').filter((s) => s !== '');
  const segments = original.map((s) => s.toLowerCase());
  const base = segments.at(-1) ?? '';
  const dirs = segments.slice(0, -1);
  return {
    secrets:
      base.startsWith('.env') ||
      base.startsWith('id_rsa') ||
      SECRET_FILES.has(base) ||
      SECRET_EXTENSIONS.some((ext) => base.endsWith(ext)) ||
      segments.some((s) => s.includes('secret') || s.includes('credential')),
    ci:
      CI_FILES.has(base) ||
      dirs.some((s) => CI_DIRS.has(s)) ||
      (segments[0] === '.github' && (segments[1] === 'workflows' || segments[1] === 'actions') && segments.length > 2),
    dependencies:
      DEPENDENCY_FILES.has(base) || base.endsWith('.csproj') || (base.startsWith('requirements') && base.endsWith('.txt')),
    migrations: segments.some((s) => MIGRATION_STEMS.has(stem(s)) || s.includes('migration')),
    auth: original.some((s) => words(s).some(isAuthWord)),
  };
}

/**
 * The kind of sensitive file `path` is, or undefined. When several fit, the first of
 * secrets, ci, dependencies, migrations, auth wins. Matching is case-insensitive.
 */
export function sensitiveKind(path: string): SensitiveKind | undefined {
  const kinds = kindsOf(path);
  return SENSITIVE_KINDS.find((k) => kinds[k]);
}

/** The kind of a changed file, also judging the path a rename moved it away from. */
function entryKind(entry: ChangeEntry): SensitiveKind | undefined {
  const now = sensitiveKind(entry.path);
  const before = entry.oldPath === undefined ? undefined : sensitiveKind(entry.oldPath);
  return SENSITIVE_KINDS.find((k) => k === now || k === before);
}

/**
 * Counts, sensitive files (in input order) and the largest text files of a change. Binary
 * files count toward `files` and `binary` but not the line totals or `largest`; files with no
 * changed lines (pure renames) are left out of `largest`; ties keep input order.
 */
export function summarizeChanges(entries: readonly ChangeEntry[]): ChangeSummary {
  let added = 0;
  let removed = 0;
  let binary = 0;
  const sensitive: SensitiveFile[] = [];
  const text: ChangedFile[] = [];
  for (const entry of entries) {
    if (entry.added === null || entry.removed === null) binary++;
    else {
      added += entry.added;
      removed += entry.removed;
      if (entry.added + entry.removed > 0) text.push({ path: entry.path, added: entry.added, removed: entry.removed });
    }
    const kind = entryKind(entry);
    if (kind) sensitive.push(entry.oldPath === undefined ? { path: entry.path, kind } : { path: entry.path, kind, oldPath: entry.oldPath });
  }
  const largest = text.sort((a, b) => b.added + b.removed - (a.added + a.removed)).slice(0, LARGEST_FILES_SHOWN);
  return { files: entries.length, added, removed, binary, sensitive, largest };
}

/** "touches CI config (1), dependencies (2), auth (1)" in kind order, or '' when nothing is sensitive. */
export function describeSensitive(sensitive: readonly Pick<SensitiveFile, 'kind'>[]): string {
  const parts = SENSITIVE_KINDS.flatMap((kind) => {
    const count = sensitive.filter((s) => s.kind === kind).length;
    return count === 0 ? [] : [`${SENSITIVE_LABELS[kind]} (${count})`];
  });
  return parts.length === 0 ? '' : `touches ${parts.join(', ')}`;
}
