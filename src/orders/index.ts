export * from './order-status';
export * from './orders.schemas';
export * from './orders.service';
export * from './processing.service';
export * from './allocation.service';
export { findOrders, ORDER_JSON, isoSql } from './orders.repo';
