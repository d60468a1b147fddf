import { mkdirSync } from 'node:fs';
import middy from '@middy/core';
import sqsPartialBatchFailure from '@middy/sqs-partial-batch-failure';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { factoriesLoader } from './contracts/factories.js';
import { runtimeConfig } from './core/config.js';
import { openDuckDB } from './core/duckdb.js';
import { logger } from './core/logger.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { parseS3Notification } from './core/s3-event.js';
import { settleRecords } from './core/sqs-batch.js';
import { fileProcessed } from './core/telemetry.js';
import { etlObject } from './etl/etl-object.js';

// Loaded at import — a bad factories.yaml fails the cold start with its path — and again when the file
// changes (locally: a fixed rule applies without a restart; see `telemetry-pipeline reprocess`).
const factoriesNow = factoriesLoader(runtimeConfig.configPath);
mkdirSync(runtimeConfig.tmpDir, { recursive: true });
const db = await openDuckDB();

/** Time kept back from the deadline to stop, clean up and report (the function's limit is 300 s). */
const DEADLINE_MARGIN_MS = 15_000;

/** One SQS record: an S3 notification naming one or more raw objects. */
async function etlRecord(record: SQSRecord, signal: AbortSignal): Promise<void> {
  for (const event of parseS3Notification(record.body, record.messageId)) {
    const factories = factoriesNow();
    const outcome = await etlObject(event, {
      signal,
      factories,
      db,
      lakeBucket: runtimeConfig.buckets.lake,
      tmpDir: runtimeConfig.tmpDir,
      maxLineBytes: factories.limits.maxLineBytes ?? runtimeConfig.maxLineBytes,
    });
    fileProcessed('etl', outcome.manifest, outcome.status);
  }
}

/**
 * A batch of raw-bucket notifications; failed records are reported back for retry. Work still going
 * near the function's deadline is stopped and fails its record, rather than being cut off by the
 * runtime mid-write — or, in the local runtime, which cannot kill it, running on beside its retry.
 */
export async function etlBatch(event: SQSEvent, context: Pick<Context, 'getRemainingTimeInMillis'>) {
  const signal = AbortSignal.timeout(
    Math.max(1_000, context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS),
  );
  return settleRecords(event.Records, 2, (record) => etlRecord(record, signal), 'etl');
}

export const handler = middy(etlBatch)
  .use(metricsMiddleware('etl'))
  .use(
    sqsPartialBatchFailure({
      logger: (reason: unknown, record: SQSRecord) =>
        logger.error({ err: reason, messageId: record.messageId }, 'record failed; will retry'),
    }),
  );
