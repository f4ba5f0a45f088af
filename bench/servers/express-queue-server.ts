// The intake ceiling: a bare Express 5 handler that parses the JSON body and does one BullMQ
// queue.add (job id = a new uuid, payload {orderId}, the orders queue's default options).
// No auth, no validation, no database. Reports its port over IPC; exits on 'stop'.
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import express from 'express';
import { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { loadConfigOrExit } from '../../src/config';
import { JOB, jobOptions } from '../../src/queue/queues';

const config = loadConfigOrExit();
const connection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
const queue = new Queue('orders', { connection, prefix: config.QUEUE_PREFIX, defaultJobOptions: jobOptions(config, 'orders') });
const app = express();
app.use(express.json());
app.post('/v1/orders', async (req, res) => {
  const id = uuidv7();
  await queue.add(JOB.processOrder, { orderId: id }, { jobId: id });
  res.status(202).json({ id, status: 'received', created_at: new Date().toISOString() });
});
let server: ReturnType<typeof app.listen>;
void queue.waitUntilReady().then(() => {
  server = app.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
});
process.on('message', async (m) => {
  if (m !== 'stop') return;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await queue.close();
  connection.disconnect();
  process.exit(0);
});
