import { mkdirSync } from 'node:fs';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import sqsPartialBatchFailure from '@middy/sqs-partial-batch-failure';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { loadFactories } from './contracts/factories.js';
import { runtimeConfig, secretValue } from './core/config.js';
import { MessageFormatError } from './core/errors.js';
import { logger } from './core/logger.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { sqs } from './core/sqs.js';
import { settleRecords } from './core/sqs-batch.js';
import { fetchFailed, sourceFetched } from './core/telemetry.js';
import { fetchMessageSchema } from './fetch/due-sources.js';
import { fetchSource } from './fetch/fetch-source.js';
import { FetchError } from './fetch/remote.js';

const factories = loadFactories(runtimeConfig.configPath);
mkdirSync(runtimeConfig.tmpDir, { recursive: true });

/** Time kept in reserve for the last upload and the continuation message: 20% of the budget, ≥ 30 s. */
function deadline(context: Context): number {
  const remaining = context.getRemainingTimeInMillis();
  return Date.now() + remaining - Math.max(30_000, remaining * 0.2);
}

async function fetchRecord(record: SQSRecord, context: Context): Promise<void> {
  let body: unknown;
  try {
    body = JSON.parse(record.body);
  } catch (cause) {
    throw new MessageFormatError(record.messageId, 'body is not JSON', { cause });
  }
  const parsed = fetchMessageSchema.safeParse(body);
  if (!parsed.success) throw new MessageFormatError(record.messageId, 'not a fetch message');
  const { factory: factoryId, source: sourceId, continuation } = parsed.data;
  const factory = factories.factories.get(factoryId);
  const source = factory?.sources.find((s) => s.id === sourceId);
  if (!factory || !source)
    throw new MessageFormatError(record.messageId, `no source ${factoryId}/${sourceId} in factories.yaml`);
  try {
    const result = await fetchSource(factory, source, {
      rawBucket: runtimeConfig.buckets.raw,
      stateBucket: runtimeConfig.buckets.lake,
      tmpDir: runtimeConfig.tmpDir,
      secret: secretValue,
      deadline: deadline(context),
    });
    sourceFetched(result);
    if (result.continued) {
      // Out of time with files left: hand the rest to a fresh invocation instead of being killed.
      await sqs().send(
        new SendMessageCommand({
          QueueUrl: runtimeConfig.queueUrls.fetch!,
          MessageBody: JSON.stringify({
            factory: factoryId,
            source: sourceId,
            continuation: continuation + 1,
          }),
        }),
      );
    }
  } catch (err) {
    if (err instanceof FetchError) fetchFailed(factoryId, sourceId, err.kind, err);
    throw err;
  }
}

/** One fetch message per invocation (batch size 1): one source, its new files into the raw bucket. */
export async function fetchBatch(event: SQSEvent, context: Context) {
  return settleRecords(event.Records, 1, (record) => fetchRecord(record, context), 'fetch');
}

export const handler = middy(fetchBatch)
  .use(metricsMiddleware('fetch'))
  .use(
    sqsPartialBatchFailure({
      logger: (reason: unknown, record: SQSRecord) =>
        logger.error({ err: reason, messageId: record.messageId }, 'fetch failed; will retry'),
    }),
  );
