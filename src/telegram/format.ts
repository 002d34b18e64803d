/** Telegram's limit on one message's text, in UTF-16 code units. @default 4096 */
export const TELEGRAM_TEXT_LIMIT = 4096;

/** Escapes text for Telegram's HTML parse mode (`<`, `>`, `&`; `"` too, for attributes). */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Tagged template that escapes every interpolated value: html`<b>${title}</b>`. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): string {
  return strings.reduce((out, s, i) => out + escapeHtml(String(values[i - 1])) + s);
}

type Token =
  | { kind: 'text'; raw: string }
  | { kind: 'open'; raw: string; tag: string }
  | { kind: 'close'; raw: string; tag: string };

// A tag, an entity, or one other character: the units a split must never cut through.
const TOKEN_RE = /<\/?([a-zA-Z-]+)[^>]*>|&[#a-zA-Z0-9]+;|[\s\S]/g;

function tokenize(htmlText: string): Token[] {
  const tokens: Token[] = [];
  for (const m of htmlText.matchAll(TOKEN_RE)) {
    const raw = m[0];
    const tag = m[1]?.toLowerCase();
    if (tag === undefined) tokens.push({ kind: 'text', raw });
    else tokens.push({ kind: raw.startsWith('</') ? 'close' : 'open', raw, tag });
  }
  return tokens;
}

/**
 * Splits Telegram HTML into messages of at most `limit` characters, preferring line breaks,
 * then spaces, and never cutting a tag or an entity. Tags open at a cut are closed at the end
 * of one part and reopened at the start of the next, so every part parses on its own.
 */
export function splitHtml(htmlText: string, limit = TELEGRAM_TEXT_LIMIT): string[] {
  if (htmlText.length <= limit) return [htmlText];
  const tokens = tokenize(htmlText);
  const parts: string[] = [];
  let open: Array<{ tag: string; raw: string }> = [];
  let i = 0;
  while (i < tokens.length) {
    const prefix = open.map((t) => t.raw).join('');
    // Grow the part token by token while it still fits with the closing tags it would need.
    let body = '';
    let stack = [...open];
    type Cut = { index: number; body: string; stack: typeof stack };
    let lastNewline: Cut | undefined;
    let lastSpace: Cut | undefined;
    let j = i;
    for (; j < tokens.length; j++) {
      const token = tokens[j]!;
      const nextStack =
        token.kind === 'open' ? [...stack, { tag: token.tag, raw: token.raw }]
        : token.kind === 'close' ? popTag(stack, token.tag)
        : stack;
      if (prefix.length + body.length + token.raw.length + closingTags(nextStack).length > limit) break;
      body += token.raw;
      stack = nextStack;
      if (token.raw === '\n') lastNewline = { index: j + 1, body, stack };
      else if (token.raw === ' ') lastSpace = { index: j + 1, body, stack };
    }
    if (j >= tokens.length) {
      parts.push(prefix + body + closingTags(stack));
      break;
    }
    // Cut after the last line break, else the last space, else wherever the limit fell.
    const cut = lastNewline ?? lastSpace ?? { index: j, body, stack };
    if (cut.index === i) throw new Error(`cannot split HTML: one tag or entity is longer than ${limit} characters`);
    parts.push(prefix + cut.body.replace(/\s+$/, '') + closingTags(cut.stack));
    open = cut.stack;
    i = cut.index;
    // Leading whitespace of the next part is noise on a phone screen.
    while (i < tokens.length && tokens[i]!.kind === 'text' && /^\s$/.test(tokens[i]!.raw)) i++;
  }
  return parts.filter((p) => p.replace(/<[^>]*>/g, '').trim() !== '');
}

function popTag(stack: ReadonlyArray<{ tag: string; raw: string }>, tag: string) {
  const index = stack.map((t) => t.tag).lastIndexOf(tag);
  return index === -1 ? [...stack] : stack.slice(0, index);
}

function closingTags(stack: ReadonlyArray<{ tag: string }>): string {
  return stack.map((t) => `</${t.tag}>`).reverse().join('');
}

/** A duration for people: "45s", "4m", "2h 10m", "3d 2h". */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}
