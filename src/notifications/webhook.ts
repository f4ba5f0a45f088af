import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { logger } from '../platform/logger';
import { ValidationError } from '../platform/errors';

/**
 * Used when WEBHOOK_SECRET is unset (development): deliveries stay signed, and a receiver can
 * verify them with this published value. Never use it in production; set WEBHOOK_SECRET.
 */
export const DEV_WEBHOOK_SECRET = `whsec_${Buffer.from('orderflow-development-webhook-secret').toString('base64')}`;

/** A delivery attempt that did not succeed; its message is what the notification log shows. */
export class DeliveryError extends Error {
  /** No retry can fix it (a refused target): the channel is failed at once. */
  readonly permanent: boolean;
  /** The receiver's HTTP status, when it answered. */
  readonly statusCode?: number;
  constructor(message: string, options?: { cause?: unknown; permanent?: boolean; statusCode?: number }) {
    super(message, options);
    this.name = 'DeliveryError';
    this.permanent = options?.permanent ?? false;
    this.statusCode = options?.statusCode;
  }
}

/** Addresses a customer's webhook may not reach under WEBHOOK_PRIVATE_TARGETS=deny. */
const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NON_PUBLIC.addSubnet(net, prefix, 'ipv4');
// IPv4-mapped addresses (::ffff:a.b.c.d) are checked by BlockList against the IPv4 rules above;
// NAT64 addresses are refused whole, as what they map to is not checked.
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  NON_PUBLIC.addSubnet(net, prefix, 'ipv6');
}

/**
 * Refuses a target whose host is, or resolves to, a loopback, private, link-local, multicast or
 * otherwise non-public address (a customer's webhook_url must not reach the internal network or a
 * cloud metadata endpoint). Checked before each attempt; an unresolvable host is an ordinary,
 * retried failure.
 */
export async function assertPublicTarget(url: string): Promise<void> {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  let addresses: { address: string; family: number }[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookup(host, { all: true, verbatim: true });
    } catch (err) {
      throw new DeliveryError(`cannot resolve ${host}: ${(err as { code?: string }).code ?? (err as Error).message}`, {
        cause: err,
      });
    }
  }
  const refused = addresses.find((a) => NON_PUBLIC.check(a.address, a.family === 6 ? 'ipv6' : 'ipv4'));
  if (refused) {
    throw new DeliveryError(
      `refused: ${host} is a non-public address (${refused.address}); WEBHOOK_PRIVATE_TARGETS=deny`,
      { permanent: true },
    );
  }
}

/**
 * At create or change, under WEBHOOK_PRIVATE_TARGETS=deny: a target refused for good (a non-public
 * address) is 400 naming `path`, with `message` made of the refusal. A host that does not resolve
 * now may later, so it is accepted (its attempts fail until it does).
 */
export async function refusePrivateTarget(
  deny: boolean,
  url: string | null | undefined,
  path: string,
  message: (refusal: string) => string = (m) => m,
): Promise<void> {
  if (!url || !deny) return;
  try {
    await assertPublicTarget(url);
  } catch (err) {
    if (err instanceof DeliveryError && err.permanent) {
      const text = message(err.message);
      throw new ValidationError(`invalid ${path.startsWith('body.') ? 'body' : 'request'}: ${path}: ${text}`, [
        { path, message: text },
      ]);
    }
  }
}

let warnedDevSecret = false;

/** The HMAC key: the base64 part of `whsec_…` (Standard Webhooks). Warns once when falling back to the dev secret. */
export function webhookKey(secret: string | undefined): Buffer {
  if (!secret && !warnedDevSecret) {
    warnedDevSecret = true;
    logger.warn(
      'WEBHOOK_SECRET is not set: webhooks are signed with the published development secret (see docs/api.md, Webhooks); set WEBHOOK_SECRET in production',
    );
  }
  const key = Buffer.from((secret ?? DEV_WEBHOOK_SECRET).replace(/^whsec_/, ''), 'base64');
  if (key.length === 0) throw new Error('webhook secret decodes to no bytes');
  return key;
}

/**
 * Standard Webhooks headers: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, timestamp in seconds.
 * With several keys (a rotation's overlap), one signature per key, space-separated, in the order given.
 */
export function signWebhook(
  key: Buffer | Buffer[],
  id: string,
  timestampSeconds: number,
  body: string,
): Record<string, string> {
  const signed = `${id}.${timestampSeconds}.${body}`;
  const signatures = (Array.isArray(key) ? key : [key]).map(
    (k) => `v1,${createHmac('sha256', k).update(signed).digest('base64')}`,
  );
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': signatures.join(' ') };
}

function describeFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; code?: string };
  if (e?.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`;
  if (e?.code === 'ECONNREFUSED') return 'connection refused';
  if (e?.code) return `${e.code}: ${e.message}`;
  return e?.message ?? String(err);
}

/**
 * Keep-alive agents shared by every delivery of the process: a receiver's connections are reused
 * from one delivery to the next instead of a TCP (and TLS) handshake each. An idle socket is
 * closed after 4 s, before a receiver's own idle timeout (Node's default is 5 s) can close it under
 * a request; at most 256 sockets per receiver, and as many kept while idle: with 64 kept, a
 * receiver sent to by NOTIFY_CONCURRENCY (200) deliveries at once lost every socket above 64 each
 * time the load dipped and opened it again (the production bench: 4,248 connections for 10,000
 * webhooks). Idle ones still close after 4 s. A request is never resent on another socket: one
 * attempt is one send.
 */
const AGENT_OPTIONS = { keepAlive: true, timeout: 4000, maxSockets: 256, maxFreeSockets: 256 };
const AGENTS = { 'http:': new http.Agent(AGENT_OPTIONS), 'https:': new https.Agent(AGENT_OPTIONS) };

/** Up to 64 KiB of a receiver's answer is read and dropped (so the socket can be reused); more cuts it off. */
const MAX_ANSWER = 65536;

/**
 * One signed POST over a keep-alive agent (node:http, lighter per request than fetch). Resolves
 * with the status on a 2xx; throws DeliveryError on any other status (redirects are not
 * followed), a refused or reset connection, or no complete answer within `timeoutMs`.
 */
export async function postWebhook(
  url: string,
  id: string,
  body: string,
  opts: { key: Buffer | Buffer[]; timeoutMs: number },
): Promise<number> {
  const target = new URL(url);
  const payload = Buffer.from(body, 'utf8');
  const headers = {
    'content-type': 'application/json',
    'content-length': String(payload.length),
    'user-agent': 'orderflow-webhooks/1',
    ...signWebhook(opts.key, id, Math.floor(Date.now() / 1000), body),
  };
  const secure = target.protocol === 'https:';
  const { status, statusText } = await new Promise<{ status: number; statusText: string }>((resolve, reject) => {
    const req = (secure ? https : http).request(
      target,
      { method: 'POST', headers, agent: AGENTS[secure ? 'https:' : 'http:'] },
      (res) => {
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER) res.destroy();
        });
        const done = () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '' });
        };
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
      },
    );
    const timer = setTimeout(() => {
      const err = new Error(`timed out after ${opts.timeoutMs} ms`);
      err.name = 'TimeoutError';
      req.destroy(err);
    }, opts.timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new DeliveryError(describeFailure(err, opts.timeoutMs), { cause: err }));
    });
    req.end(payload);
  });
  if (status < 200 || status > 299)
    throw new DeliveryError(`HTTP ${status}${statusText ? ` ${statusText}` : ''}`, { statusCode: status });
  return status;
}
