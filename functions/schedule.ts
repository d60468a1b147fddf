import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { ScheduledEvent } from 'aws-lambda';
import { loadFactories } from './contracts/factories.js';
import { runtimeConfig } from './core/config.js';
import { logger } from './core/logger.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { sqs } from './core/sqs.js';
import { dueSources, scheduleDetailSchema } from './fetch/due-sources.js';

const factories = loadFactories(runtimeConfig.configPath);

/**
 * Every minute: one fetch message per enabled source whose cron is due now (less the factories the
 * event's `detail.skipFactories` names).
 */
export async function scheduleSources(
  event: Pick<ScheduledEvent, 'time'> & { detail?: unknown },
): Promise<{ enqueued: number }> {
  const queueUrl = runtimeConfig.queueUrls.fetch;
  if (!queueUrl) throw new Error('QUEUE_URL_FETCH is not set');
  const { skipFactories } = scheduleDetailSchema.parse(event.detail ?? {});
  const due = dueSources(factories, new Date(event.time), skipFactories);
  for (let i = 0; i < due.length; i += 10) {
    await sqs().send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: due.slice(i, i + 10).map((m, j) => ({ Id: String(j), MessageBody: JSON.stringify(m) })),
      }),
    );
  }
  if (due.length > 0)
    logger.info({ stage: 'schedule', due: due.map((m) => `${m.factory}/${m.source}`) }, 'sources enqueued');
  return { enqueued: due.length };
}

export const handler = middy(scheduleSources).use(metricsMiddleware('schedule'));
