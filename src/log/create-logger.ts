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
  return pino(config);
}

function isInstalled(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}
