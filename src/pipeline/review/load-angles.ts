import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadPrompt, PROMPTS_DIR, PromptError, renderPrompt } from '../../llm/render-prompt.js';

/** One review angle: a static checklist sent after the shared, cached review context. */
export interface ReviewAngle {
  readonly name: string;
  readonly source: 'builtin' | 'repo';
  /** The angle file's body, frontmatter stripped. */
  readonly checklist: string;
}

/** What {@link loadAngles} found: the angles to run, and the files it passed over with why. */
export interface LoadedAngles {
  angles: ReviewAngle[];
  skipped: Array<{ path: string; reason: string }>;
}

/** A valid angle name; it also ends up in the finding ledger and on the review card. */
export const ANGLE_NAME = /^[a-z0-9][a-z0-9-]{0,40}$/;

/** A repo angle's checklist is cut to this many characters: it is paid for on every review. */
export const MAX_REPO_ANGLE_CHARS = 20_000;

/** The folder of a repository that holds its own angles, on its default branch. */
export const REPO_ANGLES_DIR = '.nightshift/review/';

/** The shared context in `prompts/review/`: not an angle. */
const CONTEXT_FILE = 'context.md';

/**
 * Loads the review angles. Built-in angles are `prompts/review/*.md` (every file except
 * `context.md`), named after their file. Repo angles are the repository's
 * `.nightshift/review/*.md`, passed in as `repoFiles` (repo-relative path → content), because
 * reading git is the workspace's job; the caller must read them from the default branch, never
 * from the pull request under review, or a PR could rewrite its own review. A repo angle with
 * the same name as a built-in one replaces it. A repo file may lack frontmatter (its name is
 * then its file name without `.md`); its body is the repo owner's text, used as-is (no
 * placeholders are expanded) and cut to {@link MAX_REPO_ANGLE_CHARS}. Files whose angle name
 * does not match {@link ANGLE_NAME}, that are not directly in `.nightshift/review/`, that are
 * empty, or that repeat a repo angle's name are skipped and listed in `skipped`.
 *
 * The result is sorted by name. A malformed built-in file (bad frontmatter, declared inputs, a
 * placeholder) throws {@link PromptError}: it is an installation bug, not input.
 */
export function loadAngles(opts: { promptsDir?: string; repoFiles?: ReadonlyMap<string, string> } = {}): LoadedAngles {
  const byName = new Map<string, ReviewAngle>();
  const skipped: LoadedAngles['skipped'] = [];

  const dir = `${join(opts.promptsDir ?? PROMPTS_DIR, 'review')}/`;
  const files = readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.md') && entry.name !== CONTEXT_FILE)
    .map((entry) => entry.name)
    .sort();
  for (const file of files) {
    const name = file.slice(0, -'.md'.length);
    if (!ANGLE_NAME.test(name)) {
      skipped.push({ path: `${dir}${file}`, reason: badName(name) });
      continue;
    }
    const prompt = loadPrompt(name, dir);
    if (prompt.inputs.length > 0) {
      // The angle follows the cached context, so anything variable in it would belong there.
      throw new PromptError(`review angle ${name}: an angle is static text and takes no inputs`);
    }
    // Rendering with no variables rejects a stray {{placeholder}} in the checklist.
    byName.set(name, { name, source: 'builtin', checklist: renderPrompt(prompt, {}) });
  }

  const repoNames = new Map<string, string>();
  const repoFiles = [...(opts.repoFiles ?? new Map<string, string>())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [path, content] of repoFiles) {
    const fileName = /^\.nightshift\/review\/([^/]+)\.md$/.exec(path)?.[1];
    if (fileName === undefined) {
      skipped.push({ path, reason: `not a ${REPO_ANGLES_DIR}*.md file` });
      continue;
    }
    const { name = fileName, body } = parseRepoAngle(content);
    if (!ANGLE_NAME.test(name)) {
      skipped.push({ path, reason: badName(name) });
      continue;
    }
    const earlier = repoNames.get(name);
    if (earlier !== undefined) {
      skipped.push({ path, reason: `angle ${name} is already defined by ${earlier}` });
      continue;
    }
    if (body.trim() === '') {
      skipped.push({ path, reason: 'empty checklist' });
      continue;
    }
    repoNames.set(name, path);
    byName.set(name, { name, source: 'repo', checklist: cap(body, MAX_REPO_ANGLE_CHARS) });
  }

  const angles = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { angles, skipped };
}

/**
 * Splits an optional frontmatter off a repo angle file. A local regex rather than loadPrompt's
 * parser: repo files come from a map, not the prompts folder, may lack frontmatter or use CRLF,
 * and loadPrompt does not export its parser.
 */
function parseRepoAngle(content: string): { name?: string; body: string } {
  const match = /^\uFEFF?---\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)([\s\S]*)$/.exec(content);
  if (!match) return { body: content.replace(/^\uFEFF/, '') };
  const name = /^name:[ \t]*(.*?)[ \t]*$/m.exec(match[1]!)?.[1]?.replace(/^(["'])(.*)\1$/, '$2');
  return name ? { name, body: match[2]! } : { body: match[2]! };
}

function badName(name: string): string {
  return `angle name ${JSON.stringify(name)} does not match ${String(ANGLE_NAME)}`;
}

/** Cuts text to at most `max` UTF-16 units without splitting a surrogate pair. */
function cap(text: string, max: number): string {
  if (text.length <= max) return text;
  const last = text.charCodeAt(max - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}
