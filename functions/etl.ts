import { mkdirSync } from 'node:fs';
import middy from '@middy/core';
import sqsPartialBatchFailure from '@middy/sqs-partial-batch-failure';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { runtimeConfig } from './core/config.js';
import { openDuckDB } from './core/duckdb.js';
import { logger } from './core/logger.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { parseS3Notification } from './core/s3-event.js';
import { settleRecords } from './core/sqs-batch.js';
import { fileProcessed } from './core/telemetry.js';
import { etlObject } from './etl/etl-object.js';
import { loadFactories } from './etl/factories.js';

// Loaded once per container, at import: a bad factories.yaml fails the cold start with its path.
const factories = loadFactories(runtimeConfig.configPath);
mkdirSync(runtimeConfig.tmpDir, { recursive: true });
const db = await openDuckDB();

/** One SQS record: an S3 notification naming one or more raw objects. */
async function etlRecord(record: SQSRecord): Promise<void> {
  for (const event of parseS3Notification(record.body, record.messageId)) {
    const outcome = await etlObject(event, {
      factories,
      db,
      lakeBucket: runtimeConfig.buckets.lake,
      tmpDir: runtimeConfig.tmpDir,
      maxLineBytes: factories.limits.maxLineBytes ?? runtimeConfig.maxLineBytes,
    });
    fileProcessed('etl', outcome.manifest, outcome.status);
  }
}

/** A batch of raw-bucket notifications; failed records are reported back for retry. */
export async function etlBatch(event: SQSEvent) {
  return settleRecords(event.Records, 2, etlRecord);
}

export const handler = middy(etlBatch)
  .use(metricsMiddleware('etl'))
  .use(
    sqsPartialBatchFailure({
      logger: (reason: unknown, record: SQSRecord) =>
        logger.error({ err: reason, messageId: record.messageId }, 'record failed; will retry'),
    }),
  );
