import { addLocalDays, HOUR_MS, MINUTE_MS, zonedParts, zonedToEpoch, type LocalDate } from './zoned-time.js';

/** The snooze options offered on a review card, in button order. */
export const DEFER_CHOICES = ['hour', 'evening', 'morning', 'week'] as const;

/** One snooze option. */
export type DeferChoice = (typeof DEFER_CHOICES)[number];

/** Button text of each snooze option. */
export const DEFER_LABELS: Readonly<Record<DeferChoice, string>> = {
  hour: '1 hour',
  evening: 'This evening',
  morning: 'Tomorrow morning',
  week: 'Next week',
};

/** Local wall-clock hour (minute 0) that "evening" wakes at. */
export const EVENING_HOUR = 18;
/** Local wall-clock hour (minute 0) that "morning" and "week" wake at. */
export const MORNING_HOUR = 8;
/** "This evening" must be more than this far away, in ms, or it means tomorrow evening. @default 30 min */
export const EVENING_MIN_LEAD_MS = 30 * MINUTE_MS;
/** Before this local hour, "morning" means the coming morning of the same date (a late night). @default 4 */
export const LATE_NIGHT_END_HOUR = 4;

const MONDAY = 1;
const WEEKDAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

function at(date: LocalDate, hour: number, timeZone: string): number {
  return zonedToEpoch({ ...date, hour, minute: 0 }, timeZone);
}

/**
 * When a card deferred with `choice` at `now` comes back, in epoch ms. "hour" is an absolute
 * hour; the others are local wall-clock times in `timeZone`, so 18:00 stays 18:00 across DST.
 */
export function deferUntil(choice: DeferChoice, now: number, timeZone: string): number {
  const p = zonedParts(now, timeZone);
  const today: LocalDate = { year: p.year, month: p.month, day: p.day };
  switch (choice) {
    case 'hour':
      return now + HOUR_MS;
    case 'evening': {
      const tonight = at(today, EVENING_HOUR, timeZone);
      return tonight > now + EVENING_MIN_LEAD_MS ? tonight : at(addLocalDays(today, 1), EVENING_HOUR, timeZone);
    }
    case 'morning':
      return at(p.hour < LATE_NIGHT_END_HOUR ? today : addLocalDays(today, 1), MORNING_HOUR, timeZone);
    case 'week': {
      // On a Monday the next Monday is a week away, never today.
      const days = (MONDAY - p.weekday + 7) % 7 || 7;
      return at(addLocalDays(today, days), MORNING_HOUR, timeZone);
    }
  }
}

function sameDate(a: LocalDate, b: LocalDate): boolean {
  return a.year === b.year && a.month === b.month && a.day === b.day;
}

/**
 * `wakeAt` as a person reads it relative to `now` in `timeZone`: "today 18:00", "tomorrow 08:00",
 * else "Mon 30 Nov 08:00" (24-hour, English names), with the year only when it differs from now's.
 */
export function describeWake(wakeAt: number, now: number, timeZone: string): string {
  const w = zonedParts(wakeAt, timeZone);
  const n = zonedParts(now, timeZone);
  const time = `${String(w.hour).padStart(2, '0')}:${String(w.minute).padStart(2, '0')}`;
  if (sameDate(w, n)) return `today ${time}`;
  if (sameDate(w, addLocalDays(n, 1))) return `tomorrow ${time}`;
  const year = w.year === n.year ? '' : ` ${w.year}`;
  return `${WEEKDAY_NAMES[w.weekday]} ${w.day} ${MONTH_NAMES[w.month - 1]}${year} ${time}`;
}
