import { Api, Bot, GrammyError, HttpError, InputFile } from 'grammy';
import type { Update } from 'grammy/types';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeTelegram, type FakeTelegram, type TgUser } from './telegram-server.js';

const alice: TgUser = { id: 4242, username: 'alice', first_name: 'Alice' };

let fake: FakeTelegram;
let api: Api;

beforeEach(async () => {
  fake = await startFakeTelegram();
  api = new Api(fake.token, { apiRoot: fake.apiRoot });
});

afterEach(async () => {
  await fake.close();
});

/** The rejection of `promise`, which must be a GrammyError. */
async function grammyError(promise: Promise<unknown>): Promise<GrammyError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GrammyError);
  return err as GrammyError;
}

/**
 * grammY's Node build types signals as the abort-controller polyfill's AbortSignal, which
 * Node's own AbortSignal does not satisfy in TypeScript although it works at runtime.
 */
function grammySignal(signal: AbortSignal): Parameters<Api['getMe']>[0] {
  return signal as unknown as Parameters<Api['getMe']>[0];
}

/** Resolves once a getUpdates call beyond the first `already` ones has reached the fake. */
function pollArrived(already: number): Promise<unknown> {
  return fake.waitFor(() => fake.callsOf('getUpdates').length > already, { what: 'getUpdates in flight' });
}

describe('routing and identity', () => {
  it('answers getMe with the bot user derived from the token', async () => {
    const me = await api.getMe();
    expect(me).toMatchObject({ id: 123456, is_bot: true, username: 'nightshift_test_bot' });
    expect(fake.botUser.id).toBe(123456);
  });

  it('rejects a wrong token with 401 and records the attempt', async () => {
    const wrong = new Api('999:wrong', { apiRoot: fake.apiRoot });
    const err = await grammyError(wrong.getMe());
    expect(err.error_code).toBe(401);
    expect(err.description).toBe('Unauthorized');
    expect(fake.callsOf('getMe')).toHaveLength(1);
  });

  it('answers an unknown method with 404 so unexpected calls fail the test', async () => {
    const err = await grammyError(api.raw.getChat({ chat_id: 1 }));
    expect(err.error_code).toBe(404);
    expect(err.description).toBe('Not Found: method not found');
  });

  it('stores the commands from setMyCommands', async () => {
    await api.setMyCommands([{ command: 'queue', description: 'Show the queue' }]);
    expect(fake.commands).toEqual([{ command: 'queue', description: 'Show the queue' }]);
  });
});

describe('sending and editing', () => {
  it('stores sendMessage and returns a full Message', async () => {
    const markup = { inline_keyboard: [[{ text: 'Go', callback_data: 'go' }]] };
    const msg = await api.sendMessage(alice.id, 'hello', { reply_markup: markup });
    expect(msg).toMatchObject({ chat: { id: alice.id, type: 'private' }, text: 'hello', from: { is_bot: true } });
    expect(msg.reply_markup).toEqual(markup);
    const second = await api.sendMessage(alice.id, 'again');
    expect(second.message_id).toBeGreaterThan(msg.message_id);
    expect(fake.sent(alice.id)).toEqual([
      { message_id: msg.message_id, chat_id: alice.id, text: 'hello', reply_markup: markup, edits: [] },
      { message_id: second.message_id, chat_id: alice.id, text: 'again', edits: [] },
    ]);
    expect(fake.sent(77)).toEqual([]);
  });

  it('rejects empty and over-long text like Telegram', async () => {
    expect((await grammyError(api.sendMessage(alice.id, ''))).description).toBe('Bad Request: message text is empty');
    expect((await grammyError(api.sendMessage(alice.id, 'x'.repeat(4097)))).description).toBe(
      'Bad Request: message is too long',
    );
    await api.sendMessage(alice.id, 'x'.repeat(4096));
  });

  it('applies editMessageText and refuses an edit that changes nothing', async () => {
    const msg = await api.sendMessage(alice.id, 'working…');
    const edited = await api.editMessageText(alice.id, msg.message_id, 'done');
    expect(edited).toMatchObject({ message_id: msg.message_id, text: 'done' });
    expect(fake.sent(alice.id)[0]).toMatchObject({ text: 'done', edits: [{ text: 'done' }] });

    const err = await grammyError(api.editMessageText(alice.id, msg.message_id, 'done'));
    expect(err.error_code).toBe(400);
    expect(err.description).toMatch(/^Bad Request: message is not modified/);

    const missing = await grammyError(api.editMessageText(alice.id, 999_999, 'x'));
    expect(missing.description).toBe('Bad Request: message to edit not found');
  });

  it('treats a keyboard change as a modification and can remove the keyboard', async () => {
    const keyboard = { inline_keyboard: [[{ text: 'Stop', callback_data: 'stop' }]] };
    const msg = await api.sendMessage(alice.id, 'running', { reply_markup: keyboard });
    // Same text, no markup: Telegram removes the keyboard, so this is a real edit.
    await api.editMessageText(alice.id, msg.message_id, 'running');
    expect(fake.sent()[0]!.reply_markup).toBeUndefined();
    await api.editMessageReplyMarkup(alice.id, msg.message_id, { reply_markup: keyboard });
    expect(fake.sent()[0]!.reply_markup).toEqual(keyboard);
    const err = await grammyError(api.editMessageReplyMarkup(alice.id, msg.message_id, { reply_markup: keyboard }));
    expect(err.description).toMatch(/message is not modified/);
    expect(fake.sent()[0]!.edits).toHaveLength(2);
  });

  it('accepts a multipart photo upload and records its fields', async () => {
    const msg = await api.sendPhoto(alice.id, new InputFile(Buffer.from('png-bytes'), 'shot.png'), {
      caption: 'screenshot',
    });
    expect(msg.photo?.length).toBeGreaterThan(0);
    expect(msg.caption).toBe('screenshot');
    expect(fake.sent(alice.id)[0]).toMatchObject({ text: 'screenshot' });
    expect(fake.callsOf('sendPhoto')[0]!.params).toMatchObject({ chat_id: alice.id, caption: 'screenshot' });
    // The uploaded bytes are kept for the sandbox page, byte for byte.
    expect(fake.photo(alice.id, msg.message_id)?.bytes.toString()).toBe('png-bytes');
    expect(fake.photo(alice.id, msg.message_id + 1)).toBeUndefined();
  });

  it('recognises an uploaded PNG so the sandbox page can show it', async () => {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('rest')]);
    const msg = await api.sendPhoto(alice.id, new InputFile(png, 'chart.png'));
    expect(fake.photo(alice.id, msg.message_id)).toEqual({ bytes: png, contentType: 'image/png' });
  });
});

describe('HTML parse mode', () => {
  const sendHtml = (text: string) => api.sendMessage(alice.id, text, { parse_mode: 'HTML' });

  it('rejects a bare < as Telegram does, and accepts &lt;', async () => {
    const err = await grammyError(sendHtml('if a < b then'));
    expect(err.error_code).toBe(400);
    expect(err.description).toMatch(/^Bad Request: can't parse entities: /);
    const ok = await sendHtml('if a &lt; b then <b>bold</b> &amp; &#169; &quot;q&quot;');
    expect(ok.text).toBe('if a < b then bold & © "q"');
    // The fake stores what the bot sent, markup included, so tests can assert escaping.
    expect(fake.sent(alice.id)[0]!.text).toBe('if a &lt; b then <b>bold</b> &amp; &#169; &quot;q&quot;');
  });

  it('rejects a bare &, unknown tags and bad nesting', async () => {
    for (const bad of ['fish & chips', '<div>x</div>', '<b><i>x</b></i>', '<b>open', 'close</b>', '<b', '<span>x</span>']) {
      const err = await grammyError(sendHtml(bad));
      expect(err.description, bad).toMatch(/^Bad Request: can't parse entities: /);
    }
  });

  it('accepts every documented tag with attributes', async () => {
    await sendHtml(
      '<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike><del>d</del>' +
        '<a href="https://example.com/?a=1&amp;b=2">link</a><code>c</code><pre><code class="language-ts">x</code></pre>' +
        '<tg-spoiler>t</tg-spoiler><span class="tg-spoiler">p</span><blockquote expandable>q</blockquote>',
    );
    expect(fake.sent()).toHaveLength(1);
  });

  it('does not validate other parse modes', async () => {
    await api.sendMessage(alice.id, 'a < b & c');
    expect(fake.sent()).toHaveLength(1);
  });
});

describe('faults', () => {
  it('answers rate-limit with 429 and retry_after, then recovers', async () => {
    fake.failNext('sendMessage', { kind: 'rate-limit', retryAfter: 7 });
    const err = await grammyError(api.sendMessage(alice.id, 'hi'));
    expect(err.error_code).toBe(429);
    expect(err.description).toBe('Too Many Requests: retry after 7');
    expect(err.parameters.retry_after).toBe(7);
    await api.sendMessage(alice.id, 'hi');
    expect(fake.callsOf('sendMessage')).toHaveLength(2);
    expect(fake.sent()).toHaveLength(1);
  });

  it('answers server-error with 500 and a custom status', async () => {
    fake.failNext('sendMessage', { kind: 'server-error' });
    fake.failNext('sendMessage', { kind: 'server-error', status: 502 });
    expect((await grammyError(api.sendMessage(alice.id, 'a'))).error_code).toBe(500);
    expect((await grammyError(api.sendMessage(alice.id, 'a'))).error_code).toBe(502);
  });

  it('failAt fails only the named occurrence of a method, counted from the call to failAt', async () => {
    await api.sendMessage(alice.id, 'before');
    fake.failAt({ method: 'sendMessage', occurrence: 2 }, { kind: 'server-error', status: 502 });
    fake.failNext('sendMessage', { kind: 'rate-limit', retryAfter: 3 });
    expect((await grammyError(api.sendMessage(alice.id, 'a'))).error_code).toBe(429);
    expect((await grammyError(api.sendMessage(alice.id, 'b'))).error_code).toBe(502);
    await api.sendMessage(alice.id, 'c');
    expect(fake.sent().map((m) => m.text)).toEqual(['before', 'c']);
  });

  it('resets the connection, which grammY reports as HttpError', async () => {
    fake.failNext('sendMessage', { kind: 'reset' });
    await expect(api.sendMessage(alice.id, 'a')).rejects.toBeInstanceOf(HttpError);
    expect(fake.callsOf('sendMessage')).toHaveLength(1);
    expect(fake.sent()).toHaveLength(0);
  });

  it('answers any Bot API error, e.g. 403 blocked', async () => {
    fake.failNext('*', { kind: 'error', code: 403, description: 'Forbidden: bot was blocked by the user' }, 2);
    const first = await grammyError(api.sendMessage(alice.id, 'a'));
    expect(first.error_code).toBe(403);
    expect(first.description).toBe('Forbidden: bot was blocked by the user');
    // '*' leaves getUpdates alone, so a polling bot is not knocked over by a send fault.
    await expect(api.getUpdates({ timeout: 0 })).resolves.toEqual([]);
    expect((await grammyError(api.getMe())).error_code).toBe(403);
    await expect(api.getMe()).resolves.toMatchObject({ is_bot: true });
  });

  it('stalls until the client gives up', async () => {
    fake.failNext('sendMessage', { kind: 'stall' });
    const abort = new AbortController();
    const pending = api.sendMessage(alice.id, 'a', undefined, grammySignal(abort.signal));
    await fake.waitFor(() => fake.callsOf('sendMessage').length === 1, { what: 'stalled sendMessage' });
    abort.abort();
    await expect(pending).rejects.toBeInstanceOf(HttpError);
  });

  it('drops a stalled request on close()', async () => {
    fake.failNext('getMe', { kind: 'stall' });
    const pending = api.getMe();
    await fake.waitFor(() => fake.callsOf('getMe').length === 1, { what: 'stalled getMe' });
    await fake.close();
    await expect(pending).rejects.toBeInstanceOf(HttpError);
  });
});

describe('getUpdates', () => {
  it('holds a long poll and answers it as soon as an update is pushed', async () => {
    const started = Date.now();
    const poll = api.getUpdates({ timeout: 30 });
    await pollArrived(0);
    const pushed = fake.pushMessage(alice, '/start hello');
    const updates = await poll;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(updates).toEqual([pushed]);
    expect(updates[0]!.message).toMatchObject({
      text: '/start hello',
      chat: { id: alice.id, type: 'private' },
      from: { id: alice.id, username: 'alice', is_bot: false },
      entities: [{ type: 'bot_command', offset: 0, length: 6 }],
    });
  });

  it('answers [] when the long poll times out', async () => {
    await expect(api.getUpdates({ timeout: 1 })).resolves.toEqual([]);
  });

  it('drops updates below the offset and honours limit', async () => {
    const [a, b, c] = [fake.pushMessage(alice, 'a'), fake.pushMessage(alice, 'b'), fake.pushMessage(alice, 'c')];
    expect(await api.getUpdates({ limit: 2 })).toEqual([a, b]);
    // Not confirmed yet: the same batch comes again.
    expect(await api.getUpdates({ limit: 2 })).toEqual([a, b]);
    expect(await api.getUpdates({ offset: b.update_id + 1 })).toEqual([c]);
    expect(await api.getUpdates({ offset: c.update_id + 1 })).toEqual([]);
    expect(await api.getUpdates({})).toEqual([]);
  });

  it('redelivers a confirmed update once', async () => {
    const a = fake.pushMessage(alice, 'a');
    expect(await api.getUpdates({ offset: 0 })).toEqual([a]);
    expect(await api.getUpdates({ offset: a.update_id + 1 })).toEqual([]);
    fake.redeliver(a.update_id);
    expect(await api.getUpdates({ offset: a.update_id + 1 })).toEqual([a]);
    expect(await api.getUpdates({ offset: a.update_id + 1 })).toEqual([]);
  });

  it('wakes a held poll for a redelivery', async () => {
    const a = fake.pushMessage(alice, 'a');
    await api.getUpdates({ offset: a.update_id + 1 });
    const poll = api.getUpdates({ offset: a.update_id + 1, timeout: 30 });
    await pollArrived(1);
    fake.redeliver(a.update_id);
    expect(await poll).toEqual([a]);
  });

  it('delivers synchronous pushes to a held poll as one batch', async () => {
    const poll = api.getUpdates({ timeout: 30 });
    await pollArrived(0);
    const a = fake.pushMessage(alice, 'a');
    const b = fake.pushMessage(alice, 'b', { chatType: 'group' });
    expect(await poll).toEqual([a, b]);
    expect(b.message?.chat).toMatchObject({ type: 'group' });
    expect(b.message!.chat.id).toBeLessThan(0);
  });

  it('ends the older of two concurrent polls with 409, like Telegram', async () => {
    const first = api.getUpdates({ timeout: 30 });
    await pollArrived(0);
    const second = api.getUpdates({ timeout: 30 });
    const err = await grammyError(first);
    expect(err.error_code).toBe(409);
    expect(err.description).toMatch(/^Conflict: terminated by other getUpdates request/);
    await pollArrived(1);
    const a = fake.pushMessage(alice, 'a');
    expect(await second).toEqual([a]);
  });

  it('survives a client that aborts a held poll', async () => {
    const abort = new AbortController();
    const poll = api.getUpdates({ timeout: 30 }, grammySignal(abort.signal));
    await pollArrived(0);
    abort.abort();
    await expect(poll).rejects.toBeInstanceOf(HttpError);
    const a = fake.pushMessage(alice, 'a');
    expect(await api.getUpdates({})).toEqual([a]);
  });

  it('ends a held poll with [] on close()', async () => {
    const poll = api.getUpdates({ timeout: 30 });
    await pollArrived(0);
    await fake.close();
    await expect(poll).resolves.toEqual([]);
  });

  it('builds photo messages, channel posts and callback queries', async () => {
    const photo = fake.pushMessage(alice, 'look', { photo: true });
    expect(photo.message).toMatchObject({ caption: 'look' });
    expect(photo.message?.text).toBeUndefined();
    expect(photo.message?.photo?.length).toBeGreaterThan(0);

    const post = fake.pushMessage(alice, 'news', { chatType: 'channel' });
    expect(post.channel_post).toMatchObject({ text: 'news', chat: { type: 'channel' } });

    const sent = await api.sendMessage(alice.id, 'pick', {
      reply_markup: { inline_keyboard: [[{ text: 'A', callback_data: 'a' }]] },
    });
    const tap = fake.pushCallback(alice, { message_id: sent.message_id, chat_id: alice.id }, 'a');
    expect(tap.callback_query).toMatchObject({
      from: { id: alice.id },
      data: 'a',
      message: { message_id: sent.message_id, text: 'pick', chat: { id: alice.id } },
    });
    await expect(api.answerCallbackQuery(tap.callback_query!.id)).resolves.toBe(true);
    expect((await grammyError(api.answerCallbackQuery('nope'))).error_code).toBe(400);
  });

  it('assigns update ids to raw updates', async () => {
    const raw: Omit<Update, 'update_id'> = { message: fake.pushMessage(alice, 'x').message! };
    const a = fake.pushUpdate(raw);
    const b = fake.pushUpdate({ ...raw, update_id: a.update_id + 10 });
    const c = fake.pushUpdate(raw);
    expect(b.update_id).toBe(a.update_id + 10);
    expect(c.update_id).toBe(b.update_id + 1);
  });
});

describe('waitFor', () => {
  it('names what it waited for and lists recent calls on timeout', async () => {
    await api.getMe();
    await expect(fake.waitFor(() => false, { timeoutMs: 100, what: 'a reply to alice' })).rejects.toThrow(
      /a reply to alice[\s\S]*#1 getMe \{\}/,
    );
  });
});

describe('with a real grammY Bot', () => {
  it('polls, runs the handler, and confirms the offset on stop()', async () => {
    const bot = new Bot(fake.token, { client: { apiRoot: fake.apiRoot } });
    bot.command('start', (ctx) => ctx.reply(`Hi <b>${ctx.from?.first_name ?? ''}</b>`, { parse_mode: 'HTML' }));
    const errors: unknown[] = [];
    bot.catch((err) => {
      errors.push(err.error);
    });
    const running = bot.start({ timeout: 30 });

    await fake.waitFor(() => fake.callsOf('getUpdates').length > 0, { what: 'the bot to start polling' });
    const update = fake.pushMessage(alice, '/start');
    const reply = await fake.waitFor(() => fake.sent(alice.id)[0], { what: 'the bot to answer /start' });
    expect(reply.text).toBe('Hi <b>Alice</b>');
    expect(reply.parse_mode).toBe('HTML');

    await bot.stop();
    await running;
    expect(errors).toEqual([]);
    expect(fake.callsOf('getMe')).toHaveLength(1);
    expect(fake.callsOf('deleteWebhook')).toHaveLength(1);
    // stop() confirms what was handled with one last short getUpdates.
    expect(fake.callsOf('getUpdates').at(-1)!.params).toEqual({ offset: update.update_id + 1, limit: 1 });
    expect(await api.getUpdates({})).toEqual([]);
  });
});
