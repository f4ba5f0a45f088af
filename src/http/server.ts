import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Express } from 'express';

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'validation_failed', 'request headers or URL are too large'],
  HPE_URI_TOO_LONG: [414, 'validation_failed', 'request URL is too long'],
};

/**
 * Listens, and answers what Node's HTTP parser rejects before the app runs (oversized headers,
 * malformed requests) with the contract's JSON error instead of an empty body.
 */
export function listen(app: Express, port: number, host?: string): Promise<Server> {
  return new Promise((resolve) => {
    const server = host ? app.listen(port, host, () => resolve(server)) : app.listen(port, () => resolve(server));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable || (err as any).code === 'ECONNRESET') return void socket.destroy();
      const [status, code, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'validation_failed', 'malformed HTTP request'];
      const body = JSON.stringify({ error: { code, message, details: [] } });
      socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 414 ? 'URI Too Long' : 'Bad Request'}\r\n`
        + `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    });
  });
}

/**
 * Stops accepting, lets in-flight requests finish, and closes keep-alive sockets as soon as they
 * go idle (not only those idle at the moment of close), so a busy API drains in milliseconds.
 */
export function drain(server: Server): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeIdleConnections();
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  return closed.finally(() => clearInterval(sweep));
}
