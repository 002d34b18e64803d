import { describe, expect, it } from 'vitest';
import { revealInvisible } from '../../src/domain/visible-text.js';
import { titleFromRequest } from '../../src/domain/parse-request.js';

describe('revealInvisible', () => {
  it('shows zero-width, bidi, tag and control characters as code points', () => {
    expect(revealInvisible('a\u200Bb\u202Ec\u202Cd\u2066e\u2069\u200E\uFEFF')).toBe('a[U+200B]b[U+202E]c[U+202C]d[U+2066]e[U+2069][U+200E][U+FEFF]');
    expect(revealInvisible(`x${String.fromCodePoint(0xe0061, 0xe0070)}y`)).toBe('x[U+E0061][U+E0070]y');
    expect(revealInvisible('bell\u0007 esc\u001B del\u007F')).toBe('bell[U+0007] esc[U+001B] del[U+007F]');
  });

  it('keeps ordinary text, tabs, line breaks and emoji sequences joined by ZWJ', () => {
    const text = 'Fix café <b> & "x"\tnext\nline 👩‍💻 ❤️‍🔥 👍🏽‍';
    expect(revealInvisible(text)).toBe(text.slice(0, -1) + '[U+200D]');
    expect(revealInvisible('a\u200Db')).toBe('a[U+200D]b');
  });

  it('is idempotent', () => {
    const once = revealInvisible('a\u202Eb');
    expect(revealInvisible(once)).toBe(once);
  });

  it('applies to titles made from requests', () => {
    expect(titleFromRequest('  Add greet\u200B helper \u202Eevil\n second line')).toBe('Add greet[U+200B] helper [U+202E]evil');
  });
});
