/** Longest slug in a branch name, in characters. @default 40 */
export const BRANCH_SLUG_MAX_CHARS = 40;

/** Prefix of every branch the bot makes. */
export const BRANCH_PREFIX = 'nightshift/';

/**
 * The deterministic branch for an item: `nightshift/<id>-<slug>`, the slug being the title in
 * lower-case ASCII letters, digits and single dashes (accents dropped, at most 40 characters,
 * no dash at either end), or `change` when nothing is left.
 */
export function branchName(itemId: number, title: string): string {
  if (!Number.isSafeInteger(itemId) || itemId <= 0) throw new RangeError(`branchName: item id ${itemId} is not a positive integer`);
  const slug = title
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, BRANCH_SLUG_MAX_CHARS)
    .replace(/-+$/, '');
  return `${BRANCH_PREFIX}${itemId}-${slug === '' ? 'change' : slug}`;
}
