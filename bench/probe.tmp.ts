import { startFakeTelegram } from '../tests/fakes/telegram-server.js';
import { CANARY } from '../tests/helpers/bot-process.js';
import { messageBurst, startBot } from '../bench/lib/bot-run.js';
import { percentile } from '../bench/lib/report.js';
const telegram = await startFakeTelegram({ token: CANARY.telegramToken });
const bot = await startBot('nightshift', telegram);
await messageBurst(telegram, Array.from({ length: 20 }, (_, i) => `Warm ${i}`));
for (const kind of ['/status', '/backlog', '/help', 'New work item', '/status']) {
  const single: number[] = [];
  for (let i = 0; i < 30; i++) single.push(...(await messageBurst(telegram, [kind])).latencies);
  const burst: number[] = [];
  for (let i = 0; i < 5; i++) burst.push(...(await messageBurst(telegram, Array(10).fill(kind))).latencies);
  console.log(kind, 'single p50', percentile(single, 50).toFixed(1), 'burst p50', percentile(burst, 50).toFixed(1), 'p99', percentile(burst, 99).toFixed(1));
}
await bot.stop(); await telegram.close();
