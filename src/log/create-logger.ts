import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';
import { createRedactor, REDACTED } from '../domain/redact.js';

export type { Logger } from 'pino';

/** Options for the root logger. */
export interface LoggerOptions {
  readonly level: string;
  /** Secret values; they are replaced by `[REDACTED]` wherever they appear in a line. */
  readonly secrets: readonly string[];
  /** Where lines go. @default stdout, pretty-printed when it is a terminal */
  readonly destination?: DestinationStream;
}

// Field names that hold secrets by construction, wherever they appear.
const REDACT_PATHS = [
  'token',
  'apiKey',
  'password',
  'authorization',
  '*.token',
  '*.apiKey',
  '*.password',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'headers["x-api-key"]',
  '*.headers["x-api-key"]',
];

/**
 * The one root logger: JSON lines, or pretty output in a terminal. Secrets are redacted by
 * field name and, as a backstop for messages and stack traces that embed them (the bot token
 * is part of every Bot API URL), by value in every line written.
 */
export function createLogger(options: LoggerOptions): Logger {
  const redact = createRedactor(options.secrets);
  const config = {
    level: options.level,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    hooks: { streamWrite: redact },
  };
  if (options.destination) return pino(config, options.destination);
  if (process.stdout.isTTY && isInstalled('pino-pretty')) {
    return pino(config, pino.transport({ target: 'pino-pretty', options: { colorize: true } }));
  }
  return pino(config, createStdoutDestination());
}

/** Longest a log line waits for room in a full stdout pipe before it is dropped. @default 1000 */
export const LOG_WRITE_PATIENCE_MS = 1000;

/**
 * stdout (or `fd`) as a pino destination that never wedges the process. Lines are written
 * synchronously, as pino's default does; but a line for a reader that is gone (EPIPE: the pipe
 * to `tee`, a supervisor or the sandbox launcher was closed) is dropped, as is every line after
 * it, and one that finds the pipe full for LOG_WRITE_PATIENCE_MS is dropped too. pino's default
 * destination retried such a write forever when the process exited, which left a bot whose log
 * reader had died running, unkillable by SIGTERM.
 */
export function createStdoutDestination(fd = 1): DestinationStream {
  let gone = false;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  return {
    write(line: string): void {
      if (gone) return;
      let rest = Buffer.from(line);
      const deadline = Date.now() + LOG_WRITE_PATIENCE_MS;
      while (rest.length > 0) {
        try {
          rest = rest.subarray(writeSync(fd, rest));
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN' && Date.now() < deadline) {
            Atomics.wait(pause, 0, 0, 10);
            continue;
          }
          if (code !== 'EAGAIN') gone = true;
          return;
        }
      }
    },
  };
}

function isInstalled(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}
