/** A calendar date in some time zone; `month` is 1-12. */
export interface LocalDate {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

/** A wall-clock time in some time zone, to the minute. */
export interface LocalDateTime extends LocalDate {
  readonly hour: number;
  readonly minute: number;
}

/** The wall clock of an instant in a time zone; `weekday` is 0 (Sunday) to 6 (Saturday). */
export interface ZonedParts extends LocalDateTime {
  readonly second: number;
  readonly weekday: number;
}

/** Milliseconds in a second, a minute, an hour and a (24-hour) day. */
export const SECOND_MS = 1000;
export const MINUTE_MS = 60 * SECOND_MS;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;

// Building a DateTimeFormat costs far more than using one; this cache is empty at import time
// and only ever holds formatters, so it is a memo, not a module-level client.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** The wall clock of `epochMs` in `timeZone` (an IANA name); throws RangeError for an unknown zone. */
export function zonedParts(epochMs: number, timeZone: string): ZonedParts {
  const fields: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(epochMs)) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  const year = fields.year ?? NaN;
  const month = fields.month ?? NaN;
  const day = fields.day ?? NaN;
  // Some ICU versions still print midnight as 24 even with h23.
  const hour = (fields.hour ?? NaN) % 24;
  const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
  return { year, month, day, hour, minute: fields.minute ?? NaN, second: fields.second ?? NaN, weekday };
}

/** How far `timeZone` is ahead of UTC at `epochMs`, in ms (negative west of Greenwich). */
function offsetMsAt(epochMs: number, timeZone: string): number {
  const p = zonedParts(epochMs, timeZone);
  const wallAsUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return wallAsUtc - Math.floor(epochMs / SECOND_MS) * SECOND_MS;
}

/**
 * The instant the wall clock in `timeZone` shows `local`. Out-of-range fields roll over the way
 * `Date.UTC` rolls them (day 32 is the next month). In a DST gap, where the time never shows, the
 * time is moved forward by the gap length (02:30 on a spring-forward night in Amsterdam → 03:30
 * local); in an overlap, where it shows twice, the earlier instant.
 */
export function zonedToEpoch(local: LocalDateTime, timeZone: string): number {
  const wallAsUtc = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute);
  // A day either side brackets any real transition; the zone's offset before and after the
  // wall time are the only two candidates.
  const offsetBefore = offsetMsAt(wallAsUtc - DAY_MS, timeZone);
  const offsetAfter = offsetMsAt(wallAsUtc + DAY_MS, timeZone);
  const offsets = offsetBefore === offsetAfter ? [offsetBefore] : [offsetBefore, offsetAfter];
  const candidates = offsets
    .map((offset) => wallAsUtc - offset)
    .filter((t) => t + offsetMsAt(t, timeZone) === wallAsUtc)
    .sort((a, b) => a - b);
  // No candidate: a gap. The pre-transition offset lands past the gap by exactly its length.
  return candidates[0] ?? wallAsUtc - offsetBefore;
}

/** Whether `timeZone` is an IANA zone name this runtime knows (case-insensitive, as Intl is). */
export function isValidTimeZone(timeZone: string): boolean {
  if (typeof timeZone !== 'string' || timeZone === '') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/** The calendar date `days` days after `date` (negative goes back); time zones play no part. */
export function addLocalDays(date: LocalDate, days: number): LocalDate {
  const d = new Date(Date.UTC(date.year, date.month - 1, date.day + days));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}
