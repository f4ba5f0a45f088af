import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Express } from 'express';
import { errorEnvelope } from './error-envelope';

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'validation_failed', 'request headers or URL are too large'],
  HPE_URI_TOO_LONG: [414, 'validation_failed', 'request URL is too long'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'validation_failed', 'the request was not received in time'],
};

/** The parser's reason (e.g. "Invalid header token"), when it is a short plain phrase. */
const reasonOf = (err: NodeJS.ErrnoException): string | undefined => {
  const reason = (err as { reason?: unknown }).reason;
  return typeof reason === 'string' && /^[\w .,'-]{1,80}$/.test(reason) ? reason : undefined;
};

/**
 * The raw response for what Node's HTTP parser rejects before the app runs (oversized headers,
 * malformed request lines or headers): the contract's JSON error with an X-Request-Id like every
 * other response, written only if the socket can still take it; then the connection is closed.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
  const reason = reasonOf(err);
  const [status, code, message] = CLIENT_ERRORS[err.code ?? ''] ?? [
    400,
    'validation_failed',
    `malformed HTTP request${reason ? ` (${reason.toLowerCase()})` : ''}`,
  ];
  const body = JSON.stringify(errorEnvelope(code, message));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-Id: ${randomUUID()}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
  );
  // Destroyed a moment later rather than at once: closing with the rest of an oversized header still
  // unread would reset the connection and could take the answer with it.
  const linger = setTimeout(() => socket.destroy(), 1000).unref();
  socket.once('close', () => clearTimeout(linger));
}

/**
 * Listens, and answers the HTTP parser's refusals with the contract's JSON error (answerClientError).
 * Rejects when it cannot listen (port in use, a host name that does not resolve or is not local).
 */
export function listen(app: Express, port: number, host?: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    // express 5 calls this back with the error, too, when listening fails.
    const listening = (err?: Error) => {
      server.off('error', reject);
      if (err) reject(err);
      else resolve(server);
    };
    const server = host ? app.listen(port, host, listening) : app.listen(port, listening);
    server.once('error', reject);
    server.on('clientError', answerClientError);
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
