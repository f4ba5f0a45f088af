import pino from 'pino';

// Read before the configuration is checked: a blank value counts as unset and one pino does not
// know falls back to the default, so the configuration check (which refuses it) gets to say so in
// its one line instead of pino throwing at import.
const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const asked = process.env.LOG_LEVEL?.trim();
const level = asked && LEVELS.has(asked) ? asked : process.env.NODE_ENV === 'test' ? 'warn' : 'info';

/**
 * Where the logs go: stdout, written synchronously (one write per line, nothing buffered in the
 * process). Synchronous on purpose: pino's default asynchronous stdout flushes what it buffered when
 * the process exits, and that flush retries a failed write for ever — with the reader of a pipe gone
 * (`… | head -1`), a process on its way out hung there, deaf to every later SIGTERM.
 *
 * A failed write never throws into the caller and never blocks for long: the reader gone (EPIPE) or
 * any other error → logging stops for good and the process goes on without it; a pipe that is full
 * (EAGAIN) → the line stays queued for the next write, at most LOG_BUFFER_BYTES of them (the rest
 * are dropped), instead of the process sleeping until the reader catches up.
 */
const LOG_BUFFER_BYTES = 4 * 1024 * 1024;
export const logDestination = pino.destination({
  dest: 1,
  sync: true,
  minLength: 0,
  maxLength: LOG_BUFFER_BYTES,
  retryEAGAIN: () => false,
});
let stdoutGone = false;
logDestination.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EAGAIN' || err.code === 'EBUSY' || stdoutGone) return;
  stdoutGone = true;
  logDestination.write = () => true;
  logDestination.flushSync = () => undefined;
  logDestination.end = () => undefined;
});

/** JSON logs; children carry {requestId} or {queue, jobId, orderId}. Secrets are redacted by path. */
export const logger = pino(
  {
    level,
    base: { pid: process.pid },
    redact: {
      paths: [
        'req.headers.authorization',
        'headers.authorization',
        'authorization',
        'apiKey',
        'key',
        'password',
        'smtpUrl',
        'secret',
        '*.password',
        '*.secret',
      ],
      censor: '[redacted]',
    },
  },
  logDestination,
);

/**
 * process.stdout and process.stderr that cannot take the process down: a write to a closed pipe
 * emits 'error' (EPIPE) on the stream, which with no listener is an uncaught exception. Called by
 * the entry point; what is lost is only output nobody reads.
 */
let tolerating = false;
export function tolerateBrokenStdio(): void {
  if (tolerating) return;
  tolerating = true;
  // Always our own listener: one left by a stream piped into stdout is removed again on error.
  for (const s of [process.stdout, process.stderr]) s.on('error', () => undefined);
}

/** A log call that can never throw (for the shutdown path, which must go on whatever the logs do). */
export function logQuietly(fn: () => void): void {
  try {
    fn();
  } catch {
    /* the logs are gone; the caller is not */
  }
}
