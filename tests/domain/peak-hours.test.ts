import { describe, expect, it } from 'vitest';
import {
  dayStart,
  DEFAULT_PEAK_HOURS,
  dispatchDecision,
  isPeak,
  monthStart,
  nextDayStart,
  nextMonthStart,
  nextOffPeakStart,
  nextPeakStart,
  parsePeakHours,
  type DispatchInput,
  type PeakWindow,
  type Weekday,
} from '../../src/domain/peak-hours.js';
import { addLocalDays, HOUR_MS, MINUTE_MS, zonedParts, zonedToEpoch, type LocalDate, type ZonedParts } from '../../src/domain/zoned-time.js';

const AMS = 'Europe/Amsterdam';
const NYC = 'America/New_York';
const KOL = 'Asia/Kolkata';
const UTC = 'UTC';

/** Epoch ms of a UTC wall time; `month` is 1-12. */
function utc(year: number, month: number, day: number, hour = 0, minute = 0): number {
  return Date.UTC(year, month - 1, day, hour, minute);
}

const EVERY_DAY: Weekday[] = [0, 1, 2, 3, 4, 5, 6];

function win(days: Weekday[], start: string, end: string): PeakWindow {
  const time = (t: string) => {
    const [hour = NaN, minute = NaN] = t.split(':').map(Number);
    return { hour, minute };
  };
  return { days: new Set(days), start: time(start), end: time(end) };
}

describe('parsePeakHours', () => {
  it.each([
    { text: DEFAULT_PEAK_HOURS, want: [win(EVERY_DAY, '14:00', '22:00')] },
    { text: 'mon-fri 14:00-22:00', want: [win([1, 2, 3, 4, 5], '14:00', '22:00')] },
    { text: 'sat,sun 10:00-12:00', want: [win([6, 0], '10:00', '12:00')] },
    {
      text: 'mon-fri 14:00-22:00, sat,sun 10:00-12:00',
      want: [win([1, 2, 3, 4, 5], '14:00', '22:00'), win([0, 6], '10:00', '12:00')],
    },
    { text: '22:00-02:00', want: [win(EVERY_DAY, '22:00', '02:00')] },
    { text: 'fri-mon 9:00-17:30', want: [win([5, 6, 0, 1], '09:00', '17:30')] },
    { text: ' Monday - Friday  08:30 - 12:00 ', want: [win([1, 2, 3, 4, 5], '08:30', '12:00')] },
    { text: 'mon, wed ,FRI 01:00-02:00', want: [win([1, 3, 5], '01:00', '02:00')] },
    { text: 'sun-sun 07:00-08:00', want: [win([0], '07:00', '08:00')] },
    { text: 'SAT 18:00-24:00', want: [win([6], '18:00', '00:00')] },
    { text: 'wed 00:00-00:00', want: [win([3], '00:00', '00:00')] },
    { text: '14:00-22:00,14:00-22:00', want: [win(EVERY_DAY, '14:00', '22:00'), win(EVERY_DAY, '14:00', '22:00')] },
    { text: 'none', want: [] },
    { text: ' NONE ', want: [] },
  ])('"$text"', ({ text, want }) => {
    expect(parsePeakHours(text)).toEqual(want);
  });

  it.each([
    { text: '', error: 'no peak windows (write "none" for never peak)' },
    { text: '   ', error: 'no peak windows (write "none" for never peak)' },
    { text: '14:00', error: '"14:00": "14:00" is not a time range (HH:MM-HH:MM)' },
    { text: '14:00-18:00-22:00', error: '"14:00-18:00-22:00": "14:00-18:00-22:00" is not a time range (HH:MM-HH:MM)' },
    { text: '14:00-25:00', error: '"14:00-25:00": "25:00" is not a time of day (HH:MM)' },
    { text: 'mon-fri 14:00-22:60', error: '"mon-fri 14:00-22:60": "22:60" is not a time of day (HH:MM)' },
    { text: '24:00-02:00', error: '"24:00-02:00": "24:00" is not a time of day (HH:MM)' },
    { text: '14:00-', error: '"14:00-": "" is not a time of day (HH:MM)' },
    { text: '2pm-10pm', error: '"2pm-10pm": "2pm" is not a time of day (HH:MM)' },
    { text: '14:00-22:00 mon', error: '"14:00-22:00 mon": "22:00 mon" is not a time of day (HH:MM)' },
    { text: 'mon-fry 14:00-22:00', error: '"mon-fry 14:00-22:00": "fry" is not a day (mon, tue, wed, thu, fri, sat, sun)' },
    { text: 'weekdays 14:00-22:00', error: '"weekdays 14:00-22:00": "weekdays" is not a day (mon, tue, wed, thu, fri, sat, sun)' },
    { text: 'mon-fri x', error: '"mon-fri x" is not a peak window (like "mon-fri 14:00-22:00")' },
    { text: 'sat, 10:00-12:00', error: '"sat" has no time range after it' },
    { text: 'mon-fri 14:00-22:00, sat', error: '"sat" has no time range after it' },
    { text: 'sat,sun', error: '"sat,sun" has no time range after it' },
    { text: '14:00-22:00,', error: '"14:00-22:00," has an empty entry between commas' },
    { text: '14:00-22:00,,sat 10:00-12:00', error: '"14:00-22:00,,sat 10:00-12:00" has an empty entry between commas' },
    { text: 'none, 14:00-22:00', error: '"none" cannot be combined with windows' },
    { text: '00:00-24:00', error: '"00:00-24:00" is peak all week, so no run would ever start' },
    { text: '06:00-06:00', error: '"06:00-06:00" is peak all week, so no run would ever start' },
    { text: '00:00-12:00, 12:00-00:00', error: '"00:00-12:00, 12:00-00:00" is peak all week, so no run would ever start' },
    { text: 'mon-fri 00:00-00:00, sat,sun 00:00-24:00', error: '"mon-fri 00:00-00:00, sat,sun 00:00-24:00" is peak all week, so no run would ever start' },
  ])('rejects "$text"', ({ text, error }) => {
    expect(() => parsePeakHours(text)).toThrow(new Error(error));
  });

  it('accepts a week with a single off-peak minute', () => {
    expect(parsePeakHours('00:00-23:59, sat 23:59-24:00')).toHaveLength(2);
  });
});

describe('isPeak', () => {
  // Mon 15 Jun 2026 in Amsterdam is UTC+2.
  const weekly = parsePeakHours('mon-fri 14:00-22:00, sat,sun 10:00-12:00');
  const fridayNight = parsePeakHours('fri 22:00-02:00');
  it.each([
    { name: 'Mon 13:59', windows: weekly, now: utc(2026, 6, 15, 11, 59), want: false },
    { name: 'Mon 14:00', windows: weekly, now: utc(2026, 6, 15, 12, 0), want: true },
    { name: 'Mon 21:59:59.999', windows: weekly, now: utc(2026, 6, 15, 20, 0) - 1, want: true },
    { name: 'Mon 22:00', windows: weekly, now: utc(2026, 6, 15, 20, 0), want: false },
    { name: 'Sat 10:00', windows: weekly, now: utc(2026, 6, 20, 8, 0), want: true },
    { name: 'Sat 14:00 (a weekday window)', windows: weekly, now: utc(2026, 6, 20, 12, 0), want: false },
    { name: 'Fri 23:00 in a Friday-night window', windows: fridayNight, now: utc(2026, 6, 19, 21, 0), want: true },
    { name: 'Sat 01:59 still Friday night', windows: fridayNight, now: utc(2026, 6, 19, 23, 59), want: true },
    { name: 'Sat 02:00 ends it', windows: fridayNight, now: utc(2026, 6, 20, 0, 0), want: false },
    { name: 'Sat 23:00 is not Friday', windows: fridayNight, now: utc(2026, 6, 20, 21, 0), want: false },
    { name: 'Fri 01:00 belongs to Thursday', windows: fridayNight, now: utc(2026, 6, 18, 23, 0), want: false },
    { name: 'none', windows: [], now: utc(2026, 6, 15, 15, 0), want: false },
  ])('$name', ({ windows, now, want }) => {
    expect(isPeak(now, windows, AMS)).toBe(want);
  });

  it('reads the window in the given zone', () => {
    // 12:00 UTC: 14:00 in Amsterdam, 08:00 in New York, 17:30 in Kolkata.
    const windows = parsePeakHours('14:00-18:00');
    expect([AMS, NYC, KOL, UTC].map((tz) => isPeak(utc(2026, 6, 15, 12, 0), windows, tz))).toEqual([true, false, true, false]);
  });
});

describe('nextOffPeakStart and nextPeakStart', () => {
  // Mon 15 Jun 2026 in Amsterdam is UTC+2.
  it.each([
    { name: 'off-peak: now', spec: '14:00-22:00', now: utc(2026, 6, 15, 10, 0), off: utc(2026, 6, 15, 10, 0), peak: utc(2026, 6, 15, 12, 0) },
    { name: 'peak: its end', spec: '14:00-22:00', now: utc(2026, 6, 15, 13, 0), off: utc(2026, 6, 15, 20, 0), peak: utc(2026, 6, 15, 13, 0) },
    { name: 'touching windows merge', spec: '14:00-22:00, 22:00-02:00', now: utc(2026, 6, 15, 13, 0), off: utc(2026, 6, 16, 0, 0), peak: utc(2026, 6, 15, 13, 0) },
    { name: 'overlapping windows merge', spec: '14:00-20:00, 18:00-23:00', now: utc(2026, 6, 15, 13, 0), off: utc(2026, 6, 15, 21, 0), peak: utc(2026, 6, 15, 13, 0) },
    { name: 'off-peak ends at the end: next day', spec: '14:00-22:00', now: utc(2026, 6, 15, 20, 0), off: utc(2026, 6, 15, 20, 0), peak: utc(2026, 6, 16, 12, 0) },
    { name: 'weekend off-peak', spec: 'mon-fri 14:00-22:00', now: utc(2026, 6, 19, 20, 0), off: utc(2026, 6, 19, 20, 0), peak: utc(2026, 6, 22, 12, 0) },
    {
      name: 'a peak weekend ends on Monday',
      spec: 'fri 18:00-24:00, sat,sun 00:00-24:00, mon 00:00-08:00',
      now: utc(2026, 6, 19, 17, 0),
      off: utc(2026, 6, 22, 6, 0),
      peak: utc(2026, 6, 19, 17, 0),
    },
    { name: 'none', spec: 'none', now: utc(2026, 6, 15, 13, 0), off: utc(2026, 6, 15, 13, 0), peak: undefined },
  ])('$name', ({ spec, now, off, peak }) => {
    const windows = parsePeakHours(spec);
    expect(nextOffPeakStart(now, windows, AMS)).toBe(off);
    expect(nextPeakStart(now, windows, AMS)).toBe(peak);
  });

  it('throws when hand-made windows never end', () => {
    expect(() => nextOffPeakStart(utc(2026, 6, 15, 12, 0), [win(EVERY_DAY, '00:00', '00:00')], AMS)).toThrow('peak hours never end');
  });

  it('is undefined for windows on no day', () => {
    expect(nextPeakStart(utc(2026, 6, 15, 12, 0), [win([], '14:00', '22:00')], AMS)).toBeUndefined();
  });
});

type DayName = 'sun' | 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat';
const DAY_NAMES: DayName[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** Local "HH:MM" times the state flips on a date; keyed by weekday, `all` for the rest. */
type PerDay = Partial<Record<DayName | 'all', string[]>>;

interface WeekCase {
  readonly name: string;
  readonly zone: string;
  /** The first of seven simulated local dates. */
  readonly from: LocalDate;
  readonly spec: string;
  readonly peakAt: PerDay;
  readonly offAt: PerDay;
  /** Dates ("2026-03-29") where DST moves the flips. */
  readonly except?: Record<string, { peakAt?: string[]; offAt?: string[] }>;
  /** False when a window moved out of a gap: then the clock reading alone does not decide. */
  readonly clockRule?: boolean;
}

const EU_SPRING = { year: 2026, month: 3, day: 26 }; // Thu; Sun 29 Mar 02:00 CET → 03:00 CEST
const EU_FALL = { year: 2026, month: 10, day: 22 }; // Thu; Sun 25 Oct 03:00 CEST → 02:00 CET
const US_SPRING = { year: 2026, month: 3, day: 5 }; // Thu; Sun 8 Mar 02:00 EST → 03:00 EDT
const US_FALL = { year: 2026, month: 10, day: 29 }; // Thu; Sun 1 Nov 02:00 EDT → 01:00 EST

const WEEKS: WeekCase[] = [
  { name: 'default, EU spring forward', zone: AMS, from: EU_SPRING, spec: DEFAULT_PEAK_HOURS, peakAt: { all: ['14:00'] }, offAt: { all: ['22:00'] } },
  { name: 'default, EU fall back', zone: AMS, from: EU_FALL, spec: DEFAULT_PEAK_HOURS, peakAt: { all: ['14:00'] }, offAt: { all: ['22:00'] } },
  { name: 'default, US spring forward', zone: NYC, from: US_SPRING, spec: DEFAULT_PEAK_HOURS, peakAt: { all: ['14:00'] }, offAt: { all: ['22:00'] } },
  { name: 'default, US fall back', zone: NYC, from: US_FALL, spec: DEFAULT_PEAK_HOURS, peakAt: { all: ['14:00'] }, offAt: { all: ['22:00'] } },
  {
    name: 'past midnight into the gap, EU spring forward',
    zone: AMS,
    from: EU_SPRING,
    spec: '22:00-02:00',
    peakAt: { all: ['22:00'] },
    offAt: { all: ['02:00'] },
    // 02:00 never shows: off-peak begins as the clock jumps to 03:00.
    except: { '2026-03-29': { offAt: ['03:00'] } },
  },
  { name: 'past midnight into the overlap, EU fall back', zone: AMS, from: EU_FALL, spec: '22:00-02:00', peakAt: { all: ['22:00'] }, offAt: { all: ['02:00'] } },
  {
    name: 'ending in the gap, EU spring forward',
    zone: AMS,
    from: EU_SPRING,
    spec: '01:00-02:30',
    peakAt: { all: ['01:00'] },
    offAt: { all: ['02:30'] },
    except: { '2026-03-29': { offAt: ['03:00'] } },
  },
  // Ends at the first 02:30 and does not start again when the clock shows 02:00 a second time.
  { name: 'ending in the repeated hour, EU fall back', zone: AMS, from: EU_FALL, spec: '01:00-02:30', peakAt: { all: ['01:00'] }, offAt: { all: ['02:30'] } },
  {
    name: 'starting in the gap, EU spring forward',
    zone: AMS,
    from: EU_SPRING,
    spec: '02:30-03:30',
    peakAt: { all: ['02:30'] },
    offAt: { all: ['03:30'] },
    except: { '2026-03-29': { peakAt: ['03:00'] } },
  },
  { name: 'starting in the repeated hour, EU fall back', zone: AMS, from: EU_FALL, spec: '02:30-03:30', peakAt: { all: ['02:30'] }, offAt: { all: ['03:30'] } },
  {
    name: 'wholly in the gap moves later by the gap, EU spring forward',
    zone: AMS,
    from: EU_SPRING,
    spec: '02:00-02:45',
    peakAt: { all: ['02:00'] },
    offAt: { all: ['02:45'] },
    except: { '2026-03-29': { peakAt: ['03:00'], offAt: ['03:45'] } },
    clockRule: false,
  },
  {
    name: 'Saturday night into US spring forward',
    zone: NYC,
    from: US_SPRING,
    spec: 'sat 23:00-03:00',
    peakAt: { sat: ['23:00'] },
    offAt: { sun: ['03:00'] },
  },
  // 00:30-01:30 EDT once; the second 01:00-01:30 (EST) stays off-peak.
  { name: 'in the repeated hour, US fall back', zone: NYC, from: US_FALL, spec: '00:30-01:30', peakAt: { all: ['00:30'] }, offAt: { all: ['01:30'] } },
  {
    name: 'weekday and weekend windows, US fall back',
    zone: NYC,
    from: US_FALL,
    spec: 'mon-fri 09:00-17:00, sat,sun 10:00-12:00',
    peakAt: { all: ['09:00'], sat: ['10:00'], sun: ['10:00'] },
    offAt: { all: ['17:00'], sat: ['12:00'], sun: ['12:00'] },
  },
  {
    name: 'weekdays with a Friday night merged in, half-hour zone',
    zone: KOL,
    from: EU_SPRING,
    spec: 'mon-fri 14:00-22:00, fri 22:00-02:00',
    peakAt: { mon: ['14:00'], tue: ['14:00'], wed: ['14:00'], thu: ['14:00'], fri: ['14:00'] },
    offAt: { mon: ['22:00'], tue: ['22:00'], wed: ['22:00'], thu: ['22:00'], sat: ['02:00'] },
  },
  { name: 'past midnight, half-hour zone', zone: KOL, from: EU_FALL, spec: '22:00-02:00', peakAt: { all: ['22:00'] }, offAt: { all: ['02:00'] } },
  { name: 'whole weekend', zone: UTC, from: EU_SPRING, spec: 'sat,sun 00:00-24:00', peakAt: { sat: ['00:00'] }, offAt: { mon: ['00:00'] } },
  { name: 'default', zone: UTC, from: EU_FALL, spec: DEFAULT_PEAK_HOURS, peakAt: { all: ['14:00'] }, offAt: { all: ['22:00'] } },
  { name: 'none', zone: UTC, from: EU_SPRING, spec: 'none', peakAt: {}, offAt: {} },
];

function isoDate(d: LocalDate): string {
  return `${d.year}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`;
}

function hhmm(h: number, m: number): string {
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
}

function expectedFlips(c: WeekCase): Record<string, { peakAt: string[]; offAt: string[] }> {
  const out: Record<string, { peakAt: string[]; offAt: string[] }> = {};
  for (let i = 0; i < 7; i++) {
    const date = addLocalDays(c.from, i);
    const day = DAY_NAMES[new Date(Date.UTC(date.year, date.month - 1, date.day)).getUTCDay()] as DayName;
    const except = c.except?.[isoDate(date)];
    out[isoDate(date)] = {
      peakAt: except?.peakAt ?? c.peakAt[day] ?? c.peakAt.all ?? [],
      offAt: except?.offAt ?? c.offAt[day] ?? c.offAt.all ?? [],
    };
  }
  return out;
}

// The rule as a person states it: peak while the local clock shows a time inside a window.
function clockSaysPeak(p: ZonedParts, windows: readonly PeakWindow[]): boolean {
  const m = p.hour * 60 + p.minute;
  const yesterday = ((p.weekday + 6) % 7) as Weekday;
  return windows.some((w) => {
    const s = w.start.hour * 60 + w.start.minute;
    const e = w.end.hour * 60 + w.end.minute;
    const today = w.days.has(p.weekday as Weekday);
    return e > s ? today && s <= m && m < e : (today && m >= s) || (w.days.has(yesterday) && m < e);
  });
}

describe('a simulated week, minute by minute', () => {
  it.each(WEEKS)('$zone $spec: $name', (c) => {
    const windows = parsePeakHours(c.spec);
    const start = zonedToEpoch({ ...c.from, hour: 0, minute: 0 }, c.zone);
    const end = zonedToEpoch({ ...addLocalDays(c.from, 7), hour: 0, minute: 0 }, c.zone);
    const flips: { at: number; toPeak: boolean }[] = [];
    const clockMismatches: string[] = [];
    let before = isPeak(start - MINUTE_MS, windows, c.zone);
    let latestReading = -Infinity;
    for (let t = start; t < end; t += MINUTE_MS) {
      const now = isPeak(t, windows, c.zone);
      if (now !== before) flips.push({ at: t, toPeak: now });
      before = now;
      // Except while a fall-back repeats an hour (the clock reads earlier than it did), the
      // clock reading decides.
      const p = zonedParts(t, c.zone);
      const reading = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute);
      const repeated = reading < latestReading;
      latestReading = Math.max(latestReading, reading);
      if (c.clockRule !== false && !repeated && now !== clockSaysPeak(p, windows)) clockMismatches.push(new Date(t).toISOString());
    }
    expect(clockMismatches).toEqual([]);

    // Every window is entered and left exactly once on each day it applies to, at its local time.
    const actual: Record<string, { peakAt: string[]; offAt: string[] }> = {};
    for (let i = 0; i < 7; i++) actual[isoDate(addLocalDays(c.from, i))] = { peakAt: [], offAt: [] };
    for (const f of flips) {
      const p = zonedParts(f.at, c.zone);
      actual[isoDate(p)]![f.toPeak ? 'peakAt' : 'offAt'].push(hhmm(p.hour, p.minute));
    }
    expect(actual).toEqual(expectedFlips(c));

    // nextOffPeakStart and nextPeakStart name the flips the minute loop saw (sampled: every
    // 31 minutes, and each minute around a flip).
    const samples = new Set<number>();
    for (let t = start; t < end; t += 31 * MINUTE_MS) samples.add(t);
    for (const f of flips) for (let k = -2; k <= 2; k++) samples.add(f.at + k * MINUTE_MS);
    const wrong: string[] = [];
    for (const t of samples) {
      const peak = isPeak(t, windows, c.zone);
      const nextFlip = flips.find((f) => f.at > t && f.toPeak !== peak)?.at;
      const off = nextOffPeakStart(t, windows, c.zone);
      const onset = nextPeakStart(t, windows, c.zone);
      const wantOff = peak ? nextFlip : t;
      const wantOnset = peak ? t : nextFlip;
      if ((wantOff !== undefined && off !== wantOff) || (wantOnset !== undefined && onset !== wantOnset)) {
        wrong.push(`${new Date(t).toISOString()}: off ${off} want ${wantOff}, peak ${onset} want ${wantOnset}`);
      }
      if (c.spec === 'none' && onset !== undefined) wrong.push(`${new Date(t).toISOString()}: peak coming with none`);
    }
    expect(wrong).toEqual([]);
  });
});

describe('dispatchDecision', () => {
  const windows = parsePeakHours(DEFAULT_PEAK_HOURS);
  // Mon 15 Jun 2026 in Amsterdam (UTC+2): 10:00 is off-peak, 15:00 peak until 22:00.
  const offPeak = utc(2026, 6, 15, 8, 0);
  const peak = utc(2026, 6, 15, 13, 0);
  const peakEnds = utc(2026, 6, 15, 20, 0);
  const midnight = utc(2026, 6, 15, 22, 0);
  const monthEnd = utc(2026, 6, 30, 22, 0);

  type Overrides = Partial<Omit<DispatchInput, 'budget'>> & { budget?: Partial<DispatchInput['budget']> };
  function input(overrides: Overrides = {}): DispatchInput {
    return {
      now: offPeak,
      windows,
      timeZone: AMS,
      paused: false,
      forced: false,
      running: 0,
      maxParallel: 1,
      ...overrides,
      budget: { dailyLeftUsd: 10, monthlyLeftUsd: 100, dailyResetsAt: midnight, monthlyResetsAt: monthEnd, minRunUsd: 2, ...overrides.budget },
    };
  }

  it.each([
    { name: 'off-peak starts', over: {}, want: { kind: 'start' } },
    { name: 'peak waits for its end', over: { now: peak }, want: { kind: 'wait', reason: 'peak', until: peakEnds } },
    { name: 'a forced run starts in peak', over: { now: peak, forced: true }, want: { kind: 'start' } },
    { name: 'paused waits with no end', over: { paused: true }, want: { kind: 'wait', reason: 'paused' } },
    { name: 'paused beats forced', over: { now: peak, paused: true, forced: true }, want: { kind: 'wait', reason: 'paused' } },
    { name: 'paused beats an empty budget', over: { paused: true, budget: { dailyLeftUsd: 0 } }, want: { kind: 'wait', reason: 'paused' } },
    { name: 'daily cap waits for the reset', over: { budget: { dailyLeftUsd: 1.99 } }, want: { kind: 'wait', reason: 'budget-daily', until: midnight } },
    { name: 'exactly the minimum left starts', over: { budget: { dailyLeftUsd: 2, monthlyLeftUsd: 2 } }, want: { kind: 'start' } },
    { name: 'forced does not beat the daily cap', over: { now: peak, forced: true, budget: { dailyLeftUsd: 0 } }, want: { kind: 'wait', reason: 'budget-daily', until: midnight } },
    { name: 'monthly cap waits for the month', over: { budget: { monthlyLeftUsd: 0 } }, want: { kind: 'wait', reason: 'budget-monthly', until: monthEnd } },
    { name: 'both caps: the month lifts last', over: { budget: { dailyLeftUsd: 0, monthlyLeftUsd: 0 } }, want: { kind: 'wait', reason: 'budget-monthly', until: monthEnd } },
    { name: 'peak and daily cap: the cap lifts last', over: { now: peak, budget: { dailyLeftUsd: 0 } }, want: { kind: 'wait', reason: 'budget-daily', until: midnight } },
    {
      name: 'peak and daily cap: the peak lifts last',
      over: { now: peak, budget: { dailyLeftUsd: 0, dailyResetsAt: peakEnds - HOUR_MS } },
      want: { kind: 'wait', reason: 'peak', until: peakEnds },
    },
    { name: 'peak and cap lifting together: the cap', over: { now: peak, budget: { dailyLeftUsd: 0, dailyResetsAt: peakEnds } }, want: { kind: 'wait', reason: 'budget-daily', until: peakEnds } },
    { name: 'all slots busy', over: { running: 1 }, want: { kind: 'wait', reason: 'busy' } },
    { name: 'forced does not beat busy', over: { now: peak, forced: true, running: 1 }, want: { kind: 'wait', reason: 'busy' } },
    { name: 'busy in peak says peak', over: { now: peak, running: 1 }, want: { kind: 'wait', reason: 'peak', until: peakEnds } },
    { name: 'a free slot of two starts', over: { running: 1, maxParallel: 2 }, want: { kind: 'start' } },
    { name: 'never peak starts at any hour', over: { now: peak, windows: [] }, want: { kind: 'start' } },
  ])('$name', ({ over, want }) => {
    expect(dispatchDecision(input(over as Overrides))).toEqual(want);
  });

  it.each([
    // Amsterdam, Sat 28 Mar 23:30 CET, night window: peak lasts until the clock jumps to 03:00 CEST.
    { zone: AMS, spec: '22:00-02:00', now: utc(2026, 3, 28, 22, 30), want: { kind: 'wait', reason: 'peak', until: utc(2026, 3, 29, 1, 0) } },
    { zone: AMS, spec: '22:00-02:00', now: utc(2026, 3, 29, 1, 0), want: { kind: 'start' } },
    // Sun 29 Mar, a 23-hour day: 14:00 CEST is 12:00 UTC.
    { zone: AMS, spec: DEFAULT_PEAK_HOURS, now: utc(2026, 3, 29, 11, 59), want: { kind: 'start' } },
    { zone: AMS, spec: DEFAULT_PEAK_HOURS, now: utc(2026, 3, 29, 12, 0), want: { kind: 'wait', reason: 'peak', until: utc(2026, 3, 29, 20, 0) } },
    // Sun 25 Oct, a 25-hour day: 14:00 CET is 13:00 UTC.
    { zone: AMS, spec: DEFAULT_PEAK_HOURS, now: utc(2026, 10, 25, 12, 59), want: { kind: 'start' } },
    { zone: AMS, spec: DEFAULT_PEAK_HOURS, now: utc(2026, 10, 25, 13, 0), want: { kind: 'wait', reason: 'peak', until: utc(2026, 10, 25, 21, 0) } },
    // Amsterdam fall back: 02:30 CEST is peak until 03:30 CET, through the repeated hour.
    { zone: AMS, spec: '02:30-03:30', now: utc(2026, 10, 25, 0, 30), want: { kind: 'wait', reason: 'peak', until: utc(2026, 10, 25, 2, 30) } },
    // New York, Sun 8 Mar: 14:00 EDT is 18:00 UTC; Sat 7 Mar 14:00 EST was 19:00 UTC.
    { zone: NYC, spec: DEFAULT_PEAK_HOURS, now: utc(2026, 3, 7, 18, 30), want: { kind: 'start' } },
    { zone: NYC, spec: DEFAULT_PEAK_HOURS, now: utc(2026, 3, 8, 18, 0), want: { kind: 'wait', reason: 'peak', until: utc(2026, 3, 9, 2, 0) } },
    // New York fall back: 00:30-01:30 ends at 01:30 EDT; at 01:15 EST (the second showing) runs start.
    { zone: NYC, spec: '00:30-01:30', now: utc(2026, 11, 1, 5, 15), want: { kind: 'wait', reason: 'peak', until: utc(2026, 11, 1, 5, 30) } },
    { zone: NYC, spec: '00:30-01:30', now: utc(2026, 11, 1, 6, 15), want: { kind: 'start' } },
  ])('$zone "$spec" at $now', ({ zone, spec, now, want }) => {
    expect(dispatchDecision(input({ now, windows: parsePeakHours(spec), timeZone: zone }))).toEqual(want);
  });
});

describe('dayStart, nextDayStart, monthStart, nextMonthStart', () => {
  it.each([
    // Sun 29 Mar in Amsterdam lasts 23 hours; March starts in CET, April in CEST.
    { zone: AMS, now: utc(2026, 3, 29, 12), day: utc(2026, 3, 28, 23), nextDay: utc(2026, 3, 29, 22), month: utc(2026, 2, 28, 23), nextMonth: utc(2026, 3, 31, 22) },
    // Sun 25 Oct lasts 25 hours; October starts in CEST, November in CET.
    { zone: AMS, now: utc(2026, 10, 25, 12), day: utc(2026, 10, 24, 22), nextDay: utc(2026, 10, 25, 23), month: utc(2026, 9, 30, 22), nextMonth: utc(2026, 10, 31, 23) },
    { zone: NYC, now: utc(2026, 3, 8, 12), day: utc(2026, 3, 8, 5), nextDay: utc(2026, 3, 9, 4), month: utc(2026, 3, 1, 5), nextMonth: utc(2026, 4, 1, 4) },
    { zone: NYC, now: utc(2026, 11, 1, 12), day: utc(2026, 11, 1, 4), nextDay: utc(2026, 11, 2, 5), month: utc(2026, 11, 1, 4), nextMonth: utc(2026, 12, 1, 5) },
    // Both showings of 01:30 on 1 Nov belong to the same day.
    { zone: NYC, now: utc(2026, 11, 1, 5, 30), day: utc(2026, 11, 1, 4), nextDay: utc(2026, 11, 2, 5), month: utc(2026, 11, 1, 4), nextMonth: utc(2026, 12, 1, 5) },
    { zone: NYC, now: utc(2026, 11, 1, 6, 30), day: utc(2026, 11, 1, 4), nextDay: utc(2026, 11, 2, 5), month: utc(2026, 11, 1, 4), nextMonth: utc(2026, 12, 1, 5) },
    // Kolkata's new year begins at 18:30 UTC.
    { zone: KOL, now: utc(2026, 12, 31, 18, 29), day: utc(2026, 12, 30, 18, 30), nextDay: utc(2026, 12, 31, 18, 30), month: utc(2026, 11, 30, 18, 30), nextMonth: utc(2026, 12, 31, 18, 30) },
    { zone: KOL, now: utc(2026, 12, 31, 18, 30), day: utc(2026, 12, 31, 18, 30), nextDay: utc(2027, 1, 1, 18, 30), month: utc(2026, 12, 31, 18, 30), nextMonth: utc(2027, 1, 31, 18, 30) },
    { zone: UTC, now: utc(2026, 6, 15, 12), day: utc(2026, 6, 15), nextDay: utc(2026, 6, 16), month: utc(2026, 6, 1), nextMonth: utc(2026, 7, 1) },
    { zone: UTC, now: utc(2026, 12, 31, 23, 59), day: utc(2026, 12, 31), nextDay: utc(2027, 1, 1), month: utc(2026, 12, 1), nextMonth: utc(2027, 1, 1) },
    // Chile springs forward at midnight: Sun 6 Sep 2026 begins at 01:00 (-03), 04:00 UTC.
    { zone: 'America/Santiago', now: utc(2026, 9, 6, 12), day: utc(2026, 9, 6, 4), nextDay: utc(2026, 9, 7, 3), month: utc(2026, 9, 1, 4), nextMonth: utc(2026, 10, 1, 3) },
  ])('$zone at $now', ({ zone, now, day, nextDay, month, nextMonth }) => {
    expect([dayStart(now, zone), nextDayStart(now, zone), monthStart(now, zone), nextMonthStart(now, zone)]).toEqual([day, nextDay, month, nextMonth]);
  });

  // Every 17 minutes through a DST week: now lies in [dayStart, nextDayStart), both are local
  // midnights, and the days last 24 hours except the change day.
  it.each([
    { zone: AMS, from: utc(2026, 3, 26), to: utc(2026, 4, 2), changeDay: 23 },
    { zone: AMS, from: utc(2026, 10, 22), to: utc(2026, 10, 29), changeDay: 25 },
    { zone: NYC, from: utc(2026, 3, 5), to: utc(2026, 3, 12), changeDay: 23 },
    { zone: NYC, from: utc(2026, 10, 29), to: utc(2026, 11, 5), changeDay: 25 },
  ])('brackets a DST week in $zone with local midnights', ({ zone, from, to, changeDay }) => {
    const bad: string[] = [];
    const hours = new Set<number>();
    for (let now = from; now < to; now += 17 * MINUTE_MS) {
      const start = dayStart(now, zone);
      const next = nextDayStart(now, zone);
      const p = zonedParts(start, zone);
      hours.add((next - start) / HOUR_MS);
      if (!(start <= now && now < next && dayStart(next, zone) === next && p.hour === 0 && p.minute === 0)) bad.push(new Date(now).toISOString());
    }
    expect(bad).toEqual([]);
    expect([...hours].sort()).toEqual([24, changeDay].sort());
  });
});
