import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { runtimeConfig } from '../core/config.js';
import { logger } from '../core/logger.js';
import { sqs } from '../core/sqs.js';
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
        const res = await sqs().send(
          new GetQueueAttributesCommand({
            QueueUrl: url,
            AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
          }),
        );
        const a = res.Attributes ?? {};
        return [
          {
            queue,
            waiting: Number(a.ApproximateNumberOfMessages ?? 0),
            inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0),
          },
        ];
      } catch (err) {
        logger.warn({ err, queue }, 'queue depth unavailable');
        return [];
      }
    }),
  );
  return depths.flat();
}
