// The baseline of the responsiveness benchmarks: the smallest grammY bot that does what
// nightshift does per update (long polling, one update at a time, answer taps, reply to
// messages), with no database, no auth, no features. Plain JavaScript run by `node`, not tsx,
// so that its memory and start time are grammY's and Node's alone.
import { Bot } from 'grammy';

const bot = new Bot(process.env.TELEGRAM_BOT_TOKEN, { client: { apiRoot: process.env.TELEGRAM_API_ROOT } });
bot.on('callback_query:data', (ctx) => ctx.answerCallbackQuery());
bot.on('message:text', (ctx) => ctx.reply(`ok: ${ctx.message.text.slice(0, 40)}`));
process.on('SIGTERM', () => void bot.stop().then(() => process.exit(0)));
void bot.start({ allowed_updates: ['message', 'callback_query'] });
