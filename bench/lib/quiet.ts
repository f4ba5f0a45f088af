// Imported first by bench/run.ts: src/logger.ts reads LOG_LEVEL when it is first imported.
process.env.LOG_LEVEL ??= 'warn';
