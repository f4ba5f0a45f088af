export interface ErrorDetail {
  path: string;
  message: string;
}

/**
 * What went wrong, in the contract's words. Each kind is the `error.code` clients see; the HTTP
 * status of each is decided in one place, http/error-envelope.ts. Domain code never names a status.
 */
export type ErrorKind =
  | 'validation_failed'
  | 'invalid_json'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'invalid_state'
  | 'idempotency_in_progress'
  | 'idempotency_key_reused'
  | 'rate_limited'
  | 'unavailable';

/** Thrown by domain and HTTP code alike; mapped to a response by the error handler. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorKind,
    message: string,
    readonly details: ErrorDetail[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ValidationError extends AppError {
  constructor(message: string, details: ErrorDetail[] = []) {
    super('validation_failed', message, details);
  }
}
export class NotFoundError extends AppError {
  constructor(what: string) {
    super('not_found', `${what} not found`);
  }
}
export class ConflictError extends AppError {
  /** `location`: the path of the resource that is in the way (sent as the `Location` header). */
  constructor(
    message: string,
    details: ErrorDetail[] = [],
    readonly location?: string,
  ) {
    super('conflict', message, details);
  }
}
export class InvalidStateError extends AppError {
  constructor(message: string) {
    super('invalid_state', message);
  }
}
export class UnavailableError extends AppError {
  constructor(
    message: string,
    readonly retryAfterSeconds = 5,
    options?: { cause?: unknown },
  ) {
    super('unavailable', message, [], options);
  }
}

/** Optimistic version check lost, serialization failure or deadlock: retry the whole transaction. */
export class OptimisticConflict extends Error {
  constructor(readonly sku?: string) {
    super(`optimistic conflict${sku ? ` on ${sku}` : ''}`);
    this.name = 'OptimisticConflict';
  }
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08003',
  '08006',
  '08001',
  '08004',
]);

/** True when the error means PostgreSQL could not be reached or dropped the connection. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: any = err, depth = 0; e && depth < 5; e = e.cause, depth++) {
    if (CONNECTION_CODES.has(e.code)) return true;
    if (e.name === 'KnexTimeoutError') return true;
    const msg = String(e.message ?? '');
    if (
      /Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended unexpectedly|the database system is (starting up|shutting down)/i.test(
        msg,
      )
    )
      return true;
  }
  return false;
}

export function isRetryableTxError(err: unknown): boolean {
  const code = (err as any)?.code;
  return err instanceof OptimisticConflict || code === '40001' || code === '40P01';
}
