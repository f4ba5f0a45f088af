// The real API for the intake benchmark: createApp(ctx) on a real port, real PostgreSQL and Redis,
// no workers (jobs wait in the queue). Reports its port over IPC; exits on 'stop'.
import { loadConfigOrExit } from '../../src/platform/config';
import { closeContext, createContext } from '../../src/app/context';
import { createApp } from '../../src/http/app';
import { redisReady, serveForBench } from './serve';

const ctx = createContext(loadConfigOrExit());
// Listen once Redis is connected, so the warm-up does not meet a producer that is still connecting.
serveForBench(createApp(ctx), redisReady(ctx.redis), () => closeContext(ctx));
