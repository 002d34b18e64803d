import { describe, expect, it } from 'vitest';
import { nextReviewSlot, parseReviewHours, type ReviewSlot } from '../../src/domain/review-hours.js';
import { HOUR_MS } from '../../src/domain/zoned-time.js';

const AMS = 'Europe/Amsterdam';
const NYC = 'America/New_York';
const KOL = 'Asia/Kolkata';

/** Epoch ms of a UTC wall time; `month` is 1-12. */
function utc(year: number, month: number, day: number, hour = 0, minute = 0): number {
  return Date.UTC(year, month - 1, day, hour, minute);
}

const slot = (hour: number, minute: number): ReviewSlot => ({ hour, minute });

describe('parseReviewHours', () => {
  it.each([
    { text: '08:30,13:00', want: [slot(8, 30), slot(13, 0)] },
    { text: ' 13:00 , 8:30 ,08:30 ', want: [slot(8, 30), slot(13, 0)] },
    { text: '0:00,23:59', want: [slot(0, 0), slot(23, 59)] },
    { text: '9:05', want: [slot(9, 5)] },
    { text: '18:00,07:15,12:00,07:15', want: [slot(7, 15), slot(12, 0), slot(18, 0)] },
  ])('"$text"', ({ text, want }) => {
    expect(parseReviewHours(text)).toEqual(want);
  });

  it.each([
    { text: '25:00', bad: '25:00' },
    { text: '24:00', bad: '24:00' },
    { text: '12:60', bad: '12:60' },
    { text: '08:00, 9:75', bad: '9:75' },
    { text: '8', bad: '8' },
    { text: '08:5', bad: '08:5' },
    { text: '123:00', bad: '123:00' },
    { text: '08.30', bad: '08.30' },
    { text: '-1:00', bad: '-1:00' },
    { text: '8:30 am', bad: '8:30 am' },
    { text: '08:30;13:00', bad: '08:30;13:00' },
    { text: '08:30,', bad: '' },
    { text: '08:30,,13:00', bad: '' },
  ])('rejects "$text" naming "$bad"', ({ text, bad }) => {
    expect(() => parseReviewHours(text)).toThrow(new Error(`"${bad}" is not a time of day (HH:MM)`));
  });

  it.each(['', '   '])('rejects %j as no times', (text) => {
    expect(() => parseReviewHours(text)).toThrow(new Error('no times'));
  });
});

describe('nextReviewSlot', () => {
  const slots = [slot(8, 30), slot(13, 0)];

  // Amsterdam on Mon 15 Jun 2026 is UTC+2.
  it.each([
    { name: 'before the first slot', now: utc(2026, 6, 15, 5, 0), want: utc(2026, 6, 15, 6, 30) },
    { name: 'exactly at a slot → the next one', now: utc(2026, 6, 15, 6, 30), want: utc(2026, 6, 15, 11, 0) },
    { name: 'between slots', now: utc(2026, 6, 15, 9, 0), want: utc(2026, 6, 15, 11, 0) },
    { name: 'exactly at the last slot → tomorrow', now: utc(2026, 6, 15, 11, 0), want: utc(2026, 6, 16, 6, 30) },
    { name: 'late evening → tomorrow', now: utc(2026, 6, 15, 21, 0), want: utc(2026, 6, 16, 6, 30) },
    { name: 'across a month end', now: utc(2026, 6, 30, 20, 0), want: utc(2026, 7, 1, 6, 30) },
  ])('$name', ({ now, want }) => {
    expect(nextReviewSlot(now, slots, AMS)).toBe(want);
  });

  it('does not need sorted slots', () => {
    expect(nextReviewSlot(utc(2026, 6, 15, 9, 0), [slot(13, 0), slot(8, 30)], AMS)).toBe(utc(2026, 6, 15, 11, 0));
  });

  it('keeps the local hour across spring forward (23 hours later)', () => {
    // Sat 28 Mar 09:00 CET → Sun 29 Mar 08:00 CEST.
    expect(nextReviewSlot(utc(2026, 3, 28, 8, 0), [slot(8, 0)], AMS)).toBe(utc(2026, 3, 29, 6, 0));
  });

  it('moves a slot in the spring-forward gap later by the gap', () => {
    // 02:30 does not exist on 29 Mar in Amsterdam; it fires at 03:30 CEST.
    expect(nextReviewSlot(utc(2026, 3, 28, 11, 0), [slot(2, 30)], AMS)).toBe(utc(2026, 3, 29, 1, 30));
  });

  it('fires a slot in the fall-back overlap once, at its first showing', () => {
    const first = nextReviewSlot(utc(2026, 10, 24, 10, 0), [slot(2, 30)], AMS);
    expect(first).toBe(utc(2026, 10, 25, 0, 30)); // 02:30 CEST
    // Not again at 02:30 CET an hour later: the next one is Monday's.
    expect(nextReviewSlot(first, [slot(2, 30)], AMS)).toBe(utc(2026, 10, 26, 1, 30));
  });

  it('keeps the local hour across US fall back', () => {
    // Sat 31 Oct 20:00 EDT → Sun 1 Nov 08:30 EST.
    expect(nextReviewSlot(utc(2026, 11, 1, 0, 0), slots, NYC)).toBe(utc(2026, 11, 1, 13, 30));
  });

  it('uses the local date in a half-hour zone', () => {
    // 23:00 IST on 15 Jun (17:30 UTC) → 08:30 IST on 16 Jun.
    expect(nextReviewSlot(utc(2026, 6, 15, 17, 30), slots, KOL)).toBe(utc(2026, 6, 16, 3, 0));
  });

  it('throws without slots', () => {
    expect(() => nextReviewSlot(0, [], AMS)).toThrow('no review slots');
  });
});
