import type { Knex } from 'knex';
import type { Db } from '../../platform/db';
import { ValidationError } from '../../platform/errors';
import type { ListOrdersQuery, Order } from '../orders.schemas';
import { ORDER_JSON } from './order-json';

const DAY_MS = 86_400_000;
const isDate = (v: string) => /^\d{4}-\d{2}-\d{2}$/.test(v);
/** A bound as an instant; `endOfDay` makes a bare date include that whole day (an exclusive end). */
export function instant(v: string, path: string, endOfDay = false): Date {
  const t = isDate(v) ? Date.parse(`${v}T00:00:00Z`) + (endOfDay ? DAY_MS : 0) : Date.parse(v);
  if (Number.isNaN(t))
    throw new ValidationError(`invalid query: ${path}: is not a valid date`, [
      { path, message: 'is not a valid date' },
    ]);
  return new Date(t);
}

/**
 * `q` as an id prefix: hex digits (dashes where a UUID has them), 4 at least, as the range of
 * UUIDs that start with it, so the primary key serves it. Undefined when `q` is no such prefix.
 */
export function idPrefixRange(q: string): [string, string] | undefined {
  const s = q.toLowerCase();
  const hex = s.replace(/-/g, '');
  if (hex.length < 4 || hex.length > 32 || !/^[0-9a-f]+$/.test(hex)) return undefined;
  const fmt = (h: string) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  if (!fmt(hex.padEnd(32, '0')).startsWith(s)) return undefined; // dashes elsewhere: not a prefix of any id
  return [fmt(hex.padEnd(32, '0')), fmt(hex.padEnd(32, 'f'))];
}

const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * One page, newest first, before `beforeSeq` (keyset on seq); one row more than asked tells if
 * there is more. Every filter has an index (docs/operations.md shows the plans): status and
 * customer_id (with seq), sku (order_lines (sku, seq)), external_ref (partial btree), created and
 * updated times (btree), reason (pg_trgm GIN when the extension exists), and `q` as a BitmapOr of
 * the primary key (id prefix range and SKU's orders), external_ref, and customer_id (the
 * e-mail's customer through the unique lower(email) index).
 */
export async function selectOrderPage(
  db: Db,
  q: ListOrdersQuery,
  beforeSeq: number | undefined,
): Promise<{ j: Order; seq: number }[]> {
  return orderPageQuery(db, q, beforeSeq);
}

/** The query of one page, unexecuted (docs/operations.md prints its plans). */
export function orderPageQuery(db: Db, q: ListOrdersQuery, beforeSeq: number | undefined) {
  const query = db('orders as o')
    .select(db.raw(`${ORDER_JSON} AS j`), 'o.seq')
    .orderBy('o.seq', 'desc')
    .limit(q.limit + 1);
  const filtered = <T extends Knex.QueryBuilder>(b: T): T => {
    if (beforeSeq !== undefined) b.where('o.seq', '<', beforeSeq);
    if (q.status) b.where('o.status', q.status);
    if (q.customer_id) b.where('o.customer_id', q.customer_id);
    if (q.sku)
      b.whereExists(db('order_lines as l').select(db.raw('1')).whereRaw('l.order_id = o.id').where('l.sku', q.sku));
    if (q.external_ref !== undefined) b.where('o.external_ref', q.external_ref);
    if (q.reason !== undefined) b.whereRaw(`o.status_reason ILIKE ? ESCAPE '\\'`, [`%${likeEscape(q.reason)}%`]);
    if (q.created_from !== undefined) b.where('o.created_at', '>=', instant(q.created_from, 'query.created_from'));
    if (q.created_to !== undefined) b.where('o.created_at', '<', instant(q.created_to, 'query.created_to', true));
    if (q.updated_since !== undefined) b.where('o.updated_at', '>=', instant(q.updated_since, 'query.updated_since'));
    return b;
  };
  filtered(query);
  if (q.q !== undefined) {
    // One branch per meaning of q, each the page's newest matches on its own index; the page is the
    // newest of their union (an OR would leave the planner to walk seq backward through everything).
    const text = q.q;
    const range = idPrefixRange(text);
    const branch = (where: (b: Knex.QueryBuilder) => void) => {
      const b = filtered(db('orders as o').select('o.id'));
      where(b);
      return b.orderBy('o.seq', 'desc').limit(q.limit + 1);
    };
    const branches = [
      ...(range ? [branch((b) => b.whereBetween('o.id', range))] : []),
      branch((b) => b.where('o.external_ref', text)),
      // A scalar subquery (e-mails are unique): the branch is then a walk of (customer_id, seq). As
      // `IN (SELECT …)` the planner walked seq backward over every order when nobody had that e-mail
      // (454 ms at 1,000,000 orders; docs/benchmarks.md).
      branch((b) =>
        b.whereRaw('o.customer_id = (SELECT c.id FROM customers c WHERE lower(c.email) = lower(?))', [text]),
      ),
      // The SKU's lines newest first on order_lines (sku, seq), each joined to its order.
      ...(/^[A-Za-z0-9._-]{1,64}$/.test(text)
        ? [
            filtered(db('order_lines as sl').join('orders as o', 'o.id', 'sl.order_id').select('o.id'))
              .where('sl.sku', text)
              .orderBy('sl.seq', 'desc')
              .limit(q.limit + 1),
          ]
        : []),
    ];
    // ARRAY(...) runs the branches first (an InitPlan); the page is then read by primary key.
    query.whereRaw(
      `o.id = ANY(ARRAY(SELECT u.id FROM (${branches.map(() => '(?)').join(' UNION ALL ')}) u))`,
      branches,
    );
  }
  return query;
}
