import pino from 'pino';

const level = process.env.LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'warn' : 'info');

/** JSON logs; children carry {requestId} or {queue, jobId, orderId}. Secrets are redacted by path. */
export const logger = pino({
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
});
