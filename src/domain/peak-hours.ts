import { parseReviewHours } from './review-hours.js';
import { addLocalDays, HOUR_MS, MINUTE_MS, SECOND_MS, zonedParts, zonedToEpoch, type LocalDate, type LocalDateTime } from './zoned-time.js';

/** A day of the week, 0 (Sunday) to 6 (Saturday), as `ZonedParts.weekday`. */
export type Weekday = 0 | 1 | 2 | 3 | 4 | 5 | 6;

/** A local wall-clock time of day. */
export interface TimeOfDay {
  readonly hour: number;
  readonly minute: number;
}

/**
 * Peak time on each of `days`, from `start` to `end` local time. An `end` at or before `start`
 * falls on the next day (the window still belongs to the day it starts on); equal means 24 hours.
 */
export interface PeakWindow {
  readonly days: ReadonlySet<Weekday>;
  readonly start: TimeOfDay;
  readonly end: TimeOfDay;
}

/** What `NIGHTSHIFT_PEAK_HOURS` means when unset: 14:00-22:00 every day. */
export const DEFAULT_PEAK_HOURS = '14:00-22:00';

const DAY_NAMES: readonly string[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const FULL_DAY_NAMES: readonly string[] = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
const ALL_DAYS: ReadonlySet<Weekday> = new Set<Weekday>([0, 1, 2, 3, 4, 5, 6]);
const MINUTES_PER_DAY = 24 * 60;
const MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY;

// An entry: optional days ("mon-fri", "sat", "Sunday") then an optional range; at least one.
const ENTRY = /^([a-z]+(?:\s*-\s*[a-z]+)?)?\s*(\d.*)?$/i;

function parseDay(name: string): Weekday {
  const lower = name.toLowerCase();
  const index = Math.max(DAY_NAMES.indexOf(lower), FULL_DAY_NAMES.indexOf(lower));
  if (index < 0) throw new Error(`"${name}" is not a day (mon, tue, wed, thu, fri, sat, sun)`);
  return index as Weekday;
}

// "mon-fri" or "sat"; a range may wrap past Sunday ("fri-mon").
function parseDays(text: string, into: Set<Weekday>): void {
  const [from = '', to = from] = text.split('-').map((s) => s.trim());
  const first = parseDay(from);
  const last = parseDay(to);
  for (let d = first; ; d = ((d + 1) % 7) as Weekday) {
    into.add(d);
    if (d === last) break;
  }
}

function parseTime(text: string, isEnd: boolean): TimeOfDay {
  // 24:00 can only end a window; it is the next day's 00:00.
  if (isEnd && text === '24:00') return { hour: 0, minute: 0 };
  if (text === '') throw new Error('"" is not a time of day (HH:MM)');
  const [slot] = parseReviewHours(text); // one time: the commas are split off already
  if (!slot) throw new Error(`"${text}" is not a time of day (HH:MM)`);
  return slot;
}

function parseRange(text: string): { start: TimeOfDay; end: TimeOfDay } {
  const ends = text.split('-').map((s) => s.trim());
  if (ends.length !== 2) throw new Error(`"${text}" is not a time range (HH:MM-HH:MM)`);
  return { start: parseTime(ends[0] ?? '', false), end: parseTime(ends[1] ?? '', true) };
}

// Runs `parse`, naming `entry` in front of its error.
function within<T>(entry: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new Error(`"${entry}": ${error instanceof Error ? error.message : String(error)}`);
  }
}

function toMinutes(t: TimeOfDay): number {
  return t.hour * 60 + t.minute;
}

// A window's length in wall-clock minutes: an end at or before the start is on the next day.
function spanMinutes(w: PeakWindow): number {
  return ((toMinutes(w.end) - toMinutes(w.start) + MINUTES_PER_DAY - 1) % MINUTES_PER_DAY) + 1;
}

function coversWholeWeek(windows: readonly PeakWindow[]): boolean {
  const covered = new Uint8Array(MINUTES_PER_WEEK);
  for (const w of windows) {
    for (const day of w.days) {
      const from = day * MINUTES_PER_DAY + toMinutes(w.start);
      for (let m = 0; m < spanMinutes(w); m++) covered[(from + m) % MINUTES_PER_WEEK] = 1;
    }
  }
  return covered.every((c) => c === 1);
}

/**
 * Peak windows from the text of `NIGHTSHIFT_PEAK_HOURS` (see `DEFAULT_PEAK_HOURS`): `none` for
 * never, or comma-separated windows `HH:MM-HH:MM`, each optionally after days, as in
 * `mon-fri 14:00-22:00, sat,sun 10:00-12:00`. Without days a window is every day. Days are
 * `mon`…`sun` or full names (any case), lists (`sat,sun`) and ranges (`mon-fri`, wrapping:
 * `fri-mon`). An end at or before the start is on the next day (`22:00-02:00`, Friday's runs
 * into Saturday); `24:00` may end a window; equal start and end is 24 hours. Throws an Error
 * whose message names the bad part, also when the windows leave no off-peak minute in the week.
 */
export function parsePeakHours(text: string): PeakWindow[] {
  const trimmed = text.trim();
  if (trimmed.toLowerCase() === 'none') return [];
  if (trimmed === '') throw new Error('no peak windows (write "none" for never peak)');
  const windows: PeakWindow[] = [];
  // Days before a comma ("sat," in "sat,sun 10:00-12:00") wait for the entry that has the range.
  let pending: string[] = [];
  const pendingDays = new Set<Weekday>();
  for (const raw of trimmed.split(',')) {
    const entry = raw.trim();
    if (entry === '') throw new Error(`"${trimmed}" has an empty entry between commas`);
    if (entry.toLowerCase() === 'none') throw new Error('"none" cannot be combined with windows');
    const match = ENTRY.exec(entry);
    if (!match) throw new Error(`"${entry}" is not a peak window (like "mon-fri 14:00-22:00")`);
    const [, daysText, rangeText] = match;
    if (daysText !== undefined) within(entry, () => parseDays(daysText, pendingDays));
    if (rangeText === undefined) {
      pending.push(entry);
      continue;
    }
    if (daysText === undefined && pending.length > 0) throw new Error(`"${pending.join(',')}" has no time range after it`);
    const days = new Set(pendingDays.size > 0 ? pendingDays : ALL_DAYS);
    windows.push({ days, ...within(entry, () => parseRange(rangeText)) });
    pending = [];
    pendingDays.clear();
  }
  if (pending.length > 0) throw new Error(`"${pending.join(',')}" has no time range after it`);
  if (coversWholeWeek(windows)) throw new Error(`"${trimmed}" is peak all week, so no run would ever start`);
  return windows;
}

function wallMs(p: LocalDateTime & { readonly second?: number }): number {
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second ?? 0);
}

/**
 * The first instant at which the clock in `timeZone` reads `local` or later. Unlike
 * `zonedToEpoch`, a time in a spring-forward gap means the end of the gap (the clock passes
 * 02:30 at 03:00), so `02:30-03:30` is peak 03:00-03:30 that day, not empty. In an overlap it is
 * the first showing, as in `zonedToEpoch`.
 */
function firstInstantAtOrAfter(local: LocalDateTime, timeZone: string): number {
  const late = zonedToEpoch(local, timeZone);
  const gap = wallMs(zonedParts(late, timeZone)) - wallMs(local);
  if (gap <= 0) return late;
  // `late` shows `local` moved on by the gap; the jump lies within one gap-length before it.
  let before = late - gap;
  let after = late;
  while (after - before > SECOND_MS) {
    const mid = before + Math.floor((after - before) / 2 / SECOND_MS) * SECOND_MS;
    if (wallMs(zonedParts(mid, timeZone)) >= wallMs(local)) after = mid;
    else before = mid;
  }
  return after;
}

// The first instant of `date`: in a zone that springs forward at midnight, 01:00.
function midnight(date: LocalDate, timeZone: string): number {
  return firstInstantAtOrAfter({ ...date, hour: 0, minute: 0 }, timeZone);
}

function localDate(now: number, timeZone: string): LocalDate {
  const p = zonedParts(now, timeZone);
  return { year: p.year, month: p.month, day: p.day };
}

function weekdayOf(date: LocalDate): Weekday {
  return new Date(Date.UTC(date.year, date.month - 1, date.day)).getUTCDay() as Weekday;
}

interface Stretch {
  readonly start: number;
  readonly end: number;
}

// Each window's stretches that start on the local dates `from`..`to` days from `date`, by start.
function stretches(date: LocalDate, windows: readonly PeakWindow[], timeZone: string, from: number, to: number): Stretch[] {
  const out: Stretch[] = [];
  for (let d = from; d <= to; d++) {
    const day = addLocalDays(date, d);
    const weekday = weekdayOf(day);
    for (const w of windows) {
      if (!w.days.has(weekday)) continue;
      const endDay = toMinutes(w.end) <= toMinutes(w.start) ? addLocalDays(day, 1) : day;
      const startAt: LocalDateTime = { ...day, ...w.start };
      const start = firstInstantAtOrAfter(startAt, timeZone);
      const end = firstInstantAtOrAfter({ ...endDay, ...w.end }, timeZone);
      if (end > start) {
        out.push({ start, end });
      } else {
        // The clock skips the whole window (it lies in a spring-forward gap): rather than drop
        // that day's window, move it later by the gap, as zonedToEpoch moves a time.
        const moved = zonedToEpoch(startAt, timeZone);
        out.push({ start: moved, end: moved + spanMinutes(w) * MINUTE_MS });
      }
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

// Longer than any repeated hour (a DST shift is 2 hours at most) and any window moved out of a
// gap (it ends within two shifts of the change).
const CLOCK_SETTLE_MS = 6 * HOUR_MS;

// Whether the local clock reading itself lies in a window (weekday 0 = Sunday).
function wallInWindow(weekday: number, minuteOfDay: number, windows: readonly PeakWindow[]): boolean {
  const yesterday = ((weekday + 6) % 7) as Weekday;
  return windows.some((w) => {
    const start = toMinutes(w.start);
    const end = toMinutes(w.end);
    if (end > start) return w.days.has(weekday as Weekday) && minuteOfDay >= start && minuteOfDay < end;
    return (w.days.has(weekday as Weekday) && minuteOfDay >= start) || (w.days.has(yesterday) && minuteOfDay < end);
  });
}

/**
 * Whether `now` lies in peak time. Each day's window is one stretch, from the first instant the
 * local clock reads its start to the first instant it reads its end: a start or end in a
 * spring-forward gap means the end of the gap, and a window that ended during the first showing
 * of a fall-back's repeated hour does not start again in the second. A window wholly inside a
 * gap moves later by the gap's length, so no day loses its window.
 */
export function isPeak(now: number, windows: readonly PeakWindow[], timeZone: string): boolean {
  if (windows.length === 0) return false;
  const p = zonedParts(now, timeZone);
  // Unless the clock changed within CLOCK_SETTLE_MS, "the clock has reached the start but not
  // the end" is the wall reading itself: one lookup instead of several per window, and the
  // simulated-week tests ask every minute. After a change, the stretches decide (a repeated
  // hour reads earlier than before; a window moved out of a gap reads outside itself).
  const clockChanged = wallMs(zonedParts(now - CLOCK_SETTLE_MS, timeZone)) + CLOCK_SETTLE_MS !== wallMs(p);
  if (!clockChanged) return wallInWindow(p.weekday, p.hour * 60 + p.minute, windows);
  // A stretch starting before yesterday has ended before today began.
  return stretches(p, windows, timeZone, -1, 0).some((s) => s.start <= now && now < s.end);
}

// Days ahead that are searched, widening as needed: one extra week covers a weekly gap that a
// DST change swallowed.
const HORIZON_DAYS = [2, 9, 16] as const;

/**
 * `now` when off-peak, else when the current peak stretch ends (epoch ms), merging windows that
 * touch or overlap (`14:00-22:00, 22:00-02:00` ends at 02:00). Throws when the windows are peak
 * all the time, which `parsePeakHours` refuses.
 */
export function nextOffPeakStart(now: number, windows: readonly PeakWindow[], timeZone: string): number {
  if (!isPeak(now, windows, timeZone)) return now;
  const today = localDate(now, timeZone);
  for (const ahead of HORIZON_DAYS) {
    let end = now;
    for (const s of stretches(today, windows, timeZone, -1, ahead)) {
      if (s.start > end) break;
      end = Math.max(end, s.end);
    }
    // Stretches of later dates start no earlier than that date's midnight.
    if (end < midnight(addLocalDays(today, ahead + 1), timeZone)) return end;
  }
  throw new Error('peak hours never end');
}

/**
 * `now` when peak, else when the current off-peak stretch ends (epoch ms); undefined when no
 * peak is ever coming (`none`).
 */
export function nextPeakStart(now: number, windows: readonly PeakWindow[], timeZone: string): number | undefined {
  if (windows.every((w) => w.days.size === 0)) return undefined;
  if (isPeak(now, windows, timeZone)) return now;
  const today = localDate(now, timeZone);
  for (const ahead of HORIZON_DAYS) {
    const next = stretches(today, windows, timeZone, -1, ahead).find((s) => s.start > now);
    if (next) return next.start;
  }
  return undefined;
}

/** Money a run may still spend and when each period resets (epoch ms). */
export interface DispatchBudget {
  readonly dailyLeftUsd: number;
  readonly monthlyLeftUsd: number;
  readonly dailyResetsAt: number;
  readonly monthlyResetsAt: number;
  /** A run starts only when both periods have at least this much left. */
  readonly minRunUsd: number;
}

/** Everything one dispatcher tick decides on. */
export interface DispatchInput {
  readonly now: number;
  readonly windows: readonly PeakWindow[];
  readonly timeZone: string;
  readonly paused: boolean;
  /** A confirmed `/run`: overrides peak hours, but never a pause, the budget or `maxParallel`. */
  readonly forced: boolean;
  readonly budget: DispatchBudget;
  readonly running: number;
  readonly maxParallel: number;
}

/** Why a tick starts nothing. */
export type WaitReason = 'peak' | 'paused' | 'budget-daily' | 'budget-monthly' | 'busy';

/** Start a run now, or wait; `until` is when the reason lifts, if that is known. */
export type DispatchDecision = { readonly kind: 'start' } | { readonly kind: 'wait'; readonly reason: WaitReason; readonly until?: number };

/**
 * Whether a run may start at `input.now`. A pause wins (it has no end); then among the budget
 * caps and peak hours, the one that lifts last, since waiting for an earlier one would not be
 * enough (on a tie: monthly, daily, peak); `busy` only when nothing else blocks.
 */
export function dispatchDecision(input: DispatchInput): DispatchDecision {
  const { now, budget } = input;
  if (input.paused) return { kind: 'wait', reason: 'paused' };
  const blocks: { reason: WaitReason; until: number }[] = [];
  if (budget.monthlyLeftUsd < budget.minRunUsd) blocks.push({ reason: 'budget-monthly', until: budget.monthlyResetsAt });
  if (budget.dailyLeftUsd < budget.minRunUsd) blocks.push({ reason: 'budget-daily', until: budget.dailyResetsAt });
  if (!input.forced && isPeak(now, input.windows, input.timeZone)) {
    blocks.push({ reason: 'peak', until: nextOffPeakStart(now, input.windows, input.timeZone) });
  }
  const latest = blocks.reduce<(typeof blocks)[number] | undefined>((a, b) => (a && a.until >= b.until ? a : b), undefined);
  if (latest) return { kind: 'wait', ...latest };
  if (input.running >= input.maxParallel) return { kind: 'wait', reason: 'busy' };
  return { kind: 'start' };
}

/** The first instant of `now`'s local date (epoch ms); a day may last 23 or 25 hours. */
export function dayStart(now: number, timeZone: string): number {
  return midnight(localDate(now, timeZone), timeZone);
}

/** The first instant of the local date after `now`'s (epoch ms): when a daily budget resets. */
export function nextDayStart(now: number, timeZone: string): number {
  return midnight(addLocalDays(localDate(now, timeZone), 1), timeZone);
}

/** The first instant of `now`'s local month (epoch ms). */
export function monthStart(now: number, timeZone: string): number {
  const { year, month } = localDate(now, timeZone);
  return midnight({ year, month, day: 1 }, timeZone);
}

/** The first instant of the local month after `now`'s (epoch ms): when a monthly budget resets. */
export function nextMonthStart(now: number, timeZone: string): number {
  const { year, month } = localDate(now, timeZone);
  return midnight(month === 12 ? { year: year + 1, month: 1, day: 1 } : { year, month: month + 1, day: 1 }, timeZone);
}
