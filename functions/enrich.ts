import { mkdirSync } from 'node:fs';
import middy from '@middy/core';
import sqsPartialBatchFailure from '@middy/sqs-partial-batch-failure';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { configDir, factoriesLoader } from './contracts/factories.js';
import { bundledReference } from './contracts/reference.js';
import { runtimeConfig } from './core/config.js';
import { openDuckDB } from './core/duckdb.js';
import { logger } from './core/logger.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { ReferenceStore } from './core/reference-store.js';
import { parseS3Notification } from './core/s3-event.js';
import { sendToWarehouse } from './core/sqs.js';
import { settleRecords } from './core/sqs-batch.js';
import { objectEnriched } from './core/telemetry.js';
import { BaselineCache } from './enrich/baselines.js';
import { enrichObject } from './enrich/enrich-object.js';

// Loaded at import (config errors fail the cold start with the file and path), and again when it changes.
const factories = factoriesLoader(runtimeConfig.configPath);
const reference = new ReferenceStore(
  runtimeConfig.buckets.lake,
  bundledReference(configDir(runtimeConfig.configPath)),
);
mkdirSync(runtimeConfig.tmpDir, { recursive: true });
const baselines = new BaselineCache(runtimeConfig.buckets.warehouse, runtimeConfig.tmpDir);
const db = await openDuckDB();

async function enrichRecord(record: SQSRecord): Promise<void> {
  const warehouseQueue = runtimeConfig.queueUrls.warehouse;
  if (!warehouseQueue) throw new Error('QUEUE_URL_WAREHOUSE is not set');
  for (const event of parseS3Notification(record.body, record.messageId)) {
    const stats = await enrichObject(event, {
      db,
      tmpDir: runtimeConfig.tmpDir,
      reference,
      baselines,
      settings: factories().enrichment,
      send: (message) => sendToWarehouse(warehouseQueue, message, record.messageId),
    });
    if (stats) objectEnriched(stats, event.key);
  }
}

/** A batch of lake notifications (normalized Parquet and ETL manifests). */
export async function enrichBatch(event: SQSEvent) {
  return settleRecords(event.Records, 2, enrichRecord, 'enrich');
}

export const handler = middy(enrichBatch)
  .use(metricsMiddleware('enrich'))
  .use(
    sqsPartialBatchFailure({
      logger: (reason: unknown, record: SQSRecord) =>
        logger.error({ err: reason, messageId: record.messageId }, 'record failed; will retry'),
    }),
  );
