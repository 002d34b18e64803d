import { describe, expect, it } from 'vitest';
import { escapeHtml, html, splitHtml, TELEGRAM_TEXT_LIMIT } from '../../src/telegram/format.js';

// Telegram's rule, simplified: tags balanced and nested, no bare < or stray &.
function parsesAsTelegramHtml(text: string): boolean {
  const stack: string[] = [];
  for (const m of text.matchAll(/<(\/?)([a-z-]+)[^>]*>|&[#a-z0-9]+;|[<>&]/gi)) {
    if (m[0] === '<' || m[0] === '>' || m[0] === '&') return false;
    if (!m[2]) continue;
    if (m[1]) {
      if (stack.pop() !== m[2]) return false;
    } else stack.push(m[2]);
  }
  return stack.length === 0;
}

describe('escapeHtml / html', () => {
  it('escapes what Telegram HTML needs escaped', () => {
    expect(escapeHtml('a < b && c > "d"')).toBe('a &lt; b &amp;&amp; c &gt; &quot;d&quot;');
    expect(html`<b>${'<script>'}</b> ${42}`).toBe('<b>&lt;script&gt;</b> 42');
  });
});

describe('splitHtml', () => {
  it('leaves short text alone', () => {
    expect(splitHtml('hello')).toEqual(['hello']);
  });

  it('splits on line boundaries, each part within the limit', () => {
    const lines = Array.from({ length: 400 }, (_, i) => `line ${i} ${'x'.repeat(20)}`);
    const parts = splitHtml(lines.join('\n'));
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(TELEGRAM_TEXT_LIMIT);
    expect(parts.join('\n')).toBe(lines.join('\n'));
    for (const part of parts) expect(part.startsWith('line ')).toBe(true);
  });

  it('never cuts an entity or a tag, and re-opens tags across parts', () => {
    const text = '<b>' + '&amp; word '.repeat(1000) + '</b>\n<pre>' + 'a&lt;b\n'.repeat(900) + '</pre>';
    const parts = splitHtml(text, 1000);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(1000);
      expect(parsesAsTelegramHtml(part)).toBe(true);
    }
    const plain = (s: string) => s.replace(/<[^>]+>/g, '').replace(/\s+/g, '');
    expect(parts.map(plain).join('')).toBe(plain(text));
  });

  it('hard-splits a single line with no spaces', () => {
    const parts = splitHtml('y'.repeat(9000));
    expect(parts.map((p) => p.length)).toEqual([4096, 4096, 808]);
  });
});
