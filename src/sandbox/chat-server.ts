/**
 * The sandbox's web chat: one page on 127.0.0.1 that plays the Telegram app for one user
 * against the stand-in Bot API. It pushes what the user types and taps into the stand-in as
 * updates (the bot fetches them with getUpdates, as from Telegram) and shows what the bot sent,
 * edited and uploaded, live, by long polling.
 *
 * Routes: `/` the page, `/chat.js` and `/chat.css` its files, `GET /api/chat?since=<version>`
 * the conversation (held until it differs from `since`), `POST /api/send {text}`,
 * `POST /api/tap {messageId, data}`, `/photo/<messageId>` an uploaded image, and anything
 * `pages` answers (the PR pages). Requests must name this server in `Host` (no DNS rebinding)
 * and writes must be JSON (no cross-site form posts), so other web pages cannot drive the bot.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { FakeTelegram, SentMessage, TgUser } from './telegram-server.js';
import { renderTelegramHtml } from './render-telegram-html.js';

/** The page's files (next to src/ and dist/, like prompts/, so both layouts find them). */
export const WEB_DIR = fileURLToPath(new URL('../../src/sandbox/web/', import.meta.url));

/** How long a long poll is held before it answers "no change". @default 25000 */
export const LONG_POLL_MS = 25_000;
/** A typed message longer than Telegram's limit is refused rather than cut. */
const MAX_TEXT_CHARS = 4096;
/** Request bodies the page sends are tiny; anything bigger is not from it. */
const MAX_BODY_BYTES = 64 * 1024;

/** One inline button as the page shows it. */
export interface ChatButton {
  text: string;
  /** callback_data: tapping sends it back. */
  data?: string;
  /** A URL button opens this. */
  url?: string;
}

/** One message of the conversation, oldest first by Telegram message id. */
export interface ChatMessage {
  id: number;
  from: 'user' | 'bot';
  /** Safe HTML (see renderTelegramHtml). */
  html: string;
  /** Path of the uploaded image, for photos. */
  photo?: string;
  buttons: ChatButton[][];
  /** How many times the bot edited it. */
  edits: number;
}

/** What `GET /api/chat` answers. */
export interface ChatState {
  /** Changes whenever anything shown changes; the page passes it back as `since`. */
  version: string;
  botName: string;
  messages: ChatMessage[];
  /** Texts of the bot's answers to taps (shown as a toast), newest last. */
  notices: Array<{ id: number; text: string }>;
  /** The bot's command menu (setMyCommands). */
  commands: Array<{ command: string; description: string }>;
}

/** Collaborators of the chat server. */
export interface ChatServerDeps {
  telegram: FakeTelegram;
  /** The one user the page speaks as; must be in TELEGRAM_ALLOWED_USERS. */
  user: TgUser;
  /** Extra pages by path (e.g. `/github/owner/repo/pull/1`); undefined → 404. */
  pages?: (path: string) => string | undefined;
}

/** A running chat server. */
export interface ChatServer {
  /** e.g. "http://127.0.0.1:8790", no trailing slash. */
  readonly url: string;
  /** The conversation as the page sees it. */
  state(): ChatState;
  close(): Promise<void>;
}

/** A request the page should not have made; answered with its status and message. */
class BadRequest extends Error {
  override readonly name = 'BadRequest';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Starts the chat server on 127.0.0.1:`port` (0: a free port). The server listens before
 * `deps` is needed, so that the launcher can hand its URL to the stand-ins that link to it.
 */
export async function startChatServer(port: number, deps: () => ChatServerDeps): Promise<ChatServer> {
  const userMessages: Array<{ id: number; text: string }> = [];
  const sockets = new Set<Socket>();
  const assets = new Map<string, { body: Buffer; type: string }>([
    ['/', { body: readFileSync(`${WEB_DIR}chat.html`), type: 'text/html; charset=utf-8' }],
    ['/chat.js', { body: readFileSync(`${WEB_DIR}chat.js`), type: 'text/javascript; charset=utf-8' }],
    ['/chat.css', { body: readFileSync(`${WEB_DIR}chat.css`), type: 'text/css; charset=utf-8' }],
  ]);
  let closing = false;

  // Cheap on purpose: held polls re-check it on every call the stand-in records.
  const version = (): string => {
    const { telegram, user } = deps();
    const sent = telegram.sent(user.id);
    const edits = sent.reduce((n, m) => n + m.edits.length, 0);
    const notices = telegram.callsOf('answerCallbackQuery').filter((c) => typeof c.params.text === 'string' && c.params.text !== '').length;
    return `${userMessages.length + sent.length}.${edits}.${notices}.${telegram.commands.length}`;
  };

  const state = (): ChatState => {
    const { telegram, user } = deps();
    const sent = telegram.sent(user.id);
    const messages: ChatMessage[] = [
      ...userMessages.map((m): ChatMessage => ({ id: m.id, from: 'user', html: renderTelegramHtml(m.text), buttons: [], edits: 0 })),
      ...sent.map((m) => botMessage(telegram, m)),
    ].sort((a, b) => a.id - b.id);
    const notices = telegram
      .callsOf('answerCallbackQuery')
      .filter((c) => typeof c.params.text === 'string' && c.params.text !== '')
      .map((c) => ({ id: c.seq, text: String(c.params.text) }));
    return {
      version: version(),
      botName: telegram.botUser.username ?? 'nightshift',
      messages,
      notices,
      commands: telegram.commands.map((c) => ({ command: c.command, description: c.description })),
    };
  };

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { telegram, user, pages } = deps();
    const path = url.pathname;
    if (req.method === 'GET' && assets.has(path)) {
      const asset = assets.get(path)!;
      send(res, 200, asset.body, asset.type);
      return;
    }
    if (req.method === 'GET' && path === '/api/chat') {
      const since = url.searchParams.get('since');
      if (since !== null && since === version()) {
        // Held until something changes; a timeout is simply "nothing new".
        await telegram.waitFor(() => closing || version() !== since, { timeoutMs: LONG_POLL_MS, what: 'a change in the chat' }).catch(() => undefined);
      }
      sendJson(res, 200, state());
      return;
    }
    if (req.method === 'POST' && path === '/api/send') {
      const body = await readJson(req);
      const text = typeof body.text === 'string' ? body.text.trim() : '';
      if (text === '') throw new BadRequest(400, 'type a message first');
      if ([...text].length > MAX_TEXT_CHARS) throw new BadRequest(400, `a message has at most ${MAX_TEXT_CHARS} characters`);
      const update = telegram.pushMessage(user, text);
      userMessages.push({ id: update.message!.message_id, text });
      sendJson(res, 200, { ok: true, id: update.message!.message_id });
      return;
    }
    if (req.method === 'POST' && path === '/api/tap') {
      const body = await readJson(req);
      const messageId = body.messageId;
      const data = body.data;
      if (typeof messageId !== 'number' || !Number.isSafeInteger(messageId) || typeof data !== 'string' || data === '') {
        throw new BadRequest(400, 'a tap needs {"messageId": <number>, "data": "<callback data>"}');
      }
      const message = telegram.sent(user.id).find((m) => m.message_id === messageId);
      if (!message) throw new BadRequest(404, `no message ${messageId} from the bot`);
      telegram.pushCallback(user, { message_id: messageId, chat_id: user.id }, data);
      sendJson(res, 200, { ok: true });
      return;
    }
    const photo = /^\/photo\/(\d+)$/.exec(path);
    if (req.method === 'GET' && photo) {
      const image = telegram.photo(user.id, Number(photo[1]));
      if (!image) throw new BadRequest(404, 'no such photo');
      send(res, 200, image.bytes, image.contentType);
      return;
    }
    const page = req.method === 'GET' ? pages?.(path) : undefined;
    if (page !== undefined) {
      send(res, 200, Buffer.from(page), 'text/html; charset=utf-8');
      return;
    }
    throw new BadRequest(404, 'not found');
  }

  const server: Server = createServer((req, res) => {
    const host = req.headers.host ?? '';
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (!isLocalHost(host)) {
      req.resume();
      sendJson(res, 421, { ok: false, error: 'this server answers only to 127.0.0.1 and localhost' });
      return;
    }
    handle(req, res, url).catch((err: unknown) => {
      const status = err instanceof BadRequest ? err.status : 500;
      sendJson(res, status, { ok: false, error: err instanceof Error ? err.message : String(err) });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    state,
    async close() {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function botMessage(telegram: FakeTelegram, m: SentMessage): ChatMessage {
  const image = telegram.photo(m.chat_id, m.message_id);
  return {
    id: m.message_id,
    from: 'bot',
    html: m.text === '' ? '' : renderTelegramHtml(m.text, m.parse_mode),
    ...(image && { photo: `/photo/${m.message_id}` }),
    buttons: inlineButtons(m.reply_markup),
    edits: m.edits.length,
  };
}

function inlineButtons(markup: unknown): ChatButton[][] {
  const rows = (markup as { inline_keyboard?: unknown } | undefined)?.inline_keyboard;
  if (!Array.isArray(rows)) return [];
  return rows.map((row) =>
    (Array.isArray(row) ? row : []).flatMap((b: { text?: unknown; callback_data?: unknown; url?: unknown }) => {
      if (typeof b?.text !== 'string') return [];
      return [{ text: b.text, ...(typeof b.callback_data === 'string' && { data: b.callback_data }), ...(typeof b.url === 'string' && { url: b.url }) }];
    }),
  );
}

function isLocalHost(host: string): boolean {
  return /^(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?$/i.test(host);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')) {
    req.resume();
    throw new BadRequest(415, 'send JSON (content-type: application/json)');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BadRequest(413, 'request too large');
    chunks.push(chunk as Buffer);
  }
  try {
    const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new BadRequest(400, 'the body is not a JSON object');
}

function send(res: ServerResponse, status: number, body: Buffer, type: string): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(status, {
    'content-type': type,
    'content-length': body.length,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    // The page runs only its own script and shows only its own images.
    'content-security-policy': "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'",
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, Buffer.from(JSON.stringify(body)), 'application/json; charset=utf-8');
}
