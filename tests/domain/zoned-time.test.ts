import { describe, expect, it } from 'vitest';
import {
  addLocalDays,
  HOUR_MS,
  isValidTimeZone,
  MINUTE_MS,
  zonedParts,
  zonedToEpoch,
  type LocalDateTime,
} from '../../src/domain/zoned-time.js';

const AMS = 'Europe/Amsterdam';
const NYC = 'America/New_York';
const KOL = 'Asia/Kolkata';
const UTC = 'UTC';
const ZONES = [AMS, NYC, KOL, UTC];

/** Epoch ms of a UTC wall time; `month` is 1-12 like everywhere else here. */
function utc(year: number, month: number, day: number, hour = 0, minute = 0, second = 0, ms = 0): number {
  return Date.UTC(year, month - 1, day, hour, minute, second, ms);
}

describe('zonedParts', () => {
  it.each([
    // EU spring forward, 29 Mar 2026 01:00 UTC: 02:00 CET becomes 03:00 CEST.
    { at: utc(2026, 3, 29, 0, 59), tz: AMS, want: [2026, 3, 29, 1, 59, 0, 0] },
    { at: utc(2026, 3, 29, 1, 0), tz: AMS, want: [2026, 3, 29, 3, 0, 0, 0] },
    // EU fall back, 25 Oct 2026 01:00 UTC: 02:30 shows twice.
    { at: utc(2026, 10, 25, 0, 30), tz: AMS, want: [2026, 10, 25, 2, 30, 0, 0] },
    { at: utc(2026, 10, 25, 1, 30), tz: AMS, want: [2026, 10, 25, 2, 30, 0, 0] },
    // US spring forward, 8 Mar 2026 07:00 UTC: 02:00 EST becomes 03:00 EDT.
    { at: utc(2026, 3, 8, 6, 59), tz: NYC, want: [2026, 3, 8, 1, 59, 0, 0] },
    { at: utc(2026, 3, 8, 7, 0), tz: NYC, want: [2026, 3, 8, 3, 0, 0, 0] },
    // US fall back, 1 Nov 2026 06:00 UTC: 01:30 shows twice.
    { at: utc(2026, 11, 1, 5, 30), tz: NYC, want: [2026, 11, 1, 1, 30, 0, 0] },
    { at: utc(2026, 11, 1, 6, 30), tz: NYC, want: [2026, 11, 1, 1, 30, 0, 0] },
    // Half-hour offset crossing a date (and weekday) boundary.
    { at: utc(2026, 1, 1, 18, 29), tz: KOL, want: [2026, 1, 1, 23, 59, 0, 4] },
    { at: utc(2026, 1, 1, 18, 30), tz: KOL, want: [2026, 1, 2, 0, 0, 0, 5] },
    // Seconds are kept, milliseconds dropped; midnight is hour 0, not 24.
    { at: utc(2026, 6, 15, 12, 34, 56, 789), tz: UTC, want: [2026, 6, 15, 12, 34, 56, 1] },
    { at: utc(2026, 6, 15, 22, 0), tz: AMS, want: [2026, 6, 16, 0, 0, 0, 2] },
    // Before the epoch.
    { at: utc(1969, 12, 31, 23, 59, 59, 500), tz: UTC, want: [1969, 12, 31, 23, 59, 59, 3] },
  ])('$at in $tz', ({ at, tz, want }) => {
    const [year, month, day, hour, minute, second, weekday] = want;
    expect(zonedParts(at, tz)).toEqual({ year, month, day, hour, minute, second, weekday });
  });

  it('throws a RangeError for an unknown zone', () => {
    expect(() => zonedParts(0, 'Mars/Olympus_Mons')).toThrow(RangeError);
  });
});

describe('zonedToEpoch', () => {
  const wall = (year: number, month: number, day: number, hour: number, minute: number): LocalDateTime => ({
    year,
    month,
    day,
    hour,
    minute,
  });

  it.each([
    { name: 'AMS before spring forward', local: wall(2026, 3, 29, 1, 59), tz: AMS, want: utc(2026, 3, 29, 0, 59) },
    { name: 'AMS gap 02:00 → 03:00 CEST', local: wall(2026, 3, 29, 2, 0), tz: AMS, want: utc(2026, 3, 29, 1, 0) },
    { name: 'AMS gap 02:30 → 03:30 CEST', local: wall(2026, 3, 29, 2, 30), tz: AMS, want: utc(2026, 3, 29, 1, 30) },
    { name: 'AMS after spring forward', local: wall(2026, 3, 29, 3, 0), tz: AMS, want: utc(2026, 3, 29, 1, 0) },
    { name: 'AMS before fall back', local: wall(2026, 10, 25, 1, 59), tz: AMS, want: utc(2026, 10, 24, 23, 59) },
    { name: 'AMS overlap 02:00 → earlier (CEST)', local: wall(2026, 10, 25, 2, 0), tz: AMS, want: utc(2026, 10, 25, 0, 0) },
    { name: 'AMS overlap 02:30 → earlier (CEST)', local: wall(2026, 10, 25, 2, 30), tz: AMS, want: utc(2026, 10, 25, 0, 30) },
    { name: 'AMS after fall back', local: wall(2026, 10, 25, 3, 0), tz: AMS, want: utc(2026, 10, 25, 2, 0) },
    { name: 'NYC gap 02:30 → 03:30 EDT', local: wall(2026, 3, 8, 2, 30), tz: NYC, want: utc(2026, 3, 8, 7, 30) },
    { name: 'NYC after spring forward', local: wall(2026, 3, 8, 3, 0), tz: NYC, want: utc(2026, 3, 8, 7, 0) },
    { name: 'NYC before fall back', local: wall(2026, 11, 1, 0, 59), tz: NYC, want: utc(2026, 11, 1, 4, 59) },
    { name: 'NYC overlap 01:30 → earlier (EDT)', local: wall(2026, 11, 1, 1, 30), tz: NYC, want: utc(2026, 11, 1, 5, 30) },
    { name: 'NYC after fall back', local: wall(2026, 11, 1, 2, 0), tz: NYC, want: utc(2026, 11, 1, 7, 0) },
    { name: 'KOL midnight', local: wall(2026, 1, 2, 0, 0), tz: KOL, want: utc(2026, 1, 1, 18, 30) },
    { name: 'UTC', local: wall(2026, 6, 15, 12, 34), tz: UTC, want: utc(2026, 6, 15, 12, 34) },
    { name: 'overflowing day rolls over', local: wall(2026, 1, 32, 8, 0), tz: UTC, want: utc(2026, 2, 1, 8, 0) },
  ])('$name', ({ local, tz, want }) => {
    expect(zonedToEpoch(local, tz)).toBe(want);
  });

  // Every hour (at :30) of 2026 as a wall time, in every zone: outside the two known gaps it
  // must read back as itself; inside a gap it reads back one hour later.
  it.each(ZONES)('round-trips every hour of 2026 in %s', (tz) => {
    const gaps: Record<string, Array<[number, number, number]>> = {
      [AMS]: [[3, 29, 2]],
      [NYC]: [[3, 8, 2]],
    };
    const minute = 30;
    const mismatches: string[] = [];
    for (let date = { year: 2026, month: 1, day: 1 }; date.year === 2026; date = addLocalDays(date, 1)) {
      for (let hour = 0; hour < 24; hour++) {
        const p = zonedParts(zonedToEpoch({ ...date, hour, minute }, tz), tz);
        const inGap = (gaps[tz] ?? []).some(([m, d, h]) => m === date.month && d === date.day && h === hour);
        const want = `${date.month}-${date.day} ${inGap ? hour + 1 : hour}:${minute}`;
        const got = `${p.month}-${p.day} ${p.hour}:${p.minute}`;
        if (p.year !== 2026 || got !== want) mismatches.push(`${want} read back as ${got}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  // Every 15 minutes around the 2026 transitions: an instant's wall time maps back to it, or to
  // the instant an hour earlier when that wall time shows twice.
  it.each([
    { tz: AMS, from: utc(2026, 3, 28), to: utc(2026, 3, 30), repeats: 0 },
    { tz: AMS, from: utc(2026, 10, 24), to: utc(2026, 10, 26), repeats: 4 },
    { tz: NYC, from: utc(2026, 3, 7), to: utc(2026, 3, 9), repeats: 0 },
    { tz: NYC, from: utc(2026, 10, 31), to: utc(2026, 11, 2), repeats: 4 },
  ])('maps wall times back to the earlier instant around $tz transitions', ({ tz, from, to, repeats }) => {
    const repeated: number[] = [];
    for (let t = from; t < to; t += 15 * MINUTE_MS) {
      const back = zonedToEpoch(zonedParts(t, tz), tz);
      if (back !== t) {
        expect(back).toBe(t - HOUR_MS);
        repeated.push(t);
      }
    }
    // A fall-back repeats one hour: four quarter hours map to the hour before.
    expect(repeated).toHaveLength(repeats);
  });
});

describe('isValidTimeZone', () => {
  it.each([
    [AMS, true],
    [NYC, true],
    [KOL, true],
    [UTC, true],
    ['Etc/GMT+5', true],
    ['Mars/Olympus_Mons', false],
    ['', false],
    ['Europe/Nowhere', false],
  ])('%s → %s', (tz, want) => {
    expect(isValidTimeZone(tz)).toBe(want);
  });
});

describe('addLocalDays', () => {
  it.each([
    { from: [2026, 3, 28], n: 1, want: [2026, 3, 29] },
    { from: [2026, 12, 31], n: 1, want: [2027, 1, 1] },
    { from: [2026, 3, 1], n: -1, want: [2026, 2, 28] },
    { from: [2028, 2, 28], n: 1, want: [2028, 2, 29] },
    { from: [2028, 2, 29], n: 365, want: [2029, 2, 28] },
    { from: [2026, 6, 15], n: 0, want: [2026, 6, 15] },
    { from: [2026, 1, 1], n: -366, want: [2024, 12, 31] },
  ])('$from + $n → $want', ({ from, n, want }) => {
    const [year, month, day] = from as [number, number, number];
    expect(addLocalDays({ year, month, day }, n)).toEqual({ year: want[0], month: want[1], day: want[2] });
  });
});
