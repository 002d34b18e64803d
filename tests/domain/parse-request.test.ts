import { describe, expect, it } from 'vitest';
import { parseRequest, titleFromRequest, TITLE_MAX_CHARS, type RepoName } from '../../src/domain/parse-request.js';

const repo = (fullName: string): RepoName => {
  const [owner = '', name = ''] = fullName.split('/');
  return { owner, name, fullName };
};
const repos = [repo('me/app'), repo('me/site'), repo('other/site2')];

describe('parseRequest', () => {
  it('queues plain text for the default repo', () => {
    expect(parseRequest('  Add a --json flag  ', repos)).toEqual({ kind: 'ok', repo: repos[0], text: 'Add a --json flag' });
  });

  it('targets a repo by name or owner/name, case-insensitively', () => {
    expect(parseRequest('site: fix the footer', repos)).toEqual({ kind: 'ok', repo: repos[1], text: 'fix the footer' });
    expect(parseRequest('Other/Site2:  tidy up\nmore lines', repos)).toEqual({ kind: 'ok', repo: repos[2], text: 'tidy up\nmore lines' });
  });

  it('reports an unknown owner/name or a misspelt repo name instead of guessing', () => {
    expect(parseRequest('nope/repo: do it', repos)).toEqual({ kind: 'unknown-repo', asked: 'nope/repo' });
    expect(parseRequest('sitee: do it', repos)).toEqual({ kind: 'unknown-repo', asked: 'sitee' });
    expect(parseRequest('ap: do it', repos)).toEqual({ kind: 'unknown-repo', asked: 'ap' });
  });

  it('reads a pasted error or a time as text, not as a repo', () => {
    expect(parseRequest('TypeError: x is undefined', repos)).toMatchObject({ kind: 'ok', repo: repos[0], text: 'TypeError: x is undefined' });
    expect(parseRequest('12:30 deploy breaks', repos)).toMatchObject({ kind: 'ok', text: '12:30 deploy breaks' });
    expect(parseRequest('localhost:3000 is slow', repos)).toMatchObject({ kind: 'ok', text: 'localhost:3000 is slow' });
  });

  it('reads conventional-commit words and sentences with colons as text', () => {
    expect(parseRequest('fix: the login bug', repos)).toMatchObject({ kind: 'ok', repo: repos[0], text: 'fix: the login bug' });
    expect(parseRequest('Note the deadline: Friday', repos)).toMatchObject({ kind: 'ok', text: 'Note the deadline: Friday' });
    expect(parseRequest('see https://example.com/x', repos)).toMatchObject({ kind: 'ok', text: 'see https://example.com/x' });
  });

  it('says when a short name matches two repos', () => {
    const twins = [repo('a/web'), repo('b/web')];
    expect(parseRequest('web: x', twins)).toMatchObject({ kind: 'ambiguous-repo', asked: 'web' });
  });

  it('treats an empty request as empty, also after a repo prefix', () => {
    expect(parseRequest('   ', repos)).toEqual({ kind: 'empty' });
    expect(parseRequest('site:   ', repos)).toEqual({ kind: 'empty' });
  });
});

describe('titleFromRequest', () => {
  it('takes the first non-empty line', () => {
    expect(titleFromRequest('\n  Fix login  \nmore detail')).toBe('Fix login');
  });

  it('shortens long lines at a word boundary', () => {
    const title = titleFromRequest('word '.repeat(40));
    expect([...title].length).toBeLessThanOrEqual(TITLE_MAX_CHARS);
    expect(title.endsWith('word…')).toBe(true);
  });
});
