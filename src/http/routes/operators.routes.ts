import path from 'node:path';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import swaggerUi from 'swagger-ui-express';
import type { AppContext } from '../../app/context';
import { AppError } from '../../platform/errors';
import { logger } from '../../platform/logger';
import { registry } from '../../platform/metrics';
import {
  inventoryCsv,
  inventoryReport,
  inventoryReportQuerySchema,
  ledgerReportQuerySchema,
  ledgerReport,
  ordersReport,
  ordersReportQuerySchema,
  queuesReport,
  replenishmentCsv,
  replenishmentQuerySchema,
  replenishmentReport,
} from '../../reports';
import { stockByLocation } from '../../inventory';
import { parseInput } from '../../platform/validation';
import { sameOriginWrites } from '../middleware/same-origin';
import { noQuery } from '../middleware/request';
import type { Guards } from '../guards';
import { CODE_FOR_STATUS, errorEnvelope } from '../error-envelope';
import { collectScrapeGauges } from '../metrics-scrape';
import { buildOpenApiDocument } from '../openapi';
import type { OrderJob } from '../../platform/job-catalog';

const BOARD_PATH = '/admin/queues';
const DASHBOARD_DIR = path.join(__dirname, '..', 'dashboard');
const CHART_JS = path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js');

/** The board's page pulls a web font from Google; operators' browsers fetch nothing from third parties. */
function withoutThirdPartyFonts(req: Request, res: Response, next: NextFunction): void {
  if (req.method !== 'GET') return next();
  const render = res.render.bind(res) as (
    view: string,
    options: object,
    done: (err: Error | null, html: string) => void,
  ) => void;
  res.render = ((view: string, options?: object) => {
    render(view, options ?? {}, (err, html) => {
      if (err) return next(err);
      res.type('html').send(html.replace(/<link[^>]*fonts\.googleapis\.com[^>]*>/g, ''));
    });
  }) as Response['render'];
  next();
}

/** 'ERRORS.JOB_NOT_RETRIABLE' with {state: 'completed'} → 'job not retriable (state: completed)'. */
function boardMessage(key: unknown, options: unknown): string | undefined {
  if (typeof key !== 'string' || !/^ERRORS\.[A-Z0-9_]+$/.test(key)) return undefined;
  const words = key.slice('ERRORS.'.length).toLowerCase().replace(/_/g, ' ');
  const opts =
    options && typeof options === 'object'
      ? Object.entries(options)
          .filter(([, v]) => ['string', 'number'].includes(typeof v))
          .map(([k, v]) => `${k}: ${String(v).slice(0, 100)}`)
      : [];
  return opts.length ? `${words} (${opts.join(', ')})` : words;
}

/**
 * bull-board answers its API's errors in a shape of its own, `{error: {key}}` (a translation key for
 * its page) or, from its error handler, with the thrown message beside it. They are rewritten into
 * the contract's `{error: {code, message, details}}`; `key` and `options` stay inside `error`, where
 * the board's page still finds them for its translated toast. A 5xx says only the request id.
 */
function boardErrorsInOurShape(req: Request, res: Response, next: NextFunction): void {
  const json = res.json.bind(res);
  res.json = ((body: any) => {
    const status = res.statusCode;
    const e = body?.error;
    if (status < 400 || (e && typeof e.code === 'string' && typeof e.message === 'string' && Array.isArray(e.details)))
      return json(body);
    // The catch-all key names a 500 even when the error was the client's; the status tells the truth.
    const key = typeof e === 'object' && e && e.key !== 'ERRORS.INTERNAL_SERVER_ERROR' ? e.key : undefined;
    const options = typeof e === 'object' && e ? e.options : undefined;
    let code = CODE_FOR_STATUS[status] ?? (status >= 500 ? 'internal' : 'validation_failed');
    let message = boardMessage(key, options);
    if (status >= 500) {
      logger.error({ requestId: req.requestId, route: req.originalUrl, status, board: body }, 'board error');
      code = 'internal';
      message = `internal error (request id ${req.requestId})`;
    } else if (!message) {
      message = /decode param/i.test(String(body?.message))
        ? 'the path has broken percent-encoding'
        : 'the request is malformed';
    }
    return json(errorEnvelope(code, message, [], { ...(key ? { key } : {}), ...(options ? { options } : {}) }));
  }) as Response['json'];
  next();
}

/**
 * The board. A viewer gets a twin in bull-board's read-only mode (no retry, clean, pause or
 * remove buttons), and any write to the board's API from a viewer key is 403 before it.
 */
function board(ctx: AppContext): RequestHandler {
  const full = boardFor(ctx, false);
  const readOnly = boardFor(ctx, true);
  const marks = markBoardRetries(ctx);
  return (req, res, next) => {
    if (req.principal?.role !== 'viewer') return marks(req, res, () => full(req, res, next));
    if (!['GET', 'HEAD', 'OPTIONS'].includes(req.method)) {
      return next(new AppError('forbidden', 'role viewer may not change the board'));
    }
    readOnly(req, res, next);
  };
}

/**
 * Who retries an order job in the board (change 2: the actor is the key whose request caused the
 * entry): before bull-board retries one failed job of the orders queue, or all of them, each is
 * marked with the operator's key (`retriedBy` in its data), and the run that takes its order from
 * failed back to received records them. Marks are best effort: a job the mark misses is still
 * retried, and its history names the system, as before.
 */
function markBoardRetries(ctx: AppContext): RequestHandler {
  const orders = ctx.queues.orders;
  const one = new RegExp(`^/api/queues/${orders.name}/([^/]+)/retry/?$`);
  const all = new RegExp(`^/api/queues/${orders.name}/retry/failed/?$`);
  const mark = async (
    job: { data: OrderJob; updateData(d: OrderJob): Promise<void> },
    by: { role: string; name: string },
  ) => {
    if (job?.data?.orderId) await job.updateData({ ...job.data, retriedBy: by });
  };
  return async (req, _res, next) => {
    if (req.method !== 'PUT' || !req.principal) return next();
    const by = { role: req.principal.role, name: req.principal.name };
    try {
      const single = one.exec(req.path);
      if (single) {
        const job = await orders.getJob(decodeURIComponent(single[1]));
        if (job && (await job.getState()) === 'failed') await mark(job, by);
      } else if (all.test(req.path)) {
        for (let start = 0; ; start += 500) {
          const page = await orders.getFailed(start, start + 499);
          await Promise.all(page.map((job) => mark(job, by)));
          if (page.length < 500) break;
        }
      }
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'board retry: could not name the operator on the jobs');
    }
    next();
  };
}

function boardFor(ctx: AppContext, readOnlyMode: boolean): RequestHandler {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: Object.values(ctx.queues).map((q) => new BullMQAdapter(q, { allowRetries: !readOnlyMode, readOnlyMode })),
    serverAdapter: adapter,
    options: {
      uiConfig: {
        boardTitle: 'orderflow',
        hideDocsLink: true,
        miscLinks: [
          { text: 'Console', url: '/console' },
          { text: 'Dashboard', url: '/dashboard' },
          { text: 'API docs', url: '/docs/' },
        ],
      },
    },
  });
  const app = adapter.getRouter();
  app.disable('x-powered-by');
  return app;
}

const dayOffset = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);

/** Operators' surface: /admin/queues, /dashboard, /metrics, /docs, /v1/reports/* (mounted at /). */
export function operatorRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();

  r.use(BOARD_PATH, g.browser, sameOriginWrites, withoutThirdPartyFonts, boardErrorsInOurShape, board(ctx));

  r.get('/metrics', g.browser, async (_req, res) => {
    await collectScrapeGauges(ctx);
    res.type(registry.contentType).send(await registry.metrics());
  });

  r.get('/v1/reports/orders', g.read, async (req, res) => {
    res.json(await ordersReport(ctx.db, parseInput(ordersReportQuerySchema, req.query, 'query')));
  });
  r.get('/v1/reports/inventory', g.read, async (req, res) => {
    const { format, by } = parseInput(inventoryReportQuerySchema, req.query, 'query');
    const report = await inventoryReport(ctx.db, { by });
    if (format === 'json') return void res.json(report);
    res.type('text/csv; charset=utf-8').attachment('inventory.csv').send(inventoryCsv(report));
  });
  r.get('/v1/reports/ledger', g.read, async (req, res) => {
    res.json(await ledgerReport(ctx.db, parseInput(ledgerReportQuerySchema, req.query, 'query')));
  });
  r.get('/v1/reports/replenishment', g.read, async (req, res) => {
    const { format, ...q } = parseInput(replenishmentQuerySchema, req.query, 'query');
    const report = await replenishmentReport(ctx.db, q);
    if (format === 'json') return void res.json(report);
    res.type('text/csv; charset=utf-8').attachment('replenishment.csv').send(replenishmentCsv(report));
  });
  r.get('/v1/reports/queues', g.read, async (_req, res) => {
    res.json(await queuesReport(ctx.queues));
  });

  // The dashboard: static page + script (no inline code), chart.js from node_modules, one data call.
  const page =
    (file: string, type: string): RequestHandler =>
    (_req, res) => {
      res.type(type).setHeader('Cache-Control', 'no-cache');
      res.sendFile(file);
    };
  r.get('/dashboard', g.browser, page(path.join(DASHBOARD_DIR, 'index.html'), 'html'));
  r.get('/dashboard/dashboard.js', g.browser, page(path.join(DASHBOARD_DIR, 'dashboard.js'), 'js'));
  r.get('/dashboard/dashboard.css', g.browser, page(path.join(DASHBOARD_DIR, 'dashboard.css'), 'css'));
  r.get('/dashboard/chart.umd.min.js', g.browser, page(CHART_JS, 'js'));
  // Every open dashboard polls; one computation per second serves them all.
  let latest: { at: number; data: Promise<unknown> } | undefined;
  // The 14-day orders chart reads every order of the window (300 ms at 1,000,000 orders over 25
  // days, docs/benchmarks.md): it is recomputed every 15 s, the rest every second.
  let ordersChart: { at: number; data: ReturnType<typeof ordersReport> } | undefined;
  const recentOrders = () => {
    if (!ordersChart || Date.now() - ordersChart.at > 15_000) {
      ordersChart = { at: Date.now(), data: ordersReport(ctx.db, { from: dayOffset(-13), to: dayOffset(0) }) };
      ordersChart.data.catch(() => {
        ordersChart = undefined;
      });
    }
    return ordersChart.data;
  };
  const dashboardData = async () => {
    const [orders, inventory, ledger, queues, locations] = await Promise.all([
      recentOrders(),
      inventoryReport(ctx.db, { limit: 25 }),
      ledgerReport(ctx.db),
      queuesReport(ctx.queues).catch(() => null),
      stockByLocation(ctx.db),
    ]);
    return {
      generated_at: new Date().toISOString(),
      orders,
      inventory: inventory.data,
      locations,
      queues: queues?.data ?? null,
      ledger: {
        skus: ledger.data.length,
        ok: ledger.data.length - ledger.mismatches.length,
        mismatches: ledger.mismatches.slice(0, 50),
      },
    };
  };
  r.get('/dashboard/data', g.browser, async (_req, res) => {
    if (!latest || Date.now() - latest.at > 1000) {
      latest = { at: Date.now(), data: dashboardData() };
      latest.data.catch(() => {
        latest = undefined;
      });
    }
    res.setHeader('Cache-Control', 'no-store');
    res.json(await latest.data);
  });

  // API documentation: the OpenAPI document and Swagger UI, both served from here.
  const doc = buildOpenApiDocument();
  r.get('/docs/openapi.json', noQuery, (_req, res) => {
    res.json(doc);
  });
  r.get('/docs', (req, res, next) =>
    req.originalUrl.split('?')[0].endsWith('/') ? next() : res.redirect(301, '/docs/'),
  );
  r.use('/docs', swaggerUi.serveFiles(undefined, { swaggerOptions: { url: '/docs/openapi.json' } }));
  r.get(
    '/docs/',
    swaggerUi.setup(undefined, { customSiteTitle: 'orderflow API', swaggerOptions: { url: '/docs/openapi.json' } }),
  );
  return r;
}
