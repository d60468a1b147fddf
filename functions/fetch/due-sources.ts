import { Cron } from 'croner';
import { z } from 'zod';
import type { FactoriesConfig } from '../contracts/factories.js';

/** The message the schedule function (or a fetch that ran out of time) puts on the fetch queue. */
export const fetchMessageSchema = z.object({
  factory: z.string().min(1),
  source: z.string().min(1),
  /** Set on a continuation: the run before stopped at its time budget. */
  continuation: z.number().int().min(0).default(0),
});
export type FetchMessage = z.infer<typeof fetchMessageSchema>;

/**
 * What a scheduled event may carry in its `detail` (EventBridge Scheduler's target input):
 * `skipFactories` — factories whose sources are not scheduled (the local runtime's `--no-demo` leaves
 * the demo factory's remotes unstarted, so its sources would only fail into the DLQ).
 */
export const scheduleDetailSchema = z
  .object({ skipFactories: z.array(z.string()).default([]) })
  .catch({ skipFactories: [] });

/** Enabled sources whose cron (in the factory's zone) matches the minute of `at`. */
export function dueSources(
  config: FactoriesConfig,
  at: Date,
  skipFactories: readonly string[] = [],
): FetchMessage[] {
  const minute = new Date(Math.floor(at.getTime() / 60_000) * 60_000);
  const out: FetchMessage[] = [];
  for (const factory of config.factories.values()) {
    if (skipFactories.includes(factory.id)) continue;
    for (const source of factory.sources) {
      if (!source.enabled) continue;
      if (new Cron(source.schedule, { timezone: factory.timezone, paused: true }).match(minute)) {
        out.push({ factory: factory.id, source: source.id, continuation: 0 });
      }
    }
  }
  return out;
}
