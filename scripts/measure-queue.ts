/**
 * The write cost of keeping queue positions materialized, and the read of one order, on queues of
 * 1,000, 10,000 and 50,000 waiting lines of one SKU (docs/architecture.md, "Backorder visibility").
 * Creates and drops its own database on ADMIN_DATABASE_URL (default the local server).
 *   npx tsx scripts/measure-queue.ts
 */
import pg from 'pg';
import { createDb, migrateLatest, withDatabase } from '../src/platform/db';
import { queueJoined, queueLeft, refreshQueue } from '../src/orders/sql/queue';
import { ORDER_JSON } from '../src/orders/sql/order-json';
import { REPLENISHMENT_SQL } from '../src/reports/reports.service';

const admin = process.env.ADMIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const name = `of_inbound_measure_${process.pid}`;
async function main() {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  const db = createDb(withDatabase(admin, name), 4);
  try {
    await migrateLatest(db);
    for (const n of [1000, 10000, 50000]) {
      const sku = `HOT-${n}`;
      await db('products').insert({ sku, name: 'hot', price_cents: 1 });
      await db('stock').insert({ sku, on_hand: 0 });
      await db('stock_levels').insert({ sku, location: 'main', on_hand: 0 });
      await db.raw(
        `INSERT INTO orders (id, customer_id, status, on_insufficient_stock)
        SELECT gen_random_uuid(), gen_random_uuid(), 'awaiting_stock', 'backorder' FROM generate_series(1, ?)`,
        [n],
      );
      await db.raw(
        `INSERT INTO order_lines (order_id, line_no, sku, quantity, seq, waiting)
        SELECT id, 1, ?, 1 + (seq % 3), seq, true FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id)`,
        [sku],
      );
      await db.raw('ANALYZE order_lines');
      await db.raw(
        `INSERT INTO inbound (inbound_id, sku, location, quantity, expected_at, request_hash, actor_role, actor_name)
        SELECT 'in-' || ? || '-' || g, ?, 'main', 500, now() + g * interval '1 day', 'x', 'system', 'measure' FROM generate_series(1, 5) g`,
        [sku, sku],
      );
      const time = async (what: string, fn: () => Promise<void>, reps = 5) => {
        const ms: number[] = [];
        for (let i = 0; i < reps; i++) {
          const t = process.hrtime.bigint();
          await fn();
          ms.push(Number(process.hrtime.bigint() - t) / 1e6);
        }
        ms.sort((a, b) => a - b);
        console.log(`${n}\t${what}\tmedian ${ms[Math.floor(reps / 2)].toFixed(1)} ms\tmin ${ms[0].toFixed(1)}`);
      };
      await db.transaction((trx) => refreshQueue(trx, [sku])); // first numbering
      await time('full refreshQueue, nothing changed', () => db.transaction((trx) => refreshQueue(trx, [sku])));
      await time('a line joins at the tail', async () => {
        await db.transaction(async (trx) => {
          const [o] = await trx('orders')
            .insert({
              id: trx.raw('gen_random_uuid()'),
              customer_id: trx.raw('gen_random_uuid()'),
              status: 'awaiting_stock',
              on_insufficient_stock: 'backorder',
            })
            .returning(['id', 'seq']);
          await trx('order_lines').insert({ order_id: o.id, line_no: 1, sku, quantity: 1, seq: o.seq, waiting: true });
          await queueJoined(trx, [{ sku, seq: o.seq, quantity: 1 }]);
        });
      });
      await time(
        'head served: 10 lines reserved',
        async () => {
          await db.transaction(async (trx) => {
            const { rows } = await trx.raw(
              `UPDATE order_lines SET reserved = true WHERE (order_id, sku) IN (SELECT order_id, sku FROM order_lines WHERE sku = ? AND waiting AND NOT reserved ORDER BY seq LIMIT 10) RETURNING sku, seq, quantity`,
              [sku],
            );
            await queueLeft(trx, rows);
          });
        },
        3,
      );
      const tail = (
        await db('order_lines').where({ sku, waiting: true, reserved: false }).orderBy('seq', 'desc').first('order_id')
      ).order_id;
      await time(
        'renumber after a line in the middle leaves',
        async () => {
          await db.transaction(async (trx) => {
            const { rows } = await trx.raw(
              `UPDATE order_lines SET waiting = false WHERE (order_id, sku) = (SELECT order_id, sku FROM order_lines WHERE sku = ? AND waiting AND NOT reserved ORDER BY seq OFFSET ${n / 2} LIMIT 1) RETURNING sku, seq, quantity`,
              [sku],
            );
            await queueLeft(trx, rows);
          });
        },
        3,
      );
      await time(
        'read of one order at the tail (ORDER_JSON)',
        async () => {
          await db.raw(`SELECT ${ORDER_JSON} AS j FROM orders o WHERE o.id = ?`, [tail]);
        },
        21,
      );
      if (n === 50000) {
        const plan = await db.raw(
          `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT ${ORDER_JSON} AS j FROM orders o WHERE o.id = ?`,
          [tail],
        );
        console.log(plan.rows.map((r: any) => r['QUERY PLAN']).join('\n'));
      }
    }
    const rep = await db.raw(`EXPLAIN (COSTS OFF) ${REPLENISHMENT_SQL(false)}`, { days: 28, cover_days: 14 });
    console.log(rep.rows.map((r: any) => r['QUERY PLAN']).join('\n'));
  } finally {
    await db.destroy();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
