// The intake ceiling: a bare Express 5 handler that parses the JSON body and does one BullMQ
// queue.add (job id = a new uuid, payload {orderId}, the orders queue's default options).
// No auth, no validation, no database. Reports its port over IPC; exits on 'stop'.
import { Queue } from 'bullmq';
import express from 'express';
import { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { loadConfigOrExit } from '../../src/platform/config';
import { JOB, jobOptions } from '../../src/jobs/queues';
import { serveForBench } from './serve';

const config = loadConfigOrExit();
const connection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
const queue = new Queue('orders', {
  connection,
  prefix: config.QUEUE_PREFIX,
  defaultJobOptions: jobOptions(config, 'orders'),
});
const app = express();
app.use(express.json());
app.post('/v1/orders', async (req, res) => {
  const id = uuidv7();
  await queue.add(JOB.processOrder, { orderId: id }, { jobId: id });
  res.status(202).json({ id, status: 'received', created_at: new Date().toISOString() });
});
serveForBench(app, queue.waitUntilReady(), async () => {
  await queue.close();
  connection.disconnect();
});
