import path from 'node:path';
import { Router, type RequestHandler } from 'express';
import type { ApiKey } from '../../platform/config';
import { makeKeyLookup, presentedKey, requireRole } from '../middleware/auth';
import { sameOriginWrites } from '../middleware/same-origin';
import type { Guards } from '../guards';

const CONSOLE_DIR = path.join(__dirname, '..', 'console');
const API_PREFIX = '/console/api/';

/**
 * The console's page calls the API with the Basic credentials the browser already holds for
 * /console: `/console/api/<path>` is `/v1/<path>`, answered by the same routes and guards (so a
 * viewer's POST is 403 there, exactly as on /v1). Only operator and viewer keys pass; a write must
 * come from our own page (Basic credentials ride along on cross-site requests).
 *
 * It is an app-level middleware, placed before the /v1 routers: it rewrites `req.url` before any
 * router has matched, so the /v1 route that answers sees a request of its own.
 */
export function consoleApiBridge(apiKeys: ApiKey[]): RequestHandler {
  const check = requireRole(makeKeyLookup(apiKeys), ['viewer'], { browser: true });
  return (req, res, next) => {
    if (!req.url.startsWith(API_PREFIX)) return next();
    check(req, res, (err?: unknown) => {
      if (err) return next(err);
      sameOriginWrites(req, res, (e?: unknown) => {
        if (e) return next(e);
        req.headers.authorization = `Bearer ${presentedKey(req, true)}`;
        req.url = `/v1/${req.url.slice(API_PREFIX.length)}`;
        next();
      });
    });
  };
}

/** The console's page: static files (no inline code, nothing from third parties) and who is signed in. */
export function consoleRoutes(g: Guards): Router {
  const r = Router();
  const file =
    (name: string, type: string): RequestHandler =>
    (_req, res) => {
      res.type(type).setHeader('Cache-Control', 'no-cache');
      res.sendFile(path.join(CONSOLE_DIR, name));
    };
  r.get('/console', g.browser, file('index.html', 'html'));
  r.get('/console/console.js', g.browser, file('console.js', 'js'));
  r.get('/console/console.css', g.browser, file('console.css', 'css'));
  r.get('/console/session', g.browser, (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json({ role: req.principal!.role, name: req.principal!.name });
  });
  return r;
}
