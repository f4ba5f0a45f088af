import type { Queue } from 'bullmq';
import type { Executor } from '../platform/db';

/** Where one problem is listed; the checker reports at most this many per rule. */
const LIMIT = 50;

export interface InvariantReport {
  ok: boolean;
  /** One line per thing that is wrong, prefixed by the rule it breaks. */
  problems: string[];
  /** How many things each rule found (0 when it holds). */
  counts: Record<string, number>;
}

export interface CheckOptions {
  /** When given, a `received` order older than the grace period must have a live job in `queues.orders`. */
  queues?: { orders: Queue };
  /** A `received` order younger than this needs no job yet (default 30 s). */
  graceSeconds?: number;
  /** How long a line must have waited before a later line's reservation counts against FIFO (default 2 s). */
  fifoSlackSeconds?: number;
}

/** BullMQ states in which a job will still run. */
const LIVE = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

interface Rule {
  name: string;
  sql: string;
  bindings?: (opts: CheckOptions) => number[];
  line: (r: any) => string;
}

/**
 * The contract's guarantees as SQL over the record (PostgreSQL). Each rule selects the rows that
 * break it; an empty result means it holds. Stock figures are checked against the ledger and the
 * order lines, so a double reservation, a second sale or a lost release shows up as a mismatch.
 */
/** Movement types that change on_hand (each stored with its sign). */
const ON_HAND_TYPES = `'initial', 'receipt', 'sale', 'adjustment', 'return', 'count', 'transfer_out', 'transfer_in'`;

const RULES: Rule[] = [
  {
    name: 'stock-range',
    // Guarantee 1 (no oversell): 0 <= reserved <= on_hand, nothing negative.
    sql: `SELECT sku, on_hand, reserved, backordered FROM stock
           WHERE reserved > on_hand OR on_hand < 0 OR reserved < 0 OR backordered < 0 ORDER BY sku`,
    line: (r) => `${r.sku}: on_hand ${r.on_hand}, reserved ${r.reserved}, backordered ${r.backordered}`,
  },
  {
    name: 'level-range',
    // Per (SKU, location): 0 <= reserved <= on_hand (guarantee 7: no row below its reservations).
    sql: `SELECT sku, location, on_hand, reserved FROM stock_levels
           WHERE reserved > on_hand OR on_hand < 0 OR reserved < 0 ORDER BY sku, location`,
    line: (r) => `${r.sku} at ${r.location}: on_hand ${r.on_hand}, reserved ${r.reserved}`,
  },
  {
    name: 'level-totals',
    // The SKU's totals row is the sum of its levels.
    sql: `SELECT s.sku, s.on_hand, s.reserved, COALESCE(l.on_hand, 0) AS levels_on_hand, COALESCE(l.reserved, 0) AS levels_reserved
            FROM stock s LEFT JOIN (SELECT sku, SUM(on_hand) AS on_hand, SUM(reserved) AS reserved FROM stock_levels GROUP BY sku) l
                   ON l.sku = s.sku
           WHERE s.on_hand <> COALESCE(l.on_hand, 0) OR s.reserved <> COALESCE(l.reserved, 0) ORDER BY s.sku`,
    line: (r) =>
      `${r.sku}: totals on_hand ${r.on_hand} / reserved ${r.reserved} but its locations add up to ${r.levels_on_hand} / ${r.levels_reserved}`,
  },
  {
    name: 'ledger-level',
    // Per (SKU, location): on_hand = initial + receipts − sales + returns + adjustments + counts
    // + transfers in − transfers out (sales and transfers out are stored negative).
    sql: `SELECT s.sku, s.location, s.on_hand, COALESCE(m.total, 0) AS ledger FROM stock_levels s
            LEFT JOIN (SELECT sku, location, SUM(quantity) AS total FROM stock_movements WHERE type IN (${ON_HAND_TYPES})
                        GROUP BY sku, location) m ON m.sku = s.sku AND m.location = s.location
           WHERE s.on_hand <> COALESCE(m.total, 0) ORDER BY s.sku, s.location`,
    line: (r) => `${r.sku} at ${r.location}: on_hand ${r.on_hand} but the ledger says ${r.ledger}`,
  },
  {
    name: 'transfers-net',
    // Guarantee 7: a transfer changes no SKU's total; its two movements cancel out.
    sql: `SELECT sku, SUM(quantity) AS net FROM stock_movements WHERE type IN ('transfer_out', 'transfer_in')
           GROUP BY sku HAVING SUM(quantity) <> 0 ORDER BY sku`,
    line: (r) => `${r.sku}: transfers net to ${r.net}, not 0`,
  },
  {
    name: 'ledger-on-hand',
    // Guarantee 2: on_hand = initial + receipts − sales + returns + adjustments + counts (+ transfers, netting to 0).
    sql: `SELECT s.sku, s.on_hand, COALESCE(m.total, 0) AS ledger FROM stock s
            LEFT JOIN (SELECT sku, SUM(quantity) AS total FROM stock_movements
                        WHERE type IN (${ON_HAND_TYPES}) GROUP BY sku) m ON m.sku = s.sku
           WHERE s.on_hand <> COALESCE(m.total, 0) ORDER BY s.sku`,
    line: (r) => `${r.sku}: on_hand ${r.on_hand} but the ledger says ${r.ledger}`,
  },
  {
    name: 'ledger-reserved',
    // reserved = reservations + releases + sales (releases and sales are negative).
    sql: `SELECT s.sku, s.reserved, COALESCE(m.total, 0) AS ledger FROM stock s
            LEFT JOIN (SELECT sku, SUM(quantity) AS total FROM stock_movements
                        WHERE type IN ('reservation', 'release', 'sale') GROUP BY sku) m ON m.sku = s.sku
           WHERE s.reserved <> COALESCE(m.total, 0) ORDER BY s.sku`,
    line: (r) => `${r.sku}: reserved ${r.reserved} but the ledger says ${r.ledger}`,
  },
  {
    name: 'reserved-lines',
    // What a (SKU, location) row holds is exactly what the allocations there hold, and only live
    // orders hold any (reserved now and not shipped).
    sql: `SELECT s.sku, s.location, s.reserved, COALESCE(a.total, 0) AS lines FROM stock_levels s
            LEFT JOIN (SELECT a.sku, a.location, SUM(a.reserved) AS total FROM order_line_allocations a
                         JOIN orders o ON o.id = a.order_id
                        WHERE o.status IN ('confirmed', 'awaiting_stock', 'partially_shipped')
                        GROUP BY a.sku, a.location) a ON a.sku = s.sku AND a.location = s.location
           WHERE s.reserved <> COALESCE(a.total, 0)
          UNION ALL
          SELECT a.sku, a.location, NULL, SUM(a.reserved) FROM order_line_allocations a JOIN orders o ON o.id = a.order_id
           WHERE o.status NOT IN ('confirmed', 'awaiting_stock', 'partially_shipped') AND a.reserved > 0
           GROUP BY a.sku, a.location
           ORDER BY 1, 2`,
    line: (r) =>
      r.reserved === null
        ? `${r.sku} at ${r.location}: orders that are not live hold ${r.lines} reserved`
        : `${r.sku} at ${r.location}: reserved ${r.reserved} but the allocations of live orders hold ${r.lines}`,
  },
  {
    name: 'backordered',
    // The SKU's queue is what its waiting lines have not shipped (a revoked line may have shipped some).
    sql: `SELECT s.sku, s.backordered, COALESCE(l.total, 0) AS lines FROM stock s
            LEFT JOIN (SELECT sku, SUM(quantity - shipped) AS total FROM order_lines WHERE waiting AND NOT reserved GROUP BY sku) l ON l.sku = s.sku
           WHERE s.backordered <> COALESCE(l.total, 0) ORDER BY s.sku`,
    line: (r) => `${r.sku}: backordered ${r.backordered} but waiting lines hold ${r.lines}`,
  },
  {
    name: 'line-ledger',
    // Guarantee 4 (exactly-once effect): per order line, the ledger nets to what the line holds now
    // (its allocations' reserved units) and its sales to what it shipped. A second reservation or sale breaks it.
    sql: `WITH net AS (
            SELECT order_id, sku, SUM(quantity) AS held,
                   SUM(CASE WHEN type = 'sale' THEN -quantity ELSE 0 END) AS sold
              FROM stock_movements WHERE order_id IS NOT NULL AND type IN ('reservation', 'release', 'sale')
             GROUP BY order_id, sku),
          expected AS (
            SELECT l.order_id, l.sku, COALESCE((SELECT SUM(a.reserved) FROM order_line_allocations a
                                                  WHERE a.order_id = l.order_id AND a.sku = l.sku), 0) AS held,
                   l.shipped AS sold
              FROM order_lines l)
          SELECT COALESCE(n.order_id, e.order_id) AS order_id, COALESCE(n.sku, e.sku) AS sku,
                 COALESCE(n.held, 0) AS held, COALESCE(e.held, 0) AS expected_held,
                 COALESCE(n.sold, 0) AS sold, COALESCE(e.sold, 0) AS expected_sold
            FROM net n FULL JOIN expected e ON e.order_id = n.order_id AND e.sku = n.sku
           WHERE COALESCE(n.held, 0) <> COALESCE(e.held, 0) OR COALESCE(n.sold, 0) <> COALESCE(e.sold, 0)
           ORDER BY 1, 2`,
    line: (r) =>
      `order ${r.order_id} ${r.sku}: ledger holds ${r.held} (expected ${r.expected_held}), sold ${r.sold} (expected ${r.expected_sold})`,
  },
  {
    name: 'line-allocations',
    // A reserved line's units are all placed: Σ allocations (reserved + shipped) = quantity while
    // the order is live or completed; shipped on the line = Σ shipped of its allocations; returned ≤ shipped.
    sql: `SELECT l.order_id, l.sku, l.quantity, l.shipped, l.returned, o.status,
                 COALESCE(a.reserved, 0) AS a_reserved, COALESCE(a.shipped, 0) AS a_shipped
            FROM order_lines l JOIN orders o ON o.id = l.order_id
            LEFT JOIN (SELECT order_id, sku, SUM(reserved) AS reserved, SUM(shipped) AS shipped FROM order_line_allocations
                        GROUP BY order_id, sku) a ON a.order_id = l.order_id AND a.sku = l.sku
           WHERE l.shipped <> COALESCE(a.shipped, 0) OR l.returned > l.shipped OR l.shipped > l.quantity
              OR (l.reserved AND o.status IN ('confirmed', 'awaiting_stock', 'partially_shipped', 'completed')
                  AND COALESCE(a.reserved, 0) + COALESCE(a.shipped, 0) <> l.quantity)
           ORDER BY 1, 2`,
    line: (r) =>
      `order ${r.order_id} ${r.sku} (${r.status}): quantity ${r.quantity}, allocations reserved ${r.a_reserved} shipped ${r.a_shipped}, line shipped ${r.shipped} returned ${r.returned}`,
  },
  {
    name: 'shipments-returns',
    // Guarantee 11: what the shipments of an order list is what its lines shipped; what its returns list is what they returned.
    sql: `WITH s AS (SELECT order_id, x->>'sku' AS sku, SUM((x->>'quantity')::bigint) AS q
                     FROM shipments, jsonb_array_elements(lines) x GROUP BY 1, 2),
               r AS (SELECT order_id, x->>'sku' AS sku, SUM((x->>'quantity')::bigint) AS q
                     FROM returns, jsonb_array_elements(lines) x GROUP BY 1, 2)
          SELECT l.order_id, l.sku, l.shipped, COALESCE(s.q, 0) AS in_shipments, l.returned, COALESCE(r.q, 0) AS in_returns
            FROM order_lines l LEFT JOIN s ON s.order_id = l.order_id AND s.sku = l.sku
                               LEFT JOIN r ON r.order_id = l.order_id AND r.sku = l.sku
           WHERE l.shipped <> COALESCE(s.q, 0) OR l.returned <> COALESCE(r.q, 0)
           ORDER BY 1, 2`,
    line: (r) =>
      `order ${r.order_id} ${r.sku}: shipped ${r.shipped} but shipments list ${r.in_shipments}; returned ${r.returned} but returns list ${r.in_returns}`,
  },
  {
    name: 'shipments-by-location',
    // Guarantee 11, per location: what an order's shipments from a location list per SKU is what its
    // allocation there shipped and what the sales booked there (shipped ≤ reserved per line and location).
    sql: `WITH s AS (SELECT order_id, x->>'sku' AS sku, location, SUM((x->>'quantity')::bigint) AS q
                     FROM shipments, jsonb_array_elements(lines) x GROUP BY 1, 2, 3),
               m AS (SELECT order_id, sku, location, -SUM(quantity) AS q FROM stock_movements
                      WHERE type = 'sale' AND order_id IS NOT NULL GROUP BY 1, 2, 3),
               a AS (SELECT order_id, sku, location, shipped AS q FROM order_line_allocations WHERE shipped > 0),
               k AS (SELECT order_id, sku, location FROM s UNION SELECT order_id, sku, location FROM m
                     UNION SELECT order_id, sku, location FROM a)
          SELECT k.order_id, k.sku, k.location, COALESCE(s.q, 0) AS in_shipments, COALESCE(m.q, 0) AS sold,
                 COALESCE(a.q, 0) AS allocation_shipped
            FROM k LEFT JOIN s USING (order_id, sku, location) LEFT JOIN m USING (order_id, sku, location)
                   LEFT JOIN a USING (order_id, sku, location)
           WHERE COALESCE(s.q, 0) <> COALESCE(m.q, 0) OR COALESCE(s.q, 0) <> COALESCE(a.q, 0)
           ORDER BY 1, 2, 3`,
    line: (r) =>
      `order ${r.order_id} ${r.sku} at ${r.location}: shipments list ${r.in_shipments}, sales booked ${r.sold}, allocation shipped ${r.allocation_shipped}`,
  },
  {
    name: 'returns-ledger',
    // Guarantee 11 (a return applies once) and 2: the restocked units of an order's returns, per SKU
    // and location, are its `return` movements; damaged units move no stock.
    sql: `WITH r AS (SELECT order_id, x->>'sku' AS sku, x->>'location' AS location, SUM((x->>'quantity')::bigint) AS q
                     FROM returns, jsonb_array_elements(lines) x WHERE x->>'disposition' = 'restock' GROUP BY 1, 2, 3),
               m AS (SELECT order_id, sku, location, SUM(quantity) AS q FROM stock_movements
                      WHERE type = 'return' GROUP BY 1, 2, 3)
          SELECT COALESCE(r.order_id, m.order_id) AS order_id, COALESCE(r.sku, m.sku) AS sku,
                 COALESCE(r.location, m.location) AS location, COALESCE(r.q, 0) AS restocked, COALESCE(m.q, 0) AS booked
            FROM r FULL JOIN m ON m.order_id = r.order_id AND m.sku = r.sku AND m.location = r.location
           WHERE COALESCE(r.q, 0) <> COALESCE(m.q, 0)
           ORDER BY 1, 2, 3`,
    line: (r) =>
      `order ${r.order_id} ${r.sku} at ${r.location}: returns restocked ${r.restocked} but return movements book ${r.booked}`,
  },
  {
    name: 'shortage-youngest',
    // Guarantee 9: a count's shortage revokes from the youngest reservations first. For each line a
    // count revoked at its location, no order with a higher seq kept a reservation there: what each
    // order held there is read from the ledger below the count's horizon (every movement committed
    // before the count took its locks), the revoked lines from the count's own release movements.
    sql: `WITH revoked AS (
            SELECT DISTINCT c.count_id, c.location, c.horizon, m.sku, m.order_id, o.seq
              FROM stock_counts c
              JOIN stock_movements cm ON cm.type = 'count' AND cm.event_id = c.count_id
              JOIN stock_movements m ON m.type = 'release' AND m.reason = 'stock count shortage' AND m.sku = cm.sku
                                    AND m.location = c.location AND m.created_at = cm.created_at AND m.id > c.horizon
              JOIN orders o ON o.id = m.order_id
             WHERE c.horizon IS NOT NULL),
          shortages AS (SELECT DISTINCT count_id, location, horizon, sku FROM revoked),
          held AS (
            SELECT s.count_id, s.sku, h.order_id, o.seq
              FROM shortages s
              JOIN stock_movements h ON h.sku = s.sku AND h.location = s.location AND h.id < s.horizon
                                    AND h.type IN ('reservation', 'release', 'sale') AND h.order_id IS NOT NULL
              JOIN orders o ON o.id = h.order_id
             GROUP BY s.count_id, s.sku, h.order_id, o.seq HAVING SUM(h.quantity) > 0)
          SELECT v.count_id, v.sku, v.location, v.order_id AS revoked, v.seq AS revoked_seq, k.order_id AS kept, k.seq AS kept_seq
            FROM revoked v JOIN held k ON k.count_id = v.count_id AND k.sku = v.sku AND k.seq > v.seq
           WHERE NOT EXISTS (SELECT 1 FROM revoked x WHERE x.count_id = v.count_id AND x.sku = v.sku AND x.order_id = k.order_id)
           ORDER BY 1, 2, 5`,
    line: (r) =>
      `count ${r.count_id} ${r.sku} at ${r.location}: revoked order ${r.revoked} (seq ${r.revoked_seq}) but kept the younger order ${r.kept} (seq ${r.kept_seq})`,
  },
  {
    name: 'wait-own-seq',
    // Guarantees 5 and 9: a line queues at its order's seq (a revoked line waits again at its own seq).
    sql: `SELECT l.order_id, l.sku, l.seq AS line_seq, o.seq AS order_seq FROM order_lines l JOIN orders o ON o.id = l.order_id
           WHERE l.seq IS DISTINCT FROM o.seq ORDER BY 1, 2`,
    line: (r) =>
      `order ${r.order_id} ${r.sku}: the line queues at seq ${r.line_seq}, its order's seq is ${r.order_seq}`,
  },
  {
    name: 'external-ref-once',
    // Change 7: one order per (key name, external_ref); orders from before key names were kept are not counted.
    sql: `SELECT key_name, external_ref, COUNT(*) AS orders FROM orders
           WHERE key_name IS NOT NULL AND external_ref IS NOT NULL
           GROUP BY key_name, external_ref HAVING COUNT(*) > 1 ORDER BY 1, 2`,
    line: (r) => `external_ref ${r.external_ref} of key name ${r.key_name}: ${r.orders} orders`,
  },
  {
    name: 'receipts-once',
    // A restock event is applied once: one receipt, and only when marked applied.
    sql: `SELECT e.event_id, e.applied_at IS NOT NULL AS applied, COUNT(m.id) AS receipts FROM restock_events e
            LEFT JOIN stock_movements m ON m.event_id = e.event_id AND m.type = 'receipt'
           GROUP BY e.event_id, e.applied_at
          HAVING COUNT(m.id) <> CASE WHEN e.applied_at IS NULL THEN 0 ELSE 1 END
           ORDER BY 1`,
    line: (r) => `restock ${r.event_id}: ${r.receipts} receipt movements (${r.applied ? 'applied' : 'not applied'})`,
  },
  {
    name: 'count-ledger',
    // Guarantee 8: each count item's expected figure is the ledger of its (SKU, location) at counted_at
    // (the on-hand movements the count saw, below its horizon, created at or before counted_at, and
    // the corrections of earlier counts taken at or before it, whenever they were booked); the
    // variance booked is one `count` movement of counted − expected, none when that is 0 or when a
    // count of a later counted_at had booked the (SKU, location) first (superseded_by).
    sql: `SELECT c.count_id, i.sku, c.location, i.counted, i.expected, i.variance, i.superseded_by,
                 COALESCE((SELECT SUM(m.quantity) FROM stock_movements m
                            WHERE m.sku = i.sku AND m.location = c.location AND m.type IN (${ON_HAND_TYPES})
                              AND m.id < c.horizon
                              AND (m.created_at <= c.counted_at
                                   OR (m.type = 'count' AND EXISTS (SELECT 1 FROM stock_counts e
                                        WHERE e.count_id = m.event_id AND e.counted_at <= c.counted_at)))), 0) AS ledger,
                 (SELECT COUNT(*) FROM stock_movements m WHERE m.type = 'count' AND m.event_id = c.count_id AND m.sku = i.sku) AS booked_n,
                 (SELECT COALESCE(SUM(m.quantity), 0) FROM stock_movements m
                   WHERE m.type = 'count' AND m.event_id = c.count_id AND m.sku = i.sku) AS booked
            FROM stock_counts c JOIN stock_count_items i ON i.count_id = c.count_id`,
    line: (r) =>
      `count ${r.count_id} ${r.sku} at ${r.location}: counted ${r.counted}, expected ${r.expected} (ledger at counted_at ${r.ledger}), variance ${r.variance}, booked ${r.booked} in ${r.booked_n} movement(s)`,
  },
  {
    name: 'line-state',
    // Confirmed: every line reserved. Awaiting: every line reserved or waiting, at least one waiting.
    // Received, failed, rejected, cancelled: no line reserved or waiting.
    sql: `SELECT o.id, o.status, COUNT(*) AS lines, COUNT(*) FILTER (WHERE l.reserved) AS reserved,
                 COUNT(*) FILTER (WHERE l.waiting AND NOT l.reserved) AS waiting
            FROM orders o JOIN order_lines l ON l.order_id = o.id
           GROUP BY o.id, o.status
          HAVING (o.status = 'confirmed' AND (COUNT(*) FILTER (WHERE l.reserved) <> COUNT(*) OR SUM(l.shipped) > 0))
              OR (o.status = 'partially_shipped' AND (COUNT(*) FILTER (WHERE l.reserved) <> COUNT(*)
                                                      OR SUM(l.shipped) = 0 OR SUM(l.shipped) = SUM(l.quantity)))
              OR (o.status = 'completed' AND SUM(l.shipped) <> SUM(l.quantity))
              OR (o.status = 'awaiting_stock' AND (COUNT(*) FILTER (WHERE NOT l.reserved AND NOT l.waiting) > 0
                                                   OR COUNT(*) FILTER (WHERE l.waiting AND NOT l.reserved) = 0))
              OR (o.status IN ('received', 'failed', 'rejected', 'cancelled') AND COUNT(*) FILTER (WHERE l.reserved OR l.waiting) > 0)
           ORDER BY o.id`,
    line: (r) => `order ${r.id} is ${r.status} with ${r.lines} lines, ${r.reserved} reserved, ${r.waiting} waiting`,
  },
  {
    name: 'events',
    // One event per transition (the stable-id event the notification carries).
    sql: `SELECT o.id, o.transitions, COUNT(e.id) AS events FROM orders o LEFT JOIN events e ON e.order_id = o.id
           GROUP BY o.id, o.transitions HAVING COUNT(e.id) <> o.transitions ORDER BY o.id`,
    line: (r) => `order ${r.id}: ${r.transitions} transitions but ${r.events} events`,
  },
  {
    name: 'event-numbering',
    // Guarantee 10's record: per subject, events numbered 1, 2, 3 … with no gap, each linked to the
    // one before, and (once sequenced) in the same order as their sequence numbers.
    sql: `SELECT subject_type, subject_id, id, subject_sequence, previous_event_id, expected_previous, sequence, previous_sequence
            FROM (SELECT e.*, lag(e.id) OVER w AS expected_previous, lag(e.sequence) OVER w AS previous_sequence,
                         row_number() OVER w AS k
                    FROM events e
                  WINDOW w AS (PARTITION BY subject_type, subject_id ORDER BY subject_sequence)) x
           WHERE (subject_sequence <> k + (SELECT COALESCE(MIN(p.subject_sequence), 1) - 1 FROM events p
                                           WHERE p.subject_type = x.subject_type AND p.subject_id = x.subject_id))
              OR (k > 1 AND previous_event_id IS DISTINCT FROM expected_previous)
              OR (sequence IS NOT NULL AND previous_sequence IS NOT NULL AND sequence < previous_sequence)
           ORDER BY subject_type, subject_id, subject_sequence`,
    line: (r) =>
      `${r.subject_type} ${r.subject_id}: event ${r.id} is number ${r.subject_sequence} after ${r.expected_previous} (links ${r.previous_event_id}), sequence ${r.sequence} after ${r.previous_sequence}`,
  },
  {
    name: 'endpoint-deliveries',
    // Webhook endpoints: a delivered delivery was attempted and has its time; no delivery has more
    // attempt rows than claimed attempts (each is claimed before it is sent, recorded once), and none
    // was accepted (2xx) twice: never sent again once delivered.
    sql: `SELECT d.id, d.status, d.attempts, d.delivered_at, (SELECT COUNT(*) FROM delivery_attempts a WHERE a.delivery_id = d.id) AS recorded
            FROM endpoint_deliveries d
           WHERE (d.status = 'delivered' AND (d.delivered_at IS NULL OR d.attempts < 1))
              OR (SELECT COUNT(*) FROM delivery_attempts a WHERE a.delivery_id = d.id) > d.attempts
              OR (SELECT COUNT(*) FROM delivery_attempts a WHERE a.delivery_id = d.id AND a.status_code BETWEEN 200 AND 299) > 1
           ORDER BY d.id`,
    line: (r) =>
      `endpoint delivery ${r.id}: ${r.status}, ${r.attempts} attempts claimed, ${r.recorded} recorded, delivered_at ${r.delivered_at}`,
  },
  {
    name: 'fifo-head',
    // Guarantee 5, at rest: the head of a SKU's queue waits only because it does not fit.
    sql: `SELECT DISTINCT ON (l.sku) l.sku, l.order_id, l.seq, l.quantity - l.shipped AS quantity,
                 (SELECT COALESCE(SUM(v.on_hand - v.reserved), 0) FROM stock_levels v JOIN locations loc ON loc.code = v.location
                   WHERE v.sku = l.sku AND loc.active) AS free
            FROM order_lines l JOIN stock s ON s.sku = l.sku
           WHERE l.waiting AND NOT l.reserved
           ORDER BY l.sku, l.seq`,
    line: (r) =>
      `${r.sku}: head line of order ${r.order_id} (seq ${r.seq}) waits for ${r.quantity} while ${r.free} are free`,
  },
  {
    name: 'fifo-order',
    // Guarantee 5, over time: no line was reserved while a line of a smaller seq on the same SKU
    // already waited and still waits. The line's current wait began when its order's did
    // (awaiting_since), or, for a line a count revoked while its order already waited for another
    // line, at that revocation (its last shortage release): before it, the line held its stock and
    // younger orders were free to take what was left. Both times are transaction start times, so a
    // wait is only counted once it is FIFO_SLACK old: a batch that began before an allocation but
    // committed its wait after it did not wait yet for that allocation.
    sql: `SELECT m.sku, m.order_id, a.seq, m.created_at AS at, w.id AS waiting_order, w.seq AS waiting_seq
            FROM stock_movements m
            JOIN orders a ON a.id = m.order_id
            JOIN order_lines wl ON wl.sku = m.sku AND wl.waiting AND NOT wl.reserved AND wl.seq < a.seq
            JOIN orders w ON w.id = wl.order_id AND w.status = 'awaiting_stock'
                         AND GREATEST(w.awaiting_since,
                               (SELECT max(r.created_at) FROM stock_movements r
                                 WHERE r.order_id = w.id AND r.sku = wl.sku AND r.type = 'release' AND r.reason = 'stock count shortage'))
                             + make_interval(secs => ?) <= m.created_at
           WHERE m.type = 'reservation'
           ORDER BY m.sku, m.id`,
    bindings: (opts) => [opts.fifoSlackSeconds ?? 2],
    line: (r) =>
      `${r.sku}: order ${r.order_id} (seq ${r.seq}) got stock at ${new Date(r.at).toISOString()} while order ${r.waiting_order} (seq ${r.waiting_seq}) waited ahead of it`,
  },
  {
    name: 'queue-positions',
    // Backorder visibility: every waiting line's materialized place (rank and units before it,
    // against its SKU's offsets) is its place counted from scratch: position 1 is the head.
    sql: `WITH q AS (
            SELECT l.sku, l.order_id, l.seq, l.queue_rank - COALESCE(qo.lines, 0) AS position,
                   l.queue_units_before - COALESCE(qo.units, 0) AS units_ahead,
                   row_number() OVER w AS want_position,
                   COALESCE(sum(l.quantity - l.shipped) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS want_units
              FROM order_lines l LEFT JOIN queue_offsets qo ON qo.sku = l.sku
             WHERE l.waiting AND NOT l.reserved
            WINDOW w AS (PARTITION BY l.sku ORDER BY l.seq))
          SELECT * FROM q WHERE position IS DISTINCT FROM want_position OR units_ahead IS DISTINCT FROM want_units
           ORDER BY sku, seq`,
    line: (r) =>
      `${r.sku}: order ${r.order_id} (seq ${r.seq}) shows position ${r.position} / ${r.units_ahead} ahead, is ${r.want_position} / ${r.want_units}`,
  },
];

async function runRule(db: Executor, rule: Rule, opts: CheckOptions): Promise<{ count: number; lines: string[] }> {
  const { rows } = await db.raw(`SELECT * FROM (${rule.sql}) AS q`, rule.bindings?.(opts) ?? []);
  const bad =
    rule.name === 'fifo-head'
      ? rows.filter((r: any) => Number(r.quantity) <= Number(r.free))
      : rule.name === 'count-ledger'
        ? rows.filter(
            (r: any) =>
              Number(r.expected) !== Number(r.ledger) ||
              Number(r.variance) !== Number(r.counted) - Number(r.expected) ||
              Number(r.booked) !== (r.superseded_by ? 0 : Number(r.variance)) ||
              Number(r.booked_n) !== (Number(r.variance) === 0 || r.superseded_by ? 0 : 1),
          )
        : rows;
  return { count: bad.length, lines: bad.slice(0, LIMIT).map((r: any) => `${rule.name}: ${rule.line(r)}`) };
}

/** `received` orders past the grace period: each needs a live job (with queues), else it is reported as stuck. */
async function checkReceived(db: Executor, opts: CheckOptions): Promise<{ count: number; lines: string[] }> {
  const grace = opts.graceSeconds ?? 30;
  const rows: { id: string; seq: number; age: number }[] = (
    await db.raw(
      `SELECT id, seq, EXTRACT(EPOCH FROM now() - updated_at)::int AS age FROM orders
      WHERE status = 'received' AND updated_at < now() - make_interval(secs => ?) ORDER BY seq`,
      [grace],
    )
  ).rows;
  const lines: string[] = [];
  let count = 0;
  for (let i = 0; i < rows.length; i += 200) {
    const chunk = rows.slice(i, i + 200);
    const states = opts.queues
      ? await Promise.all(chunk.map((r) => opts.queues!.orders.getJobState(r.id)))
      : chunk.map(() => undefined);
    chunk.forEach((r, k) => {
      if (states[k] !== undefined && LIVE.has(states[k]!)) return;
      count++;
      if (lines.length < LIMIT) {
        lines.push(
          `received-live: order ${r.id} (seq ${r.seq}) has been received for ${r.age} s ${states[k] === undefined ? 'and its job was not checked' : `and its job is ${states[k]}`}`,
        );
      }
    });
  }
  return { count, lines };
}

/**
 * Checks every invariant of the contract against the database (and, optionally, the orders queue).
 * Read-only; safe to run against a live system, though a figure caught mid-transaction may show a
 * transient FIFO head problem that the next allocation resolves.
 */
export async function checkInvariants(db: Executor, opts: CheckOptions = {}): Promise<InvariantReport> {
  const problems: string[] = [];
  const counts: Record<string, number> = {};
  for (const rule of RULES) {
    const { count, lines } = await runRule(db, rule, opts);
    counts[rule.name] = count;
    problems.push(...lines);
    if (count > lines.length) problems.push(`${rule.name}: … and ${count - lines.length} more`);
  }
  const received = await checkReceived(db, opts);
  counts['received-live'] = received.count;
  problems.push(...received.lines);
  if (received.count > received.lines.length)
    problems.push(`received-live: … and ${received.count - received.lines.length} more`);
  return { ok: problems.length === 0, problems, counts };
}
