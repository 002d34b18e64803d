/**
 * The sandbox's minimal GitHub pull request page: title, state, body, the diff (read from the
 * real bare repository) and the comments. The stand-in GitHub's `html_url`s point here.
 */
import { runGit, type BareRepo } from './bare-repo.js';
import type { FakePullInRepo } from './github-server.js';
import { escapeHtmlText } from './render-telegram-html.js';

/** A diff larger than this is cut: the page is for a glance, the repo has the rest. */
const MAX_DIFF_CHARS = 200_000;

/**
 * The PR's diff as GitHub shows it: from where head left the base branch to the head commit it
 * had when it was merged or closed (squash merges leave head off the base, so `base...head`
 * still finds that point). Empty when git cannot tell (a branch deleted before it was fetched).
 */
export function pullDiff(bare: BareRepo, pull: FakePullInRepo): string {
  try {
    const diff = runGit(bare.path, ['diff', '--no-color', '--no-ext-diff', `refs/heads/${pull.base}...${pull.head_sha}`]);
    return diff.length > MAX_DIFF_CHARS ? `${diff.slice(0, MAX_DIFF_CHARS)}\n… (diff cut)` : diff;
  } catch {
    return '';
  }
}

/** The state GitHub shows in its badge. */
export function pullStateLabel(pull: FakePullInRepo): 'Merged' | 'Closed' | 'Open' {
  return pull.merged ? 'Merged' : pull.state === 'closed' ? 'Closed' : 'Open';
}

/** The whole page, self-contained (inline CSS, no script). */
export function renderPullPage(pull: FakePullInRepo, diff: string): string {
  const state = pullStateLabel(pull);
  const lines = diff
    .split('\n')
    .map((line) => {
      const kind = line.startsWith('+++') || line.startsWith('---') || line.startsWith('diff ') ? 'file' : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : line.startsWith('@@') ? 'hunk' : '';
      return `<span class="${kind}">${escapeHtmlText(line)}</span>`;
    })
    // Each line is its own block; a newline between them would double the spacing.
    .join('');
  const comments = pull.comments
    .map((c) => `<li><pre class="comment">${escapeHtmlText(c.body)}</pre></li>`)
    .join('');
  const merged = pull.merged && pull.merge_commit_sha ? ` as <code>${escapeHtmlText(pull.merge_commit_sha.slice(0, 7))}</code>` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtmlText(pull.title)} · ${escapeHtmlText(pull.repo)}#${pull.number}</title>
<style>
  body { font: 16px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem; color: #1f2328; }
  h1 { font-size: 1.4rem; margin: 0.2rem 0; }
  .meta { color: #59636e; }
  .state { display: inline-block; padding: 0.15rem 0.7rem; border-radius: 1rem; color: #fff; font-weight: 600; }
  .state-Merged { background: #8250df; } .state-Open { background: #1f883d; } .state-Closed { background: #cf222e; }
  pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: 0.75rem; border-radius: 6px; overflow-x: auto; }
  .diff span { display: block; min-height: 1.45em; } .add { background: #dafbe1; } .del { background: #ffebe9; } .hunk { color: #0969da; } .file { font-weight: 600; }
  ul { list-style: none; padding: 0; }
  .sandbox { background: #fff8c5; padding: 0.5rem 0.75rem; border-radius: 6px; }
</style>
</head>
<body>
<p class="sandbox">Sandbox stand-in for GitHub: this pull request exists only on this machine.</p>
<h1>${escapeHtmlText(pull.title)} <span class="meta">#${pull.number}</span></h1>
<p><span class="state state-${state}" data-state="${state}">${state}</span>
  <span class="meta">${escapeHtmlText(pull.repo)}: <code>${escapeHtmlText(pull.head)}</code> into <code>${escapeHtmlText(pull.base)}</code>${merged}</span></p>
<h2>Description</h2>
<pre class="body">${escapeHtmlText(pull.body || '(no description)')}</pre>
<h2>Changes</h2>
<pre class="diff">${lines || '(no changes)'}</pre>
<h2>Comments (${pull.comments.length})</h2>
<ul>${comments}</ul>
</body>
</html>
`;
}
