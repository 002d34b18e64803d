/**
 * Makes characters that render as nothing, or that reorder what follows, visible as `[U+XXXX]`:
 * format characters (zero-width spaces and joiners, bidi embeddings, overrides and isolates,
 * Unicode tag characters, which can spell a whole hidden sentence) and control characters other
 * than tab and line breaks. Text a person decides on (a card's title, a changed file's path)
 * must read as what it is: `evil\u202Etxt.js` otherwise shows as `eviltxt.js` reversed.
 *
 * A zero-width joiner between two pictographs is kept, since it is how emoji sequences such as
 * 👩‍💻 are written. The result contains no character this replaces, so applying it twice
 * changes nothing.
 */
export function revealInvisible(text: string): string {
  return text.replace(HIDDEN, (ch: string, offset: number, whole: string) => {
    if (ch === '\u200D' && joinsPictographs(whole, offset)) return ch;
    return `[U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}]`;
  });
}

// \p{Cf}: format characters; \p{Cc} minus tab, LF and CR: control characters.
const HIDDEN = /[\p{Cf}\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/gu;
const PICTOGRAPH_END = /[\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F]$/u;
const PICTOGRAPH_START = /^\p{Extended_Pictographic}/u;

function joinsPictographs(text: string, at: number): boolean {
  // Two code units hold any one code point, so the neighbours are found without scanning.
  return PICTOGRAPH_END.test(text.slice(Math.max(0, at - 2), at)) && PICTOGRAPH_START.test(text.slice(at + 1, at + 3));
}
