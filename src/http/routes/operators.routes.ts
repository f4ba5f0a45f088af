import { Router } from 'express';
import type { Context } from '../../context';
import type { Guards } from '../app';

/** Operators' surface: /admin/queues, /dashboard, /metrics, /docs, /v1/reports/* (mounted at /). */
export function operatorRoutes(_ctx: Context, _g: Guards): Router {
  return Router();
}
