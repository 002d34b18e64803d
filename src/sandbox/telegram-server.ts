/**
 * A fake Telegram Bot API server on 127.0.0.1, for tests and for the sandbox (`npm run sandbox`).
 *
 * The real grammY client talks to it over HTTP (`new Bot(token, { client: { apiRoot } })`),
 * so everything between our code and the wire (grammY's JSON/multipart encoding, its error
 * classes, its polling loop and offset confirmation) is exercised for real. Only the Telegram
 * side is fake, and it is deliberately strict where our bugs would hide: HTML parse_mode is
 * validated, message length is checked, and editing a message to identical content fails the
 * way Telegram fails.
 */
import { listenOnLoopback, shutdownServer } from './loopback-server.js';
import { createFaultPlan, type CallTarget } from './fault-plan.js';
import { waitForChange } from './wait-for-change.js';
import { EventEmitter } from 'node:events';
import { createServer, STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type {
  BotCommand,
  Chat,
  InlineKeyboardMarkup,
  Message,
  MessageEntity,
  PhotoSize,
  Update,
  User,
  UserFromGetMe,
} from 'grammy/types';

/** A Telegram user as tests describe one; missing names are filled in by the fake. */
export interface TgUser {
  id: number;
  username?: string;
  first_name?: string;
}

/** One HTTP call the fake received, recorded before any fault or validation is applied. */
export interface RecordedCall {
  method: string;
  params: Record<string, unknown>;
  /** Request headers, lower-case names (the token itself travels in the URL path, not here). */
  headers: Record<string, string>;
  /** Date.now() when the request body had been read. */
  at: number;
  /** performance.now() at the same moment, for latencies measured in this process (benchmarks). */
  hrAt: number;
  /** 1-based arrival order across all methods. */
  seq: number;
}

/**
 * A message the bot sent. `text` and `reply_markup` show the current state (edits applied);
 * `edits` lists every successful edit in order. For photos and documents `text` is the caption
 * ('' when there is none).
 */
export interface SentMessage {
  message_id: number;
  chat_id: number;
  text: string;
  parse_mode?: string;
  reply_markup?: unknown;
  edits: Array<{ text?: string; reply_markup?: unknown }>;
}

/** A failure to inject into the next call(s) of a method, see `FakeTelegram.failNext`. */
export type Fault =
  /** 429 with parameters.retry_after, as Telegram's flood control answers. */
  | { kind: 'rate-limit'; retryAfter: number }
  /** A 5xx with a JSON body. @default status 500 */
  | { kind: 'server-error'; status?: number }
  /** Destroy the socket without any response (grammY throws HttpError). */
  | { kind: 'reset' }
  /** Never answer, until the client aborts or close() is called. */
  | { kind: 'stall' }
  /** Any other Bot API error, e.g. 403 "Forbidden: bot was blocked by the user". */
  | { kind: 'error'; code: number; description: string };

/** Handle on a running fake Telegram Bot API server. */
export interface FakeTelegram {
  /** The only token the server accepts; any other gets 401. */
  readonly token: string;
  /** e.g. "http://127.0.0.1:40123", no trailing slash (grammY rejects one). */
  readonly apiRoot: string;
  /** Every call in arrival order, including getUpdates and failed or faulted calls. */
  readonly calls: RecordedCall[];
  /** What getMe returns: id from the token prefix, username "nightshift_test_bot" unless started with another. */
  readonly botUser: TgUser;
  /** The commands from the last setMyCommands call. @default [] */
  readonly commands: BotCommand[];
  /**
   * Queue a message from `from`. Private chats use chat.id = from.id; groups, supergroups and
   * channels default to one fixed negative id each. A leading /command gets a bot_command
   * entity. `photo: true` sends a photo with `text` as caption. Channel posts arrive as
   * `channel_post` with `sender_chat`, as Telegram sends them.
   */
  pushMessage(
    from: TgUser,
    text: string,
    opts?: { chatType?: 'private' | 'group' | 'supergroup' | 'channel'; chatId?: number; photo?: boolean },
  ): Update;
  /** Queue a tap on an inline button under `message` (the bot's message as currently stored). */
  pushCallback(from: TgUser, message: { message_id: number; chat_id: number }, data: string): Update;
  /** Queue a raw update; assigns the next update_id if missing. */
  pushUpdate(update: Omit<Update, 'update_id'> & { update_id?: number }): Update;
  /** Deliver an already pushed update once more, whatever offset the client confirmed. */
  redeliver(updateId: number): void;
  /** Fail the next `times` calls of `method` (@default 1); '*' matches every method but getUpdates. */
  failNext(method: string, fault: Fault, times?: number): void;
  /**
   * Fail once the `occurrence`-th call (@default 1, counted from now) of `method` (getUpdates
   * only when named) or of the calls `match` accepts. Checked before `failNext`'s queues, and
   * every call with the right token counts.
   */
  failAt(target: { method: string; occurrence?: number } | CallTarget<RecordedCall>, fault: Fault): void;
  /** Messages the bot sent (sendMessage, sendPhoto, sendDocument), optionally for one chat. */
  sent(chatId?: number): SentMessage[];
  /** The recorded calls of one method, in arrival order. */
  callsOf(method: string): RecordedCall[];
  /**
   * The image the bot uploaded with sendPhoto for this message (the sandbox page shows it);
   * undefined for other messages and for photos sent by file_id or URL.
   */
  photo(chatId: number, messageId: number): { bytes: Buffer; contentType: string } | undefined;
  /**
   * Resolve with the first truthy `probe()` result. Re-checks on every recorded call and state
   * change, plus a 50 ms safety poll. A probe that throws rejects at once (a bug in the probe
   * should not look like a timeout). @default timeoutMs 10000
   */
  waitFor<T>(probe: () => T | undefined | false | null, opts?: { timeoutMs?: number; what?: string }): Promise<T>;
  /** Answer held long polls with [], drop stalled requests, close the server and its sockets. */
  close(): Promise<void>;
}

const DEFAULT_TOKEN = '123456:CANARY-telegram-token-0123456789abcdefghij';
const BOT_USERNAME = 'nightshift_test_bot';
/** Telegram's limits, counted after entity parsing, in Unicode code points (as TDLib counts). */
const MAX_TEXT_CHARS = 4096;
const MAX_CAPTION_CHARS = 1024;
const MAX_UPDATES_PER_POLL = 100;
const DEFAULT_WAIT_MS = 10_000;
/** Update ids start well above 1 so code that confuses "offset 0/1" with "first update" shows. */
const FIRST_UPDATE_ID = 100_001;
/** One fixed chat per non-private type, so several users in "the group" share it by default. */
const DEFAULT_CHAT_IDS = { group: -4_000_000_001, supergroup: -1_001_000_000_001, channel: -1_001_000_000_002 } as const;
const NOT_MODIFIED =
  'Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message';
const CONFLICT =
  'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running';
/** Tags Telegram's HTML parse mode accepts (https://core.telegram.org/bots/api#html-style). */
const HTML_TAGS = new Set([
  'b', 'strong', 'i', 'em', 'u', 'ins', 's', 'strike', 'del', 'a', 'code', 'pre', 'tg-spoiler', 'span', 'blockquote',
]);
const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"' };
/** Form and query values arrive as strings; these keys hold integers in the Bot API. */
const INTEGER_KEYS = new Set(['offset', 'limit', 'timeout', 'message_thread_id']);

/** A Bot API error answer (`{ ok: false, error_code, description }`) raised by a handler. */
class BotApiError extends Error {
  override readonly name = 'BotApiError';
  constructor(
    readonly code: number,
    readonly description: string,
    readonly parameters?: Record<string, unknown>,
  ) {
    super(description);
  }
}

type Params = Record<string, unknown>;
type ChatType = 'private' | 'group' | 'supergroup' | 'channel';

interface StoredMessage {
  sent: SentMessage;
  /** The Message as Telegram would return it now; callback queries carry this. */
  message: Message;
  kind: 'text' | 'photo' | 'document';
}

interface HeldPoll {
  res: ServerResponse;
  limit: number;
  timer: NodeJS.Timeout;
}

/**
 * Start a fake Bot API server on 127.0.0.1 on a free port.
 * @default token "123456:CANARY-telegram-token-…"
 * @default username "nightshift_test_bot" (the bot's, as getMe answers)
 */
export async function startFakeTelegram(opts: { token?: string; username?: string } = {}): Promise<FakeTelegram> {
  const token = opts.token ?? DEFAULT_TOKEN;
  const botIdFromToken = Number(token.split(':')[0]);
  const botUser: UserFromGetMe = {
    id: Number.isSafeInteger(botIdFromToken) && botIdFromToken > 0 ? botIdFromToken : 1,
    is_bot: true,
    first_name: 'Nightshift Test',
    username: opts.username ?? BOT_USERNAME,
    can_join_groups: true,
    can_read_all_group_messages: false,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
    has_topics_enabled: false,
    allows_users_to_create_topics: false,
    can_manage_bots: false,
    supports_join_request_queries: false,
  };

  const calls: RecordedCall[] = [];
  // Every state change is announced here so waitFor re-checks at once instead of sleeping.
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const announce = (): void => {
    changes.emit('change');
  };

  const faults = new Map<string, Fault[]>();
  const aimed = createFaultPlan<RecordedCall, Fault>();
  const allUpdates = new Map<number, Update>();
  let pending: Update[] = []; // pushed but not yet confirmed by an offset, ascending ids
  let redeliveries: Update[] = [];
  let nextUpdateId = FIRST_UPDATE_ID;
  // One global counter is still a valid per-chat sequence and keeps ids unique across chats,
  // so a test that only remembers message_id cannot pick the wrong chat's message.
  let nextMessageId = 1;
  let nextCallbackId = 1;
  let nextFileId = 1;
  let seq = 0;
  const chats = new Map<number, Chat>();
  const stored = new Map<string, StoredMessage>();
  const sentInOrder: SentMessage[] = [];
  const photos = new Map<string, { bytes: Buffer; contentType: string }>();
  const callbackIds = new Set<string>();
  let commands: BotCommand[] = [];
  let heldPoll: HeldPoll | undefined;
  let flushScheduled = false;
  const stalled = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  let closing: Promise<void> | undefined;

  const nowSec = (): number => Math.floor(Date.now() / 1000);
  const keyOf = (chatId: number, messageId: number): string => `${chatId}:${messageId}`;

  // ---- updates queue -------------------------------------------------------------------

  function pushUpdate(update: Omit<Update, 'update_id'> & { update_id?: number }): Update {
    const updateId = update.update_id ?? nextUpdateId;
    nextUpdateId = Math.max(nextUpdateId, updateId + 1);
    const full: Update = { ...update, update_id: updateId };
    allUpdates.set(updateId, full);
    if (full.callback_query) callbackIds.add(full.callback_query.id);
    pending.push(full);
    pending.sort((a, b) => a.update_id - b.update_id);
    scheduleFlush();
    announce();
    return full;
  }

  function redeliver(updateId: number): void {
    const update = allUpdates.get(updateId);
    if (!update) throw new Error(`redeliver: update ${updateId} was never pushed`);
    redeliveries.push(update);
    scheduleFlush();
    announce();
  }

  /** Next batch for a poll: redeliveries first (regardless of offset), then unconfirmed updates. */
  function takeBatch(limit: number): Update[] {
    const batch: Update[] = [];
    const seen = new Set<number>();
    while (batch.length < limit && redeliveries.length > 0) {
      const update = redeliveries.shift()!;
      if (!seen.has(update.update_id)) {
        seen.add(update.update_id);
        batch.push(update);
      }
    }
    for (const update of pending) {
      if (batch.length >= limit) break;
      if (!seen.has(update.update_id)) {
        seen.add(update.update_id);
        batch.push(update);
      }
    }
    // Ascending order matters: grammY confirms with offset = last update_id in the batch + 1.
    return batch.sort((a, b) => a.update_id - b.update_id);
  }

  // Deferred so that several synchronous pushes reach a held poll as one batch, as with Telegram.
  function scheduleFlush(): void {
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => {
      flushScheduled = false;
      if (!heldPoll || closing) return;
      const batch = takeBatch(heldPoll.limit);
      if (batch.length === 0) return;
      answerHeldPoll(batch);
    });
  }

  function answerHeldPoll(result: Update[]): void {
    const poll = heldPoll;
    if (!poll) return;
    heldPoll = undefined;
    clearTimeout(poll.timer);
    reply(poll.res, 200, { ok: true, result });
    announce();
  }

  function handleGetUpdates(params: Params, res: ServerResponse): void {
    // Telegram lets the newest poll win: the one already waiting is terminated with 409. (This
    // also keeps bot.stop() safe: its final confirming call can arrive before the server has
    // noticed that the aborted poll's socket is gone.)
    if (heldPoll) {
      const old = heldPoll;
      heldPoll = undefined;
      clearTimeout(old.timer);
      reply(old.res, 409, { ok: false, error_code: 409, description: CONFLICT });
    }
    const offset = toInt(params.offset) ?? 0;
    if (offset > 0) {
      pending = pending.filter((u) => u.update_id >= offset);
    } else if (offset < 0) {
      pending = pending.slice(offset); // Bot API: -N means "the last N updates", older are forgotten
    }
    const limit = Math.min(Math.max(toInt(params.limit) ?? MAX_UPDATES_PER_POLL, 1), MAX_UPDATES_PER_POLL);
    const timeoutSec = Math.max(toInt(params.timeout) ?? 0, 0);
    const batch = takeBatch(limit);
    if (batch.length > 0 || timeoutSec === 0) {
      reply(res, 200, { ok: true, result: batch });
      return;
    }
    const poll: HeldPoll = {
      res,
      limit,
      timer: setTimeout(() => {
        if (heldPoll === poll) answerHeldPoll([]);
      }, timeoutSec * 1000),
    };
    heldPoll = poll;
    // A client that aborts (bot.stop(), grammY timeout) must not leave a waiter behind that a
    // later push would answer into a dead socket.
    res.on('close', () => {
      if (heldPoll === poll) {
        heldPoll = undefined;
        clearTimeout(poll.timer);
      }
    });
  }

  // ---- chats and messages --------------------------------------------------------------

  function toUser(from: TgUser): User {
    return {
      id: from.id,
      is_bot: false,
      first_name: from.first_name ?? `User${from.id}`,
      ...(from.username !== undefined && { username: from.username }),
      language_code: 'en',
    };
  }

  function chatFor(from: TgUser, type: ChatType, chatId: number | undefined): Chat {
    switch (type) {
      case 'private':
        return {
          id: chatId ?? from.id,
          type: 'private',
          first_name: from.first_name ?? `User${from.id}`,
          ...(from.username !== undefined && { username: from.username }),
        };
      case 'group':
        return { id: chatId ?? DEFAULT_CHAT_IDS.group, type: 'group', title: 'Test group' };
      case 'supergroup':
        return { id: chatId ?? DEFAULT_CHAT_IDS.supergroup, type: 'supergroup', title: 'Test supergroup' };
      case 'channel':
        return { id: chatId ?? DEFAULT_CHAT_IDS.channel, type: 'channel', title: 'Test channel' };
    }
  }

  /** The chat the bot writes to: as seen in a pushed update, else guessed from the id's sign. */
  function knownChat(chatId: number): Chat {
    const chat = chats.get(chatId);
    if (chat) return chat;
    return chatId < 0
      ? { id: chatId, type: 'supergroup', title: 'Test supergroup' }
      : { id: chatId, type: 'private', first_name: `User${chatId}` };
  }

  function fakePhoto(): PhotoSize[] {
    const id = nextFileId++;
    return [
      { file_id: `photo-${id}-s`, file_unique_id: `p${id}s`, width: 90, height: 90, file_size: 1_200 },
      { file_id: `photo-${id}-m`, file_unique_id: `p${id}m`, width: 800, height: 800, file_size: 48_000 },
    ];
  }

  function pushMessage(
    from: TgUser,
    text: string,
    opts: { chatType?: ChatType; chatId?: number; photo?: boolean } = {},
  ): Update {
    const chatType = opts.chatType ?? 'private';
    const chat = chatFor(from, chatType, opts.chatId);
    chats.set(chat.id, chat);
    const entities = commandEntities(text);
    const content = opts.photo
      ? { photo: fakePhoto(), caption: text, ...(entities && { caption_entities: entities }) }
      : { text, ...(entities && { entities }) };
    const base = { message_id: nextMessageId++, date: nowSec(), ...content };
    if (chat.type === 'channel') {
      return pushUpdate({ channel_post: { ...base, chat, sender_chat: chat } });
    }
    return pushUpdate({ message: { ...base, chat, from: toUser(from) } });
  }

  function pushCallback(from: TgUser, message: { message_id: number; chat_id: number }, data: string): Update {
    // Lenient on purpose: a test may tap a button on a message sent by an earlier fake instance.
    const message_ = stored.get(keyOf(message.chat_id, message.message_id))?.message ?? {
      message_id: message.message_id,
      date: nowSec(),
      chat: knownChat(message.chat_id),
      from: botUser,
      text: '',
    };
    const id = `cbq-${botUser.id}-${nextCallbackId++}`;
    return pushUpdate({
      callback_query: {
        id,
        from: toUser(from),
        message: message_,
        chat_instance: `ci-${message.chat_id}`,
        data,
      },
    });
  }

  function storeBotMessage(kind: StoredMessage['kind'], message: Message, params: Params): SentMessage {
    const sent: SentMessage = {
      message_id: message.message_id,
      chat_id: message.chat.id,
      text: kind === 'text' ? String(params.text) : typeof params.caption === 'string' ? params.caption : '',
      ...(typeof params.parse_mode === 'string' && { parse_mode: params.parse_mode }),
      ...(params.reply_markup !== undefined && { reply_markup: params.reply_markup }),
      edits: [],
    };
    stored.set(keyOf(sent.chat_id, sent.message_id), { sent, message, kind });
    sentInOrder.push(sent);
    return sent;
  }

  function newBotMessage(params: Params): Message {
    const chatId = requireChatId(params);
    const markup = inlineMarkup(params.reply_markup);
    return {
      message_id: nextMessageId++,
      date: nowSec(),
      chat: knownChat(chatId),
      from: botUser,
      // Telegram echoes only inline keyboards back; reply keyboards are not part of the message.
      ...(markup !== undefined && { reply_markup: markup }),
    };
  }

  function findForEdit(params: Params): StoredMessage {
    if (params.inline_message_id !== undefined) {
      throw new BotApiError(400, 'Bad Request: message to edit not found');
    }
    const chatId = requireChatId(params);
    const messageId = toInt(params.message_id);
    if (messageId === undefined) throw new BotApiError(400, 'Bad Request: message identifier is not specified');
    const found = stored.get(keyOf(chatId, messageId));
    if (!found) throw new BotApiError(400, 'Bad Request: message to edit not found');
    return found;
  }

  // ---- methods -------------------------------------------------------------------------

  const methods: Record<string, (params: Params) => unknown> = {
    getMe: () => botUser,
    deleteWebhook: (params) => {
      if (params.drop_pending_updates === true || params.drop_pending_updates === 'true') {
        pending = [];
        redeliveries = [];
      }
      return true;
    },
    setMyCommands: (params) => {
      if (!Array.isArray(params.commands)) throw new BotApiError(400, 'Bad Request: parameter "commands" is required');
      commands = params.commands as BotCommand[];
      return true;
    },
    getMyCommands: () => commands,
    sendChatAction: (params) => {
      requireChatId(params);
      return true;
    },
    sendMessage: (params) => {
      const plain = renderText(params.text, params.parse_mode, 'text');
      const message: Message = { ...newBotMessage(params), text: plain };
      storeBotMessage('text', message, params);
      return message;
    },
    sendPhoto: (params) => {
      const caption = renderCaption(params);
      const message: Message = { ...newBotMessage(params), photo: fakePhoto(), ...caption };
      storeBotMessage('photo', message, params);
      const bytes = uploadedFile(params, 'photo');
      if (bytes) photos.set(keyOf(message.chat.id, message.message_id), { bytes, contentType: imageType(bytes) });
      return message;
    },
    sendDocument: (params) => {
      const caption = renderCaption(params);
      const id = nextFileId++;
      const message: Message = {
        ...newBotMessage(params),
        document: { file_id: `document-${id}`, file_unique_id: `d${id}`, file_name: `file-${id}` },
        ...caption,
      };
      storeBotMessage('document', message, params);
      return message;
    },
    editMessageText: (params) => {
      const target = findForEdit(params);
      if (target.kind !== 'text') throw new BotApiError(400, 'Bad Request: there is no text in the message to edit');
      const plain = renderText(params.text, params.parse_mode, 'text');
      const text = String(params.text);
      // Omitting reply_markup in an edit removes the inline keyboard on Telegram.
      const markup = inlineMarkup(params.reply_markup);
      if (text === target.sent.text && sameJson(markup, inlineMarkup(target.sent.reply_markup))) {
        throw new BotApiError(400, NOT_MODIFIED);
      }
      target.sent.text = text;
      if (typeof params.parse_mode === 'string') target.sent.parse_mode = params.parse_mode;
      else delete target.sent.parse_mode;
      setMarkup(target, markup);
      target.sent.edits.push({ text, reply_markup: markup });
      target.message = withMarkup({ ...target.message, text: plain, edit_date: nowSec() }, markup);
      return target.message;
    },
    editMessageReplyMarkup: (params) => {
      const target = findForEdit(params);
      const markup = inlineMarkup(params.reply_markup);
      if (sameJson(markup, inlineMarkup(target.sent.reply_markup))) throw new BotApiError(400, NOT_MODIFIED);
      setMarkup(target, markup);
      target.sent.edits.push({ reply_markup: markup });
      target.message = withMarkup({ ...target.message, edit_date: nowSec() }, markup);
      return target.message;
    },
    answerCallbackQuery: (params) => {
      if (typeof params.callback_query_id !== 'string' || !callbackIds.has(params.callback_query_id)) {
        throw new BotApiError(400, 'Bad Request: query is too old and response timeout expired or query ID is invalid');
      }
      return true;
    },
  };

  function setMarkup(target: StoredMessage, markup: InlineKeyboardMarkup | undefined): void {
    if (markup === undefined) delete target.sent.reply_markup;
    else target.sent.reply_markup = markup;
  }

  // ---- HTTP ----------------------------------------------------------------------------

  function record(method: string, params: Params, headers: Record<string, string>): void {
    calls.push({ method, params, headers, at: Date.now(), hrAt: performance.now(), seq: ++seq });
    announce();
  }

  function takeFault(method: string): Fault | undefined {
    const keys = method === 'getUpdates' ? [method] : [method, '*'];
    for (const key of keys) {
      const queue = faults.get(key);
      if (queue && queue.length > 0) return queue.shift();
    }
    return undefined;
  }

  function applyFault(fault: Fault, req: IncomingMessage, res: ServerResponse): void {
    switch (fault.kind) {
      case 'rate-limit':
        reply(res, 429, {
          ok: false,
          error_code: 429,
          description: `Too Many Requests: retry after ${fault.retryAfter}`,
          parameters: { retry_after: fault.retryAfter },
        });
        return;
      case 'server-error': {
        const status = fault.status ?? 500;
        reply(res, status, { ok: false, error_code: status, description: STATUS_CODES[status] ?? 'Internal Server Error' });
        return;
      }
      case 'reset':
        req.socket.destroy();
        return;
      case 'stall':
        stalled.add(res);
        res.on('close', () => stalled.delete(res));
        return;
      case 'error':
        reply(res, fault.code, { ok: false, error_code: fault.code, description: fault.description });
        return;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const route = /^\/bot([^/]+)\/([A-Za-z0-9_]+)$/.exec(url.pathname);
    if (!route) {
      req.resume();
      reply(res, 404, { ok: false, error_code: 404, description: 'Not Found' });
      return;
    }
    const [, reqToken, method] = route as unknown as [string, string, string];
    const params = await readParams(req, url);
    if (closing) {
      req.socket.destroy();
      return;
    }
    // Recorded before anything can fail, so tests can count attempts (retries included).
    record(method, params, flattenHeaders(req.headers));
    if (reqToken !== token) {
      reply(res, 401, { ok: false, error_code: 401, description: 'Unauthorized' });
      return;
    }
    if (method !== 'getUpdates' && !(method in methods)) {
      reply(res, 404, { ok: false, error_code: 404, description: 'Not Found: method not found' });
      return;
    }
    const fault = aimed.take(calls[calls.length - 1]!) ?? takeFault(method);
    if (fault) {
      applyFault(fault, req, res);
      announce();
      return;
    }
    if (method === 'getUpdates') {
      handleGetUpdates(params, res);
      announce();
      return;
    }
    try {
      const result = methods[method]!(params);
      reply(res, 200, { ok: true, result });
    } catch (err) {
      if (err instanceof BotApiError) {
        reply(res, err.code, {
          ok: false,
          error_code: err.code,
          description: err.description,
          ...(err.parameters && { parameters: err.parameters }),
        });
      } else {
        // A bug in the fake itself: make it loud in the test rather than a silent hang.
        reply(res, 500, { ok: false, error_code: 500, description: `Fake Telegram crashed: ${String(err)}` });
      }
    }
    announce();
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      reply(res, 500, { ok: false, error_code: 500, description: `Fake Telegram crashed: ${String(err)}` });
    });
  });
  const url = await listenOnLoopback(server, sockets);

  async function close(): Promise<void> {
    closing ??= (async () => {
      const answered: Array<Promise<void>> = [];
      if (heldPoll) {
        const { res } = heldPoll;
        answered.push(finished(res));
        answerHeldPoll([]);
      }
      // Let the [] reach the client before the sockets are destroyed, or grammY would see a
      // reset instead of an empty batch.
      await Promise.all(answered);
      await shutdownServer(server, sockets, stalled, changes);
    })();
    return closing;
  }

  function waitFor<T>(
    probe: () => T | undefined | false | null,
    opts: { timeoutMs?: number; what?: string } = {},
  ): Promise<T> {
    return waitForChange(changes, probe, {
      timeoutMs: opts.timeoutMs ?? DEFAULT_WAIT_MS,
      ...(opts.what === undefined ? {} : { what: opts.what }),
      describe: () => describeCalls(calls),
    });
  }

  return {
    token,
    apiRoot: url,
    get calls() {
      return calls;
    },
    botUser,
    get commands() {
      return commands;
    },
    pushMessage,
    pushCallback,
    pushUpdate,
    redeliver,
    failAt(target, fault) {
      if ('method' in target) {
        const { method, occurrence } = target;
        aimed.add({ match: (call) => call.method === method, ...(occurrence === undefined ? {} : { occurrence }) }, fault);
      } else {
        aimed.add(target, fault);
      }
    },
    failNext(method, fault, times = 1) {
      const queue = faults.get(method) ?? [];
      for (let i = 0; i < times; i++) queue.push(fault);
      faults.set(method, queue);
    },
    sent: (chatId) => sentInOrder.filter((m) => chatId === undefined || m.chat_id === chatId),
    callsOf: (method) => calls.filter((c) => c.method === method),
    photo: (chatId, messageId) => photos.get(keyOf(chatId, messageId)),
    waitFor,
    close,
  };
}

// ---- helpers (pure) ------------------------------------------------------------------------

/**
 * The bytes of each uploaded file part, keyed by the `{ filename, size }` object that stands for
 * it in the recorded params (kept out of the params so recorded calls stay small and printable).
 */
const uploadedBytes = new WeakMap<object, Buffer>();

/** The bytes uploaded for `field`: a file part of that name, or one named by "attach://<name>". */
function uploadedFile(params: Params, field: string): Buffer | undefined {
  let value = params[field];
  if (typeof value === 'string' && value.startsWith('attach://')) value = params[value.slice('attach://'.length)];
  return value !== null && typeof value === 'object' ? uploadedBytes.get(value) : undefined;
}

/** PNG and JPEG by their magic numbers; everything else is served as opaque bytes. */
function imageType(bytes: Buffer): string {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return 'image/jpeg';
  return 'application/octet-stream';
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  // The client may have aborted (grammY timeout, bot.stop()) while we were deciding.
  if (res.writableEnded || res.destroyed) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function finished(res: ServerResponse): Promise<void> {
  if (res.writableFinished || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    res.once('finish', resolve);
    res.once('close', resolve);
  });
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// Repeated headers joined with ', ', as the other fakes record them.
function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Params from the query string merged with a JSON, urlencoded or multipart body. */
async function readParams(req: IncomingMessage, url: URL): Promise<Params> {
  const params: Params = {};
  for (const [key, value] of url.searchParams) params[key] = coerceField(key, value);
  const body = await readBody(req).catch(() => Buffer.alloc(0));
  if (body.length === 0) return params;
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  if (type.startsWith('application/json')) {
    try {
      const parsed: unknown = JSON.parse(body.toString('utf8'));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) Object.assign(params, parsed);
    } catch {
      params._unparsedBody = body.toString('utf8').slice(0, 200);
    }
  } else if (type.startsWith('application/x-www-form-urlencoded')) {
    for (const [key, value] of new URLSearchParams(body.toString('utf8'))) params[key] = coerceField(key, value);
  } else if (type.startsWith('multipart/form-data')) {
    const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(req.headers['content-type'] ?? '');
    const fields = boundary ? parseMultipart(body, boundary[1] ?? boundary[2] ?? '') : undefined;
    if (fields) Object.assign(params, fields);
    else params._multipart = 'unparsed';
  }
  return params;
}

/**
 * Text fields of a multipart body; file parts become `{ filename, size }`. Hand-rolled because
 * grammY writes headers without spaces (`content-disposition:form-data;name="x"`) and unquoted
 * filenames, which Node's spec-strict `Request.formData()` refuses.
 */
function parseMultipart(body: Buffer, boundary: string): Params | undefined {
  if (!boundary) return undefined;
  const params: Params = {};
  const delimiter = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(delimiter);
  while (pos >= 0) {
    const start = pos + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') return params; // closing delimiter
    const next = body.indexOf(delimiter, start);
    if (next < 0) return undefined;
    // Each part is "\r\n<headers>\r\n\r\n<content>\r\n" between two delimiters.
    const part = body.subarray(start + 2, next - 2);
    const split = part.indexOf('\r\n\r\n');
    if (split < 0) return undefined;
    const headers = part.subarray(0, split).toString('utf8');
    const content = part.subarray(split + 4);
    const name = /(?:^|[;\s:])name=(?:"([^"]*)"|([^;\r\n]+))/i.exec(headers);
    const key = name?.[1] ?? name?.[2]?.trim();
    if (key === undefined) return undefined;
    const filename = /filename=(?:"([^"]*)"|([^;\r\n]+))/i.exec(headers);
    if (filename) {
      const file = { filename: filename[1] ?? filename[2]?.trim(), size: content.length };
      uploadedBytes.set(file, Buffer.from(content));
      params[key] = file;
    } else {
      params[key] = coerceField(key, content.toString('utf8'));
    }
    pos = next;
  }
  return undefined;
}

/** Undo the stringification of form and query values where the Bot API type is known. */
function coerceField(key: string, value: string): unknown {
  if (value.startsWith('{') || value.startsWith('[')) {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value;
    }
  }
  if ((key.endsWith('_id') || INTEGER_KEYS.has(key)) && /^-?\d+$/.test(value)) return Number(value);
  return value;
}

function toInt(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  return undefined;
}

function requireChatId(params: Params): number {
  if (params.chat_id === undefined || params.chat_id === '') throw new BotApiError(400, 'Bad Request: chat_id is empty');
  const chatId = toInt(params.chat_id);
  // "@channelusername" is valid on Telegram, but nothing here knows such chats.
  if (chatId === undefined) throw new BotApiError(400, 'Bad Request: chat not found');
  return chatId;
}

/** Only inline keyboards are part of a message; an empty one is the same as none. */
function inlineMarkup(markup: unknown): InlineKeyboardMarkup | undefined {
  if (!markup || typeof markup !== 'object' || !('inline_keyboard' in markup)) return undefined;
  const rows = markup.inline_keyboard;
  if (!Array.isArray(rows) || rows.every((row) => Array.isArray(row) && row.length === 0)) return undefined;
  return markup as InlineKeyboardMarkup;
}

function withMarkup(message: Message, markup: InlineKeyboardMarkup | undefined): Message {
  const { reply_markup: _old, ...rest } = message;
  return markup === undefined ? rest : { ...rest, reply_markup: markup };
}

function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  ) ?? 'undefined';
}

/** A leading /command (optionally /command@bot) becomes a bot_command entity, as Telegram does. */
function commandEntities(text: string): MessageEntity[] | undefined {
  const match = /^\/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]+)?/.exec(text);
  return match ? [{ type: 'bot_command', offset: 0, length: match[0].length }] : undefined;
}

/** Validate message text the way Telegram does and return the text users would see. */
function renderText(text: unknown, parseMode: unknown, what: 'text' | 'caption'): string {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new BotApiError(400, `Bad Request: message ${what} is empty`);
  }
  const plain = parseMode === 'HTML' ? parseTelegramHtml(text) : text;
  if (plain.trim() === '') throw new BotApiError(400, `Bad Request: message ${what} is empty`);
  if ([...plain].length > (what === 'text' ? MAX_TEXT_CHARS : MAX_CAPTION_CHARS)) {
    throw new BotApiError(400, `Bad Request: message ${what === 'text' ? 'is' : 'caption is'} too long`);
  }
  return plain;
}

function renderCaption(params: Params): { caption?: string } {
  if (params.caption === undefined || params.caption === '') return {};
  return { caption: renderText(params.caption, params.parse_mode, 'caption') };
}

/**
 * Telegram's HTML parse mode, at the level that catches unescaped text: only the documented
 * tags, properly nested, and every `<` and `&` must be markup or an entity. Error details copy
 * TDLib's wording ("Unsupported start tag \"x\" at byte offset N", ...).
 *
 * Stricter than Telegram in one place: Telegram keeps a bare `&` as a literal, we reject it,
 * because a bare `&` in our output means some text was not escaped, and the next such text
 * will contain a `<`.
 */
function parseTelegramHtml(src: string): string {
  // A declaration (not an arrow in a const) so TypeScript narrows after `fail(...)`.
  function fail(detail: string): never {
    throw new BotApiError(400, `Bad Request: can't parse entities: ${detail}`);
  }
  const byteOffset = (index: number): number => Buffer.byteLength(src.slice(0, index), 'utf8');
  const open: string[] = [];
  let out = '';
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '&') {
      const entity = /^&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));/.exec(src.slice(i, i + 12));
      if (!entity) fail(`Unescaped "&" at byte offset ${byteOffset(i)} (write &amp;)`);
      const [whole, name, decimal, hex] = entity;
      if (name !== undefined) {
        out += NAMED_ENTITIES[name];
      } else {
        const code = decimal !== undefined ? Number(decimal) : parseInt(hex ?? '', 16);
        if (!(code > 0 && code <= 0x10ffff)) fail(`Invalid character entity at byte offset ${byteOffset(i)}`);
        out += String.fromCodePoint(code);
      }
      i += whole.length;
      continue;
    }
    if (c !== '<') {
      out += c;
      i++;
      continue;
    }
    const begin = i;
    if (src[i + 1] === '/') {
      const end = src.indexOf('>', i + 2);
      if (end < 0) fail(`Unclosed end tag at byte offset ${byteOffset(begin)}`);
      const name = src.slice(i + 2, end).trim().toLowerCase();
      const expected = open.at(-1);
      if (expected === undefined) fail(`Unexpected end tag at byte offset ${byteOffset(begin)}`);
      if (name !== expected) {
        fail(`Unmatched end tag at byte offset ${byteOffset(begin)}, expected "</${expected}>", found "</${name}>"`);
      }
      open.pop();
      i = end + 1;
      continue;
    }
    // Start tag: the name runs to whitespace or '>', so "a < b" yields the empty tag name "".
    let j = i + 1;
    while (j < src.length && !/\s/.test(src[j]!) && src[j] !== '>') j++;
    if (j >= src.length) fail(`Unclosed start tag at byte offset ${byteOffset(begin)}`);
    const name = src.slice(i + 1, j).toLowerCase();
    if (!HTML_TAGS.has(name)) fail(`Unsupported start tag "${name}" at byte offset ${byteOffset(begin)}`);
    const attrStart = j;
    let quote: string | undefined;
    while (j < src.length) {
      const ch = src[j]!;
      if (quote !== undefined) {
        if (ch === quote) quote = undefined;
      } else if (ch === '"' || ch === "'") {
        quote = ch;
      } else if (ch === '>') {
        break;
      }
      j++;
    }
    if (j >= src.length) fail(`Unclosed start tag at byte offset ${byteOffset(begin)}`);
    if (name === 'span' && !/\bclass\s*=\s*["']?tg-spoiler\b/.test(src.slice(attrStart, j))) {
      fail(`Tag "span" must have class "tg-spoiler" at byte offset ${byteOffset(begin)}`);
    }
    open.push(name);
    i = j + 1;
  }
  const unclosed = open.at(-1);
  if (unclosed !== undefined) fail(`Can't find end tag corresponding to start tag "${unclosed}"`);
  return out;
}

/** The last 20 calls, one line each, for timeout messages. */
function describeCalls(calls: readonly RecordedCall[]): string {
  if (calls.length === 0) return 'No calls were recorded.';
  const last = calls.slice(-20);
  const lines = last.map((c) => {
    const params = JSON.stringify(c.params) ?? '';
    return `  #${c.seq} ${c.method} ${params.length > 160 ? `${params.slice(0, 157)}...` : params}`;
  });
  return `Last ${last.length} of ${calls.length} calls:\n${lines.join('\n')}`;
}
