import { randomBytes } from 'node:crypto';
import { readlinkSync, realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GrammyError, type Api } from 'grammy';
import { createBuildTools } from './agent/build-tools.js';
import { isBwrapUsable, SANDBOX_FIX } from './agent/tools/run-command.js';
import { ConfigError, loadConfig, loadEnvFile, type Config } from './config.js';
import { createRedactor } from './domain/redact.js';
import { runCeilingUsd } from './domain/size-estimate.js';
import { createLogger, type Logger } from './log/create-logger.js';
import { createGitHub } from './github/create-github.js';
import { createAnthropicClient } from './llm/anthropic-client.js';
import { createBatchClient } from './llm/batch-client.js';
import { createPeriodBudget } from './llm/metered-call.js';
import { createBacklog } from './pipeline/backlog.js';
import { createBatchPoller } from './pipeline/batch-poller.js';
import { collectCardFacts } from './pipeline/card-facts.js';
import { createDecisions } from './pipeline/decisions.js';
import { runDriftCheckpoint } from './pipeline/drift-checkpoint.js';
import { createDriftSchedule } from './pipeline/drift-schedule.js';
import { runBuildStage, type BuildStageDeps, type StageDeps } from './pipeline/build-stage.js';
import { runReviewStage, type ReviewStageDeps } from './pipeline/review-stage.js';
import { createRunner } from './pipeline/runner.js';
import { createSizer } from './pipeline/sizer.js';
import { estimateItemCost, runSizingStage } from './pipeline/sizing.js';
import { createDispatcher, type Dispatcher } from './scheduler/create-dispatcher.js';
import { createTicker } from './scheduler/create-ticker.js';
import { databaseError, DatabaseUnusable, openStore } from './store/open-store.js';
import { BOT_COMMANDS, createBot } from './telegram/create-bot.js';
import { createCardDesk, type CardDesk } from './telegram/card-desk.js';
import { escapeHtml } from './telegram/format.js';
import { createItemNotifier } from './telegram/item-notifier.js';
import { createOutboxSender } from './telegram/outbox-sender.js';
import { createRespond } from './telegram/respond.js';
import { createSizingDesk } from './telegram/sizing-desk.js';
import { createWorkspace } from './workspace/create-workspace.js';

/** How long a graceful stop may take before the process exits anyway (Docker kills after 10 s). @default 8000 */
export const SHUTDOWN_TIMEOUT_MS = 8_000;
/** How often processed update ids older than the retention period are forgotten. @default 6 hours */
export const INBOX_PRUNE_INTERVAL_MS = 6 * 60 * 60 * 1000;
/** The database file inside `DATA_DIR`. */
export const DATABASE_FILE = 'nightshift.db';

/** A running nightshift; `stop` is what SIGINT and SIGTERM call. */
export interface Nightshift {
  stop(reason: string): Promise<void>;
  /** Settles when the bot stops polling (after `stop`, or on a fatal Telegram error). */
  readonly done: Promise<void>;
}

/** How far back /status looks for the median time to decide a card. @default 7 days */
export const DECISION_STATS_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;

/** A holder of the data directory whose heartbeat is older than this is taken over. @default 30000 */
export const LOCK_STALE_MS = 30_000;
/** How often the data-directory lock's heartbeat is renewed. @default 10000 */
export const LOCK_HEARTBEAT_MS = 10_000;

/** Another nightshift already runs on this data directory. */
export class AlreadyRunning extends Error {
  override readonly name = 'AlreadyRunning';
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(`another nightshift (pid ${pid}) is running on ${dataDir}; stop it first, or use another DATA_DIR`);
  }
}

/** What tests inject into a real nightshift. */
export interface StartOptions {
  /** The wall clock (ms epoch) for everything scheduled: deferrals, review sessions, timestamps. @default Date.now */
  readonly now?: () => number;
  /** How often clock-driven work is looked at. @default TICK_INTERVAL_MS */
  readonly tickIntervalMs?: number;
  /** Wait between reads of a PR whose mergeability GitHub is still computing. @default 2000 */
  readonly mergeableIntervalMs?: number;
}

/** The composition root: wires config, store, bot and outbox together and starts polling. */
export async function startNightshift(config: Config, log: Logger, options: StartOptions = {}): Promise<Nightshift> {
  const redact = createRedactor(config.secrets);
  const now = options.now ?? Date.now;
  const databasePath = join(config.dataDir, DATABASE_FILE);
  const store = openStore(databasePath, { now });
  // One process per data directory: two would both build, merge and message.
  const lockOwner = `${hostPrefix()}${process.pid}:${randomBytes(4).toString('hex')}`;
  let locked: ReturnType<typeof store.lock.acquire>;
  try {
    // The first write: a file another process holds locked (or whose damage only shows on
    // writing) fails here, and is reported like a failure to open it.
    locked = store.lock.acquire(lockOwner, process.pid, LOCK_STALE_MS, (holder) => isGoneHere(holder.owner, holder.pid));
  } catch (error) {
    store.close();
    throw databaseError(databasePath, error);
  }
  if (!locked.acquired) {
    store.close();
    throw new AlreadyRunning(config.dataDir, locked.holder.pid);
  }
  const lockTimer = setInterval(() => {
    try {
      if (store.lock.heartbeat(lockOwner)) return;
      log.fatal('another process took over the data directory; stopping');
      void stop('lost the data-directory lock');
    } catch (err) {
      log.warn({ err }, 'could not renew the data-directory lock');
    }
  }, LOCK_HEARTBEAT_MS).unref();
  const pruned = store.inbox.prune();
  const pruneTimer = setInterval(() => {
    try {
      store.inbox.prune();
    } catch (err) {
      log.warn({ err }, 'could not prune the inbox; will try again later');
    }
  }, INBOX_PRUNE_INTERVAL_MS).unref();
  const backlog = createBacklog({ store, sizing: config.sizing.enabled });
  const sender = createOutboxSender({ store, log: log.child({ component: 'outbox' }), now });
  const respond = createRespond({ store, sender });
  let api: Api | undefined;
  let desk: CardDesk | undefined;
  const notifier = createItemNotifier({
    store,
    sender,
    api: () => api,
    log: log.child({ component: 'notifier' }),
    now,
    onReady: (item) => {
      // A card that fails here is not lost: the next tick finds the ready item without one.
      void desk?.itemReady(item).catch((err: unknown) => log.error({ err, itemId: item.id }, 'could not send the review card; the next tick retries'));
    },
  });
  const workspace = createWorkspace({ dataDir: config.dataDir, serverUrl: config.github.serverUrl, token: config.github.token, log: log.child({ component: 'workspace' }) });
  const github = createGitHub({ token: config.github.token, baseUrl: config.github.apiUrl, log: log.child({ component: 'github' }), redact });
  const model = createAnthropicClient({ apiKey: config.anthropic.apiKey, baseUrl: config.anthropic.baseUrl });
  const batchClient = createBatchClient({ apiKey: config.anthropic.apiKey, baseUrl: config.anthropic.baseUrl });
  // One per process: its in-flight reservation is shared by every run, so parallel runs cannot cross a cap together.
  const period = createPeriodBudget(config.budgets, config.timezone, now);
  warnAboutSandbox(config.sandbox, log.child({ component: 'tools' }));
  const stageDeps: StageDeps = {
    store,
    workspace,
    github,
    agent: { model, store, prices: config.prices, redact, period },
    createTools: (cwd) => createBuildTools({ cwd, sandbox: config.sandbox, secrets: config.secrets, log: log.child({ component: 'tools' }) }),
    repos: config.repos,
    itemBudgetUsd: config.itemBudgetUsd,
    notifier,
    log,
  };
  const buildDeps: BuildStageDeps = { ...stageDeps, model: config.models.build, limits: config.build };
  const reviewDeps: ReviewStageDeps = {
    ...stageDeps,
    models: { review: config.models.review, fix: config.models.build },
    review: config.review,
    fixLimits: config.build,
    ...(config.economy === 'batch' ? { batches: batchClient } : {}),
  };
  let dispatcher: Dispatcher | undefined;
  const runner = createRunner({
    store,
    workerId: lockOwner,
    maxParallel: config.schedule.maxParallel,
    maxAttempts: config.schedule.maxAttempts,
    queueStartsItself: config.schedule.autoRun,
    now,
    paused: () => store.settings.paused(),
    onIdleSlot: () => dispatcher?.tick(),
    build: (item, signal) => runBuildStage(buildDeps, item, signal),
    review: (item, signal) => runReviewStage(reviewDeps, item, signal),
    notifier,
    cleanup: (itemId) => workspace.remove(itemId).catch((err: unknown) => log.warn({ err, itemId }, 'could not remove the worktree')),
    log: log.child({ component: 'runner' }),
  });
  // Polls whatever batches are pending, whatever the economy now: they were paid for. Its own
  // ticker, so NIGHTSHIFT_BATCH_POLL_SECONDS alone sets the pace, and a slow results download
  // never holds up cards and deferrals.
  const batchPoller = createBatchPoller({ store, client: batchClient, prices: config.prices, resume: (itemId) => runner.resume(itemId), log: log.child({ component: 'batches' }) });
  const batchTicker = createTicker({ tick: () => batchPoller.tick(), intervalMs: config.batchPollMs, log: log.child({ component: 'batches' }) });
  dispatcher = createDispatcher({
    store,
    runner,
    peakHours: config.schedule.peakHours,
    timeZone: config.timezone,
    maxParallel: config.schedule.maxParallel,
    budgets: config.budgets,
    autoRun: config.schedule.autoRun,
    now,
    log: log.child({ component: 'dispatcher' }),
  });
  const sizingDesk = createSizingDesk({ store, sender });
  // What one run may spend by its caps: the defaults the estimates start from (see README, "Sizing").
  const ceilingUsd = runCeilingUsd({
    buildUsd: config.build.budgetUsd,
    reviewUsd: config.review.budgetUsd,
    fixUsd: config.review.fixBudgetUsd,
    rounds: config.review.rounds,
    itemUsd: config.itemBudgetUsd,
  });
  const sizingLog = log.child({ component: 'sizing' });
  const sizer = createSizer({
    store,
    size: (item, signal) => runSizingStage({ ...stageDeps, model: config.models.review, budgetUsd: config.sizing.budgetUsd, log: sizingLog }, item, signal),
    estimate: (sizeClass) => estimateItemCost(store, sizeClass, ceilingUsd),
    confirmAboveUsd: config.budgets.confirmAboveUsd,
    maxAttempts: config.schedule.maxAttempts,
    present: sizingDesk.present,
    presented: sizingDesk.kick,
    queued: () => dispatcher?.tick(),
    now,
    log: sizingLog,
  });
  const cardLog = log.child({ component: 'cards' });
  const drift = createDriftSchedule({
    store,
    every: config.cards.driftEvery,
    run: (checkpoint, signal) => runDriftCheckpoint({ ...stageDeps, model: config.models.review, budgetUsd: config.cards.driftBudgetUsd }, checkpoint, signal),
    present: (checkpoint, report) => desk?.presentCheckpoint(checkpoint, report, config.telegram.allowedUsers),
    failed: (checkpoint, reason) => {
      for (const chatId of config.telegram.allowedUsers) {
        store.outbox.enqueue({ chatId, text: `⚠️ The drift checkpoint of ${escapeHtml(checkpoint.repo)} failed: ${escapeHtml(reason)}` });
      }
      sender.kick();
    },
    now,
    log: log.child({ component: 'drift' }),
  });
  const decisions = createDecisions({
    store,
    github,
    workspace,
    repos: config.repos,
    review: (itemId) => runner.resume(itemId),
    afterMerge: (item) => drift.afterMerge(item),
    merge: {
      method: config.cards.mergeMethod,
      allowFailingChecks: config.cards.allowMergeWithFailingChecks,
      ...(options.mergeableIntervalMs === undefined ? {} : { mergeableIntervalMs: options.mergeableIntervalMs }),
    },
    timeZone: config.timezone,
    now,
    log: cardLog,
  });
  desk = createCardDesk({
    store,
    sender,
    decisions,
    facts: (item) => collectCardFacts({ store, github, workspace, repos: config.repos, now, log: cardLog }, item),
    reviewHours: config.cards.reviewHours,
    timeZone: config.timezone,
    allowMergeAnyway: config.cards.allowMergeWithFailingChecks,
    now,
    log: cardLog,
  });
  const cardDesk = desk;
  const ticker = createTicker({
    tick: async () => {
      // Requests whose sizing a crash, a failed call or a budget reset left pending.
      sizer.tick();
      // Reviews whose retry wait is over go on in place; queued builds are the dispatcher's.
      // Both before the cards, whose GitHub reads may take a while.
      runner.wakeDue();
      // node-cron wakes the dispatcher every minute; the tick also does, so an item queued off-peak starts soon.
      dispatcher?.tick();
      await cardDesk.tick();
      drift.tick();
    },
    ...(options.tickIntervalMs === undefined ? {} : { intervalMs: options.tickIntervalMs }),
    log: log.child({ component: 'ticker' }),
  });
  const bot = createBot({
    token: config.telegram.token,
    apiRoot: config.telegram.apiRoot,
    allowedUsers: config.telegram.allowedUsers,
    repos: config.repos,
    backlog,
    runner,
    log,
    respond,
    redact,
    control: {
      store,
      dispatcher,
      timeZone: config.timezone,
      now,
      say: (chatId, text, itemId) => {
        store.outbox.enqueue({ chatId, text, ...(itemId === undefined ? {} : { itemId }) });
        sender.kick();
      },
    },
    costs: { store, prices: config.prices, timeZone: config.timezone, hourlyRateUsd: config.hourlyRateUsd, now },
    sizing: { store, sizer, desk: sizingDesk, queued: () => dispatcher?.tick() },
    review: {
      store,
      decisions,
      desk: cardDesk,
      respond,
      afterRetry: () => dispatcher?.tick(),
      status: () => ({
        waiting: store.cards.countWaiting(),
        medianDecisionMs: store.cards.medianDecisionMs(now() - DECISION_STATS_WINDOW_MS),
        pausedRepos: store.checkpoints.paused().map((p) => p.repo),
      }),
    },
  });
  api = bot.api;

  let stopping: Promise<void> | undefined;
  const stop = (reason: string): Promise<void> =>
    (stopping ??= (async () => {
      log.info({ reason }, 'stopping: finishing the update in hand, keeping unsent messages for the next start');
      // First, nothing new starts (a run started now would only be aborted a moment later).
      await dispatcher?.stop();
      // bot.stop() aborts the long poll and confirms the offset of updates already handled;
      // `polling` settles once the update in hand has finished.
      if (bot.isRunning()) await bot.stop().catch((err: unknown) => log.warn({ err }, 'could not confirm the update offset'));
      await polling.catch(() => undefined);
      // The run in hand is aborted at its next safe point and resumes on the next start.
      await runner.stop();
      await ticker.stop();
      await batchTicker.stop();
      await sizer.stop();
      await drift.stop();
      await sender.stop();
      clearInterval(pruneTimer);
      clearInterval(lockTimer);
      store.lock.release(lockOwner);
      store.close();
      log.info('stopped');
    })());

  sender.start(bot.api);
  runner.resumeInterrupted();
  // Decisions a crash interrupted are settled (a merge is looked up, never repeated) before
  // the clock-driven work starts.
  void cardDesk
    .reconcile()
    .catch((err: unknown) => cardLog.error({ err }, 'could not settle interrupted decisions'))
    .finally(() => {
      if (stopping) return;
      ticker.start();
      dispatcher?.start();
    });
  // Batches do not wait for decisions to be settled: polling them touches no card.
  batchTicker.start();
  // bot.start() waits out network errors and 5xx on getMe (a flaky connection at boot is not
  // fatal) but rejects on 401, which `done` turns into a clear fatal message.
  const polling = bot.start({
    allowed_updates: ['message', 'edited_message', 'callback_query'],
    onStart: (me) => {
      log.info(
        { bot: me.username, repos: config.repos.map((r) => r.fullName), allowedUsers: config.telegram.allowedUsers.length, prunedUpdates: pruned },
        'nightshift is running',
      );
      void bot.api.setMyCommands([...BOT_COMMANDS]).catch((err: unknown) => {
        log.warn({ err }, 'could not register the command menu; commands still work when typed');
      });
    },
  });
  const done = polling.catch(async (error: unknown) => {
    log.fatal({ err: error }, describeFatal(error));
    await stop('fatal Telegram error');
    throw error;
  });
  return { stop, done };
}

/**
 * Says once at start what the sandbox setting means here: an old `auto` is now `always`, and
 * under `always` a bubblewrap that does not work will stop every build (each item says so too).
 */
function warnAboutSandbox(sandbox: Config['sandbox'], log: Logger): void {
  if (sandbox.legacyAuto) log.info('NIGHTSHIFT_SANDBOX=auto now means always: agent commands run only inside bubblewrap');
  if (sandbox.mode === 'never') return;
  void isBwrapUsable().then((usable) => {
    if (!usable) log.warn(`bubblewrap does not work here, so builds will fail: ${SANDBOX_FIX}`);
  });
}

/** "host:pid-namespace:": pids are only comparable between processes that share both. */
function hostPrefix(): string {
  let namespace = '';
  try {
    namespace = readlinkSync('/proc/self/ns/pid');
  } catch {
    // Not Linux: the host name alone.
  }
  return `${hostname()}:${namespace}:`;
}

/** Whether a lock holder from this host and pid namespace is gone: its pid is ours (a restarted container) or no longer exists. */
function isGoneHere(owner: string, pid: number): boolean {
  if (!owner.startsWith(hostPrefix())) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function describeFatal(error: unknown): string {
  if (error instanceof GrammyError && error.error_code === 401) return 'Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized)';
  if (error instanceof GrammyError && error.error_code === 409) {
    return 'another process is polling with this bot token (409 Conflict); stop it, or use a different bot';
  }
  return 'polling Telegram failed';
}

/** Entry point: reads `.env` and the environment, starts, and stops cleanly on SIGINT/SIGTERM. */
export async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(loadEnvFile(join(process.cwd(), '.env'), process.env));
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`nightshift: ${error.message}\nSee README.md ("Configuration") and .env.example.\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const log = createLogger({ level: config.logLevel, secrets: config.secrets });
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: reason }, 'unhandled promise rejection; exiting (all state is in SQLite, a restart resumes)');
    process.exit(1);
  });

  let app: Nightshift;
  try {
    app = await startNightshift(config, log);
  } catch (error) {
    if (error instanceof AlreadyRunning) {
      log.fatal({ pid: error.pid }, error.message);
      process.exit(75); // EX_TEMPFAIL
    }
    if (error instanceof DatabaseUnusable) {
      // The message says it all; the stack of a corrupt-file error would only bury it.
      log.fatal({ path: error.path, code: error.code }, error.message);
      process.exit(error.exitCode);
    }
    log.fatal({ err: error }, 'could not start');
    process.exit(1);
  }
  const shutdown = (reason: string) => {
    setTimeout(() => {
      log.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'graceful stop took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    void app.stop(reason).then(() => process.exit(0));
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => shutdown(signal));
  // Started by a supervisor over an IPC channel (the sandbox launcher): when it goes away, even
  // by kill -9, so do we, instead of polling stand-ins that are gone. Only IPC children get this.
  process.on('disconnect', () => shutdown('the process that started nightshift went away'));
  await app.done.catch(() => process.exit(1));
}

// Run only as the entry point (also when started through a symlinked path), not on import.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  void main();
}
