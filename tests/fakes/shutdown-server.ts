import type { EventEmitter } from 'node:events';
import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

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
