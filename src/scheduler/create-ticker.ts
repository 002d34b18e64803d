import type { Logger } from 'pino';

/** How often the clock-driven work (deferrals, review sessions, lapsed questions) is looked at. @default 30000 */
export const TICK_INTERVAL_MS = 30_000;

/**
 * Calls `tick` every `intervalMs`, never two at once; a failing tick is logged and the next one
 * runs as usual. The tick reads the clock itself, so the interval only decides how soon
 * something due is noticed.
 */
export function createTicker(deps: { tick: () => Promise<void>; intervalMs?: number; log: Logger }) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const run = (): Promise<void> => {
    running ??= deps
      .tick()
      .catch((err: unknown) => deps.log.error({ err }, 'a scheduled tick failed; the next one tries again'))
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  return {
    start(): void {
      timer = setInterval(() => {
        if (!stopped) void run();
      }, deps.intervalMs ?? TICK_INTERVAL_MS);
      timer.unref();
      void run();
    },
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
