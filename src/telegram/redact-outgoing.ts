import type { Transformer } from 'grammy';

/**
 * An API transformer that redacts secret values from every string in every outgoing Bot API
 * payload (message text, edits, button labels, callback answers): the one door all text
 * to Telegram goes through.
 */
export function redactOutgoing(redact: (text: string) => string): Transformer {
  return (prev, method, payload, signal) => prev(method, redactValue(payload, redact) as typeof payload, signal);
}

function redactValue(value: unknown, redact: (text: string) => string): unknown {
  if (typeof value === 'string') return redact(value);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, redact));
  // Only plain objects: files (InputFile) and other class instances pass through untouched.
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, redact)]));
  }
  return value;
}
