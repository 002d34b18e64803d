import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import type { RepoName } from './domain/parse-request.js';
import { DEFAULT_PEAK_HOURS, parsePeakHours, type PeakWindow } from './domain/peak-hours.js';
import { priceFor, type ModelPrice } from './domain/pricing.js';
import { parseReviewHours, type ReviewSlot } from './domain/review-hours.js';


/** The one typed, validated configuration of the process. */
export interface Config {
  readonly telegram: {
    readonly token: string;
    readonly apiRoot: string;
    readonly allowedUsers: readonly number[];
  };
  readonly anthropic: { readonly apiKey: string; readonly baseUrl: string };
  readonly github: { readonly token: string; readonly apiUrl: string; readonly serverUrl: string };
  /** Configured repositories; the first is the default target. Never empty. */
  readonly repos: readonly RepoName[];
  readonly dataDir: string;
  readonly logLevel: LogLevel;
  readonly timezone: string;
  /** Model per stage. */
  readonly models: { readonly build: string; readonly review: string };
  /** The review → triage → fix loop. */
  readonly review: {
    /** Review rounds at most (a fix is reviewed again only while rounds are left). */
    readonly rounds: number;
    /** Reviewers running at once. */
    readonly concurrency: number;
    readonly maxOutputTokens: number;
    /** Dollars the review stage (reviewers and triage, all rounds) of one item may spend. */
    readonly budgetUsd: number;
    /** Dollars each fix run may spend. */
    readonly fixBudgetUsd: number;
  };
  /** Price overrides by exact model id (`NIGHTSHIFT_PRICES`); defaults cover Opus, Sonnet, Haiku 4.x. */
  readonly prices: Readonly<Record<string, ModelPrice>>;
  /** Limits of the build agent's loop. */
  readonly build: AgentLimitsConfig;
  /** Dollar cap for all stages of one item together. */
  readonly itemBudgetUsd: number;
  /** When and how much work runs. */
  readonly schedule: {
    /** Peak windows in `timezone` (`NIGHTSHIFT_PEAK_HOURS`); runs start outside them. @default 14:00-22:00 every day */
    readonly peakHours: readonly PeakWindow[];
    /** Runs at once. @default 1 */
    readonly maxParallel: number;
    /** Failed stage attempts before an item is `failed`. @default 3 */
    readonly maxAttempts: number;
    /** Start queued items automatically off-peak; false: only /run starts them. @default true */
    readonly autoRun: boolean;
  };
  /** Dollar caps of the whole process, per local day and month in `timezone`. */
  readonly budgets: {
    /** @default 20 */
    readonly dailyUsd: number;
    /** At least `dailyUsd`. @default 200 */
    readonly monthlyUsd: number;
    /** Items estimated above this wait for an OK tap. @default 5 */
    readonly confirmAboveUsd: number;
  };
  /** Sizing at queue time: the planning model sizes each new request before it is queued. */
  readonly sizing: {
    /** `NIGHTSHIFT_SIZING`; off: new requests are queued at once, as they are. @default true */
    readonly enabled: boolean;
    /** Dollars sizing one item may spend, all its calls (a question answered means another). @default 0.5 */
    readonly budgetUsd: number;
  };
  /** `batch`: review and triage calls go through the Message Batches API (half price, slower). @default standard */
  readonly economy: 'standard' | 'batch';
  /** How often each pending Message Batch is polled, in ms (`NIGHTSHIFT_BATCH_POLL_SECONDS`). @default 60000 */
  readonly batchPollMs: number;
  /** The human's hourly rate, to price decision time in cost reports; unset: not priced. */
  readonly hourlyRateUsd?: number;
  /** How agent commands run. */
  readonly sandbox: {
    /** `always`: inside bubblewrap, refused where it does not work; `never`: unconfined. @default always */
    readonly mode: 'always' | 'never';
    /** NIGHTSHIFT_SANDBOX said `auto`, which older versions read as "bubblewrap if it works" and now means `always`. */
    readonly legacyAuto: boolean;
    readonly commandTimeoutMs: number;
    readonly allowNetwork: boolean;
    /** Names of environment variables passed through to agent commands. */
    readonly envAllowList: readonly string[];
  };
  /** Review cards and what their buttons do. */
  readonly cards: {
    readonly mergeMethod: 'squash' | 'merge' | 'rebase';
    /** Offer "Merge anyway" when required checks fail. */
    readonly allowMergeWithFailingChecks: boolean;
    /** Review session times; undefined: each card goes out as soon as its item is ready. */
    readonly reviewHours: readonly ReviewSlot[] | undefined;
    /** A drift checkpoint after this many merges of a repo (0: never). */
    readonly driftEvery: number;
    /** Dollars one drift checkpoint may spend. */
    readonly driftBudgetUsd: number;
  };
  /** Every secret value, for redaction by value in logs and outgoing text. */
  readonly secrets: readonly string[];
}

/** The limits every agent loop runs under. */
export interface AgentLimitsConfig {
  readonly maxTurns: number;
  readonly maxOutputTokens: number;
  readonly maxWallClockMs: number;
  readonly budgetUsd: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One bad variable: its name and what is wrong, never its value. */
export interface ConfigProblem {
  readonly variable: string;
  readonly problem: string;
}

/** Thrown by `loadConfig` with every problem found, so the user fixes them all in one go. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(
      `Configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n` +
        problems.map((p) => `  ${p.variable}: ${p.problem}`).join('\n'),
    );
  }
}

const REPO_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/[A-Za-z0-9._-]{1,100}$/;
// Bot API tokens look like "<bot id>:<35 url-safe characters>"; we accept any length after the
// colon so self-hosted Bot API servers and tests work, but catch the common paste mistakes.
const TELEGRAM_TOKEN_RE = /^[0-9]{1,20}:[A-Za-z0-9_-]{20,}$/;

// Bad values are shown so the user can find them, but shortened: a token pasted on the
// wrong line must not end up in full in a terminal or a log.
const shown = (value: string) => JSON.stringify(value.length <= 24 ? value : `${value.slice(0, 6)}…`);

const required = (what: string) =>
  z.string({ error: `missing: set it to ${what}` }).min(1, { error: `empty: set it to ${what}` });

const httpUrl = (what: string, allowFile = false) =>
  z.string().refine(
    (value) => {
      try {
        const url = new URL(value);
        return url.protocol === 'https:' || url.protocol === 'http:' || (allowFile && url.protocol === 'file:');
      } catch {
        return false;
      }
    },
    { error: `not a valid ${allowFile ? 'http(s):// or file://' : 'http(s)://'} URL for ${what}` },
  ).transform((value) => value.replace(/\/+$/, ''));

const isTimeZone = (tz: string): boolean => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
};

const positiveInt = (what: string) =>
  z.string().regex(/^[1-9][0-9]*$/, { error: `must be a positive whole number (${what})` }).transform(Number);
const positiveNumber = (what: string) =>
  z.string().regex(/^(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)$/, { error: `must be a positive number (${what})` }).transform(Number).refine((n) => n > 0, { error: `must be more than 0 (${what})` });
const nonNegativeNumber = (what: string) =>
  z.string().regex(/^(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)$/, { error: `must be a number, 0 or more (${what})` }).transform(Number);
const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' }).transform((v) => ['true', '1', 'yes'].includes(v));
const modelId = z.string().regex(/^[a-z0-9][a-z0-9.:@_-]*$/i, { error: 'does not look like a model id (e.g. claude-sonnet-4-6)' });
const pricesJson = z.string().transform((value, ctx) => {
  const priceShape = z.record(z.string(), z.object({ input: z.number().nonnegative(), output: z.number().nonnegative() }).strict());
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not valid JSON; expected {"model-id": {"input": 3, "output": 15}} in dollars per million tokens' });
    return z.NEVER;
  }
  const result = priceShape.safeParse(parsed);
  if (!result.success) {
    ctx.addIssue({ code: 'custom', message: 'expected {"model-id": {"input": 3, "output": 15}} in dollars per million tokens' });
    return z.NEVER;
  }
  return Object.fromEntries(Object.entries(result.data).map(([m, p]) => [m, { inputPerMTok: p.input, outputPerMTok: p.output }]));
});

const schema = z.object({
  TELEGRAM_BOT_TOKEN: required('the token @BotFather gave you (digits:letters)').regex(TELEGRAM_TOKEN_RE, {
    error: 'does not look like a bot token (expected "<digits>:<letters>" as @BotFather prints it)',
  }),
  TELEGRAM_API_ROOT: httpUrl('the Telegram Bot API').default('https://api.telegram.org'),
  TELEGRAM_ALLOWED_USERS: required('a comma-separated list of numeric Telegram user ids, e.g. 123456789')
    .transform((value, ctx) => {
      const parts = value.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
      const bad = parts.filter((p) => !/^[1-9][0-9]{0,15}$/.test(p));
      if (bad.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `${bad.map(shown).join(', ')} ${bad.length === 1 ? 'is not a' : 'are not'} numeric user id${bad.length === 1 ? '' : 's'} (usernames are not accepted: ids cannot be reassigned, usernames can)`,
        });
        return z.NEVER;
      }
      if (parts.length === 0) {
        ctx.addIssue({ code: 'custom', message: 'empty: nobody could use the bot; list at least one numeric user id' });
        return z.NEVER;
      }
      return [...new Set(parts.map(Number))];
    }),
  ANTHROPIC_API_KEY: required('your Anthropic API key'),
  ANTHROPIC_BASE_URL: httpUrl('the Anthropic API').default('https://api.anthropic.com'),
  GITHUB_TOKEN: required('a fine-grained GitHub token (see README)'),
  GITHUB_API_URL: httpUrl('the GitHub REST API').default('https://api.github.com'),
  GITHUB_SERVER_URL: httpUrl('cloning repositories', true).default('https://github.com'),
  NIGHTSHIFT_REPOS: required('a comma-separated list of owner/name repositories, e.g. me/app')
    .transform((value, ctx) => {
      const parts = value.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
      const bad = parts.filter((p) => !REPO_RE.test(p));
      if (bad.length > 0 || parts.length === 0) {
        ctx.addIssue({
          code: 'custom',
          message:
            parts.length === 0
              ? 'empty: list at least one owner/name repository'
              : `${bad.map(shown).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not owner/name`,
        });
        return z.NEVER;
      }
      const seen = new Map<string, RepoName>();
      for (const fullName of parts) {
        const [owner = '', name = ''] = fullName.split('/');
        seen.set(fullName.toLowerCase(), { owner, name, fullName });
      }
      return [...seen.values()];
    }),
  DATA_DIR: z.string().min(1).default('./data'),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  NIGHTSHIFT_TIMEZONE: z
    .string()
    .refine(isTimeZone, { error: 'not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)' })
    .optional(),
  NIGHTSHIFT_PEAK_HOURS: z
    .string()
    .default(DEFAULT_PEAK_HOURS)
    .transform((value, ctx) => {
      try {
        return parsePeakHours(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `${error instanceof Error ? error.message : String(error)}; expected e.g. 14:00-22:00, "mon-fri 09:00-18:00" or none` });
        return z.NEVER;
      }
    }),
  NIGHTSHIFT_AUTO_RUN: bool.default(true),
  NIGHTSHIFT_MAX_PARALLEL: positiveInt('runs at once').refine((n) => n <= 32, { error: 'must be at most 32' }).default(1),
  NIGHTSHIFT_MAX_ATTEMPTS: positiveInt('failed stage attempts before an item fails').refine((n) => n <= 20, { error: 'must be at most 20' }).default(3),
  NIGHTSHIFT_MODEL_BUILD: modelId.default('claude-sonnet-4-6'),
  NIGHTSHIFT_MODEL_REVIEW: modelId.default('claude-opus-4-6'),
  NIGHTSHIFT_REVIEW_ROUNDS: positiveInt('review rounds per item').refine((n) => n <= 5, { error: 'must be at most 5' }).default(2),
  NIGHTSHIFT_REVIEW_CONCURRENCY: positiveInt('reviewers running at once').default(3),
  NIGHTSHIFT_REVIEW_MAX_OUTPUT_TOKENS: positiveInt('output tokens per review call')
    .refine((n) => n <= 128_000, { error: 'must be at most 128000 (no model writes more in one reply)' })
    .default(8_000),
  NIGHTSHIFT_BUDGET_REVIEW_USD: positiveNumber('dollars per item for reviews and triage').default(4),
  NIGHTSHIFT_BUDGET_FIX_USD: positiveNumber('dollars per fix run').default(3),
  NIGHTSHIFT_PRICES: pricesJson.optional(),
  NIGHTSHIFT_BUILD_MAX_TURNS: positiveInt('model turns per build run').default(60),
  NIGHTSHIFT_BUILD_MAX_OUTPUT_TOKENS: positiveInt('output tokens per model call')
    .refine((n) => n <= 128_000, { error: 'must be at most 128000 (no model writes more in one reply)' })
    .default(16_000),
  NIGHTSHIFT_BUILD_MAX_MINUTES: positiveNumber('minutes per build run').default(60),
  NIGHTSHIFT_BUDGET_BUILD_USD: positiveNumber('dollars per build run').default(5),
  NIGHTSHIFT_BUDGET_ITEM_USD: positiveNumber('dollars per item, all stages').default(15),
  NIGHTSHIFT_BUDGET_DAILY_USD: positiveNumber('dollars per local day, all items').default(20),
  NIGHTSHIFT_BUDGET_MONTHLY_USD: positiveNumber('dollars per local month, all items').default(200),
  NIGHTSHIFT_CONFIRM_ABOVE_USD: nonNegativeNumber('items estimated above this many dollars wait for an OK').default(5),
  NIGHTSHIFT_SIZING: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on').transform((v) => v === 'on'),
  NIGHTSHIFT_BUDGET_SIZING_USD: positiveNumber('dollars per item for sizing').default(0.5),
  NIGHTSHIFT_ECONOMY: z.enum(['standard', 'batch'], { error: 'must be standard or batch' }).default('standard'),
  NIGHTSHIFT_BATCH_POLL_SECONDS: positiveInt('seconds between two polls of a pending batch').refine((n) => n <= 3600, { error: 'must be at most 3600 (an hour)' }).default(60),
  NIGHTSHIFT_HOURLY_RATE: positiveNumber('your hourly rate in dollars, for cost reports').optional(),
  // `auto` is still accepted from older configs; it means `always` (never a silent unconfined fallback).
  NIGHTSHIFT_SANDBOX: z.enum(['always', 'never', 'auto'], { error: 'must be always or never' }).default('always'),
  NIGHTSHIFT_COMMAND_TIMEOUT_SECONDS: positiveInt('seconds per agent command').default(600),
  NIGHTSHIFT_AGENT_NETWORK: bool.default(false),
  NIGHTSHIFT_AGENT_ENV: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*$/, { error: 'must be a comma-separated list of variable names' })
    .transform((v) => v.split(',').map((n) => n.trim()))
    .default([]),
  NIGHTSHIFT_MERGE_METHOD: z.enum(['squash', 'merge', 'rebase'], { error: 'must be squash, merge or rebase' }).default('squash'),
  NIGHTSHIFT_ALLOW_MERGE_WITH_FAILING_CHECKS: bool.default(false),
  NIGHTSHIFT_REVIEW_HOURS: z
    .string()
    .transform((value, ctx) => {
      try {
        return parseReviewHours(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `${error instanceof Error ? error.message : String(error)}; expected e.g. 08:30,13:00` });
        return z.NEVER;
      }
    })
    .optional(),
  NIGHTSHIFT_DRIFT_EVERY: z.coerce.number({ error: 'must be a whole number' }).int({ error: 'must be a whole number' }).min(0, { error: 'must be 0 (off) or more' }).default(5),
  NIGHTSHIFT_BUDGET_DRIFT_USD: positiveNumber('dollars per drift checkpoint').default(2),
});

/** Every variable `loadConfig` reads, in documentation order. */
export const CONFIG_VARIABLES = Object.keys(schema.shape) as readonly (keyof typeof schema.shape)[];

/**
 * Validates the environment into a `Config`. Empty values count as unset, so `FOO=` in `.env`
 * means "use the default". Throws `ConfigError` listing every problem at once.
 */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const input: Record<string, string> = {};
  for (const key of CONFIG_VARIABLES) {
    const value = env[key]?.trim();
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? '(environment)'),
      problem: issue.message,
    }));
    throw new ConfigError(problems);
  }
  const v = parsed.data;
  const [defaultRepo] = v.NIGHTSHIFT_REPOS;
  if (!defaultRepo) throw new ConfigError([{ variable: 'NIGHTSHIFT_REPOS', problem: 'empty' }]);
  const conflicts: ConfigProblem[] = [];
  if (v.NIGHTSHIFT_BUDGET_ITEM_USD < v.NIGHTSHIFT_BUDGET_BUILD_USD) {
    conflicts.push({ variable: 'NIGHTSHIFT_BUDGET_ITEM_USD', problem: `is less than NIGHTSHIFT_BUDGET_BUILD_USD (${v.NIGHTSHIFT_BUDGET_BUILD_USD}); an item's budget covers all its stages` });
  }
  if (v.NIGHTSHIFT_BUDGET_MONTHLY_USD < v.NIGHTSHIFT_BUDGET_DAILY_USD) {
    conflicts.push({ variable: 'NIGHTSHIFT_BUDGET_MONTHLY_USD', problem: `is less than NIGHTSHIFT_BUDGET_DAILY_USD (${v.NIGHTSHIFT_BUDGET_DAILY_USD}); a month's budget covers its days` });
  }
  if (conflicts.length > 0) throw new ConfigError(conflicts);
  const prices = v.NIGHTSHIFT_PRICES ?? {};
  const unpriced = (['NIGHTSHIFT_MODEL_BUILD', 'NIGHTSHIFT_MODEL_REVIEW'] as const).filter((name) => !priceFor(v[name], prices));
  if (unpriced.length > 0) {
    throw new ConfigError(
      unpriced.map((variable) => ({ variable, problem: `no price is known for "${v[variable]}"; add it to NIGHTSHIFT_PRICES so budgets can be enforced` })),
    );
  }
  return {
    telegram: { token: v.TELEGRAM_BOT_TOKEN, apiRoot: v.TELEGRAM_API_ROOT, allowedUsers: v.TELEGRAM_ALLOWED_USERS },
    anthropic: { apiKey: v.ANTHROPIC_API_KEY, baseUrl: v.ANTHROPIC_BASE_URL },
    github: { token: v.GITHUB_TOKEN, apiUrl: v.GITHUB_API_URL, serverUrl: v.GITHUB_SERVER_URL },
    repos: v.NIGHTSHIFT_REPOS,
    dataDir: resolve(v.DATA_DIR),
    logLevel: v.LOG_LEVEL,
    timezone: v.NIGHTSHIFT_TIMEZONE ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC',
    models: { build: v.NIGHTSHIFT_MODEL_BUILD, review: v.NIGHTSHIFT_MODEL_REVIEW },
    review: {
      rounds: v.NIGHTSHIFT_REVIEW_ROUNDS,
      concurrency: v.NIGHTSHIFT_REVIEW_CONCURRENCY,
      maxOutputTokens: v.NIGHTSHIFT_REVIEW_MAX_OUTPUT_TOKENS,
      budgetUsd: v.NIGHTSHIFT_BUDGET_REVIEW_USD,
      fixBudgetUsd: v.NIGHTSHIFT_BUDGET_FIX_USD,
    },
    prices,
    build: {
      maxTurns: v.NIGHTSHIFT_BUILD_MAX_TURNS,
      maxOutputTokens: v.NIGHTSHIFT_BUILD_MAX_OUTPUT_TOKENS,
      maxWallClockMs: Math.round(v.NIGHTSHIFT_BUILD_MAX_MINUTES * 60_000),
      budgetUsd: v.NIGHTSHIFT_BUDGET_BUILD_USD,
    },
    itemBudgetUsd: v.NIGHTSHIFT_BUDGET_ITEM_USD,
    schedule: { peakHours: v.NIGHTSHIFT_PEAK_HOURS, maxParallel: v.NIGHTSHIFT_MAX_PARALLEL, maxAttempts: v.NIGHTSHIFT_MAX_ATTEMPTS, autoRun: v.NIGHTSHIFT_AUTO_RUN },
    budgets: { dailyUsd: v.NIGHTSHIFT_BUDGET_DAILY_USD, monthlyUsd: v.NIGHTSHIFT_BUDGET_MONTHLY_USD, confirmAboveUsd: v.NIGHTSHIFT_CONFIRM_ABOVE_USD },
    sizing: { enabled: v.NIGHTSHIFT_SIZING, budgetUsd: v.NIGHTSHIFT_BUDGET_SIZING_USD },
    economy: v.NIGHTSHIFT_ECONOMY,
    batchPollMs: v.NIGHTSHIFT_BATCH_POLL_SECONDS * 1000,
    ...(v.NIGHTSHIFT_HOURLY_RATE === undefined ? {} : { hourlyRateUsd: v.NIGHTSHIFT_HOURLY_RATE }),
    sandbox: {
      mode: v.NIGHTSHIFT_SANDBOX === 'never' ? 'never' : 'always',
      legacyAuto: v.NIGHTSHIFT_SANDBOX === 'auto',
      commandTimeoutMs: v.NIGHTSHIFT_COMMAND_TIMEOUT_SECONDS * 1000,
      allowNetwork: v.NIGHTSHIFT_AGENT_NETWORK,
      envAllowList: v.NIGHTSHIFT_AGENT_ENV,
    },
    cards: {
      mergeMethod: v.NIGHTSHIFT_MERGE_METHOD,
      allowMergeWithFailingChecks: v.NIGHTSHIFT_ALLOW_MERGE_WITH_FAILING_CHECKS,
      reviewHours: v.NIGHTSHIFT_REVIEW_HOURS,
      driftEvery: v.NIGHTSHIFT_DRIFT_EVERY,
      driftBudgetUsd: v.NIGHTSHIFT_BUDGET_DRIFT_USD,
    },
    secrets: [v.TELEGRAM_BOT_TOKEN, v.ANTHROPIC_API_KEY, v.GITHUB_TOKEN],
  };
}

/**
 * Reads `.env` (if present) under the process environment: a variable set in the real
 * environment wins over the file, so `FOO=x npm start` overrides `.env` as people expect.
 */
export function loadEnvFile(path: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (!existsSync(path)) return env;
  const fromFile = parseEnv(readFileSync(path, 'utf8'));
  return { ...fromFile, ...env };
}
