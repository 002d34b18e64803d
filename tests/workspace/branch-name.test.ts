import { describe, expect, it } from 'vitest';
import { branchName } from '../../src/workspace/create-workspace.js';
import { git } from '../helpers/git-fixture.js';

describe('branchName', () => {
  it.each([
    [12, 'Add a --json flag', 'nightshift/12-add-a-json-flag'],
    [1, '--Fix: the bug!!', 'nightshift/1-fix-the-bug'],
    [1, 'Café au lait: ünïcödé', 'nightshift/1-cafe-au-lait-unicode'],
    [1, 'Fix `x.y` in src/a_b.ts', 'nightshift/1-fix-x-y-in-src-a-b-ts'],
    [7, '🚀 日本語', 'nightshift/7-change'],
    [7, '', 'nightshift/7-change'],
    [7, '   ---   ', 'nightshift/7-change'],
  ])('%i %j → %s', (id, title, expected) => {
    expect(branchName(id, title)).toBe(expected);
  });

  it('cuts the slug at 40 characters without a trailing dash', () => {
    // The 40th character of this slug is a dash.
    const branch = branchName(3, 'abcdefghi '.repeat(10));
    const slug = branch.slice('nightshift/3-'.length);
    expect(slug.length).toBeLessThanOrEqual(40);
    expect(slug).toBe('abcdefghi-abcdefghi-abcdefghi-abcdefghi');
    expect(branchName(3, 'x'.repeat(100))).toBe(`nightshift/3-${'x'.repeat(40)}`);
  });

  it('always makes a name git accepts', () => {
    for (const title of ['a..b', 'a.lock', 'x@{y}', 'a\\b', 'end.', '..', 'HEAD']) {
      expect(git(process.cwd(), 'check-ref-format', '--branch', branchName(5, title))).toBe(branchName(5, title));
    }
  });

  it('refuses ids that are not positive integers', () => {
    expect(() => branchName(0, 'x')).toThrow(RangeError);
    expect(() => branchName(1.5, 'x')).toThrow(RangeError);
  });
});
