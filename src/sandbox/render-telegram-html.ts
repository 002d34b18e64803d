/**
 * Telegram's HTML parse mode, turned into HTML that is safe to put into the sandbox page: only
 * the tags Telegram allows survive, with no attribute but a checked `href` (and a code block's
 * language); everything else, stray `<` included, is shown as text. The bot's messages pass
 * through the strict fake first, so this is a second line, for what a bug or a model writes.
 */

/** Telegram's tags (https://core.telegram.org/bots/api#html-style) and what the page uses for each. */
const TAGS: Readonly<Record<string, string>> = {
  b: 'b',
  strong: 'b',
  i: 'i',
  em: 'i',
  u: 'u',
  ins: 'u',
  s: 's',
  strike: 's',
  del: 's',
  a: 'a',
  code: 'code',
  pre: 'pre',
  blockquote: 'blockquote',
  'tg-spoiler': 'span',
  span: 'span',
};

/** Links a tap may follow: the web and Telegram's own. */
const SAFE_HREF = /^(?:https?:\/\/|tg:\/\/)[^\s"'<>]*$/i;

/** Escapes text for an HTML text node or a double-quoted attribute. */
export function escapeHtmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Renders a message: `parseMode` 'HTML' as Telegram's HTML, anything else as plain text. */
export function renderTelegramHtml(source: string, parseMode?: string): string {
  if (parseMode !== 'HTML') return escapeHtmlText(source);
  const out: string[] = [];
  const open: string[] = [];
  const tagRe = /<(\/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^>]*)?)>/y;
  let text = '';
  const flushText = (): void => {
    out.push(escapeHtmlText(decodeEntities(text)));
    text = '';
  };
  let i = 0;
  while (i < source.length) {
    if (source[i] !== '<') {
      text += source[i];
      i++;
      continue;
    }
    tagRe.lastIndex = i;
    const m = tagRe.exec(source);
    const name = m?.[2]?.toLowerCase();
    const mapped = name === undefined ? undefined : TAGS[name];
    if (!m || mapped === undefined) {
      text += '<';
      i++;
      continue;
    }
    flushText();
    i = tagRe.lastIndex;
    if (m[1] === '/') {
      // Close the innermost matching tag (and anything left open inside it); a stray end tag is dropped.
      const at = open.lastIndexOf(name!);
      if (at >= 0) {
        for (const inner of open.splice(at).reverse()) out.push(`</${TAGS[inner]}>`);
      }
      continue;
    }
    open.push(name!);
    out.push(openTag(name!, mapped, m[3] ?? ''));
  }
  flushText();
  for (const inner of open.reverse()) out.push(`</${TAGS[inner]}>`);
  return out.join('');
}

function openTag(name: string, mapped: string, attrs: string): string {
  if (name === 'a') {
    const href = decodeEntities(/\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/i.exec(attrs)?.slice(1).find((v) => v !== undefined) ?? '');
    return SAFE_HREF.test(href) ? `<a href="${escapeHtmlText(href)}" target="_blank" rel="noopener noreferrer">` : '<a>';
  }
  if (name === 'tg-spoiler' || name === 'span') return '<span class="spoiler">';
  if (name === 'code') {
    const language = /\bclass\s*=\s*["']?language-([A-Za-z0-9_+-]{1,32})/.exec(attrs)?.[1];
    return language ? `<code class="language-${language}">` : '<code>';
  }
  return `<${mapped}>`;
}

/** The entities Telegram's HTML knows, decoded; anything else is left as typed. */
function decodeEntities(text: string): string {
  return text.replace(/&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));/g, (whole, name: string | undefined, dec: string | undefined, hex: string | undefined) => {
    if (name) return { lt: '<', gt: '>', amp: '&', quot: '"' }[name as 'lt'];
    const code = dec !== undefined ? Number(dec) : parseInt(hex ?? '', 16);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}
