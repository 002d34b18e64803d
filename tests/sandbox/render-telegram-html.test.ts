import { describe, expect, it } from 'vitest';
import { renderTelegramHtml } from '../../src/sandbox/render-telegram-html.js';

describe('renderTelegramHtml', () => {
  it('keeps the tags Telegram allows and decodes its entities into safe text', () => {
    expect(renderTelegramHtml('<b>#1</b> <i>x</i> <code>a &lt; b &amp;&amp; c</code> <s>old</s>', 'HTML')).toBe('<b>#1</b> <i>x</i> <code>a &lt; b &amp;&amp; c</code> <s>old</s>');
    expect(renderTelegramHtml('<strong>a</strong><em>b</em><ins>c</ins><del>d</del>', 'HTML')).toBe('<b>a</b><i>b</i><u>c</u><s>d</s>');
    expect(renderTelegramHtml('<tg-spoiler>s</tg-spoiler> <span class="tg-spoiler">t</span>', 'HTML')).toBe('<span class="spoiler">s</span> <span class="spoiler">t</span>');
    expect(renderTelegramHtml('<pre><code class="language-ts">x</code></pre>', 'HTML')).toBe('<pre><code class="language-ts">x</code></pre>');
    expect(renderTelegramHtml('&#128512; &#x1F600; &quot;q&quot;', 'HTML')).toBe('😀 😀 &quot;q&quot;');
  });

  it('lets links open only web and tg: URLs, in a new tab', () => {
    expect(renderTelegramHtml('<a href="http://127.0.0.1:8790/github/o/r/pull/1">PR #1</a>', 'HTML')).toBe(
      '<a href="http://127.0.0.1:8790/github/o/r/pull/1" target="_blank" rel="noopener noreferrer">PR #1</a>',
    );
    expect(renderTelegramHtml('<a href="javascript:alert(1)">x</a>', 'HTML')).toBe('<a>x</a>');
    expect(renderTelegramHtml('<a href="https://e.x/?a=1&amp;b=&quot;2">x</a>', 'HTML')).toBe('<a>x</a>');
    expect(renderTelegramHtml('<a href="https://e.x/?a=1&amp;b=2" onclick="evil()">x</a>', 'HTML')).toBe('<a href="https://e.x/?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">x</a>');
  });

  it('shows anything else as text: unknown tags, attributes, stray brackets, unbalanced tags', () => {
    expect(renderTelegramHtml('<img src=x onerror=alert(1)><script>alert(1)</script>', 'HTML')).toBe('&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(renderTelegramHtml('<b onclick="x()">bold</b>', 'HTML')).toBe('<b>bold</b>');
    expect(renderTelegramHtml('1 < 2 > 0', 'HTML')).toBe('1 &lt; 2 &gt; 0');
    expect(renderTelegramHtml('<b><i>open', 'HTML')).toBe('<b><i>open</i></b>');
    expect(renderTelegramHtml('stray</b> <b>x<i>y</b>z', 'HTML')).toBe('stray <b>x<i>y</i></b>z');
  });

  it('escapes everything when the message is not HTML', () => {
    expect(renderTelegramHtml('<b>not bold</b> & "q"')).toBe('&lt;b&gt;not bold&lt;/b&gt; &amp; &quot;q&quot;');
  });
});
