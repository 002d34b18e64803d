/** What a redacted secret is replaced with. */
export const REDACTED = '[REDACTED]';

// Shorter values would match ordinary text; real tokens and keys are far longer.
const MIN_SECRET_CHARS = 8;

/**
 * Builds a function that replaces every occurrence of the given secret values (also in their
 * URL-encoded form, as they appear in request URLs) with `[REDACTED]`.
 */
export function createRedactor(secrets: readonly string[]): (text: string) => string {
  const needles = [
    ...new Set(
      secrets
        .filter((s) => s.length >= MIN_SECRET_CHARS)
        .flatMap((s) => [s, encodeURIComponent(s)]),
    ),
  ].sort((a, b) => b.length - a.length);
  if (needles.length === 0) return (text) => text;
  const pattern = new RegExp(needles.map(escapeRegExp).join('|'), 'g');
  return (text) => text.replace(pattern, REDACTED);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
