import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startChatServer, type ChatServer, type ChatState } from '../../src/sandbox/chat-server.js';
import { startFakeTelegram, type FakeTelegram } from '../../src/sandbox/telegram-server.js';

// The web chat against the real Telegram stand-in; the bot's side is played with plain Bot API
// calls, the page's side with the HTTP calls chat.js makes.

const USER = { id: 4242, username: 'you', first_name: 'You' };
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('chart')]);

let telegram: FakeTelegram;
let chat: ChatServer;

beforeEach(async () => {
  telegram = await startFakeTelegram({ username: 'nightshift_sandbox_bot' });
  chat = await startChatServer(0, () => ({ telegram, user: USER, pages: (path) => (path === '/github/o/r/pull/1' ? '<h1>PR</h1>' : undefined) }));
});

afterEach(async () => {
  await chat.close();
  await telegram.close();
});

/** A Bot API call as the bot makes it. */
async function bot(method: string, params: Record<string, unknown>): Promise<any> {
  const res = await fetch(`${telegram.apiRoot}/bot${telegram.token}/${method}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(params) });
  const body = (await res.json()) as { ok: boolean; result: any; description?: string };
  if (!body.ok) throw new Error(body.description);
  return body.result;
}
const post = (path: string, body: unknown) => fetch(`${chat.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const state = async (since?: string): Promise<ChatState> => (await fetch(`${chat.url}/api/chat${since === undefined ? '' : `?since=${since}`}`)).json() as Promise<ChatState>;

describe('the sandbox chat server', () => {
  it('serves the page and its files', async () => {
    const page = await fetch(`${chat.url}/`);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toMatch(/<label for="text"[^>]*>Message<\/label>/);
    expect((await fetch(`${chat.url}/chat.js`)).status).toBe(200);
    expect((await fetch(`${chat.url}/chat.css`)).status).toBe(200);
    expect(await (await fetch(`${chat.url}/github/o/r/pull/1`)).text()).toBe('<h1>PR</h1>');
    expect((await fetch(`${chat.url}/github/o/r/pull/2`)).status).toBe(404);
  });

  it('sends what the user types to the bot as a message from the allowed user, and shows both sides in order', async () => {
    expect(await (await post('/api/send', { text: '  Add a farewell function ' })).json()).toMatchObject({ ok: true });
    const updates = await bot('getUpdates', { timeout: 0 });
    expect(updates).toHaveLength(1);
    expect(updates[0].message).toMatchObject({ text: 'Add a farewell function', from: { id: USER.id }, chat: { id: USER.id, type: 'private' } });
    await bot('sendMessage', { chat_id: USER.id, text: 'Queued #1 for <b>x &amp; y</b>', parse_mode: 'HTML' });
    const s = await state();
    expect(s.botName).toBe('nightshift_sandbox_bot');
    expect(s.messages.map((m) => [m.from, m.html])).toEqual([
      ['user', 'Add a farewell function'],
      ['bot', 'Queued #1 for <b>x &amp; y</b>'],
    ]);
  });

  it('turns a tap into a callback query carrying the button data, and shows the answer as a notice', async () => {
    const card = await bot('sendMessage', { chat_id: USER.id, text: 'Card', reply_markup: { inline_keyboard: [[{ text: '✅ Approve', callback_data: 'tok-approve' }, { text: 'PR', url: 'http://127.0.0.1/x' }]] } });
    expect((await state()).messages[0]!.buttons).toEqual([[{ text: '✅ Approve', data: 'tok-approve' }, { text: 'PR', url: 'http://127.0.0.1/x' }]]);
    expect((await post('/api/tap', { messageId: card.message_id, data: 'tok-approve' })).status).toBe(200);
    const [update] = await bot('getUpdates', { timeout: 0 });
    expect(update.callback_query).toMatchObject({ data: 'tok-approve', from: { id: USER.id }, message: { message_id: card.message_id } });
    await bot('answerCallbackQuery', { callback_query_id: update.callback_query.id, text: 'Checking and merging…' });
    expect((await state()).notices.map((n) => n.text)).toEqual(['Checking and merging…']);
    // Taps on messages the bot never sent are refused.
    expect((await post('/api/tap', { messageId: 999, data: 'x' })).status).toBe(404);
  });

  it('holds a long poll until the bot edits a message, then answers with the edit', async () => {
    const sent = await bot('sendMessage', { chat_id: USER.id, text: 'building · turn 1' });
    const before = await state();
    const held = state(before.version);
    let answered = false;
    void held.then(() => (answered = true));
    await telegram.waitFor(() => telegram.callsOf('sendMessage').length === 1);
    expect(answered).toBe(false);
    await bot('editMessageText', { chat_id: USER.id, message_id: sent.message_id, text: 'building · turn 2' });
    const after = await held;
    expect(after.version).not.toBe(before.version);
    expect(after.messages[0]).toMatchObject({ html: 'building · turn 2', edits: 1 });
  });

  it('serves the image the bot uploaded with sendPhoto', async () => {
    const form = new FormData();
    form.set('chat_id', String(USER.id));
    form.set('caption', 'Costs');
    form.set('photo', new Blob([PNG], { type: 'image/png' }), 'costs.png');
    const res = await fetch(`${telegram.apiRoot}/bot${telegram.token}/sendPhoto`, { method: 'POST', body: form });
    const { result } = (await res.json()) as { result: { message_id: number } };
    const [message] = (await state()).messages;
    expect(message).toMatchObject({ html: 'Costs', photo: `/photo/${result.message_id}` });
    const image = await fetch(`${chat.url}${message!.photo}`);
    expect(image.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await image.arrayBuffer())).toEqual(PNG);
    expect((await fetch(`${chat.url}/photo/12345`)).status).toBe(404);
  });

  it('refuses other hosts (DNS rebinding), non-JSON posts (cross-site forms) and bad input, with a reason', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${chat.url}/api/chat`, { headers: { host: 'evil.example:80' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(421);
    const form = await fetch(`${chat.url}/api/send`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'text=%2Frun' });
    expect(form.status).toBe(415);
    expect(await (await post('/api/send', { text: '   ' })).json()).toMatchObject({ ok: false, error: 'type a message first' });
    expect((await post('/api/send', { text: 'x'.repeat(4097) })).status).toBe(400);
    expect((await post('/api/tap', { messageId: '1', data: 'x' })).status).toBe(400);
    expect(telegram.callsOf('getUpdates')).toHaveLength(0);
    expect(await bot('getUpdates', { timeout: 0 })).toEqual([]);
  });
});
