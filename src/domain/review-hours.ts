import { addLocalDays, zonedParts, zonedToEpoch, type LocalDate } from './zoned-time.js';

/** A local wall-clock time of day at which review cards are sent. */
export interface ReviewSlot {
  readonly hour: number;
  readonly minute: number;
}

const TIME_OF_DAY = /^(\d{1,2}):(\d{2})$/;

/**
 * Slots from text like "08:30, 13:00" ("H:MM" or "HH:MM", 00:00-23:59), sorted, without
 * duplicates. Throws an Error whose message names the bad part, fit to show as-is.
 */
export function parseReviewHours(text: string): ReviewSlot[] {
  if (text.trim() === '') throw new Error('no times');
  const byMinute = new Map<number, ReviewSlot>();
  for (const raw of text.split(',')) {
    const part = raw.trim();
    const match = TIME_OF_DAY.exec(part);
    const hour = Number(match?.[1]);
    const minute = Number(match?.[2]);
    if (!match || hour > 23 || minute > 59) throw new Error(`"${part}" is not a time of day (HH:MM)`);
    byMinute.set(hour * 60 + minute, { hour, minute });
  }
  return [...byMinute.entries()].sort(([a], [b]) => a - b).map(([, slot]) => slot);
}

// Slot instants on the local dates from `firstDay` to `lastDay` days away from now's date.
function slotInstants(now: number, slots: readonly ReviewSlot[], timeZone: string, firstDay: number, lastDay: number): number[] {
  const p = zonedParts(now, timeZone);
  const today: LocalDate = { year: p.year, month: p.month, day: p.day };
  const instants: number[] = [];
  for (let d = firstDay; d <= lastDay; d++) {
    const date = addLocalDays(today, d);
    for (const slot of slots) instants.push(zonedToEpoch({ ...date, ...slot }, timeZone));
  }
  return instants;
}

/**
 * The first slot instant strictly after `now`, in epoch ms. Slots are local wall-clock times:
 * one in a DST gap fires late by the gap length, one in an overlap fires at its first showing.
 * Throws when `slots` is empty.
 */
export function nextReviewSlot(now: number, slots: readonly ReviewSlot[], timeZone: string): number {
  if (slots.length === 0) throw new Error('no review slots');
  // Yesterday too: a gap can push yesterday's slot past midnight.
  const later = slotInstants(now, slots, timeZone, -1, 2).filter((t) => t > now);
  return Math.min(...later);
}
