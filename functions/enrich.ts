import { mkdirSync } from 'node:fs';
import middy from '@middy/core';
import sqsPartialBatchFailure from '@middy/sqs-partial-batch-failure';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { configDir, factoriesLoader } from './contracts/factories.js';
import { MAX_FILES_PER_MESSAGE, type WarehouseFile } from './contracts/messages.js';
import { bundledReference } from './contracts/reference.js';
import { runtimeConfig } from './core/config.js';
import { openDuckDB } from './core/duckdb.js';
import { logger } from './core/logger.js';
import { metricsMiddleware } from './core/metrics-middleware.js';
import { ReferenceStore } from './core/reference-store.js';
import { parseS3Notification } from './core/s3-event.js';
import { sendToWarehouse } from './core/sqs.js';
import { settleRecords } from './core/sqs-batch.js';
import { fileForwarded, objectEnriched } from './core/telemetry.js';
import { BaselineCache } from './enrich/baselines.js';
import { enrichFile } from './enrich/enrich-file.js';

// Loaded at import (config errors fail the cold start with the file and path), and again when it changes.
const factories = factoriesLoader(runtimeConfig.configPath);
const reference = new ReferenceStore(
  runtimeConfig.buckets.lake,
  bundledReference(configDir(runtimeConfig.configPath)),
);
mkdirSync(runtimeConfig.tmpDir, { recursive: true });
const baselines = new BaselineCache(runtimeConfig.buckets.warehouse, runtimeConfig.tmpDir);
const db = await openDuckDB();

/** The raw files one record finished (a notification may hold several records). */
async function enrichRecord(record: SQSRecord): Promise<WarehouseFile[]> {
  const files: WarehouseFile[] = [];
  for (const event of parseS3Notification(record.body, record.messageId)) {
    const done = await enrichFile(event, {
      db,
      tmpDir: runtimeConfig.tmpDir,
      reference,
      baselines,
      settings: factories().enrichment,
    });
    if (!done) {
      logger.info({ key: event.key }, 'not a manifest: its file is enriched when its manifest arrives');
      continue;
    }
    for (const stats of done.stats) objectEnriched(stats, event.key);
    fileForwarded(done.file.key);
    files.push(done.file);
  }
  return files;
}

/**
 * A batch of ETL manifest notifications: each file is enriched, and the files of the records that
 * succeeded go to the warehouse in one message — the writer loads them in one commit. If that send
 * fails, every record fails with it and is retried (enriching again rewrites the same objects).
 */
export async function enrichBatch(event: SQSEvent) {
  const warehouseQueue = runtimeConfig.queueUrls.warehouse;
  if (!warehouseQueue) throw new Error('QUEUE_URL_WAREHOUSE is not set');
  const results = await settleRecords(event.Records, 2, enrichRecord, 'enrich');
  const files = results.flatMap((r) =>
    r.status === 'fulfilled' ? ((r.value as WarehouseFile[]) ?? []) : [],
  );
  const triggers = event.Records.filter((_, i) => results[i]!.status === 'fulfilled').map((r) => r.messageId);
  for (let i = 0; i < files.length; i += MAX_FILES_PER_MESSAGE) {
    await sendToWarehouse(
      warehouseQueue,
      { kind: 'files', files: files.slice(i, i + MAX_FILES_PER_MESSAGE) },
      triggers,
    );
  }
  return results;
}

export const handler = middy(enrichBatch)
  .use(metricsMiddleware('enrich'))
  .use(
    sqsPartialBatchFailure({
      logger: (reason: unknown, record: SQSRecord) =>
        logger.error({ err: reason, messageId: record.messageId }, 'record failed; will retry'),
    }),
  );
