import { pino } from 'pino';

/**
 * Structured JSON logger shared by every function and the local runtime. `LOG_LEVEL` sets the level;
 * the local runtime pretty-prints nothing on purpose: one JSON line per event is what CloudWatch and
 * `jq` both read.
 */
export const logger = pino({
  level: process.env.LOG_LEVEL ?? 'info',
  base: undefined,
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
});

export type Logger = typeof logger;
