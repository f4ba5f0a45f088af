import type { Response } from 'express';
import type { ErrorDetail, ErrorKind } from '../platform/errors';

/** The one map from an error's kind to its HTTP status. */
export const STATUS_OF: Readonly<Record<ErrorKind, number>> = {
  validation_failed: 400,
  invalid_json: 400,
  unsupported_media_type: 415,
  payload_too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  invalid_state: 409,
  idempotency_in_progress: 409,
  idempotency_key_reused: 422,
  rate_limited: 429,
  unavailable: 503,
};

/** The contract's code for a status that arrived without one (e.g. from a mounted library). */
export const CODE_FOR_STATUS: Readonly<Record<number, string>> = {
  400: 'validation_failed',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed',
  429: 'rate_limited',
  503: 'unavailable',
};

export interface ErrorEnvelope {
  error: { code: string; message: string; details: ErrorDetail[] | unknown[] } & Record<string, unknown>;
}

/** The error body every response of ours uses: `{error: {code, message, details}}` (extra fields inside `error`). */
export function errorEnvelope(
  code: string,
  message: string,
  details: unknown[] = [],
  extra: Record<string, unknown> = {},
): ErrorEnvelope {
  return { error: { code, message, details, ...extra } };
}

export function sendError(res: Response, status: number, code: string, message: string, details: unknown[] = []): void {
  if (res.headersSent) return;
  res.status(status).json(errorEnvelope(code, message, details));
}
