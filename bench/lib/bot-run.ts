/**
 * Running a bot process against the fake Telegram for the timing benchmarks: nightshift itself
 * (`node dist/main.js`, exactly what `npm start` runs) or the baseline echo bot.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ALICE, botEnv, tempDir } from '../../tests/helpers/bot-process.js';
import type { FakeTelegram, RecordedCall } from '../../tests/fakes/telegram-server.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** Which bot runs. */
export type BotKind = 'nightshift' | 'echo';

/** A bot process with what the benchmarks read from it. */
export interface RunningBot {
  readonly child: ChildProcess;
  /** Milliseconds from spawn to its first getUpdates at the fake. */
  readonly startMs: number;
  /** Resident memory now, in MB (from /proc). */
  rssMb(): number;
  /** SIGTERM, wait for the exit. */
  stop(): Promise<void>;
}

/** Starts `kind` on `telegram` and waits for its first poll. Output is discarded (production log level). */
export async function startBot(kind: BotKind, telegram: FakeTelegram, dataDir = tempDir('ns-bench-')): Promise<RunningBot> {
  const env = botEnv(telegram.apiRoot, dataDir, { LOG_LEVEL: 'info' });
  const script = kind === 'nightshift' ? join(ROOT, 'dist/main.js') : join(ROOT, 'bench/support/echo-bot.mjs');
  const polls = telegram.callsOf('getUpdates').length;
  const spawnedAt = performance.now();
  // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the bot under the benchmark's load.
  const child = spawn(process.execPath, [...(process.env.BENCH_NODE_ARGS?.split(' ') ?? []), script], {
    cwd: kind === 'nightshift' ? tempDir('ns-bench-cwd-') : ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
  const exited = once(child, 'exit');
  const firstPoll = await telegram
    .waitFor(() => telegram.callsOf('getUpdates')[polls], { what: `${kind} to poll`, timeoutMs: 20_000 })
    .catch((error: unknown) => {
      child.kill('SIGKILL');
      throw new Error(`${kind} did not start: ${String(error)}\n${stderr}`);
    });
  return {
    child,
    startMs: firstPoll.hrAt - spawnedAt,
    rssMb() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
      return kb / 1024;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Latencies of one burst: each pushed update to the call that answers it. */
export interface Burst {
  /** Milliseconds from push to answer, in push order. */
  readonly latencies: number[];
}

/**
 * Pushes `count` taps on `message` at once and waits until each is answered
 * (answerCallbackQuery with its id). Latency: push (the update is available) to the answer's arrival.
 */
export async function tapBurst(telegram: FakeTelegram, message: { message_id: number; chat_id: number }, data: (i: number) => string, count: number): Promise<Burst> {
  const pushed: Array<{ id: string; at: number }> = [];
  for (let i = 0; i < count; i++) {
    const at = performance.now();
    const update = telegram.pushCallback(ALICE, message, data(i));
    pushed.push({ id: update.callback_query!.id, at });
  }
  const ids = new Set(pushed.map((p) => p.id));
  const answers = await telegram.waitFor(
    () => {
      const found = telegram.callsOf('answerCallbackQuery').filter((c) => ids.has(String(c.params.callback_query_id)));
      return found.length >= count ? found : undefined;
    },
    { what: `${count} taps answered`, timeoutMs: 30_000 },
  );
  const answeredAt = new Map(answers.map((c) => [String(c.params.callback_query_id), c.hrAt]));
  return { latencies: pushed.map((p) => answeredAt.get(p.id)! - p.at) };
}

/**
 * Pushes `texts` from Alice at once and waits for as many new messages to her (each update is
 * answered by one message, in order). Latency: push to the arrival of the matching sendMessage.
 */
export async function messageBurst(telegram: FakeTelegram, texts: readonly string[], timeoutMs = 30_000): Promise<Burst> {
  const before = sendsTo(telegram).length;
  const pushedAt: number[] = [];
  for (const text of texts) {
    pushedAt.push(performance.now());
    telegram.pushMessage(ALICE, text);
  }
  const sends = await telegram.waitFor(
    () => {
      const all = sendsTo(telegram);
      return all.length >= before + texts.length ? all.slice(before, before + texts.length) : undefined;
    },
    { what: `${texts.length} replies`, timeoutMs },
  );
  return { latencies: sends.map((c, i) => c.hrAt - pushedAt[i]!) };
}

/** sendMessage calls to Alice, in arrival order. */
export function sendsTo(telegram: FakeTelegram): RecordedCall[] {
  return telegram.callsOf('sendMessage').filter((c) => Number(c.params.chat_id) === ALICE.id);
}
