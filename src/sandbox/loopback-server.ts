import type { EventEmitter } from 'node:events';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * Longer than any test: Node's default (5 s) lets a server drop an idle keep-alive socket just
 * as a client's agent reuses it, which shows up as a random ECONNRESET.
 */
export const KEEP_ALIVE_MS = 60_000;

/**
 * Starts a fake's server on 127.0.0.1 (a free port) and tracks its sockets by hand: a reset
 * fault or a client abort can leave sockets that closeAllConnections() no longer knows about
 * but that would still delay close(). Returns the base URL.
 */
export async function listenOnLoopback(server: Server, sockets: Set<Socket>): Promise<string> {
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * Closes a fake's server at once: stalled responses and every socket destroyed (keep-alive
 * clients would otherwise hold it open), change listeners dropped.
 */
export async function shutdownServer(
  server: Server,
  sockets: ReadonlySet<Socket>,
  stalled: Set<ServerResponse>,
  changes: EventEmitter,
): Promise<void> {
  for (const res of stalled) res.destroy();
  stalled.clear();
  const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  for (const socket of sockets) socket.destroy();
  await serverClosed;
  changes.removeAllListeners();
}
