import type { EventEmitter } from 'node:events';

/** Safety re-check interval, for probes that depend on something other than recorded calls. */
export const SAFETY_POLL_MS = 50;

/**
 * Resolves with the first truthy `probe()` result, re-checking whenever `changes` emits
 * 'change' (every recorded call) and every SAFETY_POLL_MS; rejects after `timeoutMs` with
 * `what` and `describe()` (recent calls) so a failure says what was going on. Never a fixed sleep.
 * A probe that throws rejects at once.
 */
export function waitForChange<T>(
  changes: EventEmitter,
  probe: () => T | undefined | false | null,
  opts: { timeoutMs: number; what?: string; describe: () => string },
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = (): void => {
      done = true;
      clearInterval(poll);
      clearTimeout(timer);
      changes.off('change', check);
    };
    const check = (): void => {
      if (done) return;
      let value: T | undefined | false | null;
      try {
        value = probe();
      } catch (err) {
        finish();
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (value) {
        finish();
        resolve(value);
      }
    };
    const poll = setInterval(check, SAFETY_POLL_MS);
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`waitFor timed out after ${opts.timeoutMs} ms: ${opts.what ?? 'condition'}\n${opts.describe()}`));
    }, opts.timeoutMs);
    changes.on('change', check);
    check();
  });
}
