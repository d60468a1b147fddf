import { runtimeConfig } from '../core/config.js';
import { logger } from '../core/logger.js';
import { queueCounts } from '../core/sqs.js';
import type { QueueDepth } from './overview.js';

/**
 * The pipeline's queues and dead-letter queues with their depths, for the overview: the api function
 * may read their attributes (nothing else) — the URLs come from its environment. `null` when it knows
 * none; a queue it cannot read is logged and left out, it does not fail the page.
 */
export async function pipelineQueueDepths(): Promise<QueueDepth[] | null> {
  const queues = Object.entries(runtimeConfig.queueUrls).flatMap(([name, url]) => {
    const dlq = runtimeConfig.dlqUrls[name as keyof typeof runtimeConfig.dlqUrls];
    return [...(url ? [{ queue: name, url }] : []), ...(dlq ? [{ queue: `${name}-dlq`, url: dlq }] : [])];
  });
  if (queues.length === 0) return null;
  const depths = await Promise.all(
    queues.map(async ({ queue, url }) => {
      try {
        const { waiting, inFlight } = await queueCounts(url);
        return [{ queue, waiting, inFlight }];
      } catch (err) {
        logger.warn({ err, queue }, 'queue depth unavailable');
        return [];
      }
    }),
  );
  return depths.flat();
}
