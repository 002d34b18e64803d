import { describe, expect, it } from 'vitest';
import { DEFER_CHOICES, DEFER_LABELS, deferUntil, describeWake, type DeferChoice } from '../../src/domain/defer-until.js';
import { HOUR_MS, zonedParts } from '../../src/domain/zoned-time.js';

const AMS = 'Europe/Amsterdam';
const NYC = 'America/New_York';
const KOL = 'Asia/Kolkata';

/** Epoch ms of a UTC wall time; `month` is 1-12. */
function utc(year: number, month: number, day: number, hour = 0, minute = 0): number {
  return Date.UTC(year, month - 1, day, hour, minute);
}

describe('DEFER_LABELS', () => {
  it('labels every choice, in button order', () => {
    expect(DEFER_CHOICES.map((c) => DEFER_LABELS[c])).toEqual(['1 hour', 'This evening', 'Tomorrow morning', 'Next week']);
  });
});

describe('deferUntil', () => {
  // Amsterdam is UTC+2 in summer (CEST), UTC+1 in winter (CET); 15 Jun 2026 is a Monday.
  it.each<{ name: string; choice: DeferChoice; now: number; tz: string; want: number }>([
    { name: 'hour is absolute', choice: 'hour', now: utc(2026, 6, 15, 8, 17), tz: AMS, want: utc(2026, 6, 15, 9, 17) },
    // 01:30 CET + 1 h is 03:30 CEST: an absolute hour, not a wall-clock one.
    { name: 'hour across spring forward', choice: 'hour', now: utc(2026, 3, 29, 0, 30), tz: AMS, want: utc(2026, 3, 29, 1, 30) },

    { name: 'evening from the morning', choice: 'evening', now: utc(2026, 6, 15, 8, 0), tz: AMS, want: utc(2026, 6, 15, 16, 0) },
    { name: 'evening 31 min before 18:00', choice: 'evening', now: utc(2026, 6, 15, 15, 29), tz: AMS, want: utc(2026, 6, 15, 16, 0) },
    { name: 'evening exactly 30 min before → tomorrow', choice: 'evening', now: utc(2026, 6, 15, 15, 30), tz: AMS, want: utc(2026, 6, 16, 16, 0) },
    { name: 'evening at 19:00 → tomorrow', choice: 'evening', now: utc(2026, 6, 15, 17, 0), tz: AMS, want: utc(2026, 6, 16, 16, 0) },
    // Sat 28 Mar 19:00 CET → Sun 29 Mar 18:00 CEST.
    { name: 'evening across spring forward', choice: 'evening', now: utc(2026, 3, 28, 18, 0), tz: AMS, want: utc(2026, 3, 29, 16, 0) },
    // Sat 24 Oct 20:00 CEST → Sun 25 Oct 18:00 CET.
    { name: 'evening across fall back', choice: 'evening', now: utc(2026, 10, 24, 18, 0), tz: AMS, want: utc(2026, 10, 25, 17, 0) },
    // 23:00 IST on 15 Jun is 17:30 UTC the same day; "today" is the local date.
    { name: 'evening late in Kolkata', choice: 'evening', now: utc(2026, 6, 15, 17, 30), tz: KOL, want: utc(2026, 6, 16, 12, 30) },

    { name: 'morning from mid-day', choice: 'morning', now: utc(2026, 6, 15, 8, 0), tz: AMS, want: utc(2026, 6, 16, 6, 0) },
    { name: 'morning at 23:30', choice: 'morning', now: utc(2026, 6, 15, 21, 30), tz: AMS, want: utc(2026, 6, 16, 6, 0) },
    { name: 'morning at 00:10 → same date', choice: 'morning', now: utc(2026, 6, 14, 22, 10), tz: AMS, want: utc(2026, 6, 15, 6, 0) },
    { name: 'morning at 03:59 → same date', choice: 'morning', now: utc(2026, 6, 15, 1, 59), tz: AMS, want: utc(2026, 6, 15, 6, 0) },
    { name: 'morning at 04:00 → next date', choice: 'morning', now: utc(2026, 6, 15, 2, 0), tz: AMS, want: utc(2026, 6, 16, 6, 0) },
    { name: 'morning at 06:00 → next date', choice: 'morning', now: utc(2026, 6, 15, 4, 0), tz: AMS, want: utc(2026, 6, 16, 6, 0) },
    // Sat 28 Mar 22:00 CET → Sun 29 Mar 08:00 CEST.
    { name: 'morning across spring forward', choice: 'morning', now: utc(2026, 3, 28, 21, 0), tz: AMS, want: utc(2026, 3, 29, 6, 0) },
    // Sun 29 Mar 01:30 CET, a late night, → 08:00 CEST the same date.
    { name: 'morning in the spring-forward night', choice: 'morning', now: utc(2026, 3, 29, 0, 30), tz: AMS, want: utc(2026, 3, 29, 6, 0) },
    // Sat 31 Oct 22:00 EDT → Sun 1 Nov 08:00 EST.
    { name: 'morning across US fall back', choice: 'morning', now: utc(2026, 11, 1, 2, 0), tz: NYC, want: utc(2026, 11, 1, 13, 0) },

    { name: 'week from a Monday → the following Monday', choice: 'week', now: utc(2026, 6, 15, 7, 0), tz: AMS, want: utc(2026, 6, 22, 6, 0) },
    { name: 'week from early Monday → still the following Monday', choice: 'week', now: utc(2026, 6, 15, 4, 0), tz: AMS, want: utc(2026, 6, 22, 6, 0) },
    { name: 'week from a Sunday → the next day', choice: 'week', now: utc(2026, 6, 14, 10, 0), tz: AMS, want: utc(2026, 6, 15, 6, 0) },
    { name: 'week from a Saturday', choice: 'week', now: utc(2026, 6, 13, 10, 0), tz: AMS, want: utc(2026, 6, 15, 6, 0) },
    { name: 'week from a Wednesday', choice: 'week', now: utc(2026, 6, 17, 10, 0), tz: AMS, want: utc(2026, 6, 22, 6, 0) },
    // Sunday 23:30 CEST → the Monday a few hours later.
    { name: 'week from late Sunday', choice: 'week', now: utc(2026, 6, 14, 21, 30), tz: AMS, want: utc(2026, 6, 15, 6, 0) },
    // Monday 00:30 CEST is still Sunday in UTC; locally it is Monday, so a week on.
    { name: 'week from Monday just after midnight', choice: 'week', now: utc(2026, 6, 14, 22, 30), tz: AMS, want: utc(2026, 6, 22, 6, 0) },
    { name: 'week across fall back', choice: 'week', now: utc(2026, 10, 21, 10, 0), tz: AMS, want: utc(2026, 10, 26, 7, 0) },
    { name: 'week across spring forward', choice: 'week', now: utc(2026, 3, 25, 10, 0), tz: AMS, want: utc(2026, 3, 30, 6, 0) },
    { name: 'week across a new year in Kolkata', choice: 'week', now: utc(2026, 12, 31, 6, 0), tz: KOL, want: utc(2027, 1, 4, 2, 30) },
  ])('$name', ({ choice, now, tz, want }) => {
    expect(deferUntil(choice, now, tz)).toBe(want);
  });

  // Every 20 minutes through the weeks of both 2026 EU changes: every choice wakes later than
  // now, and the local ones wake on the hour they promise.
  it.each([
    { change: 'spring forward', from: utc(2026, 3, 23), to: utc(2026, 4, 1) },
    { change: 'fall back', from: utc(2026, 10, 19), to: utc(2026, 10, 28) },
  ])('wakes in the future at the promised local hour around $change', ({ from, to }) => {
    const bad: string[] = [];
    for (let now = from; now < to; now += 20 * 60_000) {
      for (const choice of DEFER_CHOICES) {
        const wake = deferUntil(choice, now, AMS);
        const p = zonedParts(wake, AMS);
        const ok =
          choice === 'hour'
            ? wake === now + HOUR_MS
            : wake > now &&
              wake <= now + 8 * 24 * HOUR_MS &&
              p.hour === (choice === 'evening' ? 18 : 8) &&
              p.minute === 0 &&
              (choice !== 'week' || p.weekday === 1);
        if (!ok) bad.push(`${choice} at ${new Date(now).toISOString()} → ${new Date(wake).toISOString()}`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe('describeWake', () => {
  // now: Mon 15 Jun 2026 10:00 CEST.
  const now = utc(2026, 6, 15, 8, 0);

  it.each([
    { name: 'later today', wake: utc(2026, 6, 15, 16, 0), now, tz: AMS, want: 'today 18:00' },
    { name: 'tomorrow', wake: utc(2026, 6, 16, 6, 0), now, tz: AMS, want: 'tomorrow 08:00' },
    { name: 'next week', wake: utc(2026, 6, 22, 6, 0), now, tz: AMS, want: 'Mon 22 Jun 08:00' },
    { name: 'minutes are padded', wake: utc(2026, 6, 15, 7, 5), now, tz: AMS, want: 'today 09:05' },
    { name: 'the brief example', wake: utc(2026, 11, 30, 7, 0), now, tz: AMS, want: 'Mon 30 Nov 08:00' },
    // 19:00 and 21:00 EDT on 15 Jun straddle UTC midnight but share a local date.
    { name: 'local date, not UTC date', wake: utc(2026, 6, 16, 1, 0), now: utc(2026, 6, 15, 23, 0), tz: NYC, want: 'today 21:00' },
    { name: 'tomorrow across a new year', wake: utc(2027, 1, 1, 7, 0), now: utc(2026, 12, 31, 21, 0), tz: AMS, want: 'tomorrow 08:00' },
    { name: 'another year shows the year', wake: utc(2027, 1, 4, 7, 0), now: utc(2026, 12, 31, 21, 0), tz: AMS, want: 'Mon 4 Jan 2027 08:00' },
    { name: 'tomorrow over spring forward', wake: utc(2026, 3, 29, 6, 0), now: utc(2026, 3, 28, 21, 0), tz: AMS, want: 'tomorrow 08:00' },
  ])('$name → $want', ({ wake, now: at, tz, want }) => {
    expect(describeWake(wake, at, tz)).toBe(want);
  });

  it('describes each choice as the card will show it', () => {
    expect(DEFER_CHOICES.map((c) => describeWake(deferUntil(c, now, AMS), now, AMS))).toEqual([
      'today 11:00',
      'today 18:00',
      'tomorrow 08:00',
      'Mon 22 Jun 08:00',
    ]);
  });
});
